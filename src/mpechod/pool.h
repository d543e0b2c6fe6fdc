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
 * connection, peer, bytes, whether its records are in the pipe), and shared.h's counters and
 * admission state behind its lock.  SIGUSR1 asks it to leave (at once when idle, after its connection when
 * busy); SIGTERM ends the connection in hand; the master's death closes its listeners at once.
 */
#ifndef MPECHO_POOL_H
#define MPECHO_POOL_H

#include "admit.h"
#include "session.h"
#include "shared.h"
#include "spare.h"

#include <signal.h>
#include <stdint.h>

#define POOL_MAX_LISTEN 32

/* A slot's life: FREE, STARTING (forked), then IDLE and BUSY in turn, and LEAVING once the
 * process has finished its last connection.  A process that dies in another state crashed: the
 * master then puts right what it left (its bits in the idle and starting maps, its source's
 * count, its records). */
enum pool_state { POOL_FREE, POOL_STARTING, POOL_IDLE, POOL_BUSY, POOL_LEAVING };

/* One pool process's slot, written by it (the master clears it before the fork). */
struct pool_slot {
	int state;                   /* enum pool_state, atomic */
	uint64_t conn;               /* the connection in hand; 0: none */
	int end;                     /* how it ended (enum session_end); -1 while in it */
	uint64_t served;             /* connections served so far */
	struct sockaddr_storage peer; /* accept(2) writes it here, not on the stack */
	struct session_args sess;    /* the connection's session_serve arguments, likewise */
	struct admit_claim claim;    /* counted for --max-per-source at accept */
	struct session_slot s;       /* bytes, and whether its open and close records are in */
	int lfd[POOL_MAX_LISTEN];    /* its listeners, until it closes them */
	int nlfd;
	volatile sig_atomic_t leave; /* asked to leave, or its master died */
};

struct pool_args {
	const int *lfd;              /* the listeners */
	int nlfd;
	int wake_wr;                 /* one byte here when the last idle process goes busy */
	int max_conns;               /* --max-conns-per-child; 0: no limit */
	const struct gate *gate;     /* the questions at accept */
	struct shared *sh;
	struct pool_slot *slot;
	int index;                   /* slot's, in the maps below */
	struct spare_map idle, starting; /* this process's bit in each is its own while it runs */
	struct session_args sess;    /* pipe_wr, idle_timeout, grace, master; per connection,
	                              * fd, conn, peer and slot are filled in */
};

/* In the master, right before the fork: a's slot and listeners for the new process.  a must
 * stay valid in the child (the master's stack, copied by the fork, is). */
void pool_prepare(const struct pool_args *a);
_Noreturn void pool_run(const struct pool_args *a);

#endif
