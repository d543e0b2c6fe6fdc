/*
 * sandboxcost.c - what entering the sandbox costs a forked child, step by step: the master's
 * programs and Landlock ruleset are built once (sandbox_configure, as mpechod does), then N
 * children each time their own prctl(PR_SET_NO_NEW_PRIVS), landlock_restrict_self and
 * seccomp(2) of the session program, and exit; the parent times fork..reaped and counts the
 * CPU time of the whole machine (/proc/stat: the kernel's deferred frees on its workers too).
 * It includes sandbox.c, to reach the programs as built; build it against any tree's:
 *
 *   cc -O2 -Isrc/lib -Isrc/mpechod -o /tmp/sandboxcost bench/sandboxcost.c \
 *       build/obj/lib/log.o build/obj/lib/log_sink.o
 *   /tmp/sandboxcost 1000 steps     the three calls, each timed (min, quartiles, median)
 *   /tmp/sandboxcost 1000 enter     sandbox_enter as a session calls it, in one
 *   /tmp/sandboxcost 1000 off       no sandbox: the fork alone
 *   /tmp/sandboxcost 100 repeat     seccomp(2) alone, 100 times in each of 10 children (the
 *                                   program with its kills made allows, so that seccomp
 *                                   stays allowed): the install without the fork's cold caches
 *
 * Run it under the quiet lock like any benchmark; the figures move with the machine's load.
 */
#include "sandbox.c"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

static long long
sc_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int
sc_cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

static void
sc_show(const char *what, long long *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), sc_cmp);
	printf("%-24s min %7.1f  p25 %7.1f  median %7.1f  p75 %7.1f us\n", what, v[0] / 1e3,
	    v[n / 4] / 1e3, v[n / 2] / 1e3, v[3 * n / 4] / 1e3);
}

/* The machine's busy time so far, in clock ticks. */
static long long
sc_busy(void)
{
	long long u = 0, ni = 0, s = 0, idle = 0, io = 0, irq = 0, sirq = 0;
	FILE *f = fopen("/proc/stat", "r");

	if (f == NULL || fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld", &u, &ni, &s, &idle,
	    &io, &irq, &sirq) != 7)
		u = 0;
	if (f != NULL)
		fclose(f);
	return u + ni + s + irq + sirq;
}

static int
sc_repeat(int k)
{
	int kids = 10, n = k * kids;
	long long *v = mmap(NULL, sizeof(*v) * (size_t)n, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	static struct sock_filter cp[SB_PROG_MAX];
	unsigned len = sb.len[SANDBOX_SESSION];

	memcpy(cp, sb.prog[SANDBOX_SESSION], sizeof(cp));
	for (unsigned j = 0; j < len; j++)
		if (cp[j].code == (BPF_RET | BPF_K) && cp[j].k == SECCOMP_RET_KILL_PROCESS)
			cp[j].k = SECCOMP_RET_ALLOW;
	memset(v, 0, sizeof(*v) * (size_t)n);
	for (int c = 0; c < kids; c++) {
		pid_t pid = fork();

		if (pid == 0) {
			struct sock_fprog fp = { .len = (unsigned short)len, .filter = cp };

			(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
			for (int i = 0; i < k; i++) {
				long long t0 = sc_ns();

				if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) < 0)
					_exit(4);
				v[c * k + i] = sc_ns() - t0;
			}
			_exit(0);
		}
		waitpid(pid, NULL, 0);
	}
	sc_show("seccomp(2), repeated", v, n);
	return 0;
}

int
main(int argc, char **argv)
{
	int n = argc > 2 ? atoi(argv[1]) : 0, mode;
	long long (*t)[4], *a, *b, *c, *tot, busy;

	if (n < 4 || (mode = strcmp(argv[2], "off") == 0 ? 0 : strcmp(argv[2], "steps") == 0 ? 1 :
	    strcmp(argv[2], "enter") == 0 ? 2 : strcmp(argv[2], "repeat") == 0 ? 3 : -1) < 0) {
		fprintf(stderr, "usage: sandboxcost N off|steps|enter|repeat\n");
		return 64;
	}
	if (sandbox_configure(mode != 0, 1) < 0) {
		perror("sandbox_configure");
		return 1;
	}
	printf("programs (instructions): session %u, pool %u, store %u, datagram %u, inetd %u, "
	    "metrics %u; Landlock ABI %d\n", sb.len[SANDBOX_SESSION], sb.len[SANDBOX_POOL],
	    sb.len[SANDBOX_STORE], sb.len[SANDBOX_DGRAM], sb.len[SANDBOX_INETD],
	    sb.len[SANDBOX_METRICS], sb.abi);
	if (mode == 3)
		return sc_repeat(n);
	t = mmap(NULL, sizeof(*t) * (size_t)n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	a = calloc((size_t)n, sizeof(*a));
	b = calloc((size_t)n, sizeof(*b));
	c = calloc((size_t)n, sizeof(*c));
	tot = calloc((size_t)n, sizeof(*tot));
	if (t == MAP_FAILED || a == NULL || b == NULL || c == NULL || tot == NULL)
		return 1;
	busy = sc_busy();
	for (int i = 0; i < n; i++) {
		long long f0 = sc_ns();
		pid_t pid = fork();
		int st;

		if (pid == 0) {
			struct sock_fprog fp = { .len = sb.len[SANDBOX_SESSION],
			    .filter = sb.prog[SANDBOX_SESSION] };

			/* This code's pages and t[i]'s page in first: timed is the kernel's work. */
			(void)prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
			(void)syscall(SYS_getppid);
			t[i][0] = t[i][1] = 0;
			t[i][0] = sc_ns();
			if (mode == 2) {
				if (sandbox_enter(SANDBOX_SESSION, NULL) < 0)
					_exit(5);
			} else if (mode == 1) {
				if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
					_exit(2);
				t[i][1] = sc_ns();
				if (sb.llfd >= 0 && syscall(SYS_landlock_restrict_self, sb.llfd, 0) < 0)
					_exit(3);
				t[i][2] = sc_ns();
				if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) < 0)
					_exit(4);
			}
			t[i][3] = sc_ns();
			_exit(0);
		}
		if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0) {
			fprintf(stderr, "child %d: status %d\n", i, pid < 0 ? -1 : st);
			return 1;
		}
		tot[i] = sc_ns() - f0;
		a[i] = t[i][1] - t[i][0];
		b[i] = t[i][2] - t[i][1];
		c[i] = t[i][3] - t[i][2];
		if (mode != 1)
			a[i] = t[i][3] - t[i][0];
	}
	busy = sc_busy() - busy;
	if (mode == 1) {
		sc_show("prctl NO_NEW_PRIVS", a, n);
		sc_show("landlock_restrict_self", b, n);
		sc_show("seccomp(2)", c, n);
	} else if (mode == 2) {
		sc_show("sandbox_enter", a, n);
	}
	sc_show("fork..reaped (parent)", tot, n);
	printf("machine CPU per child: %.0f us (all CPUs, /proc/stat)\n",
	    (double)busy * 1e6 / (double)sysconf(_SC_CLK_TCK) / n);
	return 0;
}
