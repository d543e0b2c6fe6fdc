/*
 * spare.h - how many pool processes to start or retire (--prefork), as Apache's prefork MPM
 * decides it in perform_idle_server_maintenance().
 *
 * Once a maintenance tick (a second), the master compares the idle processes with --min-spare
 * and --max-spare: below the minimum it starts some, 1 the first tick, then twice as many each
 * tick that still finds too few, up to SPARE_RATE_MAX; above the maximum it retires half the
 * excess (at least one) a tick.  Between ticks, when a connection waits and no process is idle or starting,
 * it starts some at once (Postfix's master watches its listeners exactly then), doubling the
 * same way.  Never past --max-clients.  Pure: no clock, no I/O.
 */
#ifndef MPECHO_SPARE_H
#define MPECHO_SPARE_H

#define SPARE_RATE_MAX 32

struct spare_view {
	int total;       /* pool processes alive (starting, idle, busy or leaving) */
	int idle;        /* waiting for a connection */
	int starting;    /* forked, not yet waiting */
	int max_clients; /* the ceiling on pool processes */
	int min_spare, max_spare;
};

struct spare_plan {
	int spawn;  /* processes to start now */
	int retire; /* idle processes to retire now */
};

/* The tick's decision; *rate carries the doubling from tick to tick (start it at 1). */
struct spare_plan spare_tick(const struct spare_view *v, int *rate);
/* A connection waits: how many to start at once (0 when one is idle or starting, or at the
 * ceiling); *rate doubles each time, and spare_tick sets it back to 1 once the pool has its
 * spares. */
int spare_burst(const struct spare_view *v, int *rate);

#endif
