/*
 * upgrade.h - what an mpechod master hands to the binary it re-executes on SIGUSR2 (the
 * environment variable MPECHOD_UPGRADE), and the words the two binaries must share for the
 * hand-over to be safe (MPECHOD_UPGRADE_CHECK, compared by the new binary's -t).  Pure: no I/O.
 */
#ifndef MPECHO_UPGRADE_H
#define MPECHO_UPGRADE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define UPGRADE_ENV "MPECHOD_UPGRADE"
#define UPGRADE_CHECK_ENV "MPECHOD_UPGRADE_CHECK"
/* The hand-over's version: a binary that reads another refuses it. */
#define UPGRADE_PROTO 1
#define UPGRADE_MAX_FDS 32
#define UPGRADE_LIFE_LEN 32
#define UPGRADE_ENV_MAX 1024

struct upgrade_hand {
	int lfd[UPGRADE_MAX_FDS], nlfd;   /* TCP listeners */
	int ufd[UPGRADE_MAX_FDS], nufd;   /* --udp sockets */
	int mfd[UPGRADE_MAX_FDS], nmfd;   /* --metrics listeners */
	int agent_fd;                     /* --agent-port's listener; -1 without */
	int pipe_rd, pipe_wr, lock_fd;    /* the store pipe and the master's lock; -1 without */
	pid_t store, dgram, metrics;      /* the helpers of the binary before; 0: none */
	uint64_t next_conn;               /* conn numbers go on from here (unique in the pipe) */
	uint64_t key;                     /* the frames' key of the life before */
	char life[UPGRADE_LIFE_LEN + 1];  /* its id */
};

/* Writes h as the value of MPECHOD_UPGRADE; its length, or -1 when len is too short. */
int upgrade_format(const struct upgrade_hand *h, char *buf, size_t len);
/* Reads a value written by upgrade_format: 0, or -1 when anything is malformed (another
 * version, a descriptor below 3, a missing or extra field). */
int upgrade_parse(const char *s, struct upgrade_hand *h);
/* The words both binaries must agree on: the hand-over's version, the frame format, the
 * store's path (NULL: none), which an upgrade cannot change (the store pipe goes on), and -u's
 * user (NULL: none), which the master has already become. */
void upgrade_check_words(char *buf, size_t len, const char *store, const char *user);

#endif
