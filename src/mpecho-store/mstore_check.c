/*
 * mstore_check.c - mpecho-store check: the store's promises, verified.  One line per
 * violation on standard output, "FILE:LINE: message", and exit 1 if there is any:
 *   - every line is a record (valid JSON of a known event with its fields, ending in '\n');
 *   - every open has exactly one close, after it, in the same server life;
 *   - a close's bytes equal the sum of the connection's data records;
 *   - conn numbers are unique within a server life (see mstore_src.h for where lives start).
 * A gap record (the store could not write some records: disk full) is not a violation: it is
 * the store keeping its promise to say what it lost.  Each is reported, "FILE:LINE: gap: ...",
 * and so is each connection it names whose records do not add up (no open, no close, a byte
 * count that differs), as "gap:" instead of as a violation; after a gap whose list was cut
 * ("conns_truncated"), any connection of that life.  Since a gap may be written after the
 * close of a connection it names, such findings wait for the end of the server life.
 * A life whose first record read is not an open was joined mid-way: its start is in a rotated
 * file not given.  Its connections without an open record and numbered below every conn it
 * opens began in that file; they are counted in the summary, not reported.
 */
#define _GNU_SOURCE
#include "mstore.h"

#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#define MCHECK_F_OPEN 1u /* the table entry came from an open record */

/* A finding that waits for the end of its life. */
struct mdefer {
	unsigned inst, life;
	uint64_t conn;
	int noopen;            /* about a connection without an open record */
	const char *path;
	unsigned long line;
	char msg[128];
};

/* What check keeps about each server life being read: several at once when their lines
 * interleave (--inetd processes writing one file, each a life of its own). */
struct mlife {
	unsigned inst, life;
	unsigned dg_next, dg_parts; /* a datagram in parts: the part awaited, of how many */
	const char *dg_path;        /* where its first part is */
	unsigned long dg_line;
	struct mranges closed; /* conn numbers closed */
	struct mranges gapped; /* conn numbers a gap names */
	int gapped_all;        /* a gap's list of conns was cut */
	int started, joined;   /* a record was read; the first was not an open */
	uint64_t min_open;     /* the lowest conn with an open record; 0: none */
};

struct mcheck {
	const struct mopts *o;
	struct mscan s;
	struct mtab tab;
	struct mlife *lives;   /* the lives being read */
	size_t nopen, capopen;
	struct mdefer *defer;
	size_t ndefer, capdefer;
	unsigned long violations, gaps, records, conns, nlives, before, datagrams;
	unsigned end_inst, end_life; /* the life mcheck_life_end is closing */
	int oom;
};

static void mcheck_violation(struct mcheck *k, const char *path, unsigned long line,
    const char *msg);

/* The state of a life, made when it is first asked for; out of memory, a scratch one (the loop
 * stops at once). */
static struct mlife *
mcheck_life(struct mcheck *k, unsigned inst, unsigned life)
{
	static struct mlife scratch;
	size_t i;

	for (i = k->nopen; i > 0; i--)
		if (k->lives[i - 1].inst == inst && k->lives[i - 1].life == life)
			return &k->lives[i - 1];
	if (k->nopen == k->capopen) {
		size_t cap = k->capopen ? k->capopen * 2 : 8;
		struct mlife *n = realloc(k->lives, cap * sizeof(*n));
		if (n == NULL) {
			k->oom = 1;
			memset(&scratch, 0, sizeof(scratch));
			return &scratch;
		}
		k->lives = n;
		k->capopen = cap;
	}
	memset(&k->lives[k->nopen], 0, sizeof(k->lives[0]));
	k->lives[k->nopen].inst = inst;
	k->lives[k->nopen].life = life;
	return &k->lives[k->nopen++];
}

/* A datagram's parts come one after the other, 1 to N, in its life. */
static void
mcheck_dgram(struct mcheck *k, const struct mscan_item *it, const struct mrec *r)
{
	struct mlife *l = mcheck_life(k, it->inst, it->life);
	char msg[160];

	if (l->dg_next != 0 && (r->part != l->dg_next || r->parts != l->dg_parts)) {
		snprintf(msg, sizeof(msg), "a datagram in %u parts (first part at %s:%lu) ends "
		    "after part %u", l->dg_parts, l->dg_path, l->dg_line, l->dg_next - 1);
		mcheck_violation(k, it->path, it->line, msg);
		l->dg_next = 0;
	}
	if (l->dg_next == 0 && r->part > 1) {
		snprintf(msg, sizeof(msg), "part %u of %u of a datagram without its part 1",
		    r->part, r->parts);
		mcheck_violation(k, it->path, it->line, msg);
		return;
	}
	if (r->part == 1) {
		l->dg_parts = r->parts;
		l->dg_path = it->path;
		l->dg_line = it->line;
	}
	l->dg_next = r->part + 1;
	if (r->part == r->parts) {
		l->dg_next = 0;
		k->datagrams++;
	}
}

static void
mcheck_violation(struct mcheck *k, const char *path, unsigned long line, const char *msg)
{
	printf("%s:%lu: %s\n", path, line, msg);
	k->violations++;
}

static void
mcheck_defer(struct mcheck *k, const struct mconn *c, const char *path, unsigned long line,
    const char *msg)
{
	struct mdefer *d;

	if (k->ndefer == k->capdefer) {
		size_t cap = k->capdefer ? k->capdefer * 2 : 64;
		struct mdefer *n = realloc(k->defer, cap * sizeof(*n));
		if (n == NULL) {
			k->oom = 1;
			return;
		}
		k->defer = n;
		k->capdefer = cap;
	}
	d = &k->defer[k->ndefer++];
	d->inst = c->inst;
	d->life = c->life;
	d->conn = c->conn;
	d->noopen = !(c->flags & MCHECK_F_OPEN);
	d->path = path;
	d->line = line;
	snprintf(d->msg, sizeof(d->msg), "%s", msg);
}

static void
mcheck_open(struct mcheck *k, const struct mscan_item *it, const struct mrec *r)
{
	struct mconn *c = mtab_find(&k->tab, it->inst, it->life, r->conn);
	char msg[160];

	if (c != NULL && (c->flags & MCHECK_F_OPEN)) {
		snprintf(msg, sizeof(msg), "conn %llu opened again in the same server life "
		    "(first open at %s:%lu)", (unsigned long long)r->conn, c->path, c->line);
		mcheck_violation(k, it->path, it->line, msg);
		return;
	}
	if (c != NULL || mranges_has(&mcheck_life(k, it->inst, it->life)->closed, r->conn)) {
		snprintf(msg, sizeof(msg), "conn %llu opened after %s in the same server life",
		    (unsigned long long)r->conn, c != NULL ? "records of it" : "its close");
		mcheck_violation(k, it->path, it->line, msg);
		if (c == NULL)
			return;
	}
	if (c == NULL && (c = mtab_add(&k->tab, it->inst, it->life, r->conn)) == NULL) {
		k->oom = 1;
		return;
	}
	c->flags |= MCHECK_F_OPEN;
	c->path = it->path;
	c->line = it->line;
	k->conns++;
}

/* The entry of a connection that has a data or close record, made up when its open is
 * missing; NULL when the record comes after the close (reported). */
static struct mconn *
mcheck_conn(struct mcheck *k, const struct mscan_item *it, const struct mrec *r)
{
	struct mconn *c = mtab_find(&k->tab, it->inst, it->life, r->conn);
	char msg[160];

	if (c != NULL)
		return c;
	if (mranges_has(&mcheck_life(k, it->inst, it->life)->closed, r->conn)) {
		snprintf(msg, sizeof(msg), "%s for conn %llu after its close",
		    r->ev == MREC_DATA ? "data" : "a second close", (unsigned long long)r->conn);
		mcheck_violation(k, it->path, it->line, msg);
		return NULL;
	}
	if ((c = mtab_add(&k->tab, it->inst, it->life, r->conn)) == NULL) {
		k->oom = 1;
		return NULL;
	}
	c->path = it->path;
	c->line = it->line;
	k->conns++;
	return c;
}

static void
mcheck_close(struct mcheck *k, const struct mscan_item *it, const struct mrec *r)
{
	struct mconn *c = mcheck_conn(k, it, r);
	char msg[160];

	if (c == NULL)
		return;
	if (!(c->flags & MCHECK_F_OPEN)) {
		snprintf(msg, sizeof(msg), "conn %llu has no open record (its first record is here)",
		    (unsigned long long)r->conn);
		mcheck_defer(k, c, c->path, c->line, msg);
	}
	if (c->sum != r->bytes) {
		snprintf(msg, sizeof(msg), "conn %llu: the close says %llu bytes, its data records "
		    "hold %llu", (unsigned long long)r->conn, (unsigned long long)r->bytes,
		    (unsigned long long)c->sum);
		mcheck_defer(k, c, it->path, it->line, msg);
	}
	if (mranges_add(&mcheck_life(k, it->inst, it->life)->closed, r->conn) < 0)
		k->oom = 1;
	mtab_del(&k->tab, c);
}

static void
mcheck_gap(struct mcheck *k, const struct mscan_item *it, const struct mrec *r)
{
	size_t i;

	printf("%s:%lu: gap: %llu bytes in %llu records were dropped; conns", it->path, it->line,
	    (unsigned long long)r->dropped_bytes, (unsigned long long)r->dropped_records);
	for (i = 0; i < r->nconns; i++) {
		if (i < 20)
			printf(" %llu", (unsigned long long)r->conns[i]);
		if (mranges_add(&mcheck_life(k, it->inst, it->life)->gapped, r->conns[i]) < 0)
			k->oom = 1;
	}
	printf("%s%s\n", i > 20 ? " ..." : i == 0 ? " (none named)" : "",
	    r->conns_truncated ? " and more" : "");
	if (r->conns_truncated)
		mcheck_life(k, it->inst, it->life)->gapped_all = 1;
	k->gaps++;
}

static void
mcheck_record(struct mcheck *k, const struct mscan_item *it)
{
	const struct mrec *r = &it->rec;
	struct mlife *l = mcheck_life(k, it->inst, it->life);
	struct mconn *c;

	k->records++;
	if (!l->started && r->conn != 0) {
		l->started = 1;
		l->joined = r->ev != MREC_OPEN;
	}
	if (r->ev == MREC_OPEN && (l->min_open == 0 || r->conn < l->min_open))
		l->min_open = r->conn;
	switch (r->ev) {
	case MREC_OPEN:
		mcheck_open(k, it, r);
		break;
	case MREC_DATA:
		if ((c = mcheck_conn(k, it, r)) != NULL)
			c->sum += r->data.len;
		break;
	case MREC_CLOSE:
		mcheck_close(k, it, r);
		break;
	case MREC_GAP:
		mcheck_gap(k, it, r);
		break;
	case MREC_DGRAM:
		mcheck_dgram(k, it, r);
		break;
	case MREC_START:
	case MREC_STOP:
		break;
	}
}

static void
mcheck_unclosed(struct mconn *c, void *arg)
{
	struct mcheck *k = arg;
	char msg[160];

	if (c->inst != k->end_inst || c->life != k->end_life)
		return;
	snprintf(msg, sizeof(msg), "conn %llu %s never closed", (unsigned long long)c->conn,
	    (c->flags & MCHECK_F_OPEN) ? "opened here was" : "(no open record; first record here)");
	mcheck_defer(k, c, c->path, c->line, msg);
	mtab_del(&k->tab, c);
}

/* Whether a finding is about a connection that began in a file before the ones given. */
static int
mcheck_began_before(const struct mlife *l, const struct mdefer *d)
{
	return d->noopen && l->joined && (l->min_open == 0 || d->conn < l->min_open);
}

/* The end of a life: connections still open are violations, and the deferred findings are
 * given, as gaps for the connections a gap record names. */
static void
mcheck_life_end(struct mcheck *k, unsigned inst, unsigned life)
{
	struct mlife *l = mcheck_life(k, inst, life);
	uint64_t last = 0;
	size_t i, j;
	char msg[160];

	k->nlives++;
	if (l->dg_next != 0) {
		snprintf(msg, sizeof(msg), "a datagram in %u parts ends after part %u with its "
		    "server life", l->dg_parts, l->dg_next - 1);
		mcheck_violation(k, l->dg_path, l->dg_line, msg);
	}
	k->end_inst = inst;
	k->end_life = life;
	mtab_each(&k->tab, mcheck_unclosed, k);
	for (i = 0, j = 0; i < k->ndefer; i++) {
		const struct mdefer *d = &k->defer[i];

		if (d->inst != inst || d->life != life) {
			k->defer[j++] = *d;
		} else if (mcheck_began_before(l, d)) {
			k->before += d->conn != last; /* one connection's findings are together */
			last = d->conn;
		} else if (l->gapped_all || mranges_has(&l->gapped, d->conn)) {
			printf("%s:%lu: gap: %s (named in a gap)\n", d->path, d->line, d->msg);
		} else {
			mcheck_violation(k, d->path, d->line, d->msg);
		}
	}
	k->ndefer = j;
	mranges_free(&l->closed);
	mranges_free(&l->gapped);
	if (l >= k->lives && l < k->lives + k->nopen)
		*l = k->lives[--k->nopen];
}

static int
mcheck_loop(struct mcheck *k)
{
	struct mscan_item it;

	for (mscan_next(&k->s, &it); it.kind != MSCAN_EOF && !k->oom; mscan_next(&k->s, &it)) {
		switch (it.kind) {
		case MSCAN_REC:
			mcheck_record(k, &it);
			break;
		case MSCAN_BAD:
			mcheck_violation(k, it.path, it.line, it.err);
			break;
		case MSCAN_LIFE_END:
			mcheck_life_end(k, it.inst, it.life);
			break;
		default:
			return mout_not_record(k->o, &it);
		}
	}
	if (k->oom) {
		fprintf(stderr, "%s: out of memory\n", MSTORE_PROG);
		return EX_OSERR;
	}
	return k->violations > 0;
}

int
mcheck_run(const struct mopts *o)
{
	struct mcheck k = { .o = o };
	char more[96] = "";
	int status;

	if ((status = mout_open(o, &k.s)) != 0)
		return status;
	status = mcheck_loop(&k);
	if (k.before > 0)
		snprintf(more, sizeof(more), "; %lu connections began in a file before the first "
		    "given", k.before);
	else if (k.datagrams > 0)
		snprintf(more, sizeof(more), "; %lu datagrams", k.datagrams);
	if (status <= 1 && !o->quiet)
		fprintf(stderr, "%s: %lu records, %lu connections, %lu server lives: %lu violations, "
		    "%lu gaps%s\n", MSTORE_PROG, k.records, k.conns, k.nlives, k.violations, k.gaps,
		    more);
	for (size_t i = 0; i < k.nopen; i++) {
		mranges_free(&k.lives[i].closed);
		mranges_free(&k.lives[i].gapped);
	}
	free(k.lives);
	free(k.defer);
	mtab_free(&k.tab);
	mscan_close(&k.s);
	return mout_finish(status);
}
