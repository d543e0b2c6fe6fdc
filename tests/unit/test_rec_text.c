/*
 * Unit tests for rec_text.c: UTF-8 validation, the JSON string of valid UTF-8 and base64, each
 * against the plain reference code in rec_text_ref.h.  Built twice (Makefile): with the fast
 * path the compiler allows (SSE2 on x86-64), and with REC_TEXT_PORTABLE, so that both are held
 * to the same answers.  Lengths and offsets run past several 16-byte blocks, so that every
 * case meets a block's edge.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rec_text.h"
#include "rec_text_ref.h"

#if defined(__SSE2__) && !defined(REC_TEXT_PORTABLE)
#define WANT_PATH "sse2"
#else
#define WANT_PATH "portable"
#endif

Test(path, is_the_one_built)
{
	cr_assert_str_eq(rec_text_path(), WANT_PATH);
}

static uint32_t
rnd(uint32_t *seed)
{
	*seed ^= *seed << 13;
	*seed ^= *seed >> 17;
	*seed ^= *seed << 5;
	return *seed;
}

static void
same_as_ref(const unsigned char *s, size_t n)
{
	enum rec_utf8 a, b;
	size_t x = rec_utf8_scan(s, n, &a), y = ref_utf8(s, n, &b);

	cr_assert(x == y && a == b, "%02x %02x %02x %02x (n %zu): scan %zu/%d, reference %zu/%d",
	    s[0], n > 1 ? s[1] : 0, n > 2 ? s[2] : 0, n > 3 ? s[3] : 0, n, x, a, y, b);
}

Test(utf8, every_two_and_three_byte_input_as_the_rfc_says)
{
	unsigned char s[4];

	for (unsigned a = 0; a < 256; a++) {
		s[0] = (unsigned char)a;
		same_as_ref(s, 1);
		for (unsigned b = 0; b < 256; b++) {
			s[1] = (unsigned char)b;
			same_as_ref(s, 2);
			if (a < 0xc0)
				continue;
			for (unsigned c = 0; c < 256; c++) {
				s[2] = (unsigned char)c;
				same_as_ref(s, 3);
			}
		}
	}
}

Test(utf8, four_byte_characters_and_their_limits)
{
	static const struct { const char *s; enum rec_utf8 how; size_t whole; } cases[] = {
		{ "\xf0\x9f\x98\x80", REC_UTF8_WHOLE, 4 },     /* U+1F600 */
		{ "\xf4\x8f\xbf\xbf", REC_UTF8_WHOLE, 4 },     /* U+10FFFF */
		{ "\xf4\x90\x80\x80", REC_UTF8_BAD, 0 },       /* U+110000 */
		{ "\xf0\x8f\xbf\xbf", REC_UTF8_BAD, 0 },       /* overlong U+FFFF */
		{ "\xc0\xaf", REC_UTF8_BAD, 0 },               /* overlong '/' */
		{ "\xe0\x80\xaf", REC_UTF8_BAD, 0 },
		{ "\xed\xa0\x80", REC_UTF8_BAD, 0 },           /* U+D800, a surrogate */
		{ "\xed\x9f\xbf", REC_UTF8_WHOLE, 3 },         /* U+D7FF */
		{ "\xee\x80\x80", REC_UTF8_WHOLE, 3 },         /* U+E000 */
		{ "\xf5\x80\x80\x80", REC_UTF8_BAD, 0 },
		{ "ab\xf0\x9f\x98", REC_UTF8_CUT, 2 },
		{ "abcdefghij\xe2\x80", REC_UTF8_CUT, 10 },    /* after the 8-byte path */
		{ "abcdefgh\x80", REC_UTF8_BAD, 8 },           /* a lone continuation */
		{ "\xea\xb0\x80\xea\xb0", REC_UTF8_CUT, 3 },   /* Hangul, then its half */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum rec_utf8 how;
		size_t n = strlen(cases[i].s);
		size_t whole = rec_utf8_scan((const unsigned char *)cases[i].s, n, &how);

		cr_assert(how == cases[i].how && whole == cases[i].whole,
		    "case %zu: got %zu/%d, want %zu/%d", i, whole, how, cases[i].whole, cases[i].how);
		same_as_ref((const unsigned char *)cases[i].s, n);
	}
}

Test(utf8, random_runs_as_the_rfc_says)
{
	unsigned char s[64];
	unsigned seed = 1;

	for (int t = 0; t < 200000; t++) {
		size_t n = (size_t)(t % 64);
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			/* Mostly ASCII and lead/continuation bytes, so valid runs occur. */
			unsigned v = (seed >> 16) & 0xff;
			s[i] = (unsigned char)(v < 96 ? 'a' + v % 26 : v < 192 ? 0x80 | (v & 0x3f) :
			    v);
		}
		same_as_ref(s, n);
	}
}

Test(b64, vectors_round_trip_and_strictness)
{
	static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
	    "Zm9vYmFy" };
	unsigned char data[300], back[300];
	char text[400];

	for (size_t i = 0; i < 7; i++) {
		size_t n = rec_b64_encode(text, (const unsigned char *)in[i], strlen(in[i]));
		cr_assert(n == strlen(out[i]) && memcmp(text, out[i], n) == 0, "%s", in[i]);
	}
	for (size_t n = 0; n < sizeof(data); n++) {
		for (size_t i = 0; i < n; i++)
			data[i] = (unsigned char)(i * 37 + n);
		size_t t = rec_b64_encode(text, data, n);
		cr_assert_eq(t, REC_B64_LEN(n));
		cr_assert_eq(rec_b64_decode(back, text, t), (ssize_t)n);
		cr_assert_arr_eq(back, data, n);
	}
	cr_assert_eq(rec_b64_decode(back, "Zg=", 3), -1);
	cr_assert_eq(rec_b64_decode(back, "Zh==", 4), -1, "non-zero padding bits");
	cr_assert_eq(rec_b64_decode(back, "Z===", 4), -1);
	cr_assert_eq(rec_b64_decode(back, "Zg==Zg==", 8), -1, "padding in the middle");
	cr_assert_eq(rec_b64_decode(back, "Zm9-", 4), -1);
}

/* Appends the UTF-8 of code point cp at s; returns its length. */
static size_t
put_cp(unsigned char *s, uint32_t cp)
{
	if (cp < 0x80) {
		s[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		s[0] = (unsigned char)(0xc0 | cp >> 6);
		s[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		s[0] = (unsigned char)(0xe0 | cp >> 12);
		s[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		s[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	s[0] = (unsigned char)(0xf0 | cp >> 18);
	s[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	s[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	s[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A code point of every length, most of them at the edges of the ranges RFC 3629 narrows
 * (after E0, ED, F0, F4) and of the scripts the store sees (Hangul, emoji), some controls. */
static uint32_t
some_cp(uint32_t *seed)
{
	static const uint32_t edges[] = { 0x0, 0x1f, 0x22, 0x5c, 0x7f, 0x80, 0x7ff, 0x800, 0xfff,
	    0x1000, 0xcfff, 0xd000, 0xd7ff, 0xe000, 0xffff, 0x10000, 0x3ffff, 0x40000, 0xfffff,
	    0x100000, 0x10ffff, 0xac00, 0xd7a3, 0x1f600, 0x301, 0x2028 };
	uint32_t r = rnd(seed), cp;

	switch (r % 5) {
	case 0:
		return edges[(r >> 8) % (sizeof(edges) / sizeof(edges[0]))];
	case 1:
		return 0x20 + (r >> 8) % 95;
	case 2:
		return 0xac00 + (r >> 8) % 11172;
	default:
		cp = (r >> 8) % 0x110000;
		return cp >= 0xd800 && cp <= 0xdfff ? cp - 0x800 : cp;
	}
}

/* Valid text of about n bytes (at most n + 3). */
static size_t
some_text(unsigned char *s, size_t n, uint32_t *seed)
{
	size_t o = 0;

	while (o < n)
		o += put_cp(s + o, some_cp(seed));
	return o;
}

/* Text, then one byte changed, inserted or cut away, somewhere: every way of being invalid
 * (or of staying valid) meets every position in a block. */
Test(utf8, mutated_text_at_every_block_offset_as_the_rfc_says)
{
	static const unsigned char odd[] = { 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0,
	    0xed, 0xee, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x00, 'a' };
	unsigned char s[400];
	uint32_t seed = 7;

	for (int t = 0; t < 200000; t++) {
		size_t n = some_text(s, (size_t)(t % 300), &seed), at;
		uint32_t r = rnd(&seed);

		at = n > 0 ? (r >> 8) % n : 0;
		if (n > 0 && r % 4 == 0)
			s[at] = odd[(r >> 4) % sizeof(odd)];
		else if (r % 4 == 1) {
			memmove(s + at + 1, s + at, n - at);
			s[at] = odd[(r >> 4) % sizeof(odd)];
			n++;
		} else if (r % 4 == 2)
			n = at;
		same_as_ref(s, n);
	}
}

/* Each narrowed second byte at each of 36 offsets, after Hangul (a block with its need for
 * continuation bytes) and after ASCII. */
Test(utf8, narrow_second_bytes_across_block_edges)
{
	static const char *const seqs[] = { "\xe0\xa0\x80", "\xe0\x9f\xbf", "\xed\x9f\xbf",
	    "\xed\xa0\x80", "\xf0\x90\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf",
	    "\xf4\x90\x80\x80", "\xc2\x80", "\xc1\xbf", "\xea\xb0\x80", "\xea\xb0",
	    "\xf0\x9f\x98", "\xe2" };
	unsigned char s[128];

	for (size_t q = 0; q < sizeof(seqs) / sizeof(seqs[0]); q++)
		for (size_t at = 0; at < 36; at++)
			for (int kind = 0; kind < 2; kind++) {
				size_t k = strlen(seqs[q]), n;

				for (size_t i = 0; i < at;)
					i += kind ? put_cp(s + i, at - i >= 3 ? 0xd55c : 'x') :
					    put_cp(s + i, 'x');
				memcpy(s + at, seqs[q], k);
				for (n = at + k; n < at + k + 80; n++)
					s[n] = kind ? 'y' : 0x20;
				same_as_ref(s, at + k);
				same_as_ref(s, n);
			}
}

static void
json_same_as_ref(const unsigned char *s, size_t n, size_t limit)
{
	static char a[8192], b[8192];
	size_t x = rec_json_text(a, s, n, limit), y = ref_json_text(b, s, n, limit);

	cr_assert_eq(x, y, "n %zu limit %zu: %zu, reference %zu", n, limit, x, y);
	if (x != SIZE_MAX)
		cr_assert(memcmp(a, b, x) == 0, "n %zu: the text differs from the reference", n);
}

Test(json_text, same_as_the_reference_at_every_limit)
{
	unsigned char s[1200];
	uint32_t seed = 11;

	for (int t = 0; t < 50000; t++) {
		size_t n = some_text(s, (size_t)(t % 1000), &seed), len;
		static char out[8192];

		len = ref_json_text(out, s, n, SIZE_MAX - 1);
		json_same_as_ref(s, n, SIZE_MAX - 1);
		json_same_as_ref(s, n, len);
		if (len > 0)
			json_same_as_ref(s, n, len - 1);
		json_same_as_ref(s, n, REC_B64_LEN(n));
		json_same_as_ref(s, n, n / 2);
	}
}

Test(json_text, every_byte_at_every_block_offset)
{
	unsigned char s[64];

	for (unsigned c = 0; c < 0x80; c++)
		for (size_t at = 0; at < 40; at++) {
			memset(s, 'a', sizeof(s));
			s[at] = (unsigned char)c;
			s[sizeof(s) - 1 - at] = (unsigned char)c;
			json_same_as_ref(s, sizeof(s), SIZE_MAX - 1);
			json_same_as_ref(s, at + 1, SIZE_MAX - 1);
		}
}

Test(json_text, does_not_write_past_its_room)
{
	/* limit + 64 bytes of room, the rest a guard that must stay as it was. */
	static char out[600];
	unsigned char s[400];

	for (size_t n = 0; n < sizeof(s); n++) {
		for (size_t limit = n; limit < n + 40 && limit + 64 < sizeof(out); limit += 7) {
			memset(s, 0x01, n);
			memset(out, '#', sizeof(out));
			cr_assert_eq(rec_json_text(out, s, n, limit), 6 * n > limit ? SIZE_MAX : 6 * n);
			for (size_t i = limit + 64; i < sizeof(out); i++)
				cr_assert_eq(out[i], '#', "n %zu limit %zu: wrote at %zu", n, limit, i);
		}
	}
}

Test(b64, same_as_the_reference_at_every_length)
{
	unsigned char s[600];
	char a[900], b[900];
	uint32_t seed = 3;

	for (size_t i = 0; i < sizeof(s); i++)
		s[i] = (unsigned char)rnd(&seed);
	for (size_t n = 0; n <= 520; n++)
		for (size_t at = 0; at < 40; at += 13) {
			memset(a, '#', sizeof(a));
			size_t x = rec_b64_encode(a, s + at, n), y = ref_b64(b, s + at, n);

			cr_assert_eq(x, y);
			cr_assert(memcmp(a, b, x) == 0, "n %zu: differs from the reference", n);
			cr_assert_eq(a[x], '#', "n %zu: wrote past its length", n);
		}
	/* Each of the 64 values in each of the 4 places of a group, in every lane of a block. */
	for (uint32_t v = 0; v < 64; v++) {
		uint32_t g = v << 18 | v << 12 | v << 6 | v;

		for (size_t i = 0; i < 48; i += 3) {
			s[i] = (unsigned char)(g >> 16);
			s[i + 1] = (unsigned char)(g >> 8);
			s[i + 2] = (unsigned char)g;
		}
		size_t x = rec_b64_encode(a, s, 48), y = ref_b64(b, s, 48);
		cr_assert(x == y && memcmp(a, b, x) == 0, "value %u", v);
	}
}
