/*
 * forkrate.c - what fork costs on this machine: a loop of fork(), _exit(0) in the child and
 * waitpid() in the parent, for a given number of seconds.  Prints one JSON object.
 *
 *   cc -O2 -o forkrate forkrate.c && ./forkrate 2
 *
 * bench/compare.sh builds it twice, dynamically linked (as mpechod is) and static, because a
 * dynamically linked process has more mappings for fork to copy.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	double secs = argc > 1 ? strtod(argv[1], NULL) : 2.0, t0, t;
	unsigned long n = 0;
	pid_t pid;

	if (!(secs > 0 && secs <= 60)) {
		fprintf(stderr, "usage: forkrate [SECONDS (0-60]]\n");
		return 64;
	}
	t0 = now_s();
	do {
		for (int i = 0; i < 100; i++) {
			pid = fork();
			if (pid < 0) {
				perror("fork");
				return 71;
			}
			if (pid == 0)
				_exit(0);
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
			n++;
		}
		t = now_s() - t0;
	} while (t < secs);
	printf("{\"forks\":%lu,\"seconds\":%.3f,\"forks_per_sec\":%.1f}\n", n, t, (double)n / t);
	return 0;
}
