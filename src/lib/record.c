/*
 * record.c - pipe frames and their JSON Lines form.
 */
#define _GNU_SOURCE
#include "record.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(struct rec_hdr) == 40, "the frame header is 40 bytes");

static uint64_t rec_key;
static char rec_life[REC_LIFE_LEN + 1] = "00000000000000000000000000000000";
/* The life before an upgrade in place (rec_set_prev): its sessions' frames carry its key. */
static uint64_t rec_prev_key;
static char rec_prev_life[REC_LIFE_LEN + 1];

void
rec_set_key(uint64_t key)
{
	rec_key = key;
}
_Static_assert(REC_FRAME_MAX >= 512, "PIPE_BUF is at least 512 bytes");

void
rec_new_key(void)
{
	uint64_t key;

	uint64_t life[2];

	if (getrandom(&key, sizeof(key), 0) != (ssize_t)sizeof(key))
		key = (uint64_t)rec_now_us() ^ ((uint64_t)getpid() << 32);
	rec_set_key(key);
	/* Without getrandom the life is still unlikely to repeat: the clock, the pid and the key's
	 * fallback are mixed, and two hosts differ in the host name of the start record. */
	if (getrandom(life, sizeof(life), 0) != (ssize_t)sizeof(life)) {
		life[0] = (uint64_t)rec_now_us() * 0x9e3779b97f4a7c15ull;
		life[1] = ((uint64_t)getpid() << 32 | (uint64_t)getppid()) ^ key;
	}
	rec_set_life(life);
}

void
rec_set_life(const uint64_t id[2])
{
	snprintf(rec_life, sizeof(rec_life), "%016llx%016llx", (unsigned long long)id[0],
	    (unsigned long long)id[1]);
}

const char *
rec_life_id(void)
{
	return rec_life;
}

uint64_t
rec_get_key(void)
{
	return rec_key;
}

void
rec_set_prev(uint64_t key, const char *life)
{
	rec_prev_key = key;
	snprintf(rec_prev_life, sizeof(rec_prev_life), "%.32s", life);
}

int64_t
rec_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
rec_header(struct rec_hdr *h, enum rec_type type, unsigned flags, uint64_t conn, pid_t pid,
    size_t len)
{
	h->magic = REC_MAGIC;
	h->type = (uint8_t)type;
	h->flags = (uint8_t)flags;
	h->len = (uint32_t)len;
	h->key = rec_key;
	h->conn = conn;
	h->ts_us = rec_now_us();
	h->pid = (uint32_t)pid;
	h->reserved = 0;
}

size_t
rec_close_payload(unsigned char *dst, uint64_t bytes, const char *reason)
{
	size_t n = strnlen(reason, REC_REASON_MAX);

	memcpy(dst, &bytes, sizeof(bytes));
	memcpy(dst + sizeof(bytes), reason, n);
	return sizeof(bytes) + n;
}

size_t
rec_dgram_prefix(unsigned char *dst, size_t total, const char *peer)
{
	uint32_t t = (uint32_t)total;
	size_t n = strnlen(peer, 255);

	memcpy(dst, &t, sizeof(t));
	dst[4] = (unsigned char)n;
	memcpy(dst + REC_DGRAM_HDR, peer, n);
	return REC_DGRAM_HDR + n;
}

/* Splits a datagram's first payload into its size, peer and first data bytes. */
static int
rec_decode_dgram(struct rec *r)
{
	uint32_t total;

	if (r->len < REC_DGRAM_HDR || r->len < REC_DGRAM_HDR + (size_t)r->data[4])
		return -1;
	memcpy(&total, r->data, sizeof(total));
	r->peerlen = r->data[4];
	r->peer = r->data + REC_DGRAM_HDR;
	r->data += REC_DGRAM_HDR + r->peerlen;
	r->len -= REC_DGRAM_HDR + r->peerlen;
	r->total = total;
	if (r->total > REC_DGRAM_MAX || r->len > r->total)
		return -1;
	return 0;
}

ssize_t
rec_decode(const unsigned char *buf, size_t avail, struct rec *out)
{
	struct rec_hdr h;

	if (avail < sizeof(h))
		return 0;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != REC_MAGIC || (h.key != rec_key && (rec_prev_key == 0 || h.key != rec_prev_key)) ||
	    h.len > REC_PAYLOAD_MAX ||
	    h.type < REC_OPEN || h.type > REC_GAP || h.conn == 0 || h.conn == UINT64_MAX)
		return -1;
	if (h.type == REC_CLOSE && (h.len < sizeof(uint64_t) ||
	    h.len > sizeof(uint64_t) + REC_REASON_MAX))
		return -1;
	if (h.type == REC_GAP && (h.len < sizeof(uint64_t) || h.len % sizeof(uint64_t) != 0 ||
	    h.len > sizeof(uint64_t) * (1 + REC_GAP_CONNS)))
		return -1;
	if (avail < sizeof(h) + h.len)
		return 0;
	out->type = (enum rec_type)h.type;
	out->flags = h.flags | (h.key != rec_key ? REC_F_PREV : 0u);
	out->conn = h.conn;
	out->ts_us = h.ts_us;
	out->pid = (pid_t)h.pid;
	out->receipt = h.reserved;
	out->data = buf + sizeof(h);
	out->len = h.len;
	out->bytes = 0;
	out->peer = NULL;
	out->peerlen = out->total = 0;
	if (h.type == REC_CLOSE) {
		memcpy(&out->bytes, out->data, sizeof(uint64_t));
		out->data += sizeof(uint64_t);
		out->len -= sizeof(uint64_t);
	} else if (h.type == REC_DGRAM && rec_decode_dgram(out) < 0) {
		return -1;
	}
	return (ssize_t)(sizeof(h) + h.len);
}

/* gmtime_r is costly next to formatting a record, so the date part is kept for the second. */
void
rec_format_ts(char *dst, int64_t ts_us)
{
	static time_t cached_sec = -1;
	static char cached[20]; /* "2026-11-21T10:00:00" */
	time_t sec = (time_t)(ts_us / 1000000);
	long usec = (long)(ts_us % 1000000);
	struct tm tm;

	if (usec < 0) {
		usec += 1000000;
		sec--;
	}
	if (sec != cached_sec) {
		if (gmtime_r(&sec, &tm) == NULL ||
		    strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm) != 19)
			memcpy(cached, "0000-00-00T00:00:00", 20);
		cached_sec = sec;
	}
	memcpy(dst, cached, 19);
	dst[19] = '.';
	for (int i = 25; i >= 20; i--) {
		dst[i] = (char)('0' + usec % 10);
		usec /= 10;
	}
	dst[26] = 'Z';
}

/* Each byte's JSON text, padded to 8 bytes, and its length: itself, two UTF-8 bytes
 * (U+00A0..U+00FF), a two-character escape, or \u00XX (the C0 and C1 controls and DEL: some
 * line readers, Python's splitlines among them, would break a line at U+0085).  Copying 8 bytes
 * and advancing by the length has no branch to mispredict on binary data, which a switch on the
 * byte's kind does about every other byte (7x slower measured on random data). */
static char rec_esc_text[256][8];
static unsigned char rec_esc_len[256];

static void
rec_esc_init(void)
{
	for (unsigned c = 0; c < 256; c++) {
		char *t = rec_esc_text[c];

		if (c >= 0xa0) {
			t[0] = (char)(0xc0 | (c >> 6));
			t[1] = (char)(0x80 | (c & 0x3f));
			rec_esc_len[c] = 2;
		} else {
			rec_esc_len[c] = (unsigned char)rec_json_char(t, c, c >= 0x7f);
		}
	}
}

size_t
rec_json_escape(char *dst, const unsigned char *src, size_t n)
{
	char *p = dst;

	if (rec_esc_len[0] == 0)
		rec_esc_init();
	for (size_t i = 0; i < n; i++) {
		memcpy(p, rec_esc_text[src[i]], 8);
		p += rec_esc_len[src[i]];
	}
	return (size_t)(p - dst);
}

static char *rec_format_head(char *p, int64_t ts_us);
static char *rec_format_head_r(char *p, const struct rec *r);
static char *rec_format_head_of(char *p, int64_t ts_us, const char *life);

static char *
rec_put(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n); /* NOLINT(bugprone-not-null-terminated-result): JSON, not C strings */
	return p + n;
}

size_t
rec_format_gap(char *dst, const struct rec_gap *g)
{
	char *p = dst;

	p = rec_format_head_of(dst, g->ts_us, g->life != NULL ? g->life : rec_life);
	p += sprintf(p, "\"ev\":\"gap\",\"dropped_bytes\":%llu,\"dropped_records\":%llu,"
	    "\"conns\":[", (unsigned long long)g->dropped_bytes,
	    (unsigned long long)g->dropped_records);
	for (size_t i = 0; i < g->nconns; i++)
		p += sprintf(p, "%s%llu", i ? "," : "", (unsigned long long)g->conns[i]);
	p = rec_put(p, g->truncated ? "],\"conns_truncated\":true" : "]");
	if (g->torn_bytes > 0)
		p += sprintf(p, ",\"torn_bytes\":%llu", (unsigned long long)g->torn_bytes);
	p = rec_put(p, "}\n");
	return (size_t)(p - dst);
}

/* An open record's payload is the peer's address, or (behind a load balancer) the client's,
 * a space and the balancer's: "peer", or "peer","via". */
static char *
rec_format_peer(char *p, const unsigned char *text, size_t n)
{
	const unsigned char *sp = memchr(text, ' ', n);
	size_t k = sp ? (size_t)(sp - text) : n;

	p += rec_json_escape(p, text, k);
	if (sp != NULL) {
		p = rec_put(p, "\",\"via\":\"");
		p += rec_json_escape(p, sp + 1, n - k - 1);
	}
	return p;
}

/* Where the bytes of a data record or a datagram are written: the JSON string of valid UTF-8,
 * or base64 for anything else and where it is shorter.  how: what rec_utf8_scan said of the
 * bytes, or REC_UTF8_BAD when not yet asked.  Returns the end of the line's value. */
static char *
rec_format_bytes(char *p, const unsigned char *src, size_t n, enum rec_utf8 how)
{
	size_t b64 = REC_B64_LEN(n), len;

	if (how != REC_UTF8_WHOLE && rec_utf8_scan(src, n, &how) != n)
		how = REC_UTF8_BAD;
	if (how == REC_UTF8_WHOLE) {
		char *q = rec_put(p, "\"data\":\"");

		len = rec_json_text(q, src, n, b64);
		if (len != SIZE_MAX)
			return rec_put(q + len, "\"");
	}
	p = rec_put(p, "\"b64\":\"");
	p += rec_b64_encode(p, src, n);
	return rec_put(p, "\"");
}

/* {"ts":"...","life":"...", */
static char *
rec_format_head_of(char *p, int64_t ts_us, const char *life)
{
	p = rec_put(p, "{\"ts\":\"");
	rec_format_ts(p, ts_us);
	p += REC_TS_LEN;
	p = rec_put(p, "\",\"life\":\"");
	memcpy(p, life, REC_LIFE_LEN); /* NOLINT(bugprone-not-null-terminated-result) */
	return rec_put(p + REC_LIFE_LEN, "\",");
}

static char *
rec_format_head(char *p, int64_t ts_us)
{
	return rec_format_head_of(p, ts_us, rec_life);
}

/* A record's head, in the life of the frame's key. */
static char *
rec_format_head_r(char *p, const struct rec *r)
{
	return rec_format_head_of(p, r->ts_us, (r->flags & REC_F_PREV) ? rec_prev_life : rec_life);
}

static char *
rec_format_data(char *p, const struct rec *r, const unsigned char *src, size_t n,
    enum rec_utf8 how)
{
	p = rec_format_head_r(p, r);
	p += sprintf(p, "\"conn\":%llu,\"ev\":\"data\",", (unsigned long long)r->conn);
	p = rec_format_bytes(p, src, n, how);
	return rec_put(p, "}\n");
}

/* A data record's bytes with the carry in front; what ends in an incomplete UTF-8 character
 * keeps that character's first bytes back for the next record (see rec_format_line). */
static char *
rec_format_carried(char *p, const struct rec *r, struct rec_carry *c)
{
	unsigned char buf[REC_CARRY_MAX + REC_PAYLOAD_MAX];
	const unsigned char *src = r->data;
	size_t n = c->n + r->len, whole;
	enum rec_utf8 how;

	/* Copied only behind a carry (the common case has none). */
	if (c->n > 0) {
		memcpy(buf, c->b, c->n);
		memcpy(buf + c->n, r->data, r->len);
		src = buf;
	}
	c->n = 0;
	whole = rec_utf8_scan(src, n, &how);
	if (how == REC_UTF8_CUT) {
		c->n = (unsigned char)(n - whole);
		memcpy(c->b, src + whole, c->n);
		n = whole;
	}
	/* What is left is whole UTF-8 when it was cut (or whole), and is not scanned again. */
	return n > 0 ? rec_format_data(p, r, src, n, how == REC_UTF8_BAD ? how :
	    REC_UTF8_WHOLE) : p;
}

/* Where a datagram's parts end: each at most REC_DGRAM_PART bytes, a cut moved back (at most 3
 * bytes) to the start of a UTF-8 character so that a text datagram's parts stay text.  Returns
 * the number of parts (1 for an empty datagram). */
static size_t
rec_dgram_cuts(const unsigned char *s, size_t n, size_t *ends)
{
	size_t parts = 0, at = 0, cut;

	do {
		cut = n - at > REC_DGRAM_PART ? at + REC_DGRAM_PART : n;
		for (int back = 0; cut < n && back < REC_CARRY_MAX && (s[cut] & 0xc0) == 0x80; back++)
			cut--;
		if (cut < n && (s[cut] & 0xc0) == 0x80)
			cut = at + REC_DGRAM_PART; /* not UTF-8 there: cut where the bound is */
		ends[parts++] = cut;
		at = cut;
	} while (at < n);
	return parts;
}

/* A datagram's lines: one, or when it is larger than REC_DGRAM_PART, one a part, written
 * together, each saying "part":I,"parts":N (I from 1) before its bytes. */
static char *
rec_format_dgram(char *p, const struct rec *r)
{
	size_t ends[REC_DGRAM_PARTS_MAX], parts = rec_dgram_cuts(r->data, r->len, ends), at = 0;

	for (size_t i = 0; i < parts; i++) {
		p = rec_format_head_r(p, r);
		p = rec_put(p, "\"ev\":\"datagram\",\"peer\":\"");
		p += rec_json_escape(p, r->peer, r->peerlen);
		p = rec_put(p, "\",");
		if (parts > 1)
			p += sprintf(p, "\"part\":%zu,\"parts\":%zu,", i + 1, parts);
		p = rec_format_bytes(p, r->data + at, ends[i] - at, REC_UTF8_BAD);
		p = rec_put(p, "}\n");
		at = ends[i];
	}
	return p;
}

size_t
rec_format_line(char *dst, const struct rec *r, struct rec_carry *carry)
{
	char *p = dst;

	if (r->type == REC_DATA && carry != NULL)
		return (size_t)(rec_format_carried(p, r, carry) - dst);
	if (r->type == REC_DATA)
		return (size_t)(rec_format_data(p, r, r->data, r->len, REC_UTF8_BAD) - dst);
	if (r->type == REC_CLOSE && carry != NULL && carry->n > 0) {
		/* The first bytes of a character that never came: written as they are. */
		p = rec_format_data(p, r, carry->b, carry->n, REC_UTF8_BAD);
		carry->n = 0;
	}
	if (r->type == REC_DGRAM)
		return (size_t)(rec_format_dgram(p, r) - dst);
	p = rec_format_head_r(p, r);
	p += sprintf(p, "\"conn\":%llu,", (unsigned long long)r->conn);
	switch (r->type) {
	case REC_OPEN:
		p += sprintf(p, "\"pid\":%ld,\"ev\":\"open\",\"peer\":\"", (long)r->pid);
		p = rec_format_peer(p, r->data, r->len);
		p = rec_put(p, "\"}\n");
		break;
	case REC_CLOSE:
		p = rec_put(p, "\"ev\":\"close\",\"reason\":\"");
		p += rec_json_escape(p, r->data, r->len);
		p += sprintf(p, "\",\"bytes\":%llu}\n", (unsigned long long)r->bytes);
		break;
	case REC_DATA:
	case REC_DGRAM:
	case REC_DGRAM_MORE: /* the store formats a datagram once it has all of it */
	case REC_GAP:        /* the store says it in a gap record (rec_format_gap) */
		return 0;
	}
	return (size_t)(p - dst);
}

size_t
rec_format_json(char *dst, const struct rec *r)
{
	return rec_format_line(dst, r, NULL);
}

size_t
rec_format_start(char *dst, const struct rec_start *s)
{
	char *p = rec_format_head(dst, s->ts_us);

	p += sprintf(p, "\"ev\":\"start\",\"format\":%d,\"version\":\"", REC_FORMAT);
	p += rec_json_escape(p, (const unsigned char *)s->version, strnlen(s->version, 64));
	p = rec_put(p, "\",\"host\":\"");
	p += rec_json_escape(p, (const unsigned char *)s->host, strnlen(s->host, 255));
	p += sprintf(p, "\",\"pid\":%ld,\"fsync\":\"%s\",\"store_full\":\"%s\",\"inetd\":%s}\n",
	    (long)s->pid, s->fsync, s->full, s->inetd ? "true" : "false");
	return (size_t)(p - dst);
}

size_t
rec_format_stop(char *dst, int64_t ts_us)
{
	return (size_t)(rec_put(rec_format_head(dst, ts_us), "\"ev\":\"stop\"}\n") - dst);
}
