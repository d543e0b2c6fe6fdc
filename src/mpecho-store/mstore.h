/*
 * mstore.h - mpecho-store: the store read back.  One file per command (mstore_list.c,
 * mstore_dump.c, mstore_check.c, mstore_follow.c, mstore_stats.c), each a function that takes
 * the parsed command line and returns the exit status; mstore.c parses and dispatches, and
 * mstore_out.c holds what several commands print.
 *
 * Exit statuses (sysexits.h): 0 done; 1 check found a violation, or dump did not find a
 * connection; 64 bad arguments; 65 a raw store given where records are needed; 66 a file that
 * does not exist; 71 out of memory; 74 a read or write error.
 */
#ifndef MPECHO_MSTORE_H
#define MPECHO_MSTORE_H

#include "mstore_filt.h"
#include "mstore_src.h"

#include <stdint.h>
#include <stdio.h>

#define MSTORE_PROG "mpecho-store"

enum mcmd { MCMD_LIST, MCMD_DUMP, MCMD_CHECK, MCMD_FOLLOW, MCMD_STATS };

struct mopts {
	enum mcmd cmd;
	char **files;
	size_t nfiles;
	int one_instance;   /* -1: every file one instance, in the order given */
	int json;           /* list: one JSON object per connection */
	int both;           /* dump: markers and escapes, for a person */
	int from_start;     /* follow: the whole current file first */
	int quiet;          /* no warning for skipped lines */
	struct mfilt filt;  /* list, stats; dump and follow use filt.conns */
	int64_t interval;   /* stats: bucket width in microseconds; 0: one for the whole store */
	int top;            /* stats: peers shown per bucket */
	int poll_ms;        /* follow: how often the file is looked at */
};

int mlist_run(const struct mopts *o);
int mdump_run(const struct mopts *o);
int mcheck_run(const struct mopts *o);
int mfollow_run(const struct mopts *o);
int mstats_run(const struct mopts *o);

/* Shared by the commands (mstore_out.c). */

/* Opens the files as o says; on failure prints why and returns the exit status, else 0. */
int mout_open(const struct mopts *o, struct mscan *s);
/* An item that is not a record: MSCAN_BAD is warned about (unless quiet) and 0 returned;
 * MSCAN_ERR is printed and its status returned. */
int mout_not_record(const struct mopts *o, const struct mscan_item *it);
/* "17", "2.17" (life 2) or "1:2.17" (instance 1, when there are several) into dst. */
void mout_conn_id(char *dst, size_t len, const struct mscan *s, unsigned inst, unsigned life,
    uint64_t conn);
/* A time as "2026-11-21T10:00:00.123456Z", or "-" when unknown; dst holds 28 bytes. */
void mout_ts(char *dst, int64_t us);
/* Writes text as a JSON string (latin-1 bytes), quotes included. */
void mout_json_str(FILE *f, const char *text, size_t len);
/* Reads every item of s, keeping the open connections in tab, and calls done for each
 * connection once its close is read (or, with closed unknown, when its life ends without it),
 * before it leaves the table.  Returns 0 or an exit status. */
int mout_track_all(const struct mopts *o, struct mscan *s, struct mtab *tab,
    void (*done)(struct mconn *, void *), void *arg);
/* Flushes standard output; a write error is printed and 74 returned, else status. */
int mout_finish(int status);

#endif
