/*
 * receiptfloor.c - the least a cross-process receipt (--echo-after written) can cost on this
 * machine: the session's side without the socket and the store's side without the formatting.
 * Process A (the session) writes a small frame to a pipe and waits on a futex word in shared
 * memory; process B (the store), blocked in ppoll(2) on the pipe, reads the frame, write(2)s a
 * line to a file in DIR (the store's write), stores the frame's number in the word and
 * FUTEX_WAKEs A.  Timed in A, over ITERS round trips after 1,000 not counted: from before its
 * pipe write to its futex's return (the round trip), and from after the pipe write (what the
 * receipt adds to a request that writes its frame anyway).  Then the same without the file
 * write.  Like the store, A sleeps only when the word is not there yet (never spins).
 *
 *   cc -O2 -o receiptfloor receiptfloor.c && ./receiptfloor /tmp 20000 [any|same|split]
 *
 * any: wherever the scheduler puts them (as mpechod runs); same: both on CPU 0; split: A on
 * CPU 0, B on CPU 1.  One line per variant, with p50 and p90 in microseconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FRAME 104 /* an rr request's frame in the store pipe (header and 64 bytes) */
#define LINE 174  /* its line in the file (receipt-3's strace) */
#define WARMUP 1000

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		perror("sched_setaffinity");
}

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

static int
cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static double
pct(int64_t *v, size_t n, double p)
{
	return (double)v[(size_t)(p * (double)(n - 1))] / 1000.0;
}

/* B: the store.  Ends at the pipe's EOF. */
static void
store(int rd, int fd, uint32_t *word)
{
	unsigned char frame[FRAME], line[LINE];
	struct pollfd p = { .fd = rd, .events = POLLIN };
	uint32_t seq;

	memset(line, 'x', sizeof(line));
	line[LINE - 1] = '\n';
	for (;;) {
		if (ppoll(&p, 1, NULL, NULL) < 0 && errno != EINTR)
			_exit(1);
		if (read(rd, frame, sizeof(frame)) != (ssize_t)sizeof(frame))
			_exit(0);
		memcpy(&seq, frame, sizeof(seq));
		if (fd >= 0 && write(fd, line, sizeof(line)) != (ssize_t)sizeof(line))
			_exit(1);
		__atomic_store_n(word, seq, __ATOMIC_SEQ_CST);
		syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
	}
}

static void
run(const char *dir, long iters, int cpu_a, int cpu_b, int with_write)
{
	char path[4096];
	unsigned char frame[FRAME];
	uint32_t *word, v;
	int64_t *rt, *added, t0, t1, t2;
	int p[2], fd = -1, status;
	pid_t pid;

	word = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	rt = calloc((size_t)iters, sizeof(*rt));
	added = calloc((size_t)iters, sizeof(*added));
	if (word == MAP_FAILED || rt == NULL || added == NULL || pipe2(p, O_CLOEXEC) < 0)
		die("receiptfloor: setup");
	if (with_write) {
		snprintf(path, sizeof(path), "%s/receiptfloor.XXXXXX", dir);
		fd = mkstemp(path);
		if (fd < 0)
			die(path);
		unlink(path);
	}
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(p[1]);
		pin(cpu_b);
		store(p[0], fd, word);
	}
	close(p[0]);
	pin(cpu_a);
	memset(frame, 'f', sizeof(frame));
	for (long i = 1; i <= iters + WARMUP; i++) {
		uint32_t seq = (uint32_t)i;

		memcpy(frame, &seq, sizeof(seq));
		t0 = now_ns();
		if (write(p[1], frame, sizeof(frame)) != (ssize_t)sizeof(frame))
			die("write to the pipe");
		t1 = now_ns();
		while ((v = __atomic_load_n(word, __ATOMIC_SEQ_CST)) != seq)
			syscall(SYS_futex, word, FUTEX_WAIT, v, NULL, NULL, 0);
		t2 = now_ns();
		if (i > WARMUP) {
			rt[i - WARMUP - 1] = t2 - t0;
			added[i - WARMUP - 1] = t2 - t1;
		}
	}
	close(p[1]);
	waitpid(pid, &status, 0);
	if (fd >= 0)
		close(fd);
	qsort(rt, (size_t)iters, sizeof(*rt), cmp64);
	qsort(added, (size_t)iters, sizeof(*added), cmp64);
	printf("%-14s %ld round trips: round trip p50 %.1f us p90 %.1f us; after the pipe write "
	    "p50 %.1f us p90 %.1f us\n", with_write ? "with write" : "without write", iters,
	    pct(rt, (size_t)iters, 0.5), pct(rt, (size_t)iters, 0.9),
	    pct(added, (size_t)iters, 0.5), pct(added, (size_t)iters, 0.9));
	free(rt);
	free(added);
	munmap(word, 4096);
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	long iters = argc > 2 ? strtol(argv[2], NULL, 10) : 20000;
	const char *where = argc > 3 ? argv[3] : "any";
	int a = -1, b = -1;

	if (iters <= 0 || (strcmp(where, "any") != 0 && strcmp(where, "same") != 0 &&
	    strcmp(where, "split") != 0)) {
		fprintf(stderr, "usage: receiptfloor [DIR [ITERS [any|same|split]]]\n");
		return 64;
	}
	if (strcmp(where, "any") != 0) {
		a = 0;
		b = strcmp(where, "same") == 0 ? 0 : 1;
	}
	printf("receipt floor on %s, CPUs: %s\n", dir, where);
	run(dir, iters, a, b, 1);
	run(dir, iters, a, b, 0);
	return 0;
}
