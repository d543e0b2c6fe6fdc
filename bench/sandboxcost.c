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
 *   SC_TOUCH=50 /tmp/sandboxcost 1000 steps (or off, tiny, enter): each child also writes one
 *                                   byte in each of 50 pages its parent wrote (50 copy-on-write
 *                                   faults) after its steps; SC_TOUCH_AT=before: before them
 *   /tmp/sandboxcost 1000 tiny      as steps, with a one-instruction program (RET ALLOW): the
 *                                   install's floor, whatever the program
 *   /tmp/sandboxcost 100 repeat     seccomp(2) alone, 100 times in each of 10 children (the
 *                                   program with its kills made allows, so that seccomp
 *                                   stays allowed): the install without the fork's cold caches
 *   /tmp/sandboxcost 1000 spawn     a child of this process (the "spawner", unconfined) forks
 *                                   the N children, which exit at once: the base of the two
 *                                   below
 *   /tmp/sandboxcost 1000 inherit   a confined "spawner" (NO_NEW_PRIVS, Landlock and the session
 *                                   program with clone, wait4 and set_robust_list let through,
 *                                   installed once) forks the N children, which inherit its
 *                                   filter and exit: the per-child cost without an install
 *   /tmp/sandboxcost 1000 notif     the same, but the spawner's clone returns
 *                                   SECCOMP_RET_USER_NOTIF and this process (holding the
 *                                   listener) lets it continue when the caller is the spawner:
 *                                   the price of a user-notification round trip per child
 *                                   (the first child checks that its own fork gets EPERM)
 *   /tmp/sandboxcost 10000 rtt      one notified system call (getppid) answered by this
 *                                   process, against one that is not (getpid)
 *   /tmp/sandboxcost 10000 handoff  a descriptor and 64 bytes sent to a child over a
 *                                   SOCK_SEQPACKET pair (SCM_RIGHTS) and 8 bytes back: a
 *                                   spawner's handoff without its fork
 *
 * Run it under the quiet lock like any benchmark; the figures move with the machine's load.
 */
#include "sandbox.c"

#include <poll.h>
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

/* The spawner's program: the architecture, then clone (allowed, or sent to the listener),
 * wait4 and set_robust_list (glibc's fork registers the child's robust list again) allowed,
 * clone3 failing with ENOSYS (glibc falls back to clone), then the session's program. */
static unsigned
sc_spawner_prog(struct sock_filter *p, int notif)
{
	unsigned len = sb.len[SANDBOX_SESSION], n = 0;

	p[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, arch));
	p[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	p[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	p[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SB_NR);
	p[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 3, 0);
	p[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_wait4, 3, 0);
	p[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_set_robust_list, 2, 0);
	p[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 2, 3);
	p[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
	    notif ? SECCOMP_RET_USER_NOTIF : SECCOMP_RET_ALLOW);
	p[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	p[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
	memcpy(p + n, sb.prog[SANDBOX_SESSION], len * sizeof(*p));
	return n + len;
}

/* Modes spawn, inherit and notif: the spawner is a child of this process (confined once but
 * in mode spawn, its control); it forks
 * and reaps the N children and times each (fork..reaped, in the spawner).  With notif this
 * process answers each clone's notification (SECCOMP_USER_NOTIF_FLAG_CONTINUE for the
 * spawner's pid, EPERM for any other). */
static int
sc_spawner(int n, int confine, int notif)
{
	long long *v = mmap(NULL, sizeof(*v) * (size_t)(n + 1), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	static struct sock_filter prog[SB_PROG_MAX + 16];
	long long busy = sc_busy(), notes = 0, wall = sc_ns();
	pid_t sp;
	int st, lfd = -1;

	if (v == MAP_FAILED)
		return 1;
	v[n] = -1; /* the spawner's listener descriptor, once installed */
	sp = fork();
	if (sp == 0) {
		struct sock_fprog fp = { .len = (unsigned short)sc_spawner_prog(prog, notif),
		    .filter = prog };
		long fd;

		if (confine && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(2);
		if (confine && sb.llfd >= 0 && syscall(SYS_landlock_restrict_self, sb.llfd, 0) < 0)
			_exit(3);
		fd = !confine ? 0 : syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
		    notif ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0, &fp);
		if (fd < 0)
			_exit(4);
		__atomic_store_n(&v[n], notif ? fd : 0, __ATOMIC_RELEASE);
		for (int i = 0; i < n; i++) {
			long long f0 = sc_ns();
			pid_t pid = fork();

			/* The first child checks that its own fork is refused (EPERM from the
			 * listener: it is not the spawner). */
			if (pid == 0 && notif && i == 0)
				_exit(fork() < 0 && errno == EPERM ? 0 : 6);
			if (pid == 0)
				_exit(0);
			if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
			    WEXITSTATUS(st) != 0)
				_exit(5);
			v[i] = sc_ns() - f0;
		}
		_exit(0);
	}
	if (sp < 0)
		return 1;
	if (notif) {
		int pfd = -1;

		for (int i = 0; i < 5000 && __atomic_load_n(&v[n], __ATOMIC_ACQUIRE) < 0; i++)
			usleep(1000);
		if (v[n] < 0 || (pfd = (int)syscall(SYS_pidfd_open, sp, 0)) < 0 ||
		    (lfd = (int)syscall(SYS_pidfd_getfd, pfd, (int)v[n], 0)) < 0) {
			perror("listener");
			kill(sp, SIGKILL);
		}
		if (pfd >= 0)
			close(pfd);
		for (;;) {
			struct pollfd q = { .fd = lfd, .events = POLLIN };
			struct seccomp_notif req;
			struct seccomp_notif_resp resp;

			if (lfd < 0 || poll(&q, 1, 5000) != 1 || !(q.revents & POLLIN))
				break;
			memset(&req, 0, sizeof(req));
			if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
				continue; /* the caller went away meanwhile */
			memset(&resp, 0, sizeof(resp));
			resp.id = req.id;
			if ((pid_t)req.pid == sp)
				resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
			else
				resp.error = -EPERM;
			(void)ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
			notes++;
		}
		if (lfd >= 0)
			close(lfd);
	}
	if (waitpid(sp, &st, 0) != sp || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "spawner: status %d (5: a child failed, e.g. its fork was not "
		    "refused)\n", st);
		return 1;
	}
	wall = sc_ns() - wall;
	busy = sc_busy() - busy;
	sc_show("fork..reaped (spawner)", v, n);
	if (notif)
		printf("notifications answered: %lld\n", notes);
	printf("machine CPU per child: %.0f us (all CPUs, /proc/stat); wall per child %.0f us\n",
	    (double)busy * 1e6 / (double)sysconf(_SC_CLK_TCK) / n, (double)wall / 1e3 / n);
	return 0;
}

/* Mode rtt: one user-notification round trip alone.  A child sends getppid to a listener that
 * this process holds (a filter of its own, SECCOMP_FILTER_FLAG_NEW_LISTENER) and times N of
 * them answered with SECCOMP_USER_NOTIF_FLAG_CONTINUE, then N getpid not sent (the base). */
static int
sc_rtt(int n)
{
	long long *v = mmap(NULL, sizeof(*v) * (size_t)(2 * n + 1), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct sock_filter prog[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SB_NR),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	long long busy;
	int pfd = -1, lfd = -1, st;
	pid_t pid;

	if (v == MAP_FAILED)
		return 1;
	v[2 * n] = -1;
	pid = fork();
	if (pid == 0) {
		struct sock_fprog fp = { .len = 4, .filter = prog };
		long fd;

		(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
		    &fp);
		if (fd < 0)
			_exit(4);
		__atomic_store_n(&v[2 * n], fd, __ATOMIC_RELEASE);
		for (int i = 0; i < n; i++) {
			long long t0 = sc_ns();

			(void)syscall(SYS_getppid);
			v[i] = sc_ns() - t0;
		}
		for (int i = 0; i < n; i++) {
			long long t0 = sc_ns();

			(void)syscall(SYS_getpid);
			v[n + i] = sc_ns() - t0;
		}
		_exit(0);
	}
	for (int i = 0; i < 5000 && __atomic_load_n(&v[2 * n], __ATOMIC_ACQUIRE) < 0; i++)
		usleep(1000);
	if (v[2 * n] < 0 || (pfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0 ||
	    (lfd = (int)syscall(SYS_pidfd_getfd, pfd, (int)v[2 * n], 0)) < 0) {
		perror("listener");
		kill(pid, SIGKILL);
	}
	busy = sc_busy();
	for (int i = 0; i < n && lfd >= 0; i++) {
		struct seccomp_notif req;
		struct seccomp_notif_resp resp;

		memset(&req, 0, sizeof(req));
		if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
			break;
		memset(&resp, 0, sizeof(resp));
		resp.id = req.id;
		resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		(void)ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	}
	busy = sc_busy() - busy;
	waitpid(pid, &st, 0);
	if (pfd >= 0)
		close(pfd);
	if (lfd >= 0)
		close(lfd);
	sc_show("getppid, notified", v, n);
	sc_show("getpid, allowed", v + n, n);
	printf("machine CPU per notified call: %.1f us (all CPUs, /proc/stat)\n",
	    (double)busy * 1e6 / (double)sysconf(_SC_CLK_TCK) / n);
	return 0;
}

/* Mode handoff: what a spawner's handoff would cost per connection without the fork: this
 * process sends a descriptor (SCM_RIGHTS) and 64 bytes over a SOCK_SEQPACKET pair, the child
 * receives them, closes the descriptor and answers 8 bytes, which this process reads. */
static int
sc_handoff(int n)
{
	int sv[2], st, fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	long long *v = calloc((size_t)n, sizeof(*v)), busy;
	pid_t pid;

	if (v == NULL || fd < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return 1;
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		for (;;) {
			char buf[64], cbuf[CMSG_SPACE(sizeof(int))];
			struct iovec iov = { buf, sizeof(buf) };
			struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
			struct cmsghdr *c;
			long long reply = 0;

			if (recvmsg(sv[1], &m, MSG_CMSG_CLOEXEC) <= 0)
				_exit(0);
			c = CMSG_FIRSTHDR(&m);
			if (c != NULL && c->cmsg_type == SCM_RIGHTS) {
				int got;

				memcpy(&got, CMSG_DATA(c), sizeof(got));
				close(got);
			}
			if (write(sv[1], &reply, sizeof(reply)) != sizeof(reply))
				_exit(1);
		}
	}
	close(sv[1]);
	busy = sc_busy();
	for (int i = 0; i < n; i++) {
		char buf[64] = { 0 }, cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
		    .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		long long t0 = sc_ns(), reply;

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(fd));
		if (sendmsg(sv[0], &m, 0) < 0 || read(sv[0], &reply, sizeof(reply)) != sizeof(reply))
			return 1;
		v[i] = sc_ns() - t0;
	}
	busy = sc_busy() - busy;
	close(sv[0]);
	waitpid(pid, &st, 0);
	sc_show("handoff and reply", v, n);
	printf("machine CPU per handoff: %.1f us (all CPUs, /proc/stat)\n",
	    (double)busy * 1e6 / (double)sysconf(_SC_CLK_TCK) / n);
	return 0;
}

int
main(int argc, char **argv)
{
	int n = argc > 2 ? atoi(argv[1]) : 0, mode;
	long long (*t)[4], *a, *b, *c, *tot, busy;
	int touch, before;
	volatile char *mem = NULL;

	if (n < 4 || (mode = strcmp(argv[2], "off") == 0 ? 0 : strcmp(argv[2], "steps") == 0 ? 1 :
	    strcmp(argv[2], "enter") == 0 ? 2 : strcmp(argv[2], "repeat") == 0 ? 3 :
	    strcmp(argv[2], "inherit") == 0 ? 4 : strcmp(argv[2], "notif") == 0 ? 5 :
	    strcmp(argv[2], "spawn") == 0 ? 6 : strcmp(argv[2], "tiny") == 0 ? 7 :
	    strcmp(argv[2], "rtt") == 0 ? 8 : strcmp(argv[2], "handoff") == 0 ? 9 : -1) < 0) {
		fprintf(stderr, "usage: sandboxcost N "
		    "off|steps|tiny|enter|repeat|spawn|inherit|notif|rtt|handoff\n");
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
	if (mode == 8)
		return sc_rtt(n);
	if (mode == 9)
		return sc_handoff(n);
	if (mode >= 4 && mode <= 6)
		return sc_spawner(n, mode != 6, mode == 5);
	t = mmap(NULL, sizeof(*t) * (size_t)n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	a = calloc((size_t)n, sizeof(*a));
	b = calloc((size_t)n, sizeof(*b));
	c = calloc((size_t)n, sizeof(*c));
	tot = calloc((size_t)n, sizeof(*tot));
	if (t == MAP_FAILED || a == NULL || b == NULL || c == NULL || tot == NULL)
		return 1;
	/* SC_TOUCH=K: each child writes one byte in each of K pages that this process wrote before
	 * (so each is a copy-on-write fault), after its steps (or, with SC_TOUCH_AT=before, before
	 * them): what the confinement does to the memory work a real session does after it. */
	touch = getenv("SC_TOUCH") != NULL ? atoi(getenv("SC_TOUCH")) : 0;
	before = getenv("SC_TOUCH_AT") != NULL && strcmp(getenv("SC_TOUCH_AT"), "before") == 0;
	if (touch > 0 && (mem = malloc((size_t)touch * 4096)) == NULL)
		return 1;
	for (size_t k = 0; k < (size_t)(touch > 0 ? touch : 0) * 4096; k++)
		mem[k] = 1;
	busy = sc_busy();
	for (int i = 0; i < n; i++) {
		long long f0 = sc_ns();
		pid_t pid = fork();
		int st;

		if (pid == 0) {
			static struct sock_filter one[] = { BPF_STMT(BPF_RET | BPF_K,
			    SECCOMP_RET_ALLOW) };
			struct sock_fprog fp = { .len = sb.len[SANDBOX_SESSION],
			    .filter = sb.prog[SANDBOX_SESSION] };

			if (mode == 7) { /* the floor: a one-instruction program */
				fp.len = 1;
				fp.filter = one;
			}

			/* This code's pages and t[i]'s page in first: timed is the kernel's work. */
			(void)prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
			(void)syscall(SYS_getppid);
			t[i][0] = t[i][1] = 0;
			if (before)
				for (int k = 0; k < touch; k++)
					mem[(size_t)k * 4096]++;
			t[i][0] = sc_ns();
			if (mode == 2) {
				if (sandbox_enter(SANDBOX_SESSION, NULL) < 0)
					_exit(5);
			} else if (mode == 1 || mode == 7) {
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
			if (!before)
				for (int k = 0; k < touch; k++)
					mem[(size_t)k * 4096]++;
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
	if (mode == 1 || mode == 7) {
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
