/*
 * libFuzzer target for the record code.  The input is used twice:
 *  - as a stream read from the store pipe: every frame rec_decode accepts must format as one
 *    JSON line with no raw control byte, and a malformed stream must never be over-read;
 *  - as the bytes of a data record: the JSON string rec_json_escape makes must decode back to
 *    exactly those bytes (the latin-1 contract of the store).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

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
		/* A datagram's later frames are put together by the store, not formatted alone. */
		size_t len = rec_format_json(json, &r);
		if (r.type == REC_DGRAM_MORE ? len != 0 : (len == 0 || len > sizeof(json) ||
		    json[len - 1] != '\n' || memchr(json, '\n', len - 1) != NULL))
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_stream(data, size);
	check_escape(data, size);
	return 0;
}
