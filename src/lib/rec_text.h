/*
 * rec_text.h - a record's bytes as text: UTF-8 validation, the JSON string of valid UTF-8, and
 * base64.  Pure code, on the store's hot path: rec_text.c says how they are made fast, and their
 * results do not depend on the path taken (SSE2 on x86-64, portable C elsewhere, or with
 * REC_TEXT_PORTABLE defined); the unit tests and fuzz/fuzz_record.c compare both with simple
 * reference code, byte for byte.
 */
#ifndef MPECHO_REC_TEXT_H
#define MPECHO_REC_TEXT_H

#include <stddef.h>
#include <sys/types.h>

/* The base64 length of n bytes. */
#define REC_B64_LEN(n) (((size_t)(n) + 2) / 3 * 4)

/* How a run of bytes ends as UTF-8 (rec_utf8_scan). */
enum rec_utf8 {
	REC_UTF8_WHOLE, /* all valid */
	REC_UTF8_CUT,   /* valid, but the last 1-3 bytes start a character they do not finish */
	REC_UTF8_BAD    /* not UTF-8 */
};
/* Returns the length of the longest prefix of s made of whole valid characters (RFC 3629: no
 * overlongs, surrogates or code points above U+10FFFF), and in *how how the rest fares. */
size_t rec_utf8_scan(const unsigned char *s, size_t n, enum rec_utf8 *how);
/* Writes the JSON string body of n bytes of valid UTF-8 into dst (room for limit + 64; only
 * '"', '\\' and the C0 controls are escaped); returns its length, or SIZE_MAX as soon as it
 * is sure to be longer than limit. */
size_t rec_json_text(char *dst, const unsigned char *src, size_t n, size_t limit);
/* The JSON string text of one character c (below 256) into t (8 bytes): '"', '\\', \n, \r and \t
 * escaped by their letters, the other C0 controls as \u00XX, and so is c when uescape is set;
 * any other c as the one byte c.  Returns its length. */
size_t rec_json_char(char *t, unsigned c, int uescape);
/* Standard padded base64: encodes n bytes into REC_B64_LEN(n) characters; decodes n characters
 * (canonical padded form only) into at most n / 4 * 3 bytes, or returns -1. */
size_t rec_b64_encode(char *dst, const unsigned char *src, size_t n);
ssize_t rec_b64_decode(unsigned char *dst, const char *src, size_t n);
/* Which path this build takes: "sse2" or "portable" (for the tests and the benchmarks). */
const char *rec_text_path(void);

#endif
