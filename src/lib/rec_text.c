/*
 * rec_text.c - a record's bytes as text: UTF-8 validation, the JSON string of valid UTF-8, and
 * base64 (see rec_text.h).
 *
 * The store runs every byte echoed through these, so validation and escaping look at 16 bytes
 * at once with SSE2 (part of every x86-64 CPU, so no CPU check is needed), chosen at compile
 * time; elsewhere, or with REC_TEXT_PORTABLE defined, portable C that goes a word at a time
 * does the same.  A fast path only ever answers the common case (a block of 16 bytes that is
 * valid, or needs no escape) and leaves the rest to the simple code, so both paths give the
 * same bytes: the unit tests build this file both ways and compare each with reference code,
 * and fuzz/fuzz_record.c does the same on random input.
 */
#include "rec_text.h"

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) && !defined(REC_TEXT_PORTABLE)
#define REC_SSE2 1
#include <emmintrin.h>
#else
#define REC_SSE2 0
#endif

const char *
rec_text_path(void)
{
	return REC_SSE2 ? "sse2" : "portable";
}

static uint64_t
rec_load8(const unsigned char *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
	return w;
}

/* 8 bytes as one number, the first in memory its most significant byte (big: base64 reads
 * them so) or its least (so that carries and borrows run from the first byte to the last). */
static uint64_t
rec_load8_as(const unsigned char *p, int big)
{
	uint64_t w = rec_load8(p);

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return big ? w : __builtin_bswap64(w);
#else
	return big ? __builtin_bswap64(w) : w;
#endif
}

#define REC_ONES 0x0101010101010101ull
#define REC_HIGHS 0x8080808080808080ull

/* UTF-8 validation (RFC 3629: no overlongs, surrogates or code points above U+10FFFF), a
 * character at a time: its lead byte gives its length and the range of its second byte (the
 * only one whose range depends on the lead); the others must be continuation bytes.  ASCII goes
 * 32 or 8 bytes at a time with one mask.  This is the whole validator of the portable build, and
 * the end of every scan in the SSE2 one (rec_utf8_blocks). */
static unsigned char rec_u_len[256], rec_u_lo[256], rec_u_hi[256];

static void
rec_utf8_init(void)
{
	for (int c = 0xc2; c <= 0xf4; c++) {
		rec_u_len[c] = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
		rec_u_lo[c] = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
		rec_u_hi[c] = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
	}
}

/* Whether the k bytes at s (k below the character's length) start a valid character. */
static int
rec_utf8_starts(const unsigned char *s, size_t k)
{
	if (k >= 2 && (s[1] < rec_u_lo[s[0]] || s[1] > rec_u_hi[s[0]]))
		return 0;
	return k < 3 || (s[2] & 0xc0) == 0x80;
}

static size_t
rec_utf8_chars(const unsigned char *s, size_t n, enum rec_utf8 *how)
{
	size_t i = 0, len;

	if (rec_u_len[0xc2] == 0)
		rec_utf8_init();
	while (i < n) {
		if (s[i] < 0x80) {
			/* ASCII: a word at a time while it lasts. */
			if (n - i >= 32 && ((rec_load8(s + i) | rec_load8(s + i + 8) |
			    rec_load8(s + i + 16) | rec_load8(s + i + 24)) & REC_HIGHS) == 0)
				i += 32;
			else if (n - i >= 8 && (rec_load8(s + i) & REC_HIGHS) == 0)
				i += 8;
			else
				i++;
			continue;
		}
		len = rec_u_len[s[i]];
		if (len == 0)
			break;
		if (n - i < len) {
			*how = rec_utf8_starts(s + i, n - i) ? REC_UTF8_CUT : REC_UTF8_BAD;
			return i;
		}
		if (s[i + 1] < rec_u_lo[s[i]] || s[i + 1] > rec_u_hi[s[i]] ||
		    (len > 2 && (s[i + 2] & 0xc0) != 0x80) || (len > 3 && (s[i + 3] & 0xc0) != 0x80))
			break;
		i += len;
	}
	*how = i == n ? REC_UTF8_WHOLE : REC_UTF8_BAD;
	return i;
}

#if REC_SSE2
/* The bytes of a block at least c (unsigned), as a 16-bit mask; sv is the block with each
 * byte's top bit flipped, so that a signed comparison orders it as unsigned. */
static unsigned
rec_ge(__m128i sv, unsigned c)
{
	return (unsigned)_mm_movemask_epi8(_mm_cmpgt_epi8(sv, _mm_set1_epi8((char)((c - 1) ^ 0x80))));
}

static unsigned
rec_eq(__m128i v, unsigned c)
{
	return (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8((char)c)));
}

/* What a block's last characters ask of the next one's first bytes: the continuation bytes
 * they still need (bits 0-2), and the range of the next byte when it is a second byte. */
struct rec_u_carry {
	uint32_t need;
	uint32_t ge_a0, lt_a0, ge_90, lt_90; /* after E0, ED, F0, F4 (bit 0) */
};

/* Whether the 16 bytes v at s are valid UTF-8 given what the block before asked (*c), which
 * then becomes what this one asks of the next.  Each byte's class is a bit mask; a block is
 * valid when the continuation bytes are exactly where its lead bytes (and the last block's)
 * want them, no byte is one that never occurs (C0, C1, F5-FF), and the second byte after E0,
 * ED, F0 and F4 is in the narrower range RFC 3629 gives it.  The masks are exact, so a block
 * that fails holds an invalid byte: no valid text is sent to the slow path. */
static int
rec_utf8_block(__m128i v, unsigned hi, struct rec_u_carry *c)
{
	__m128i sv = _mm_xor_si128(v, _mm_set1_epi8((char)0x80));
	unsigned c0 = rec_ge(sv, 0xc0), c2 = rec_ge(sv, 0xc2), e0 = rec_ge(sv, 0xe0);
	unsigned f0 = rec_ge(sv, 0xf0), f5 = rec_ge(sv, 0xf5), a0, x90;
	uint32_t want = c->need | c2 << 1 | e0 << 2 | f0 << 3, ge_a0, lt_a0, ge_90, lt_90;

	if (((c0 & ~c2) | f5 | ((want ^ (hi & ~c0)) & 0xffffu)) != 0)
		return 0;
	if ((e0 | c->ge_a0 | c->lt_a0 | c->ge_90 | c->lt_90) == 0) {
		c->need = want >> 16;
		return 1;
	}
	a0 = rec_ge(sv, 0xa0);
	x90 = rec_ge(sv, 0x90);
	ge_a0 = c->ge_a0 | rec_eq(v, 0xe0) << 1;
	lt_a0 = c->lt_a0 | rec_eq(v, 0xed) << 1;
	ge_90 = c->ge_90 | rec_eq(v, 0xf0) << 1;
	lt_90 = c->lt_90 | rec_eq(v, 0xf4) << 1;
	if (((ge_a0 & ~a0) | (lt_a0 & a0) | (ge_90 & ~x90) | (lt_90 & x90)) & 0xffffu)
		return 0;
	c->need = want >> 16;
	c->ge_a0 = ge_a0 >> 16;
	c->lt_a0 = lt_a0 >> 16;
	c->ge_90 = ge_90 >> 16;
	c->lt_90 = lt_90 >> 16;
	return 1;
}

/* How far s is valid, 16 bytes at a time (64 while it is ASCII): returns the start of a
 * character, everything before which is valid, at most 15 bytes (and a character) before the
 * end or the first invalid byte.  rec_utf8_chars goes on from there. */
static size_t
rec_utf8_blocks(const unsigned char *s, size_t n)
{
	struct rec_u_carry c = { 0, 0, 0, 0, 0 };
	size_t i = 0;

	while (n - i >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
		unsigned hi = (unsigned)_mm_movemask_epi8(v);

		if ((hi | c.need) == 0 && n - i >= 64) {
			__m128i w = _mm_or_si128(_mm_or_si128(v,
			    _mm_loadu_si128((const __m128i *)(const void *)(s + i + 16))),
			    _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(s + i + 32)),
			    _mm_loadu_si128((const __m128i *)(const void *)(s + i + 48))));

			if (_mm_movemask_epi8(w) == 0) {
				i += 64;
				continue;
			}
		}
		/* After ASCII nothing is carried (the rules' bits too are 0 once need is). */
		if ((hi | c.need) != 0 && !rec_utf8_block(v, hi, &c))
			break;
		i += 16;
	}
	/* Back to the lead byte of a character the blocks left unfinished (at most 3 back). */
	if (c.need != 0)
		while ((s[--i] & 0xc0) == 0x80)
			;
	return i;
}
#endif

size_t
rec_utf8_scan(const unsigned char *s, size_t n, enum rec_utf8 *how)
{
	size_t i = 0;

#if REC_SSE2
	i = rec_utf8_blocks(s, n);
#endif
	return i + rec_utf8_chars(s + i, n - i, how);
}

/* The JSON text of each byte of a UTF-8 string, padded to 8 bytes, and its length: only '"',
 * '\\' and the C0 controls are escaped, as JSON requires (U+2028 and U+2029 are not: JSON allows
 * them and JSON Lines ends lines at '\n' only); \n, \r and \t by their letters, the others as
 * \u00XX. */
static char rec_txt_text[256][8];
static unsigned char rec_txt_len[256];

size_t
rec_json_char(char *t, unsigned c, int uescape)
{
	static const char hex[] = "0123456789abcdef";
	static const char shorts[] = "\"\\\n\r\t", letters[] = "\"\\nrt";
	const char *s = c != 0 && c < 0x80 ? strchr(shorts, (int)c) : NULL;

	if (s != NULL) {
		t[0] = '\\';
		t[1] = letters[s - shorts];
		return 2;
	}
	if (c < 0x20 || uescape) {
		memcpy(t, "\\u00", 4); /* NOLINT(bugprone-not-null-terminated-result) */
		t[4] = hex[(c >> 4) & 0xf];
		t[5] = hex[c & 0xf];
		return 6;
	}
	t[0] = (char)c;
	return 1;
}

static void
rec_txt_init(void)
{
	for (unsigned c = 0; c < 256; c++)
		rec_txt_len[c] = (unsigned char)rec_json_char(rec_txt_text[c], c, 0);
}

/* Writes the escape of c at *p; -1 once the string is sure to pass limit: the left bytes that
 * follow take a character each at least. */
static int
rec_txt_escape(char **p, const char *dst, unsigned char c, size_t left, size_t limit)
{
	memcpy(*p, rec_txt_text[c], 8);
	*p += rec_txt_len[c];
	return (size_t)(*p - dst) + left > limit ? -1 : 0;
}

/* The high bit of each of the 8 bytes in w that may need an escape: below 0x20, '"' or '\\'.
 * The lowest bit set is exact (bits above it may be false positives, from the borrow), so 0
 * means none and the count of trailing zeros finds the first. */
static uint64_t
rec_txt_special(uint64_t w)
{
	uint64_t q = w ^ (REC_ONES * '"'), b = w ^ (REC_ONES * '\\');

	return (((w - REC_ONES * 0x20) & ~w) | ((q - REC_ONES) & ~q) | ((b - REC_ONES) & ~b)) &
	    REC_HIGHS;
}

/* Each block (16 bytes with SSE2, 8 without) is copied whole; when it holds a byte to escape,
 * the output goes on just after that byte's escape and the input just after the byte.  Printable
 * text is copied a block at a time, and the length so far plus the bytes left never shrinks, so
 * that is what is held against limit (at each escape, the only time it grows). */
size_t
rec_json_text(char *dst, const unsigned char *src, size_t n, size_t limit)
{
	char *p = dst;
	size_t i = 0, k;

	if (rec_txt_len[0] == 0)
		rec_txt_init();
	if (n > limit)
		return SIZE_MAX;
#if REC_SSE2
	{
		const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
		const __m128i ctl = _mm_set1_epi8(0x1f);

		while (n - i >= 16) {
			__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
			__m128i sp = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
			    _mm_cmpeq_epi8(v, bslash)), _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));
			unsigned m = (unsigned)_mm_movemask_epi8(sp);

			_mm_storeu_si128((__m128i *)(void *)p, v);
			if (m == 0) {
				p += 16;
				i += 16;
				continue;
			}
			k = (size_t)__builtin_ctz(m);
			p += k;
			i += k + 1;
			if (rec_txt_escape(&p, dst, src[i - 1], n - i, limit) < 0)
				return SIZE_MAX;
		}
	}
#endif
	while (n - i >= 8) {
		uint64_t m = rec_txt_special(rec_load8_as(src + i, 0));

		memcpy(p, src + i, 8);
		if (m == 0) {
			p += 8;
			i += 8;
			continue;
		}
		k = (size_t)__builtin_ctzll(m) / 8;
		p += k;
		i += k + 1;
		if (rec_txt_escape(&p, dst, src[i - 1], n - i, limit) < 0)
			return SIZE_MAX;
	}
	for (; i < n; i++)
		if (rec_txt_len[src[i]] == 1)
			*p++ = (char)src[i];
		else if (rec_txt_escape(&p, dst, src[i], n - i - 1, limit) < 0)
			return SIZE_MAX;
	return (size_t)(p - dst);
}

/* Base64 (RFC 4648, padded), 12 bits at a time, through a table of their two characters.  An
 * SSE2 encoder (12 bytes into 16 characters by shifts, masks and compares, no table) was tried
 * and measured 25% slower than this on the binary payload (bench/recfmt.c: 3.8 against 5.0 GB
 * per CPU second); SSE2 has no byte shuffle to gather the groups of 3 bytes with. */
static const char rec_b64_abc[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static char rec_b64_pair[4096][2];
static unsigned char rec_b64_val[256]; /* 0xff: not a base64 character */

static void
rec_b64_init(void)
{
	for (int i = 0; i < 4096; i++) {
		rec_b64_pair[i][0] = rec_b64_abc[i >> 6];
		rec_b64_pair[i][1] = rec_b64_abc[i & 63];
	}
	memset(rec_b64_val, 0xff, sizeof(rec_b64_val));
	for (int i = 0; i < 64; i++)
		rec_b64_val[(unsigned char)rec_b64_abc[i]] = (unsigned char)i;
}

size_t
rec_b64_encode(char *dst, const unsigned char *src, size_t n)
{
	char *p = dst;
	size_t i = 0;
	uint32_t v;

	if (rec_b64_pair[0][0] == 0)
		rec_b64_init();
	/* 6 bytes at a time from one big-endian 8-byte load: four table lookups, no branch. */
	for (; n - i >= 8; i += 6, p += 8) {
		uint64_t w = rec_load8_as(src + i, 1);

		memcpy(p, rec_b64_pair[w >> 52], 2);
		memcpy(p + 2, rec_b64_pair[(w >> 40) & 0xfff], 2);
		memcpy(p + 4, rec_b64_pair[(w >> 28) & 0xfff], 2);
		memcpy(p + 6, rec_b64_pair[(w >> 16) & 0xfff], 2);
	}
	for (; n - i >= 3; i += 3, p += 4) {
		v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
		memcpy(p, rec_b64_pair[v >> 12], 2);
		memcpy(p + 2, rec_b64_pair[v & 0xfff], 2);
	}
	if (n - i > 0) {
		v = (uint32_t)src[i] << 16 | (n - i > 1 ? (uint32_t)src[i + 1] << 8 : 0);
		memcpy(p, rec_b64_pair[v >> 12], 2);
		p[2] = (char)(n - i > 1 ? rec_b64_pair[v & 0xfff][0] : '=');
		p[3] = '=';
		p += 4;
	}
	return (size_t)(p - dst);
}

ssize_t
rec_b64_decode(unsigned char *dst, const char *src, size_t n)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t pad, o = 0;
	uint32_t v;

	if (rec_b64_pair[0][0] == 0)
		rec_b64_init();
	if (n % 4 != 0)
		return -1;
	pad = n == 0 ? 0 : (s[n - 1] == '=') + (s[n - 1] == '=' && s[n - 2] == '=');
	for (size_t i = 0; i < n; i += 4) {
		unsigned char a = rec_b64_val[s[i]], b = rec_b64_val[s[i + 1]];
		unsigned char c = rec_b64_val[s[i + 2]], d = rec_b64_val[s[i + 3]];
		int last = i + 4 == n;

		if (last && pad > 0) {
			c = pad == 2 ? 0 : c;
			d = 0;
		}
		if ((a | b | c | d) == 0xff)
			return -1;
		v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
		dst[o++] = (unsigned char)(v >> 16);
		if (!last || pad < 2)
			dst[o++] = (unsigned char)(v >> 8);
		if (!last || pad < 1)
			dst[o++] = (unsigned char)v;
		/* Canonical form only: the bits padding leaves out are zero. */
		if (last && pad > 0 && (v & (pad == 2 ? 0xffff : 0xff)) != 0)
			return -1;
	}
	return (ssize_t)o;
}
