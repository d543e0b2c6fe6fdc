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

#include <stdint.h>

#define SPARE_RATE_MAX 32

/* Which pool processes are idle, or starting: one bit per slot, in the master's shared mapping.
 * A bit has one owner at a time (the master from before the fork until the process runs, and
 * again once it is dead; the process in between) and each change is one atomic instruction, so a
 * death at any instruction leaves no count wrong: counts are counted from the bits, never kept as
 * totals that a process could die half-way through changing. */
struct spare_map {
	int words;
	uint64_t *bits;
};

#define SPARE_MAP_WORDS(slots) (((slots) + 63) / 64)

void spare_map_set(const struct spare_map *m, int slot);
/* Clears slot's bit; returns 1 when it was set and no other bit is set now (the last one). */
int spare_map_clear(const struct spare_map *m, int slot);
int spare_map_count(const struct spare_map *m);

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
