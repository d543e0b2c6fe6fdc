/*
 * figures.h - the live figures of a running mpechod: the counters its processes add to in
 * shared memory, and one snapshot of every figure that the USR1 stats line, systemd's STATUS=,
 * the /metrics endpoint (metrics.c) and mpecho-top all format, so that they agree.
 *
 * Every counter here is one 64-bit word, changed by one atomic add (or by its only writer):
 * a process that dies at any instruction leaves no counter half-changed, and no figure is
 * kept as a total of others that a death could leave out of step.  Nothing is counted per
 * chunk: a session's figures are added once, when it ends (session_ended), and the bytes of the
 * sessions in progress are read from their scoreboard slots, which they write anyway.
 */
#ifndef MPECHO_FIGURES_H
#define MPECHO_FIGURES_H

#include <stddef.h>
#include <stdint.h>

/* Closes by reason: session.h's enum session_end (0-9), then "signal" (killed). */
#define FIG_NCLOSE 11
#define FIG_CLOSE_SIGNAL 10
/* Histogram buckets, each the count of values up to its bound (not cumulative here; the last
 * one is +Inf). */
#define FIG_NDUR 12
#define FIG_NSIZE 10
/* The datagram drops by reason, dgguard.h's verdicts then "store". */
#define FIG_NUDP_DROP 5

extern const double fig_dur_bounds[FIG_NDUR - 1];    /* seconds */
extern const double fig_size_bounds[FIG_NSIZE - 1];  /* bytes */

/* Counters in the master's shared mapping (struct master's figures). */
struct figures {
	uint64_t closed[FIG_NCLOSE];
	uint64_t dur[FIG_NDUR];       /* session durations, in fig_dur_bounds' buckets */
	uint64_t dur_sum_us;
	uint64_t size[FIG_NSIZE];     /* bytes echoed per session, in fig_size_bounds' buckets */
	uint64_t size_sum;
	/* The store process's (one writer at a time). */
	uint64_t store_records, store_bytes, store_fsyncs, store_fsync_us;
	uint64_t store_gaps, store_dropped_bytes, store_dropped_records;
	uint64_t store_restarts;      /* the master's */
	uint64_t pool_spawned, pool_retired; /* the master's */
};

/* This process's counters: the master's shared block, inherited by every child; NULL where
 * there are none (--inetd), and then nothing is counted. */
extern struct figures *figures_live;

/* The bucket of v among n ascending bounds: the first bound v is at most, or n (+Inf). */
int figures_bucket(const double *bounds, int n, double v);
/* A session ended: close reason (a session_end, or FIG_CLOSE_SIGNAL), how long it lasted, how
 * many bytes it echoed.  Atomic adds on f's words. */
void figures_session(struct figures *f, int reason, int64_t dur_us, uint64_t bytes);
/* f, or nothing when f is NULL, adds v to the word at *w (atomic). */
void figures_add(uint64_t *w, uint64_t v);

/* Every figure at one moment, read from the shared memory (scoreboard.c). */
struct fig_snap {
	int prefork, udp, store;      /* what this server runs */
	int active;                   /* sessions in progress */
	int procs, idle, starting;    /* pool processes (--prefork) */
	uint64_t accepted, bytes, reaped_exit, reaped_signal;
	uint64_t refused_source, refused_rate, culled, denied, proxy_errors;
	uint64_t store_pipe;          /* bytes waiting in the store pipe */
	uint64_t udp_echoed, udp_bytes, udp_dropped[FIG_NUDP_DROP];
	struct figures f;
};

/* The stats line (USR1, STATUS=): "active N, accepted N, ...". */
void figures_line(const struct fig_snap *s, char *line, size_t len);
/* The close reason's name, as in the store's close records; "signal" for FIG_CLOSE_SIGNAL. */
const char *figures_close_name(int reason);
/* dgguard's drop reasons, then "store", as metric labels. */
const char *figures_udp_drop_name(int i);

#endif
