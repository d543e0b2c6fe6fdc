/*
 * shared.h - what the master shares with the children that update it: a lock, counters and
 * the rate-limited logs of refusals.
 *
 * It lives in the master's shared mapping.  Pool processes (--prefork) admit their own
 * connections, and sessions behind a load balancer (--proxy-protocol) learn their client's
 * address only from the PROXY header, after the fork: both then consult admission control and
 * count what they refused here.  The lock is robust and process-shared: a process that dies
 * holding it cannot wedge the others.  What it guards may then be torn (a removal from the
 * admission table half done): the next holder marks it so, and the master, which reaps the dead
 * process, rebuilds the table from the claims of the live ones (admit.h's struct admit_claim).
 */
#ifndef MPECHO_SHARED_H
#define MPECHO_SHARED_H

#include "admit.h"
#include "log.h"

#include <pthread.h>
#include <stdint.h>

struct shared {
	pthread_mutex_t lock;        /* admission control and the logs below */
	struct log_ratelimit log_refused, log_culled, log_proxy;
	uint64_t next_conn;          /* atomic, as every counter here */
	uint64_t accepted, culled, refused_source, refused_rate, denied, proxy_errors;
	uint64_t bytes_done;
	int stopping;                /* the master is shutting down: accept no more */
	int idle_timeout, grace;     /* atomic: what a reload changes of a session's settings,
	                              * read by a pool process at each accept (shared_settings) */
	int torn;                    /* under the lock: its holder died; the master rebuilds */
};

/* Sets up the lock; 0 or -1 with errno. */
int shared_init(struct shared *sh);
/* The master, at start and at each reload: the settings a pool process gives each connection it
 * accepts from then on, whenever it was forked. */
void shared_settings(struct shared *sh, int idle_timeout, int grace);
/* Takes the lock, recovering it from a holder that died (then sets torn). */
void shared_lock(struct shared *sh);
void shared_unlock(struct shared *sh);
/* A warning that could repeat at a flood's rate, at most once a second across every process
 * that shares rl, with the count of those held back. */
void shared_log(struct shared *sh, struct log_ratelimit *rl, const char *msg);

#endif
