/*
 * store_buf.c - the store's output buffer and its policy for a file that cannot be written,
 * without I/O (see store_buf.h).
 *
 * Lines are formatted into one buffer and written with one call of the writer per flush.
 * Where each record lies in the buffer is kept beside it, so that a write that fails can be
 * sorted (drop policy): data is dropped and counted in the gap, open and close lines are held
 * until the file works again, and then the gap record and the held lines go in with one write.
 * Held lines have a bound: past it an open line is dropped, and with it its connection's close,
 * wherever that comes (in the same buffer or later), so that a connection is in the file whole
 * or not at all.  Close lines of connections whose open is in the file or held are always kept:
 * at most one per connection opened before the bound was reached, so they are bounded too.
 */
#define _GNU_SOURCE
#include "store_buf.h"
#include "htab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SB_GAP_CONNS 256
#define SB_CLOSED_RING 1024

/* Bytes recorded per open connection, to count for a close the master writes on behalf of a
 * killed session, and to close at exit any connection whose close never came. */
struct sb_conn {
	uint64_t conn;     /* 0: empty (htab.h) */
	uint64_t bytes;
	uint32_t open_gen; /* the batch its open record is in, and where */
	uint32_t open_idx;
	int dropped;       /* its open record was dropped: so is its close */
	struct rec_carry carry; /* an incomplete UTF-8 character, for its next data record */
};

/* One record in the output buffer. */
struct sb_rec {
	uint32_t off, len; /* the line in out; the payload's bytes */
	int32_t open_idx;  /* a close: its open's index in this batch, or -1 */
	uint8_t type;
	uint8_t dropped;   /* an open dropped by store_buf_divert */
	uint64_t conn;
};

struct store_buf {
	struct store_buf_cfg cfg;
	char *out;
	size_t outlen;
	struct sb_rec *recs;
	size_t nrecs;
	uint32_t gen;         /* counts batches (a batch ends when the buffer is emptied) */
	uint32_t wrote_gen;   /* the last batch the file took (--echo-after's receipts) */
	char *held;           /* open and close lines kept while the file cannot be written */
	size_t heldlen, heldcap;
	uint64_t gap_conns[SB_GAP_CONNS];
	struct rec_gap gap;   /* what was dropped since the file last took a write */
	struct rec_gap said;  /* the figures of the last gap written */
	int failing, reported;
	int64_t retry_ms, logged_ms;
	struct sb_conn *tab;
	size_t cap, live;
	char gapline[REC_GAP_LEN(SB_GAP_CONNS)];
	/* The connections this store saw closed last: a close the master writes for a session
	 * that died after its own close got into the pipe (before it marked it written) is then
	 * known for a duplicate.  A connection opened before this store started is not in it, so
	 * the master's close for it is written. */
	uint64_t closed_ring[SB_CLOSED_RING];
	unsigned closed_next;
};

int
store_buf_write_whole(const struct store_buf_io *io, const char *buf, size_t len)
{
	size_t done = 0;
	ssize_t n = 0;
	int err;

	while (done < len) {
		n = io->write(io->ctx, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (done == len)
		return 0;
	err = n == 0 ? ENOSPC : errno;
	if (done > 0)
		io->cut(io->ctx, done);
	errno = err;
	return -1;
}

void
store_buf_defaults(struct store_buf_cfg *cfg, enum store_format format, int block,
    store_buf_writer write, void *ctx)
{
	*cfg = (struct store_buf_cfg){ .format = format, .block = block, .write = write,
	    .ctx = ctx,
	    .outcap = (size_t)512 * 1024,     /* one write per 512 KiB at most */
	    .maxrecs = 16384,
	    .held_max = (size_t)4 * 1024 * 1024, /* the README's "open records up to 4 MiB" */
	    .retry_ms = 200,
	    .log_every_ms = 60000 };          /* a nearly full disk must not flood the log */
}

struct store_buf *
store_buf_new(const struct store_buf_cfg *cfg)
{
	struct store_buf *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->cfg = *cfg;
	b->cap = 1024;
	b->gen = 1;
	b->out = malloc(cfg->outcap);
	b->recs = calloc(cfg->maxrecs, sizeof(*b->recs));
	b->tab = calloc(b->cap, sizeof(*b->tab));
	if (b->out == NULL || b->recs == NULL || b->tab == NULL) {
		store_buf_free(b);
		return NULL;
	}
	b->logged_ms = INT64_MIN / 2;
	return b;
}

void
store_buf_free(struct store_buf *b)
{
	if (b == NULL)
		return;
	free(b->out);
	free(b->recs);
	free(b->tab);
	free(b->held);
	free(b);
}

/* The table of open connections is htab.h's, keyed by conn (never 0). */
static const struct htab_shape sb_shape = { sizeof(struct sb_conn), sizeof(uint64_t) };

/* The connection's entry, or NULL.  Good until the next removal or open (htab.h). */
static struct sb_conn *
sb_slot(struct store_buf *b, uint64_t conn)
{
	struct sb_conn *e = &b->tab[htab_find(b->tab, b->cap, &sb_shape, &conn)];

	return e->conn == 0 ? NULL : e;
}

/* Kept at most half full; past that, with no memory to grow, while a slot is left. */
static struct sb_conn *
sb_conn_open(struct store_buf *b, uint64_t conn)
{
	struct sb_conn *e;

	if ((b->live + 1) * 2 > b->cap) {
		struct sb_conn *tab = htab_grow(b->tab, b->cap, &sb_shape, &b->cap);

		if (tab != NULL)
			b->tab = tab;
		else if (b->live + 1 >= b->cap)
			return NULL; /* no memory to grow, and no slot left to spare */
	}
	e = &b->tab[htab_find(b->tab, b->cap, &sb_shape, &conn)];
	if (e->conn == conn)
		return e;
	*e = (struct sb_conn){ .conn = conn };
	b->live++;
	return e;
}

static void
sb_gap_conn(struct store_buf *b, uint64_t conn)
{
	size_t i;

	for (i = 0; i < b->gap.nconns && b->gap_conns[i] != conn; i++)
		;
	if (i < b->gap.nconns)
		return;
	if (b->gap.nconns == SB_GAP_CONNS)
		b->gap.truncated = 1;
	else
		b->gap_conns[b->gap.nconns++] = conn;
}

static void
sb_gap_add(struct store_buf *b, uint64_t conn, uint64_t bytes)
{
	b->gap.dropped_bytes += bytes;
	b->gap.dropped_records++;
	sb_gap_conn(b, conn);
}

/* Makes room for len more bytes of held lines; 0, or -1 when memory is short. */
static int
sb_held_room(struct store_buf *b, size_t len)
{
	size_t cap = b->heldcap ? b->heldcap : 65536;
	char *p;

	if (b->heldlen + len <= b->heldcap)
		return 0;
	while (cap < b->heldlen + len)
		cap *= 2;
	p = realloc(b->held, cap);
	if (p == NULL)
		return -1;
	b->held = p;
	b->heldcap = cap;
	return 0;
}

static int
sb_hold(struct store_buf *b, const char *line, size_t len)
{
	if (sb_held_room(b, len) < 0)
		return -1;
	memcpy(b->held + b->heldlen, line, len);
	b->heldlen += len;
	return 0;
}

/* An open line past the bound is dropped, and its connection with it: the close, if it is in
 * this batch, by the mark on the open's record; if it comes later, by the mark in the table. */
static void
sb_divert_open(struct store_buf *b, struct sb_rec *o, size_t len)
{
	struct sb_conn *e;

	if (b->heldlen + len <= b->cfg.held_max && sb_hold(b, b->out + o->off, len) == 0)
		return;
	o->dropped = 1;
	e = sb_slot(b, o->conn);
	if (e != NULL)
		e->dropped = 1;
	sb_gap_add(b, o->conn, 0);
}

static void
sb_divert_close(struct store_buf *b, const struct sb_rec *o, size_t len)
{
	if ((o->open_idx >= 0 && b->recs[o->open_idx].dropped) ||
	    sb_hold(b, b->out + o->off, len) < 0)
		sb_gap_add(b, o->conn, 0);
}

/* The output buffer could not be written: its data is counted in the gap and dropped, its
 * open and close lines are held. */
static void
sb_divert(struct store_buf *b)
{
	for (size_t i = 0; i < b->nrecs; i++) {
		struct sb_rec *o = &b->recs[i];
		size_t end = i + 1 < b->nrecs ? b->recs[i + 1].off : b->outlen;

		if (o->type == REC_DATA) {
			sb_gap_add(b, o->conn, o->len);
		} else if (o->type == REC_DGRAM) {
			b->gap.dropped_bytes += o->len;
			b->gap.dropped_records++;
		} else if (o->type == REC_OPEN) {
			sb_divert_open(b, o, end - o->off);
		} else
			sb_divert_close(b, o, end - o->off);
	}
}

static void
sb_reset(struct store_buf *b)
{
	b->outlen = 0;
	b->nrecs = 0;
	b->gen++;
}

/* Writes what is owed from the failure (the gap record, then the held lines) with one write:
 * with --inetd another process may append between two.  0, or -1 with errno. */
static int
sb_write_owed(struct store_buf *b, struct store_buf_now now)
{
	size_t n = 0;

	if (b->cfg.format == STORE_JSONL && b->gap.dropped_records > 0) {
		b->gap.ts_us = now.us;
		b->gap.conns = b->gap_conns;
		n = rec_format_gap(b->gapline, &b->gap);
	}
	if (n + b->heldlen > 0) {
		if (sb_held_room(b, n) < 0)
			return -1;
		memmove(b->held + n, b->held, b->heldlen);
		memcpy(b->held, b->gapline, n);
		if (b->cfg.write(b->cfg.ctx, b->held, b->heldlen + n) < 0) {
			int err = errno;

			memmove(b->held, b->held + n, b->heldlen);
			errno = err;
			return -1;
		}
	}
	b->said = b->gap;
	b->said.conns = NULL;
	b->heldlen = 0;
	memset(&b->gap, 0, sizeof(b->gap));
	return 0;
}

/* A write failed.  Drop: the buffer is sorted (sb_divert), said at most once every
 * log_every_ms.  Block: the buffer is kept and the caller stops reading.  Both try again
 * retry_ms later.  ev is what to say if nothing new is. */
static enum store_buf_event
sb_failed(struct store_buf *b, struct store_buf_now now, enum store_buf_event ev)
{
	int err = errno;

	if (b->cfg.block) {
		if (!b->failing)
			ev = STORE_BUF_HOLDING;
	} else {
		if (now.ms - b->logged_ms >= b->cfg.log_every_ms) {
			ev = STORE_BUF_DROPPING;
			b->logged_ms = now.ms;
			b->reported = 1;
		}
		sb_divert(b);
		sb_reset(b);
	}
	b->failing = 1;
	b->retry_ms = now.ms + b->cfg.retry_ms;
	errno = err;
	return ev;
}

enum store_buf_event
store_buf_flush(struct store_buf *b, struct store_buf_now now)
{
	enum store_buf_event ev = STORE_BUF_OK;

	if (b->failing && now.ms < b->retry_ms) {
		/* Drop: what came meanwhile is sorted at once.  Block: it waits. */
		if (!b->cfg.block) {
			sb_divert(b);
			sb_reset(b);
		}
		return STORE_BUF_OK;
	}
	if (b->gap.dropped_records > 0 || b->heldlen > 0) {
		if (sb_write_owed(b, now) < 0)
			return sb_failed(b, now, ev);
		if (b->reported && !b->cfg.block)
			ev = STORE_BUF_RECOVERED;
		b->reported = 0;
	}
	if (b->outlen > 0 && b->cfg.write(b->cfg.ctx, b->out, b->outlen) < 0)
		return sb_failed(b, now, ev);
	b->wrote_gen = b->gen;
	sb_reset(b);
	if (b->failing && b->cfg.block)
		ev = STORE_BUF_WRITABLE;
	b->failing = 0;
	return ev;
}

int
store_buf_wants_flush(const struct store_buf *b)
{
	return b->cfg.block &&
	    (b->outlen + STORE_BUF_REC_MAX > b->cfg.outcap || b->nrecs == b->cfg.maxrecs);
}

int
store_buf_failing(const struct store_buf *b)
{
	return b->failing;
}

int
store_buf_blocked(const struct store_buf *b)
{
	return b->cfg.block && b->failing;
}

static int
sb_closed_lately(const struct store_buf *b, uint64_t conn)
{
	for (size_t i = 0; i < SB_CLOSED_RING; i++)
		if (b->closed_ring[i] == conn)
			return 1;
	return 0;
}

/* Keeps the per-connection count, and drops the close of a connection whose open was dropped
 * (returns 0 for a record to leave out).  A close remembers where its open is when that is in
 * the same batch, so that dropping one drops the other (sb_divert_close). */
static int
sb_track(struct store_buf *b, struct rec *r, int32_t *open_idx)
{
	struct sb_conn *e = sb_slot(b, r->conn);

	*open_idx = -1;
	if (r->type == REC_OPEN) {
		/* The master writes an open for a session that died before it marked its own open
		 * written; when the session's open did get in first, the master's is a duplicate. */
		if ((r->flags & REC_F_BEHALF) && e != NULL)
			return 0;
		e = sb_conn_open(b, r->conn);
		if (e != NULL) {
			e->open_gen = b->gen;
			e->open_idx = (uint32_t)b->nrecs;
		}
	} else if (r->type == REC_DATA && e != NULL) {
		e->bytes += r->len;
	} else if (r->type == REC_CLOSE && e == NULL && (r->flags & REC_F_BEHALF) &&
	    sb_closed_lately(b, r->conn)) {
		return 0;
	} else if (r->type == REC_CLOSE && e != NULL) {
		struct sb_conn gone = *e; /* the removal moves other entries into e */

		if (r->flags & REC_F_BEHALF)
			r->bytes = gone.bytes;
		b->closed_ring[b->closed_next++ % SB_CLOSED_RING] = r->conn;
		htab_remove(b->tab, b->cap, &sb_shape, (size_t)(e - b->tab));
		b->live--;
		if (gone.dropped) {
			sb_gap_add(b, r->conn, 0);
			return 0;
		}
		if (gone.open_gen == b->gen)
			*open_idx = (int32_t)gone.open_idx;
	}
	return 1;
}

/* --echo-after: a chunk's last frame leaves no carry, since its writer waits for its receipt
 * before it sends more: the incomplete character goes in a line of its own (base64). */
static size_t
sb_carry_out(char *dst, const struct rec *r, struct rec_carry *carry)
{
	struct rec c = { .type = REC_DATA, .conn = r->conn, .ts_us = r->ts_us, .pid = r->pid,
	    .data = carry->b, .len = carry->n };
	size_t n = rec_format_line(dst, &c, NULL);

	carry->n = 0;
	return n;
}

enum store_buf_event
store_buf_add(struct store_buf *b, struct rec *r, struct store_buf_now now)
{
	size_t need = r->type == REC_DGRAM ? REC_DGRAM_JSON_LEN(r->len) : REC_JSON_MAX;
	enum store_buf_event ev = STORE_BUF_OK;
	struct sb_rec *o;
	struct sb_conn *e = NULL;
	struct rec_carry carry = { .n = 0 };
	int32_t open_idx = -1;
	size_t n;

	if (b->outlen + need > b->cfg.outcap || b->nrecs == b->cfg.maxrecs)
		ev = store_buf_flush(b, now);
	if (b->outlen + need > b->cfg.outcap || b->nrecs == b->cfg.maxrecs) {
		/* Block, and the caller did not wait for room (store_buf_wants_flush): said as
		 * lost rather than written past the buffer. */
		sb_gap_add(b, r->conn, r->type == REC_DATA || r->type == REC_DGRAM ? r->len : 0);
		return ev;
	}
	/* Taken before sb_track, which forgets a connection at its close. */
	if (r->type == REC_DATA || r->type == REC_CLOSE)
		e = sb_slot(b, r->conn);
	if (e != NULL)
		carry = e->carry;
	if (r->type != REC_DGRAM && !sb_track(b, r, &open_idx))
		return ev;
	o = &b->recs[b->nrecs++];
	*o = (struct sb_rec){ .off = (uint32_t)b->outlen, .len = (uint32_t)r->len,
	    .open_idx = open_idx, .type = (uint8_t)r->type, .conn = r->conn };
	if (b->cfg.format == STORE_RAW) {
		if (r->type == REC_DATA || r->type == REC_DGRAM) {
			memcpy(b->out + b->outlen, r->data, r->len);
			b->outlen += r->len;
		}
		return ev;
	}
	n = rec_format_line(b->out + b->outlen, r, e != NULL ? &carry : NULL);
	if (e != NULL && r->type == REC_DATA && (r->flags & REC_F_WHOLE) && carry.n > 0)
		n += sb_carry_out(b->out + b->outlen + n, r, &carry);
	if (e != NULL && r->type == REC_DATA) {
		/* The line holds the bytes carried in, less those carried out. */
		o->len = (uint32_t)(r->len + e->carry.n - carry.n);
		e->carry = carry;
	}
	if (n == 0)
		b->nrecs--;
	b->outlen += n;
	return ev;
}

enum store_buf_event
store_buf_add_line(struct store_buf *b, const char *line, size_t len, struct store_buf_now now)
{
	enum store_buf_event ev = STORE_BUF_OK;

	if (b->cfg.format == STORE_RAW)
		return ev;
	if (b->outlen + len > b->cfg.outcap || b->nrecs == b->cfg.maxrecs)
		ev = store_buf_flush(b, now);
	if (b->outlen + len > b->cfg.outcap || b->nrecs == b->cfg.maxrecs)
		return ev;
	/* Kept like a close record when the file cannot take it. */
	b->recs[b->nrecs++] = (struct sb_rec){ .off = (uint32_t)b->outlen, .open_idx = -1,
	    .type = REC_CLOSE };
	memcpy(b->out + b->outlen, line, len);
	b->outlen += len;
	return ev;
}

int
store_buf_give_up(struct store_buf *b)
{
	if (!b->cfg.block)
		return 0;
	b->cfg.block = 0;
	if (!b->failing)
		return 0;
	b->reported = 1;
	sb_divert(b);
	sb_reset(b);
	return 1;
}

static void
sb_close_lost(struct store_buf *b, uint64_t conn, struct store_buf_now now)
{
	unsigned char buf[8 + REC_REASON_MAX];
	struct rec r = { .type = REC_CLOSE, .conn = conn, .ts_us = now.us, .flags = REC_F_BEHALF };

	r.len = rec_close_payload(buf, 0, "lost") - 8;
	r.data = buf + 8;
	store_buf_add(b, &r, now);
}

void
store_buf_note_dropped(struct store_buf *b, uint64_t records, const uint64_t *conns,
    size_t nconns, int truncated, struct store_buf_now now)
{
	b->gap.dropped_records += records;
	for (size_t i = 0; i < nconns; i++) {
		sb_gap_conn(b, conns[i]);
		if (sb_slot(b, conns[i]) != NULL)
			sb_close_lost(b, conns[i], now);
	}
	if (truncated)
		b->gap.truncated = 1;
}

size_t
store_buf_live(const struct store_buf *b)
{
	return b->live;
}

struct sb_lost {
	struct store_buf *b;
	struct store_buf_now now;
};

/* Its close removes the entry it is given, and no other (htab_each). */
static void
sb_close_lost_one(void *slot, size_t i, void *arg)
{
	const struct sb_lost *l = arg;

	(void)i;
	sb_close_lost(l->b, ((const struct sb_conn *)slot)->conn, l->now);
}

void
store_buf_close_lost(struct store_buf *b, struct store_buf_now now)
{
	struct sb_lost l = { b, now };

	htab_each(b->tab, b->cap, &sb_shape, sb_close_lost_one, &l);
}

/* The carry of one connection written out: a data record of no bytes, marked whole, makes
 * store_buf_add write the held bytes as a line of their own (and counts nothing twice). */
static void
sb_carry_out_one(void *slot, size_t i, void *arg)
{
	const struct sb_conn *e = slot;
	const struct sb_lost *l = arg;
	struct rec r = { .type = REC_DATA, .conn = e->conn, .ts_us = l->now.us,
	    .flags = REC_F_WHOLE, .data = (const unsigned char *)"", .len = 0 };

	(void)i;
	if (e->carry.n > 0)
		store_buf_add(l->b, &r, l->now);
}

void
store_buf_carry_out(struct store_buf *b, struct store_buf_now now)
{
	struct sb_lost l = { b, now };

	htab_each(b->tab, b->cap, &sb_shape, sb_carry_out_one, &l);
}

enum store_buf_event
store_buf_finish(struct store_buf *b, struct store_buf_now now)
{
	b->retry_ms = INT64_MIN / 2;
	return store_buf_flush(b, now);
}

const struct rec_gap *
store_buf_gap(const struct store_buf *b)
{
	return &b->gap;
}

const struct rec_gap *
store_buf_said(const struct store_buf *b)
{
	return &b->said;
}

size_t
store_buf_batch(const struct store_buf *b, uint32_t *gen, uint32_t *wrote_gen)
{
	*gen = b->gen;
	if (wrote_gen != NULL)
		*wrote_gen = b->wrote_gen;
	return b->outlen;
}

size_t
store_buf_held(const struct store_buf *b)
{
	return b->heldlen;
}
