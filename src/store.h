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

struct store_args {
	int pipe_rd;       /* the read end of the store pipe */
	int filefd;        /* the store file, open for appending; -1: open path */
	const char *path;
	enum store_format format;
	enum fsync_policy fsync;
};

/* Opens path for appending (creating it 0644); returns the fd or -1 with errno. */
int store_open(const char *path);
_Noreturn void store_run(const struct store_args *a);

#endif
