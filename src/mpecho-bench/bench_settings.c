/*
 * bench_settings.c - what every role of mpecho-bench reads and none writes once the workers
 * are forked: the settings (bench.c fills them from the options), the names of the modes and
 * errors, and the payload pattern.  Below every other file of the program, so that the workers
 * (bench_worker.c, bench_flood.c, bench_udp.c) and the report (bench_report.c) read them
 * without calling up into the parent's file.
 */
#define _GNU_SOURCE
#include "bench.h"
#include "log.h"

#include <stdlib.h>

const char *const bench_mode_names[MODE_MAX] = { "connect", "rr", "stream", "hold", "flood",
	"udp" };
const char *const bench_err_names[E_MAX] = {
	"connect", "reset", "eof", "mismatch", "extra", "timeout", "local"
};
const char *const bench_payload_names[PAYLOAD_MAX] = { "binary", "text", "ko" };

struct bench_settings bench_cfg;
unsigned char *bench_pattern;

/* The next of the xorshift64* sequence the pattern is made from. */
static uint64_t
pattern_next(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 0x2545f4914f6cdd1dULL;
}

/* One character of the ko payload at p, from r; returns its length.  A quarter of them are a
 * space (one in sixteen of those a newline), the rest Hangul syllables, U+AC00 to U+D7A3, in
 * UTF-8's three bytes (lead 0xEA to 0xED). */
static size_t
pattern_ko_char(unsigned char *p, uint64_t r)
{
	unsigned cp;

	if ((r >> 62) == 0) {
		p[0] = ((r >> 58) & 0xf) == 0 ? '\n' : ' ';
		return 1;
	}
	cp = 0xAC00u + (unsigned)((r >> 16) % 11172u);
	p[0] = (unsigned char)(0xE0u | cp >> 12);
	p[1] = (unsigned char)(0x80u | ((cp >> 6) & 0x3Fu));
	p[2] = (unsigned char)(0x80u | (cp & 0x3Fu));
	return 3;
}

void
bench_pattern_make(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t pattern_len, i = 0;

	pattern_len = bench_cfg.size > BENCH_RBUF ? bench_cfg.size : BENCH_RBUF;
	bench_pattern = malloc(BENCH_PATTERN + pattern_len);
	if (bench_pattern == NULL)
		fatal(EX_OSERR, "pattern");
	if (bench_cfg.payload == PAYLOAD_KO) {
		/* Whole characters, and spaces in the last one or two bytes a syllable would not
		 * fit in: the pattern wraps at a character's end. */
		while (i + 3 <= BENCH_PATTERN)
			i += pattern_ko_char(bench_pattern + i, pattern_next(&x));
		for (; i < BENCH_PATTERN; i++)
			bench_pattern[i] = ' ';
	}
	for (; i < BENCH_PATTERN; i++) {
		unsigned b = (unsigned)(pattern_next(&x) >> 56);
		bench_pattern[i] = (unsigned char)(bench_cfg.payload == PAYLOAD_TEXT ? ' ' + b % 95 : b);
	}
	for (i = 0; i < pattern_len; i++)
		bench_pattern[BENCH_PATTERN + i] = bench_pattern[i % BENCH_PATTERN];
}

uint64_t
bench_pattern_start(uint64_t h)
{
	uint64_t o = h % BENCH_PATTERN;

	if (bench_cfg.payload == PAYLOAD_KO)
		while ((bench_pattern[o] & 0xC0) == 0x80)
			o = (o + 1) % BENCH_PATTERN;
	return o;
}
