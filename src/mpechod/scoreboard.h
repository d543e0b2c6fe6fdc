/*
 * scoreboard.h - every figure and every process of a running server, read from the master's
 * shared memory: by the master itself (the stats line, STATUS=), by the metrics process (a
 * fork of it, which sees the same pages) and by mpecho-top (which maps them from
 * /dev/shm/mpechod.PID, arena.h).  Reads only: a figure read while a process changes it is
 * the one before or the one after, never a torn word.
 */
#ifndef MPECHO_SCOREBOARD_H
#define MPECHO_SCOREBOARD_H

#include "figures.h"
#include "master.h"

/* Where the master's shared state is, in the reading process's address space. */
struct sb_src {
	const struct master *m;
	const struct child *kids;             /* max_clients entries, m->nkids in use */
	const struct session_slot *board;     /* fork mode; max_clients entries */
	const struct pool_slot *pslots;       /* --prefork; max_clients entries */
	const uint64_t *idle, *starting; /* --prefork: the pool's bit maps (spare.h) */
	int words;
};

/* One process of the server, as mpecho-top shows it. */
struct sb_proc {
	const char *role;
	const char *state;
	pid_t pid;
	uint64_t conn;                 /* 0: none */
	uint64_t bytes;
	int64_t since_ms;              /* io_now_ms() when it started its connection or its life;
	                                * 0: not known */
	char peer[NET_ADDRLEN];        /* "" when none */
};

/* Every figure (store_pipe is left 0: only a holder of the pipe can read it). */
void scoreboard_snap(const struct sb_src *s, struct fig_snap *out);
/* The helpers first (store, datagram, metrics, those running), then the child table.  Returns
 * the number of processes, and fills p[0..max-1]. */
int scoreboard_procs(const struct sb_src *s, struct sb_proc *p, int max);

#endif
