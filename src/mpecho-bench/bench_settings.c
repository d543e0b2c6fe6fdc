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

struct bench_settings bench_cfg;
unsigned char *bench_pattern;

void
bench_pattern_make(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t pattern_len;

	pattern_len = bench_cfg.size > BENCH_RBUF ? bench_cfg.size : BENCH_RBUF;
	bench_pattern = malloc(BENCH_PATTERN + pattern_len);
	if (bench_pattern == NULL)
		fatal(EX_OSERR, "pattern");
	for (size_t i = 0; i < BENCH_PATTERN; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		unsigned b = (unsigned)((x * 0x2545f4914f6cdd1dULL) >> 56);
		bench_pattern[i] = (unsigned char)(bench_cfg.text ? ' ' + b % 95 : b);
	}
	for (size_t i = 0; i < pattern_len; i++)
		bench_pattern[BENCH_PATTERN + i] = bench_pattern[i % BENCH_PATTERN];
}
