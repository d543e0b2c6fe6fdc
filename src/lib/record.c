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

	if (getrandom(&key, sizeof(key), 0) != (ssize_t)sizeof(key))
		key = (uint64_t)rec_now_us() ^ ((uint64_t)getpid() << 32);
	rec_set_key(key);
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
	if (h.magic != REC_MAGIC || h.key != rec_key || h.len > REC_PAYLOAD_MAX ||
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
	out->flags = h.flags;
	out->conn = h.conn;
	out->ts_us = h.ts_us;
	out->pid = (pid_t)h.pid;
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
	static const char hex[] = "0123456789abcdef";
	static const char shorts[] = "\"\\\n\r\t", letters[] = "\"\\nrt";

	for (int c = 0; c < 256; c++) {
		const char *s = c != 0 ? strchr(shorts, c) : NULL;
		char *t = rec_esc_text[c];

		if (s != NULL) {
			t[0] = '\\';
			t[1] = letters[s - shorts];
			rec_esc_len[c] = 2;
		} else if (c >= 0xa0) {
			t[0] = (char)(0xc0 | (c >> 6));
			t[1] = (char)(0x80 | (c & 0x3f));
			rec_esc_len[c] = 2;
		} else if (c < 0x20 || c >= 0x7f) {
			memcpy(t, "\\u00", 4); /* NOLINT(bugprone-not-null-terminated-result) */
			t[4] = hex[c >> 4];
			t[5] = hex[c & 0xf];
			rec_esc_len[c] = 6;
		} else {
			t[0] = (char)c;
			rec_esc_len[c] = 1;
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

	p = rec_put(p, "{\"ts\":\"");
	rec_format_ts(p, g->ts_us);
	p += REC_TS_LEN;
	p += sprintf(p, "\",\"ev\":\"gap\",\"dropped_bytes\":%llu,\"dropped_records\":%llu,"
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

size_t
rec_format_json(char *dst, const struct rec *r)
{
	char *p = dst;

	p = rec_put(p, "{\"ts\":\"");
	rec_format_ts(p, r->ts_us);
	p += REC_TS_LEN;
	if (r->type == REC_DGRAM) {
		p = rec_put(p, "\",\"ev\":\"datagram\",\"peer\":\"");
		p += rec_json_escape(p, r->peer, r->peerlen);
		p = rec_put(p, "\",\"data\":\"");
		p += rec_json_escape(p, r->data, r->len);
		p = rec_put(p, "\"}\n");
		return (size_t)(p - dst);
	}
	p += sprintf(p, "\",\"conn\":%llu,", (unsigned long long)r->conn);
	switch (r->type) {
	case REC_OPEN:
		p += sprintf(p, "\"pid\":%ld,\"ev\":\"open\",\"peer\":\"", (long)r->pid);
		p = rec_format_peer(p, r->data, r->len);
		p = rec_put(p, "\"}\n");
		break;
	case REC_DATA:
		p = rec_put(p, "\"ev\":\"data\",\"data\":\"");
		p += rec_json_escape(p, r->data, r->len);
		p = rec_put(p, "\"}\n");
		break;
	case REC_CLOSE:
		p = rec_put(p, "\"ev\":\"close\",\"reason\":\"");
		p += rec_json_escape(p, r->data, r->len);
		p += sprintf(p, "\",\"bytes\":%llu}\n", (unsigned long long)r->bytes);
		break;
	case REC_DGRAM:
	case REC_DGRAM_MORE: /* the store formats a datagram once it has all of it */
	case REC_GAP:        /* the store says it in a gap record (rec_format_gap) */
		return 0;
	}
	return (size_t)(p - dst);
}
