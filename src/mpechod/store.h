/*
 * store.h - the store process: the only writer of the store file.
 *
 * The master starts it before the accept loop (and again if it dies).  It reads the frames that
 * sessions, and the master on behalf of a killed session, write to the store pipe, formats them
 * (JSON Lines or raw bytes) and appends them to the file.  It exits when every write end of the
 * pipe is closed, after writing and fsyncing everything it read.  SIGHUP reopens the file.
 */
#ifndef MPECHO_STORE_H
#define MPECHO_STORE_H

#include "opts.h"

#include <sys/types.h>

struct store_args {
	int pipe_rd;       /* the read end of the store pipe */
	int filefd;        /* the store file, open for appending; -1: open path */
	const char *path;
	enum store_format format;
	enum fsync_policy fsync;
	enum store_full full;
	int shared;        /* --inetd: many processes append to the file; lock each write */
	pid_t master;      /* the master's pid, to notice its death */
};

/* Opens path for appending (creating it 0600: every
 * client's messages are in it); returns the fd or -1 with errno. */
int store_open(const char *path);
/* The store's lock: one writer per file.  An flock(2) on the store's descriptor, taken without
 * waiting; returns 0, or -1 with errno (EWOULDBLOCK: another store holds it). */
int store_lock(int fd);
/* The master's lock, which says that a live master owns the store: an OFD lock on a descriptor
 * of the master's own, which no child keeps open.  A store whose master died keeps its flock
 * until it has drained its sessions, but not this one, so a new master can tell an orphaned
 * store (wait for it) from a live server (refuse).  Returns the descriptor, or -1 with errno
 * (EAGAIN: a live master holds it).  With oldfd >= 0 (after a rotation): keeps oldfd when path
 * is still the same file, and returns a new locked descriptor otherwise. */
int store_master_lock(const char *path, int oldfd);
_Noreturn void store_run(const struct store_args *a);

#endif
