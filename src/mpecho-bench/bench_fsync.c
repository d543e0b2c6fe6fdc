/*
 * bench_fsync.c - `mpecho-bench fsync-probe DIR`: the time of one fdatasync(2) on the file
 * system of DIR, the floor under mpechod's --echo-after synced latency.
 *
 * It appends a short line to a temporary file in DIR and fdatasyncs it, N times (default 50),
 * one at a time as a lone client's store would, and prints the median, p90 and max in
 * microseconds.  The file is unlinked at once, so nothing is left behind even if the probe is
 * killed.
 */
#define _GNU_SOURCE
#include "bench.h"
#include "log.h"
#include "num.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#define FSYNC_PROBE_DEFAULT 50
#define FSYNC_PROBE_MAX 10000

static int
fsync_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static double
fsync_us(int64_t ns)
{
	return (double)ns / 1e3;
}

/* The file, made in dir and unlinked before its first write. */
static int
fsync_open(const char *dir)
{
	char path[4096];
	int fd;

	if (snprintf(path, sizeof(path), "%s/.mpecho-fsync-probe-XXXXXX", dir) >= (int)sizeof(path))
		fatalx(EX_USAGE, "fsync-probe: directory name too long");
	fd = mkostemp(path, O_CLOEXEC | O_APPEND);
	if (fd < 0)
		fatal(EX_CANTCREAT, "fsync-probe: cannot create a file in %s", dir);
	unlink(path);
	return fd;
}

int
bench_fsync_probe(int argc, char **argv)
{
	static const char line[] = "{\"ev\":\"data\",\"data\":\"fsync probe\"}\n";
	static int64_t t[FSYNC_PROBE_MAX];
	long count = FSYNC_PROBE_DEFAULT;
	size_t n;
	int fd;

	if (argc < 2 || argc > 3)
		fatalx(EX_USAGE, "usage: mpecho-bench fsync-probe DIR [COUNT]");
	if (argc == 3 && num_parse(argv[2], 1, FSYNC_PROBE_MAX, &count) < 0)
		fatalx(EX_USAGE, "fsync-probe: COUNT '%.64s' is not a whole number from 1 to %d",
		    argv[2], FSYNC_PROBE_MAX);
	n = (size_t)count;
	fd = fsync_open(argv[1]);
	for (size_t i = 0; i < n; i++) {
		int64_t t0;

		if (write(fd, line, sizeof(line) - 1) != (ssize_t)(sizeof(line) - 1))
			fatal(EX_IOERR, "fsync-probe: write");
		t0 = bench_now_ns();
		if (fdatasync(fd) < 0)
			fatal(EX_IOERR, "fsync-probe: fdatasync");
		t[i] = bench_now_ns() - t0;
	}
	close(fd);
	qsort(t, n, sizeof(t[0]), fsync_cmp);
	printf("fdatasync on %s: %zu calls, p50 %.1f us, p90 %.1f us, max %.1f us\n", argv[1], n,
	    fsync_us(t[n / 2]), fsync_us(t[n * 9 / 10]), fsync_us(t[n - 1]));
	return 0;
}
