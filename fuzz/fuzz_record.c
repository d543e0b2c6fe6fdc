/*
 * libFuzzer target for the record code.  The input is used twice:
 *  - as a stream read from the store pipe: every frame rec_decode accepts must format as one
 *    JSON line with no raw control byte, and a malformed stream must never be over-read;
 *  - as the bytes of a data record: the JSON string rec_json_escape makes must decode back to
 *    exactly those bytes (the latin-1 form of open and close records' text);
 *  - as the bytes of a connection's two reads, split where the first byte says: the data lines
 *    of format 2 (a JSON string of UTF-8, or base64, with the carry of an incomplete character
 *    between them and before the close) must decode back to exactly those bytes, in order,
 *    each line within REC_DATA_LINE_MAX, its text valid UTF-8 with no raw control byte;
 *  - as a whole datagram: its lines (in parts past REC_DGRAM_PART bytes, numbered from 1) must
 *    each be within REC_LINE_MAX and give back exactly its bytes, in order;
 *  - as bytes for rec_text.c's fast paths (SSE2 on x86-64): the UTF-8 scan, the JSON text of
 *    the valid prefix (at the limits around its length) and base64 must equal the plain
 *    reference code of tests/unit/rec_text_ref.h, byte for byte, at every alignment.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "../tests/unit/rec_text_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char json[REC_JSON_MAX];

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	abort();
}

/* Decodes the escaper's output (a strict subset of JSON) back to latin-1 bytes. */
static size_t
unescape(const char *s, size_t n, unsigned char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\') {
			char e = s[++i];
			if (e == 'u') {
				if (s[i + 1] != '0' || s[i + 2] != '0')
					abort();
				out[o++] = (unsigned char)(hexval(s[i + 3]) * 16 + hexval(s[i + 4]));
				i += 4;
			} else {
				const char *from = "nrt\"\\", *to = "\n\r\t\"\\";
				const char *p = strchr(from, e);
				if (p == NULL || e == '\0')
					abort();
				out[o++] = (unsigned char)to[p - from];
			}
		} else if (c >= 0xc0) {
			if (c > 0xc3 || i + 1 >= n)
				abort();
			out[o++] = (unsigned char)(((c & 0x1f) << 6) | ((unsigned char)s[++i] & 0x3f));
		} else {
			if (c < 0x20 || c >= 0x7f || c == '"')
				abort();
			out[o++] = c;
		}
	}
	return o;
}

static void
check_stream(const uint8_t *data, size_t size)
{
	size_t off = 0;
	struct rec r;
	ssize_t n;

	while (off < size) {
		n = rec_decode(data + off, size - off, &r);
		if (n == 0)
			break;
		if (n < 0) {
			off++;
			continue;
		}
		if ((size_t)n > size - off || (size_t)n > REC_FRAME_MAX)
			abort();
		/* A datagram's later frames are put together by the store, not formatted alone; the
		 * master's gap frame the store says in a gap record of its own (rec_format_gap). */
		size_t len = rec_format_json(json, &r);
		if (r.type == REC_DGRAM_MORE || r.type == REC_GAP ? len != 0 : (len == 0 ||
		    len > sizeof(json) || json[len - 1] != '\n' || memchr(json, '\n', len - 1) != NULL))
			abort();
		off += (size_t)n;
	}
}

static void
check_escape(const uint8_t *data, size_t size)
{
	unsigned char back[REC_PAYLOAD_MAX];
	size_t n = size < REC_PAYLOAD_MAX ? size : REC_PAYLOAD_MAX;
	size_t len = rec_json_escape(json, data, n);

	if (len > 6 * n || unescape(json, len, back) != n || memcmp(back, data, n) != 0)
		abort();
}

/* The bytes of a format 2 line's "data" or "b64" value, which starts at p and ends at end (its
 * closing quote), appended at out; returns how many. */
static size_t
value_bytes(const char *p, const char *end, unsigned char *out)
{
	enum rec_utf8 how;
	size_t o = 0;

	if (memcmp(end, "\"}\n", 3) != 0)
		abort();
	if (memcmp(p, "\"b64\":\"", 7) == 0) {
		ssize_t n = rec_b64_decode(out, p + 7, (size_t)(end - p - 7));
		if (n < 0)
			abort();
		return (size_t)n;
	}
	if (memcmp(p, "\"data\":\"", 8) != 0)
		abort();
	for (p += 8; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c == '"')
			abort();
		if (c != '\\') {
			out[o++] = c;
			continue;
		}
		c = (unsigned char)*++p;
		if (c == 'u') {
			if (p[1] != '0' || p[2] != '0' || hexval(p[3]) > 1)
				abort();
			out[o++] = (unsigned char)(hexval(p[3]) * 16 + hexval(p[4]));
			p += 4;
		} else {
			const char *from = "nrt\"\\", *to = "\n\r\t\"\\";
			const char *q = c != '\0' ? strchr(from, c) : NULL;
			if (q == NULL)
				abort();
			out[o++] = (unsigned char)to[q - from];
		}
	}
	if (rec_utf8_scan(out, o, &how) != o || how != REC_UTF8_WHOLE)
		abort();
	return o;
}

/* The bytes of one format 2 data line, appended at out; returns how many. */
static size_t
data_bytes(const char *line, size_t len, unsigned char *out)
{
	const char *p = memmem(line, len, "\"ev\":\"data\",", 12);

	if (p == NULL)
		abort();
	return value_bytes(p + 12, line + len - 3, out);
}

/* A whole datagram: its lines, one or one a part ("part":I,"parts":N, I from 1, in order), each
 * within REC_LINE_MAX, give back its bytes. */
static void
check_dgram(const uint8_t *data, size_t size)
{
	static char out[REC_DGRAM_JSON_LEN(REC_DGRAM_MAX)];
	static unsigned char back[REC_DGRAM_MAX];
	static const char peer[] = "127.0.0.1:1";
	static const char head[] = "\"ev\":\"datagram\",\"peer\":\"127.0.0.1:1\",";
	size_t n = size < REC_DGRAM_MAX ? size : REC_DGRAM_MAX, len, got = 0, parts = 0, nlines;
	struct rec r = { .type = REC_DGRAM, .data = data, .len = n,
	    .peer = (const unsigned char *)peer, .peerlen = sizeof(peer) - 1 };
	char want[64];

	len = rec_format_line(out, &r, NULL);
	if (len == 0 || len > sizeof(out) || out[len - 1] != '\n')
		abort();
	nlines = 1;
	for (const char *p = out; p < out + len; parts++) {
		const char *nl = memchr(p, '\n', (size_t)(out + len - p)), *q;

		if (nl == NULL || (size_t)(nl + 1 - p) > REC_LINE_MAX ||
		    (q = memmem(p, (size_t)(nl - p), head, sizeof(head) - 1)) == NULL)
			abort();
		q += sizeof(head) - 1;
		if (p == out && memcmp(q, "\"part\":1,\"parts\":", 17) == 0)
			nlines = strtoul(q + 17, NULL, 10);
		if (nlines > 1) {
			size_t k = (size_t)snprintf(want, sizeof(want), "\"part\":%zu,\"parts\":%zu,",
			    parts + 1, nlines);
			if (memcmp(q, want, k) != 0)
				abort();
			q += k;
		}
		got += value_bytes(q, nl - 2, back + got);
		p = nl + 1;
	}
	if (parts != nlines || (n > REC_DGRAM_PART) != (nlines > 1) || got != n ||
	    memcmp(back, data, n) != 0)
		abort();
}

/* Splits the formatted lines at their newlines and decodes the data lines. */
static size_t
lines_bytes(const char *buf, size_t len, unsigned char *out)
{
	size_t got = 0;

	for (const char *p = buf; p < buf + len;) {
		const char *nl = memchr(p, '\n', (size_t)(buf + len - p));

		if (nl == NULL)
			abort();
		if (memmem(p, (size_t)(nl - p), "\"ev\":\"data\"", 11) != NULL) {
			if ((size_t)(nl + 1 - p) > REC_DATA_LINE_MAX(REC_PAYLOAD_MAX + REC_CARRY_MAX))
				abort();
			got += data_bytes(p, (size_t)(nl + 1 - p), out + got);
		}
		p = nl + 1;
	}
	return got;
}

static void
check_format2(const uint8_t *data, size_t size)
{
	static char out[3 * REC_JSON_MAX];
	static unsigned char back[2 * REC_PAYLOAD_MAX];
	struct rec_carry carry = { .n = 0 };
	size_t n = size < 2 * REC_PAYLOAD_MAX ? size : 2 * REC_PAYLOAD_MAX, len = 0;
	size_t k = n > 0 ? data[0] % (n + 1) : 0;
	struct rec r = { .type = REC_DATA, .conn = 3, .data = data, .len = k };

	if (k > REC_PAYLOAD_MAX || n - k > REC_PAYLOAD_MAX)
		k = n / 2;
	r.len = k;
	len += rec_format_line(out + len, &r, &carry);
	r.data = data + k;
	r.len = n - k;
	len += rec_format_line(out + len, &r, &carry);
	r = (struct rec){ .type = REC_CLOSE, .conn = 3, .data = (const unsigned char *)"eof",
	    .len = 3, .bytes = n };
	len += rec_format_line(out + len, &r, &carry);
	if (carry.n != 0 || lines_bytes(out, len, back) != n || memcmp(back, data, n) != 0)
		abort();
}

/* The fast paths against the reference, on the input at each of the first 16 offsets (every
 * position in a block). */
static void
check_text_paths(const uint8_t *data, size_t size)
{
	static char a[6 * 8192 + 64], b[6 * 8192 + 64];
	size_t n = size < REC_FRAME_MAX + 64 ? size : REC_FRAME_MAX + 64;

	for (size_t at = 0; at < 16 && at <= n; at++) {
		const unsigned char *s = data + at;
		size_t len = n - at, x, y, limits[3];
		enum rec_utf8 hx, hy;

		x = rec_utf8_scan(s, len, &hx);
		y = ref_utf8(s, len, &hy);
		if (x != y || hx != hy)
			abort();
		y = ref_json_text(b, s, x, SIZE_MAX - 1);
		limits[0] = SIZE_MAX - 1;
		limits[1] = y;
		limits[2] = y > 0 ? y - 1 : 0;
		for (size_t k = 0; k < 3; k++) {
			size_t got = rec_json_text(a, s, x, limits[k]);

			if (got != (y > limits[k] ? SIZE_MAX : y) ||
			    (got != SIZE_MAX && memcmp(a, b, got) != 0))
				abort();
		}
		x = rec_b64_encode(a, s, len);
		if (x != ref_b64(b, s, len) || memcmp(a, b, x) != 0)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_stream(data, size);
	check_escape(data, size);
	check_format2(data, size);
	check_dgram(data, size);
	check_text_paths(data, size);
	return 0;
}
