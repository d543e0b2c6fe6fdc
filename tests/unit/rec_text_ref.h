/*
 * rec_text_ref.h - reference code for rec_text.c, as plain as it can be, one byte or one code
 * point at a time: tests/unit/test_rec_text.c and fuzz/fuzz_record.c check the fast paths
 * against it, byte for byte.
 */
#ifndef MPECHO_REC_TEXT_REF_H
#define MPECHO_REC_TEXT_REF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rec_text.h"

/* A plain reading of RFC 3629, one code point at a time. */
static inline size_t
ref_utf8(const unsigned char *s, size_t n, enum rec_utf8 *how)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], need, cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, cp = c & 0x07, min = 0x10000;
		else
			break;
		size_t k;
		for (k = 1; k <= need && i + k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				break;
			cp = cp << 6 | (s[i + k] & 0x3fu);
			/* A prefix is "cut" only if some completion of it is valid. */
			unsigned left = need - (unsigned)k;
			unsigned lo = cp << (6 * left), hi = lo | ((1u << (6 * left)) - 1);
			if (hi < min || lo > 0x10ffff || (lo >= 0xd800 && hi <= 0xdfff))
				goto bad;
		}
		if (k <= need && i + k < n)
			goto bad;
		if (k <= need) {
			*how = REC_UTF8_CUT;
			return i;
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			goto bad;
		i += need + 1;
	}
	if (i == n) {
		*how = REC_UTF8_WHOLE;
		return n;
	}
bad:
	*how = REC_UTF8_BAD;
	return i;
}


/* The JSON string body of valid UTF-8: '"', '\\', \n, \r and \t escaped by letter, the other
 * C0 controls as \u00XX, every other byte as it is.  SIZE_MAX when longer than limit. */
static inline size_t
ref_json_text(char *dst, const unsigned char *src, size_t n, size_t limit)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = src[i];

		switch (c) {
		case '"':
		case '\\':
			dst[o++] = '\\';
			dst[o++] = (char)c;
			break;
		case '\n':
			dst[o++] = '\\';
			dst[o++] = 'n';
			break;
		case '\r':
			dst[o++] = '\\';
			dst[o++] = 'r';
			break;
		case '\t':
			dst[o++] = '\\';
			dst[o++] = 't';
			break;
		default:
			if (c < 0x20) {
				memcpy(dst + o, "\\u00", 4);
				dst[o + 4] = hex[c >> 4];
				dst[o + 5] = hex[c & 0xf];
				o += 6;
			} else {
				dst[o++] = (char)c;
			}
		}
	}
	return o > limit ? SIZE_MAX : o;
}

/* Base64 (RFC 4648), six bits at a time, '=' for the missing ones. */
static inline size_t
ref_b64(char *dst, const unsigned char *src, size_t n)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)src[i + 1] << 8;
		if (i + 2 < n)
			v |= src[i + 2];
		for (size_t k = 0; k < 4; k++)
			dst[o + k] = k <= n - i ? abc[(v >> (18 - 6 * k)) & 63] : '=';
		o += 4;
	}
	return o;
}

#endif
