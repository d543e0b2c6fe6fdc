/*
 * recfmt.c - the store's formatting alone, without pipes or files: rec_format_line over whole
 * data frames (4,056 bytes each, with the UTF-8 carry between them) of mpecho-bench's three
 * payloads, the same patterns as its --payload text, ko and binary.  Prints MB of input per
 * second of CPU time (on a shared machine, wall time would count the others) and the output's
 * size per input byte.
 *
 *   cc -O2 -Isrc/lib -o recfmt bench/recfmt.c src/lib/record.c src/lib/rec_text.c
 *   ./recfmt text|ko|binary [SECONDS]
 *
 * Built against an older tree's record.c (and rec_text.c, where it has one) it measures that
 * tree's formatting the same way: before and after, side by side.
 */
#define _GNU_SOURCE
#include "record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PATTERN (1 << 20)

static unsigned char pattern[PATTERN + REC_PAYLOAD_MAX];
static char out[2 * REC_JSON_MAX];

static uint64_t
next(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 0x2545f4914f6cdd1dULL;
}

/* mpecho-bench's patterns (bench_settings.c): printable ASCII; Hangul syllables with a quarter
 * of spaces (one in sixteen a newline); random bytes. */
static void
make_pattern(const char *kind)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL, r;
	size_t i = 0;
	unsigned cp;

	while (strcmp(kind, "ko") == 0 && i + 3 <= PATTERN) {
		r = next(&x);
		if ((r >> 62) == 0) {
			pattern[i++] = ((r >> 58) & 0xf) == 0 ? '\n' : ' ';
			continue;
		}
		cp = 0xac00u + (unsigned)((r >> 16) % 11172u);
		pattern[i++] = (unsigned char)(0xe0u | cp >> 12);
		pattern[i++] = (unsigned char)(0x80u | ((cp >> 6) & 0x3fu));
		pattern[i++] = (unsigned char)(0x80u | (cp & 0x3fu));
	}
	for (; i < PATTERN; i++) {
		unsigned b = (unsigned)(next(&x) >> 56);

		pattern[i] = (unsigned char)(strcmp(kind, "ko") == 0 ? ' ' :
		    strcmp(kind, "text") == 0 ? ' ' + b % 95 : b);
	}
	memcpy(pattern + PATTERN, pattern, REC_PAYLOAD_MAX);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct rec_carry carry = { .n = 0 };
	double secs = argc > 2 ? atof(argv[2]) : 2, start, t;
	size_t in = 0, outlen = 0, at = 0;

	if (argc < 2 || (strcmp(argv[1], "text") != 0 && strcmp(argv[1], "ko") != 0 &&
	    strcmp(argv[1], "binary") != 0)) {
		fprintf(stderr, "usage: recfmt text|ko|binary [SECONDS]\n");
		return 64;
	}
	make_pattern(argv[1]);
	start = now_s();
	do {
		for (int k = 0; k < 256; k++) {
			struct rec r = { .type = REC_DATA, .conn = 5, .ts_us = 1, .data = pattern + at,
			    .len = REC_PAYLOAD_MAX };

			outlen += rec_format_line(out, &r, &carry);
			in += r.len;
			/* Consecutive frames of the pattern, as a stream's: a character cut at a
			 * frame's end is carried into the next. */
			at = (at + REC_PAYLOAD_MAX) % PATTERN;
		}
		t = now_s() - start;
	} while (t < secs);
	printf("{\"payload\":\"%s\",\"mb_per_s\":%.0f,\"out_per_in\":%.3f}\n", argv[1],
	    (double)in / t / 1e6, (double)outlen / (double)in);
	return 0;
}
