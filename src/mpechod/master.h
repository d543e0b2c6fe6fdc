/*
 * master.h - the master's state and the functions its files share.  The master is one
 * process in four files: master.c (the loop: accept, fork, reap, shutdown), master_setup.c
 * (sockets, privileges, systemd, the gate's rules), master_store.c (the store and datagram
 * processes, and the records owed to the store), master_pool.c (--prefork's pool).
 */
#ifndef MPECHO_MASTER_H
#define MPECHO_MASTER_H

#include "admit.h"
#include "datagram.h"
#include "inetd.h"
#include "io.h"
#include "log.h"
#include "net.h"
#include "opts.h"
#include "pool.h"
#include "version.h"
#include "record.h"
#include "sd.h"
#include "session.h"
#include "sig.h"
#include "spare.h"
#include "store.h"
#include "user.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define MASTER_MAX_LISTEN 32
#define MASTER_ACCEPT_BURST 32
/* Half-closed connections with data put aside while the listen queue is worked through. */
#define MASTER_DEFER_MAX 256
#define MASTER_DEFER_BATCH 16
#define MASTER_DEFER_AGE_MS 50
#define MASTER_PIPE_SIZE (1024 * 1024)
#define MASTER_KILL_WAIT_MS ((int64_t)2 * SESSION_STOP_WAIT_MS)
#define MASTER_STORE_WAIT_MS 60000
#define MASTER_STATUS_MS 5000
/* --store-full block: how long the end of a shutdown waits for a full disk. */
#define MASTER_STORE_GIVEUP_MS 5000

struct child {
	pid_t pid;
	int slot;       /* scoreboard index */
	uint64_t conn;
	struct admit_key src; /* the peer's address */
	int admitted;         /* src is counted for --max-per-source */
	uint16_t port;  /* the peer's, in host order: with src, its open record if the master owes it */
};

/* A record the master owes the store for a session that could not write it: a close record,
 * or an open record (the peer's address as text). */
struct owed {
	struct rec_hdr h;
	unsigned char payload[8 + REC_REASON_MAX > NET_ADDRLEN ? 8 + REC_REASON_MAX : NET_ADDRLEN];
};

/* The master's state lives in a shared anonymous mapping, not in its private memory.  A page
 * the master writes after a fork is copied for the master, and every older session keeps the
 * original as its own: with the counters and the child table in private memory,
 * each held connection would pay for several pages it never touches.  In a MAP_SHARED mapping
 * there is no copy; sessions only read it (right after fork) and never write it. */
struct master {
	struct settings set;
	int lfd[MASTER_MAX_LISTEN];
	int nlfd;
	int ufd[MASTER_MAX_LISTEN];  /* --udp: bound UDP sockets, served by the datagram process */
	int nufd;
	uint16_t port;               /* the port served */
	pid_t dgram_pid;
	int64_t dgram_started_ms;
	struct datagram_stats dgstats; /* written by the datagram process */
	int pipe_rd, pipe_wr;        /* the store pipe; -1 without a store */
	int lock_fd;                 /* holds the master's lock on the store; -1 without one */
	pid_t store_pid;
	int store_lost;              /* records never reached the file: exit EX_IOERR (sticky) */
	int64_t store_started_ms;
	struct child *kids;          /* active sessions, unordered */
	int nkids;
	struct session_slot *board;  /* shared with the sessions */
	int *free_slots;
	int nfree;
	struct owed *owed;           /* close records not yet in the pipe */
	int nowed, capowed;
	uint64_t next_conn, accepted, reaped_exit, reaped_signal, bytes_done;
	struct admit *admit;         /* --max-per-source and --max-rate */
	struct admit_ratelog log_accept, log_fork;
	int64_t accept_resume_ms;    /* accepting paused until then (fork or fd failure) */
	struct deferred {            /* accepted, admitted, not yet forked (a FIFO ring) */
		int fd, admitted;
		int64_t since_ms;
		struct sockaddr_storage ss;
		struct admit_key key;
	} defer[MASTER_DEFER_MAX];
	int defer_head, ndefer;
	int stopping;                /* 0 serving, 1 grace, 2 sessions told to stop, 3 killed */
	struct shared shared;        /* updated by pool processes and sessions too */
	struct gate gate;            /* the questions before a connection is served */
	struct pool_slot *pslots;    /* one per pool process, indexed like the scoreboard */
	int wake_rd, wake_wr;        /* pool processes wake the master when none is idle */
	int spawn_rate, burst_rate;  /* spare.c's doubling */
	int64_t next_tick_ms;        /* the pool's next maintenance */
	int notify_fd;               /* NOTIFY_SOCKET (systemd); -1 without */
	char notify_addr[128];
	int64_t next_status_ms;      /* STATUS= at most every MASTER_STATUS_MS */
	int64_t phase_deadline_ms;
	sigset_t waitmask;
	struct pollfd pfd[MASTER_MAX_LISTEN + 2]; /* what the last ppoll watched */
	int npfd;
};

extern struct master *master;


/* The master's own descriptors that a child must close: listeners, UDP sockets (but in the
 * datagram process), the master's store lock, and the pipe end it does not use.  Collected
 * before the fork, as the master has them then: the shared state may change before the child
 * reads it.  A child that kept the lock's descriptor would make its master look alive after
 * its death. */
struct master_fds {
	int fd[2 * MASTER_MAX_LISTEN + 4];
	int n;
};

enum { KEEP_NONE = 0, KEEP_UDP = 1, KEEP_LISTENERS = 2 };

/* master.c */
void master_ratelog(struct admit_ratelog *rl, int with_errno, const char *what);
void master_release(int admitted, const struct admit_key *src, struct session_slot *slot);
void master_stats_line(char *line, size_t len);

/* master_setup.c: sockets, privileges, systemd, the gate */
void master_std_fds(void);
void *master_shared(size_t len);
void master_gate(void);
void master_sockets(void);
void master_announce(void);
void master_fds_to_close(struct master_fds *c, int keep_pipe_end, int keep);
void master_close_inherited(const struct master_fds *c);
const struct user_ids *master_resolve_user(void);
void master_drop_user(int store_fd);
void master_notify_open(void);
void master_notify(const char *fmt, ...) PRINTFLIKE(1, 2);
void master_status(void);

/* master_store.c: the store and datagram processes, the records owed to the store */
int master_open_store(void);
void master_start_store(int filefd);
void master_restart_store(void);
void master_store_died(int status);
void master_store_giveup(int64_t at, pid_t *told);
size_t master_pipe_unread(void);
void master_start_dgram(void);
void master_restart_dgram(void);
void master_dgram_died(int status);
void master_pay_owed(void);
void master_peer_str(const struct child *c, char *buf, size_t len);
void master_owe_close(uint64_t conn, pid_t pid, const struct session_slot *slot, const char *peer,
    const char *reason);
const char *master_end_reason(int status, char *buf, size_t len);

/* master_pool.c: --prefork */
void master_alloc_pool(size_t n);
void master_spawn_pool(int n);
int master_pool_watch(void);
int master_pool_burst(void);
void master_pool_woken(void);
void master_pool_tick(void);
void master_pool_died(const struct child *c, int status);
int master_active(void);

#endif
