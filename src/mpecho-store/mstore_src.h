/*
 * mstore_src.h - mpecho-store's sources: the store files named on the command line, read line
 * by line (plain or gzip, through zlib), grouped into instances, each instance's records split
 * into server lives, and the instances merged by time.
 *
 * An instance is one mpechod's store: its rotated files and its live file.  Files whose names
 * differ only by a rotation suffix (".N", ".gz", ".N.gz") are one instance, read oldest first:
 * the highest N first, the file without a number last (logrotate's order, whatever order the
 * shell gave them in).  With one_instance, every file is one instance, read in the order given.
 * "-" is standard input, an instance of its own.
 *
 * A server life starts where conn numbering restarts (each mpechod start numbers from 1): at an
 * open record for conn 1 when the current life has shown records and
 *   - conn 1 already appeared in it, or
 *   - it was joined after its start (its first record read is not an open: the files read begin
 *     after a rotation), or
 *   - every connection opened in it is closed and its highest conn is above 64.
 * Opens of one life are not in conn order: sessions race to the store, and conn 1's open may
 * come after conn 2's whole session.  So a lower number, or conn 1 once every connection seen is
 * closed, is not by itself a new life; the third rule covers a life joined at a quiet moment
 * (its first record an open), since a server's store closes every connection before it exits
 * ("lost" at worst) and 64 sessions do not overtake conn 1's open.  Limits: a restart not seen
 * by these rules leaves conn numbers reused within a "life", which check reports; after a life
 * joined mid-way, the next life's opens that overtake its conn 1 count in the old life.  Conn numbers
 * are unique within a life, not across lives or instances, so a connection is known by
 * (instance, life, conn).
 *
 * Records of several instances are merged by their ts; within an instance they stay in file
 * order.  Memory: one buffer of at most MSRC_LINE_MAX per instance.
 */
#ifndef MPECHO_MSTORE_SRC_H
#define MPECHO_MSTORE_SRC_H

#include "mstore_rec.h"
#include "mstore_tab.h"

#include <stddef.h>
#include <stdint.h>

#define MSRC_LINE_MAX (16u << 20)

enum mscan_kind {
	MSCAN_REC,      /* a record (rec) */
	MSCAN_BAD,      /* a line that is not a record (err says why); skipped */
	MSCAN_LIFE_END, /* the instance's life ended: a new one starts, or its input ended */
	MSCAN_EOF,      /* every instance is done */
	MSCAN_ERR       /* a file cannot be opened or read, or is a raw store (err, status) */
};

struct mscan_item {
	enum mscan_kind kind;
	unsigned inst, life;    /* 1-based */
	const char *path;
	unsigned long line;
	const char *text;       /* the line itself (MSCAN_REC, MSCAN_BAD) */
	size_t len;
	int status;             /* MSCAN_ERR: the sysexits code it deserves */
	struct mrec rec;
	char err[MREC_ERRLEN + 64];
};

struct msrc_inst;

struct mscan {
	struct msrc_inst *inst;
	unsigned ninst;
	const char **order;      /* every path, grouped by instance; inst[i].paths point here */
	int64_t cursor;          /* ts of the last record handed out */
};

/* Groups paths into instances (see above).  Returns 0, or -1 when out of memory. */
int mscan_open(struct mscan *s, char *const *paths, size_t npaths, int one_instance);
/* The next item, in merged order.  The item's strings stay valid until the next call. */
void mscan_next(struct mscan *s, struct mscan_item *it);
/* Reads every source again from its start (for a second pass); standard input cannot be. */
int mscan_rewind(struct mscan *s);
void mscan_close(struct mscan *s);
/* The stem and rotation number of a path ("a.jsonl.2.gz" -> "a.jsonl", 2; "a.jsonl" -> -1);
 * stem is a prefix of path, *stemlen long. */
long msrc_rotation(const char *path, size_t *stemlen);

#endif
