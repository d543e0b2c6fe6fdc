/*
 * pool.h - a pool process (--prefork): accepts connections itself and serves them one after
 * another, as Apache's prefork children do; process-per-connection isolation without a fork
 * per connection.
 *
 * The master starts and retires pool processes (spare.c decides how many); each one waits on
 * every listener in an epoll set with EPOLLEXCLUSIVE, so one connection wakes one process
 * and no listener is starved, accepts, asks the same questions the fork mode's master asks
 * (is the connection already over? does admission control let it in?), and serves it with
 * session_serve().  What the master must know lives in shared memory: its slot (state,
 * connection, peer, bytes, whether its records are in the pipe), the counters, and the
 * admission state behind a robust process-shared lock, which a process that dies holding it
 * cannot wedge.  SIGUSR1 asks it to leave (at once when idle, after its connection when
 * busy); SIGTERM ends the connection in hand; the master's death closes its listeners at once.
 */
#ifndef MPECHO_POOL_H
#define MPECHO_POOL_H

#include "admit.h"
#include "session.h"

#include <pthread.h>
#include <stdint.h>

/* A slot's life: FREE, STARTING (forked), then IDLE and BUSY in turn, and LEAVING once the
 * process has finished its last connection.  A process that dies in another state crashed: the
 * master then puts right what it left (the idle count, its source's count, its records). */
enum pool_state { POOL_FREE, POOL_STARTING, POOL_IDLE, POOL_BUSY, POOL_LEAVING };

/* Shared by the master and every pool process. */
struct pool_shared {
	pthread_mutex_t lock;        /* robust, process-shared: admit and the two logs */
	struct admit_ratelog log_refused, log_culled;
	uint64_t next_conn;          /* atomic, as every counter here */
	uint64_t accepted, culled, refused_source, refused_rate, bytes_done;
	int idle, starting;          /* processes in those states */
	int stopping;                /* the master is shutting down: accept no more */
};

/* One pool process's slot, written by it (the master clears it before the fork). */
struct pool_slot {
	int state;                   /* enum pool_state, atomic */
	uint64_t conn;               /* the connection in hand */
	uint64_t served;             /* connections served so far */
	struct sockaddr_storage peer;
	struct admit_key src;
	int admitted;                /* src is counted by admission control (under the lock) */
	struct session_slot s;       /* bytes, and whether its open and close records are in */
};

struct pool_args {
	const int *lfd;              /* the listeners */
	int nlfd;
	int wake_wr;                 /* one byte here when the last idle process goes busy */
	int max_conns;               /* --max-conns-per-child; 0: no limit */
	int max_per_source, max_rate;
	struct pool_shared *sh;
	struct pool_slot *slot;
	struct admit *admit;
	struct session_args sess;    /* pipe_wr, idle_timeout, grace, master; per connection,
	                              * fd, conn, peer and slot are filled in */
};

/* Takes the shared lock; a holder that died is recovered from (its state stays usable: each
 * update under the lock is a few stores that leave it consistent at every step). */
void pool_lock(struct pool_shared *sh);
void pool_unlock(struct pool_shared *sh);
/* Sets up the lock; 0 or -1 with errno. */
int pool_shared_init(struct pool_shared *sh);
_Noreturn void pool_run(const struct pool_args *a);

#endif
