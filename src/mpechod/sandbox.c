/*
 * sandbox.c - each child's seccomp-bpf allow-list and Landlock domain (see sandbox.h).
 *
 * One table below says, per system call, which roles may make it and why.  sandbox_configure
 * turns it into one classic BPF program per role, once, in the master, with the Landlock
 * ruleset of the roles that have no file; a session's sandbox_enter costs
 * prctl(PR_SET_NO_NEW_PRIVS), landlock_restrict_self and one seccomp(2).  A
 * call allowed whatever its arguments is answered by the kernel's per-filter bitmap cache
 * without running the program, so the echo loop's read, write, writev and splice cost nothing
 * more.  The few calls checked on an argument (fcntl's command, ioctl's request, mmap's
 * protection, socket's family) compare the argument's low 32 bits: the kernel reads each of
 * them as an int.
 *
 * Roles: S session, P pool process, T store, D datagram process, I --inetd's process, M the
 * metrics process.
 */
#define _GNU_SOURCE
#include "sandbox.h"
#include "log.h"
#include "log_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#if !defined(__x86_64__)
/* cppcheck-suppress preprocessorErrorDirective */
#error "sandbox.c: only the x86_64 system call table is written down"
#endif

#define S (1U << SANDBOX_SESSION)
#define P (1U << SANDBOX_POOL)
#define T (1U << SANDBOX_STORE)
#define D (1U << SANDBOX_DGRAM)
#define I (1U << SANDBOX_INETD)
#define M (1U << SANDBOX_METRICS)
#define W (1U << SANDBOX_SPAWNER) /* and every call S may make: its sessions run under it */
#define ALL (S | P | T | D | I | M)
#define CONN (S | P | I) /* the roles that serve a TCP connection */

enum sb_test {
	SB_ANY,    /* allowed whatever its arguments */
	SB_EQ,     /* allowed when argument arg equals val */
	SB_NOBITS, /* allowed when argument arg has none of the bits in val */
	SB_ERRNO,  /* not allowed but not fatal either: fails with errno err when arg equals val */
	SB_CLONE,  /* allowed when argument 0 equals val and argument 4, all 64 bits, the secret */
};

struct sb_rule {
	int nr;
	unsigned roles;
	enum sb_test test;
	unsigned arg;
	uint32_t val;
	int err;
};

#define ANY(nr, roles) { (nr), (roles), SB_ANY, 0, 0, 0 }
#define EQ(nr, roles, arg, val) { (nr), (roles), SB_EQ, (arg), (uint32_t)(val), 0 }
#define NOBITS(nr, roles, arg, val) { (nr), (roles), SB_NOBITS, (arg), (uint32_t)(val), 0 }
#define FAIL(nr, roles, arg, val, err) { (nr), (roles), SB_ERRNO, (arg), (uint32_t)(val), (err) }
#define CLONE(nr, roles, val) { (nr), (roles), SB_CLONE, 0, (uint32_t)(val), 0 }

/* The flags of the spawner's clone (sandbox_spawn): glibc's fork flags, CLONE_PARENT, and
 * CLONE_PARENT_SETTID (the pid written where the master reads it before the clone returns). */
#define SB_CLONE_FLAGS (CLONE_PARENT | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID | \
	CLONE_CHILD_CLEARTID | SIGCHLD)

/* The allow-lists, in no order (sb_build sorts them by number).  Nothing here opens a path but the store's
 * openat (and Landlock keeps that to the store's directory), creates a network socket, binds,
 * connects, executes, traces, or signals another process but --inetd's own store. */
static const struct sb_rule sb_rules[] = {
	/* The data path. */
	ANY(SYS_read, ALL),              /* the client, the store pipe (T) */
	ANY(SYS_write, ALL),             /* the echo, the store file (T), log lines on stderr */
	ANY(SYS_writev, ALL),            /* one record frame, one write (PIPE_BUF) */
	ANY(SYS_splice, CONN),           /* --no-store streams: socket -> pipe -> socket */
	ANY(SYS_ppoll, ALL),             /* waits with the signals let in (T, D), store back-pressure */
	ANY(SYS_poll, ALL),              /* bounded waits: a full pipe, a PROXY header, a lock */
	ANY(SYS_epoll_pwait, P),         /* an idle pool process waits on its listeners */
	ANY(SYS_epoll_wait, P),          /* (the same, without a mask) */
	ANY(SYS_accept4, P | M),         /* a pool process takes its connection itself; a scrape */
	ANY(SYS_recvmmsg, D),            /* datagrams in batches */
	ANY(SYS_sendmmsg, D),            /* their echoes in batches */
	ANY(SYS_recvmsg, D | W),         /* one datagram with its destination (IP_PKTINFO); the
	                                  * spawner's next connection (SCM_RIGHTS) */
	ANY(SYS_sendmsg, D | T | CONN),  /* one echo from that address; syslog(3) lines */
	ANY(SYS_sendto, ALL),            /* syslog(3) lines on the socket opened before the filter */
	ANY(SYS_recvfrom, D | CONN),     /* a datagram; --echo-after reads a stream ahead */
	ANY(SYS_close, ALL),             /* a session's socket, the splice pipe, a rotated file */
	ANY(SYS_shutdown, CONN | M),     /* SIGTERM's handler wakes a blocked read or write */
	ANY(SYS_pipe2, CONN),            /* the splice pipe of a --no-store stream */
	ANY(SYS_setsockopt, CONN | D | M), /* SO_RCVTIMEO, SO_SNDTIMEO (S, P, M); IP_PKTINFO (D) */
	ANY(SYS_getsockopt, CONN | D),   /* TCP_INFO: is an accepted connection already over */
	ANY(SYS_getsockname, CONN | D),  /* a UDP socket's family; --inetd's local address */
	ANY(SYS_getpeername, I),         /* --inetd's peer */
	EQ(SYS_ioctl, CONN | T | D | M, 1, FIONREAD), /* bytes waiting in a socket or pipe */
	/* The file: the store only. */
	ANY(SYS_openat, T),              /* reopening the store after a rotation (HUP) */
	ANY(SYS_open, T),                /* (the same, older libcs) */
	ANY(SYS_flock, T),               /* one writer per file; --inetd's lock per write */
	ANY(SYS_fstat, T),               /* the same file after a HUP?  a torn last line's size */
	ANY(SYS_newfstatat, T),          /* (fstat in newer libcs) */
	ANY(SYS_statx, T),               /* (the same) */
	ANY(SYS_lseek, T),               /* the end of the file */
	ANY(SYS_pread64, T),             /* the last bytes of a torn line */
	ANY(SYS_ftruncate, T),           /* a torn or failed write cut back to a whole line */
	ANY(SYS_fdatasync, T),           /* --fsync always and everysec */
	ANY(SYS_fsync, T),               /* (the same where fdatasync is not enough) */
	ANY(SYS_sync_file_range, T),     /* write-behind: a chunk's writeback started (store_wb.h) */
	ANY(SYS_fadvise64, T),           /* write-behind: written chunks out of the page cache */
	ANY(SYS_uname, T),               /* gethostname(3) for a start record */
	EQ(SYS_fcntl, ALL, 1, F_GETFL),  /* io_set_nonblock */
	EQ(SYS_fcntl, ALL, 1, F_SETFL),  /* (the same) */
	EQ(SYS_fcntl, ALL, 1, F_GETFD),  /* close-on-exec checks */
	EQ(SYS_fcntl, ALL, 1, F_SETFD),  /* (the same) */
	EQ(SYS_fcntl, CONN | D, 1, F_GETPIPE_SZ), /* the store pipe's room */
	EQ(SYS_fcntl, CONN, 1, F_SETPIPE_SZ),     /* a larger splice pipe */
	EQ(SYS_fcntl, T, 1, F_OFD_SETLK),         /* the store's locks */
	EQ(SYS_fcntl, T, 1, F_SETLK),             /* (the same) */
	EQ(SYS_fcntl, T, 1, F_SETLKW),            /* (the same) */
	/* Signals and time. */
	ANY(SYS_rt_sigreturn, ALL),      /* the end of every handler */
	ANY(SYS_rt_sigaction, ALL),      /* handlers set after the fork */
	ANY(SYS_rt_sigprocmask, ALL),    /* signals blocked around waits */
	ANY(SYS_rt_sigpending, ALL),     /* sig_deliver_pending */
	ANY(SYS_rt_sigtimedwait, ALL),   /* (the same) */
	ANY(SYS_restart_syscall, ALL),   /* a nanosleep restarted after a handler */
	ANY(SYS_tgkill, ALL),            /* raise(3): the master's death noticed, abort(3) */
	ANY(SYS_alarm, CONN),            /* the grace after the master's death */
	ANY(SYS_setitimer, CONN),        /* (alarm(3) in some libcs) */
	ANY(SYS_kill, I),                /* --inetd's store that did not finish in time */
	ANY(SYS_wait4, I),               /* --inetd waits for its store */
	ANY(SYS_waitid, I),              /* (the same) */
	ANY(SYS_clock_gettime, ALL),     /* timeouts and record times, when the vDSO is not used */
	ANY(SYS_gettimeofday, ALL),      /* (the same) */
	ANY(SYS_clock_nanosleep, ALL),   /* short sleeps (the store's coalescing) */
	ANY(SYS_nanosleep, ALL),         /* (the same) */
	ANY(SYS_getpid, ALL),            /* log prefixes, record frames */
	ANY(SYS_getppid, ALL),           /* the master still alive? */
	ANY(SYS_gettid, ALL),            /* raise(3) */
	/* Memory and the C library. */
	ANY(SYS_brk, ALL),               /* malloc: the store's buffers */
	NOBITS(SYS_mmap, ALL, 2, PROT_EXEC),     /* malloc, never executable */
	NOBITS(SYS_mprotect, ALL, 2, PROT_EXEC), /* (the same) */
	ANY(SYS_munmap, ALL),            /* malloc */
	ANY(SYS_mremap, ALL),            /* realloc */
	ANY(SYS_madvise, ALL),           /* free(3) giving pages back */
	ANY(SYS_futex, ALL),             /* the shared robust lock (shared.c) */
	ANY(SYS_sched_yield, ALL),       /* (its waits) */
	ANY(SYS_getrandom, ALL),         /* malloc's tcache seed in some libcs */
	ANY(SYS_exit_group, ALL),        /* _exit(2) */
	ANY(SYS_exit, ALL),              /* (the same, for one thread) */
	/* Fork mode's spawner, and what its sessions do before they serve. */
	CLONE(SYS_clone, W, SB_CLONE_FLAGS), /* a session, with the secret (sandbox_spawn) */
	ANY(SYS_set_robust_list, W),     /* a new session's robust list, as fork(3) registers it */
	ANY(SYS_landlock_restrict_self, W), /* a new session's own Landlock domain (signal scope) */
	EQ(SYS_prctl, W, 0, PR_SET_PDEATHSIG), /* session_init: the master's death noticed */
	EQ(SYS_prctl, W, 0, PR_SET_NAME), /* a session takes the master's name back */
	/* syslog(3) reconnects when its socket breaks: it fails quietly instead of ending the
	 * process for a restarted syslogd.  Every other family ends the process. */
	FAIL(SYS_socket, ALL, 0, AF_UNIX, EACCES),
};

/* The most instructions one role's program may have (a check, its rules, the end). */
#define SB_PROG_MAX 512

static struct {
	int on;
	struct sock_filter prog[SANDBOX_NROLES][SB_PROG_MAX];
	unsigned short len[SANDBOX_NROLES];
	int role;      /* this process's role once sandbox_enter ran; -1 before */
	int abi;       /* the kernel's Landlock ABI; 0: none */
	int abi_err;   /* why none: landlock_create_ruleset's errno */
	int llfd;      /* the Landlock ruleset the master made for its children; -1: none */
	uint64_t secret; /* the spawner's clone's (sandbox_spawn); 0 outside the spawner */
} sb = { .role = -1, .llfd = -1 };

static const char *const sb_names[] = {
	[SANDBOX_SESSION] = "session", [SANDBOX_POOL] = "pool", [SANDBOX_STORE] = "store",
	[SANDBOX_DGRAM] = "datagram", [SANDBOX_INETD] = "inetd", [SANDBOX_METRICS] = "metrics",
	[SANDBOX_SPAWNER] = "spawner",
};

/* Whether rule r applies to role: the spawner's list is the session's and its own. */
static int
sb_has(const struct sb_rule *r, enum sandbox_role role)
{
	return (r->roles & (1U << role)) != 0 ||
	    (role == SANDBOX_SPAWNER && (r->roles & S) != 0);
}

const char *
sandbox_role_name(enum sandbox_role role)
{
	return (unsigned)role < SANDBOX_NROLES ? sb_names[role] : "?";
}

const char *
sandbox_signal_note(int sig)
{
	return sig == SIGSYS ? " (SIGSYS: sandbox)" : "";
}

#define SB_NR offsetof(struct seccomp_data, nr)
#define SB_ARG(k) (offsetof(struct seccomp_data, args) + (k) * sizeof(uint64_t))

/* One role's program, as short as it can be: the kernel copies, converts and compiles it again
 * in every child that installs it (a session: once per connection), and runs it once per
 * system call number at the install to fill its cache of always-allowed calls.
 *
 *   check the architecture (anything but x86_64 is killed) and x32 numbers (bit 30: killed);
 *   a binary search on the call's number down to at most SB_LEAF numbers compared one by one,
 *   each compare jumping straight to the program's one RET ALLOW when the call is allowed
 *   whatever its arguments, or falling into its block of argument tests;
 *   the two shared ends, RET KILL_PROCESS and RET ALLOW, that every jump above can reach
 *   (forward, within 255 instructions: the whole program is about 90).
 *
 * So an allowed call costs one instruction, not a compare and a return each; the path to any
 * verdict is about 10 instructions. */
#define SB_LEAF 3 /* numbers compared one by one at the bottom of the search */

enum sb_to {
	SB_NEXT,  /* the next instruction */
	SB_LATER, /* patched by the caller once what it skips is written */
	SB_KILL,  /* the shared RET KILL_PROCESS */
	SB_ALLOW, /* the shared RET ALLOW */
};

struct sb_emit {
	struct sock_filter *p;
	unsigned n;
	int err; /* the room ran out, or a jump is longer than 255: a bug (the table grew) */
	struct {
		unsigned short at;
		unsigned char jf; /* the false branch (else the true one) */
		unsigned char to; /* SB_KILL or SB_ALLOW */
	} fix[2 * SB_PROG_MAX];
	unsigned nfix;
	enum sandbox_role role;
	int nr[sizeof(sb_rules) / sizeof(sb_rules[0])]; /* the role's distinct numbers, ascending */
	int count;
};

/* Appends one statement; returns its index. */
static unsigned
sb_stmt(struct sb_emit *e, uint16_t code, uint32_t k)
{
	if (e->n >= SB_PROG_MAX) {
		e->err = 1;
		return e->n - 1;
	}
	e->p[e->n] = (struct sock_filter)BPF_STMT(code, k);
	return e->n++;
}

static void
sb_fix(struct sb_emit *e, unsigned at, int jf, enum sb_to to)
{
	if (to != SB_KILL && to != SB_ALLOW)
		return;
	e->fix[e->nfix].at = (unsigned short)at;
	e->fix[e->nfix].jf = (unsigned char)jf;
	e->fix[e->nfix].to = (unsigned char)to;
	e->nfix++;
}

/* Appends a conditional jump (k against the accumulator); SB_NEXT and SB_LATER branches are
 * 0 until patched. */
static unsigned
sb_jump(struct sb_emit *e, uint16_t code, uint32_t k, enum sb_to jt, enum sb_to jf)
{
	unsigned at = sb_stmt(e, (uint16_t)(BPF_JMP | code | BPF_K), k);

	if (!e->err) {
		sb_fix(e, at, 0, jt);
		sb_fix(e, at, 1, jf);
	}
	return at;
}

/* Points the branch of the jump at `at` to the next instruction to be written. */
static void
sb_land(struct sb_emit *e, unsigned at, int jf)
{
	unsigned off = e->n - at - 1;

	if (off > 255)
		e->err = 1;
	else if (jf)
		e->p[at].jf = (unsigned char)off;
	else
		e->p[at].jt = (unsigned char)off;
}

/* Whether the role may make call nr whatever its arguments. */
static int
sb_any(enum sandbox_role role, int nr)
{
	for (size_t i = 0; i < sizeof(sb_rules) / sizeof(sb_rules[0]); i++)
		if (sb_rules[i].nr == nr && sb_has(&sb_rules[i], role) &&
		    sb_rules[i].test == SB_ANY)
			return 1;
	return 0;
}

/* The argument tests of call nr, in the table's order; the last failing one kills.  An
 * argument is loaded once for consecutive tests of it. */
static void
sb_block(struct sb_emit *e, int nr)
{
	const struct sb_rule *last = NULL;
	int loaded = -1;

	for (size_t i = 0; i < sizeof(sb_rules) / sizeof(sb_rules[0]); i++)
		if (sb_rules[i].nr == nr && sb_has(&sb_rules[i], e->role))
			last = &sb_rules[i];
	for (size_t i = 0; i < sizeof(sb_rules) / sizeof(sb_rules[0]); i++) {
		const struct sb_rule *r = &sb_rules[i];
		enum sb_to fail = r == last ? SB_KILL : SB_NEXT;

		if (r->nr != nr || !sb_has(r, e->role))
			continue;
		if (r->test == SB_CLONE) { /* the flags, then the secret's two halves */
			sb_stmt(e, BPF_LD | BPF_W | BPF_ABS, (uint32_t)SB_ARG(0));
			sb_jump(e, BPF_JEQ, r->val, SB_NEXT, SB_KILL);
			sb_stmt(e, BPF_LD | BPF_W | BPF_ABS, (uint32_t)SB_ARG(4));
			sb_jump(e, BPF_JEQ, (uint32_t)sb.secret, SB_NEXT, SB_KILL);
			sb_stmt(e, BPF_LD | BPF_W | BPF_ABS, (uint32_t)SB_ARG(4) + 4);
			sb_jump(e, BPF_JEQ, (uint32_t)(sb.secret >> 32), SB_ALLOW, SB_KILL);
			loaded = -1;
			continue;
		}
		if ((int)r->arg != loaded) {
			sb_stmt(e, BPF_LD | BPF_W | BPF_ABS, (uint32_t)SB_ARG(r->arg));
			loaded = (int)r->arg;
		}
		if (r->test == SB_NOBITS) {
			sb_jump(e, BPF_JSET, r->val, fail, SB_ALLOW);
		} else if (r->test == SB_EQ) {
			sb_jump(e, BPF_JEQ, r->val, SB_ALLOW, fail);
		} else { /* SB_ERRNO: its own return */
			unsigned at = sb_jump(e, BPF_JEQ, r->val, SB_NEXT,
			    fail == SB_KILL ? SB_KILL : SB_LATER);

			sb_stmt(e, BPF_RET | BPF_K,
			    SECCOMP_RET_ERRNO | ((uint32_t)r->err & SECCOMP_RET_DATA));
			if (fail != SB_KILL)
				sb_land(e, at, 1);
		}
	}
}

/* The search over the role's numbers [lo, hi), the call's number in the accumulator.
 * Recursive, to a depth of log2 of the role's calls (5). */
/* NOLINTBEGIN(misc-no-recursion) */
static void
sb_search(struct sb_emit *e, int lo, int hi)
{
	if (hi - lo <= SB_LEAF) {
		for (int i = lo; i < hi && !e->err; i++) {
			enum sb_to miss = i == hi - 1 ? SB_KILL : SB_LATER;

			if (sb_any(e->role, e->nr[i])) {
				sb_jump(e, BPF_JEQ, (uint32_t)e->nr[i], SB_ALLOW,
				    miss == SB_KILL ? SB_KILL : SB_NEXT);
			} else {
				unsigned at = sb_jump(e, BPF_JEQ, (uint32_t)e->nr[i], SB_NEXT, miss);

				sb_block(e, e->nr[i]);
				if (miss == SB_LATER)
					sb_land(e, at, 1);
			}
		}
		if (hi == lo)
			sb_stmt(e, BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
		return;
	}
	{
		int mid = lo + (hi - lo) / 2;
		/* nr >= nr[mid]: the right half, after the left one. */
		unsigned at = sb_jump(e, BPF_JGE, (uint32_t)e->nr[mid], SB_LATER, SB_NEXT);

		sb_search(e, lo, mid);
		sb_land(e, at, 0);
		sb_search(e, mid, hi);
	}
}
/* NOLINTEND(misc-no-recursion) */

static int
sb_build(enum sandbox_role role)
{
	static struct sb_emit e; /* large (the fix-ups); the master's, once per role */
	unsigned kill, allow;

	memset(&e, 0, sizeof(e));
	e.p = sb.prog[role];
	e.role = role;
	/* The role's distinct numbers, sorted (insertion: a few dozen, once). */
	for (size_t i = 0; i < sizeof(sb_rules) / sizeof(sb_rules[0]); i++) {
		int nr = sb_rules[i].nr, j;

		if (!sb_has(&sb_rules[i], role))
			continue;
		for (j = 0; j < e.count && e.nr[j] < nr; j++)
			;
		if (j < e.count && e.nr[j] == nr)
			continue;
		memmove(&e.nr[j + 1], &e.nr[j], (size_t)(e.count - j) * sizeof(int));
		e.nr[j] = nr;
		e.count++;
	}
	sb_stmt(&e, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	sb_jump(&e, BPF_JEQ, AUDIT_ARCH_X86_64, SB_NEXT, SB_KILL);
	sb_stmt(&e, BPF_LD | BPF_W | BPF_ABS, SB_NR);
	/* x32 calls have their own numbers with bit 30 set: none is allowed. */
	sb_jump(&e, BPF_JGE, 0x40000000U, SB_KILL, SB_NEXT);
	sb_search(&e, 0, e.count);
	kill = sb_stmt(&e, BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	allow = sb_stmt(&e, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	for (unsigned i = 0; i < e.nfix && !e.err; i++) {
		unsigned at = e.fix[i].at, off = (e.fix[i].to == SB_KILL ? kill : allow) - at - 1;

		if (off > 255)
			e.err = 1;
		else if (e.fix[i].jf)
			e.p[at].jf = (unsigned char)off;
		else
			e.p[at].jt = (unsigned char)off;
	}
	if (e.err) {
		errno = E2BIG;
		return -1;
	}
	sb.len[role] = (unsigned short)e.n;
	return 0;
}

const void *
sandbox_program(enum sandbox_role role, unsigned *len)
{
	*len = sb.len[role];
	return sb.prog[role];
}

uint32_t
sandbox_table_verdict(enum sandbox_role role, int nr, const uint64_t args[6])
{
	if (sb_any(role, nr))
		return SECCOMP_RET_ALLOW;
	for (size_t i = 0; i < sizeof(sb_rules) / sizeof(sb_rules[0]); i++) {
		const struct sb_rule *r = &sb_rules[i];
		uint32_t v = (uint32_t)args[r->arg];

		if (r->nr != nr || !sb_has(r, role))
			continue;
		if (r->test == SB_CLONE)
			return v == r->val && args[4] == sb.secret ? SECCOMP_RET_ALLOW :
			    SECCOMP_RET_KILL_PROCESS;
		if (r->test == SB_NOBITS && !(v & r->val))
			return SECCOMP_RET_ALLOW;
		if (r->test == SB_EQ && v == r->val)
			return SECCOMP_RET_ALLOW;
		if (r->test == SB_ERRNO && v == r->val)
			return SECCOMP_RET_ERRNO | ((uint32_t)r->err & SECCOMP_RET_DATA);
	}
	return SECCOMP_RET_KILL_PROCESS;
}

static int sb_ruleset(enum sandbox_role role, const char *store_path);

int
sandbox_configure(int on, int shared)
{
	sb.on = on;
	if (!on)
		return 0;
	/* Read once, here: the children inherit them.  The time zone: localtime_r(3) in a log
	 * line then never reads /etc/localtime (tzset(3) in a child would, every time). */
	tzset();
	sb.abi = sandbox_landlock_abi();
	sb.abi_err = sb.abi > 0 ? 0 : errno;
	for (int r = 0; r < SANDBOX_NROLES; r++)
		if (sb_build((enum sandbox_role)r) < 0)
			return -1;
	/* The ruleset of the roles without a file (a session, a pool, the datagram and metrics
	 * processes), made once here: a session then only calls landlock_restrict_self. */
	if (sb.abi > 0 && shared)
		sb.llfd = sb_ruleset(SANDBOX_SESSION, NULL);
	return 0;
}

int
sandbox_check(const char **call)
{
	uint32_t action = SECCOMP_RET_KILL_PROCESS;

	if (!sb.on)
		return 0;
	/* Asked, not done: neither call changes this process. */
	*call = "prctl";
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) < 0)
		return -1;
	*call = "seccomp";
	if (syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) < 0)
		return -1;
	*call = NULL;
	return 0;
}

int *
sandbox_ruleset_fd(void)
{
	return &sb.llfd;
}

const char *
sandbox_landlock_note(void)
{
	if (!sb.on || sb.abi > 0)
		return NULL;
	if (sb.abi_err == EPERM)
		return "Landlock is refused here (landlock_create_ruleset: Operation not permitted; "
		    "a system call filter such as systemd's SystemCallFilter= must allow "
		    "landlock_create_ruleset, landlock_add_rule and landlock_restrict_self)";
	return "this kernel has no Landlock (or it is not enabled)";
}

/* Landlock, from linux/landlock.h, written out here: the installed header may predate the
 * network rules (ABI 4) and the scopes (ABI 6). */
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_FS_ABI1 ((1ULL << 13) - 1)  /* execute ... make_sym */
#define LL_FS_REFER (1ULL << 13)       /* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14)    /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15)   /* ABI 5 */
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_MAKE_REG (1ULL << 8)
#define LL_NET_BIND_TCP (1ULL << 0)    /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)

struct sb_ll_ruleset {
	uint64_t fs, net, scoped;
};

struct sb_ll_beneath {
	uint64_t allowed;
	int32_t parent_fd;
} __attribute__((packed));

int
sandbox_landlock_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);

	return abi < 0 ? 0 : (int)abi;
}

/* Opens the directory of path ("." when it has no slash), for the store's rule. */
static int
sb_open_dir(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	size_t len = slash == NULL ? 0 : (size_t)(slash - path);

	if (slash == NULL)
		return open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (len == 0)
		len = 1; /* "/file": the root */
	if (len >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dir, path, len);
	dir[len] = '\0';
	return open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* The role's Landlock ruleset: every file system access handled (so none allowed but the
 * store's directory), TCP bind and connect handled with no rule (none allowed), and from ABI 6
 * no signal to a process outside the domain (the store and --inetd's process excepted: --inetd
 * signals its store) nor a connection to an abstract unix socket.  Returns its descriptor
 * (close-on-exec), or -1 when the kernel has no Landlock. */
static int
sb_ruleset(enum sandbox_role role, const char *store_path)
{
	int abi = sb.abi, rfd, dfd;
	struct sb_ll_ruleset attr = { .fs = LL_FS_ABI1 };
	size_t size = sizeof(uint64_t);

	if (abi <= 0)
		return -1;
	if (abi >= 2)
		attr.fs |= LL_FS_REFER;
	if (abi >= 3)
		attr.fs |= LL_FS_TRUNCATE;
	if (abi >= 5)
		attr.fs |= LL_FS_IOCTL_DEV;
	if (abi >= 4) {
		attr.net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
		size = 2 * sizeof(uint64_t);
	}
	if (abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX | (role != SANDBOX_INETD ? LL_SCOPE_SIGNAL : 0);
		size = sizeof(attr);
	}
	rfd = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (rfd < 0)
		return -1;
	if (role == SANDBOX_STORE && store_path != NULL && (dfd = sb_open_dir(store_path)) >= 0) {
		/* Create the file again after a rotation, append to it, read back a torn last
		 * line, cut it back. */
		struct sb_ll_beneath rule = { .parent_fd = dfd,
		    .allowed = LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_MAKE_REG |
		    (abi >= 3 ? LL_FS_TRUNCATE : 0) };

		syscall(SYS_landlock_add_rule, rfd, LL_RULE_PATH_BENEATH, &rule, 0);
		close(dfd);
	}
	return rfd;
}

/* The role's Landlock domain: the master's ruleset for the roles without a file, one made
 * here for the store (its directory) and --inetd's process (no master).  Whatever fails
 * (no Landlock; a filter over mpechod refusing it, said once by the master) leaves the
 * process to its seccomp filter alone. */
static void
sb_landlock(enum sandbox_role role, const char *store_path)
{
	int shared = role != SANDBOX_STORE && role != SANDBOX_INETD && sb.llfd >= 0;
	int rfd = shared ? sb.llfd : sb_ruleset(role, store_path);

	if (rfd >= 0)
		(void)syscall(SYS_landlock_restrict_self, rfd, 0);
	/* The spawner keeps the ruleset: each session it forks enters a domain of its own with
	 * it (sandbox_spawned), so that sessions cannot signal each other (the signal scope). */
	if (role == SANDBOX_SPAWNER && shared)
		return;
	if (rfd >= 0)
		close(rfd);
	if (!shared && sb.llfd >= 0)
		close(sb.llfd);
	sb.llfd = -1;
}

int
sandbox_enter(enum sandbox_role role, const char *store_path)
{
	struct sock_fprog fprog;

	if (!sb.on || (unsigned)role >= SANDBOX_NROLES)
		return 0;
	sb.role = (int)role;
	log_syslog_reopen();
	log_sink_reopen();
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	sb_landlock(role, store_path);
	fprog.len = sb.len[role];
	fprog.filter = sb.prog[role];
	/* One call, no flags.  Not SECCOMP_FILTER_FLAG_TSYNC: a child has one thread.  Not
	 * SECCOMP_FILTER_FLAG_SPEC_ALLOW: the kernel forces its speculative store bypass (and
	 * indirect branch) mitigation on a filtered task only when booted with
	 * spec_store_bypass_disable=seccomp or spectre_v2_user=seccomp (the default is prctl
	 * since Linux 5.16, and this machine has no SSBD at all: "Vulnerable"; a confined
	 * session's /proc/PID/status shows the master's Speculation_Store_Bypass: vulnerable and
	 * SpeculationIndirectBranch: always enabled, so no context switch pays for it here); an
	 * operator who chose seccomp there asked for exactly this process to be protected. */
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog);
}

void
sandbox_child(enum sandbox_role role, const char *store_path)
{
	if (sandbox_enter(role, store_path) == 0)
		return;
	log_warn("%s: cannot enter the sandbox", sandbox_role_name(role));
	_exit(EX_OSERR);
}

/* The spawner's stack below its frame, where sb_build's callees ran with the secret in their
 * arguments: overwritten once, so that a session forked later finds nothing of it there. */
__attribute__((noinline)) static void
sb_wipe_stack(void)
{
	char below[32768];

	explicit_bzero(below, sizeof(below));
}

int
sandbox_spawner_enter(void)
{
	int rc;

	if (!sb.on)
		return 0;
	do {
		if (getrandom(&sb.secret, sizeof(sb.secret), 0) != (ssize_t)sizeof(sb.secret))
			return -1;
	} while (sb.secret == 0);
	rc = sb_build(SANDBOX_SPAWNER);
	if (rc == 0)
		rc = sandbox_enter(SANDBOX_SPAWNER, NULL);
	explicit_bzero(sb.prog[SANDBOX_SPAWNER], sizeof(sb.prog[SANDBOX_SPAWNER]));
	sb_wipe_stack();
	return rc;
}

pid_t
sandbox_spawn(int *ctid, int32_t *ptid)
{
	register long r10 __asm__("r10") = (long)ctid;
	long ret;

	/* clone(flags, stack 0, ptid, ctid, tls = the secret): the secret goes from memory to r8
	 * and out of it again without a copy anywhere else. */
	__asm__ volatile("movq (%[s]), %%r8\n\t"
	    "syscall\n\t"
	    "xorl %%r8d, %%r8d"
	    : "=a"(ret)
	    : "0"((long)SYS_clone), "D"((long)SB_CLONE_FLAGS), "S"(0L), "d"(ptid), "r"(r10),
	      [s] "r"(&sb.secret)
	    : "rcx", "r11", "r8", "memory", "cc");
	if (ret < 0 && ret > -4096) {
		errno = (int)-ret;
		return -1;
	}
	return (pid_t)ret;
}

void
sandbox_spawned(void)
{
	explicit_bzero(&sb.secret, sizeof(sb.secret));
	sb.role = SANDBOX_SESSION;
	log_sink_adopt(); /* the spawner's journal socket: no new socket under the filter */
	if (sb.llfd >= 0) {
		(void)syscall(SYS_landlock_restrict_self, sb.llfd, 0);
		close(sb.llfd);
		sb.llfd = -1;
	}
}

#ifdef MPECHO_TEST_HOOKS
static const char sb_magic[] = "MPECHO-TEST-SANDBOX ";

void
sandbox_poke(const void *buf, size_t len)
{
	const char *p, *name, *call;
	size_t nlen;

	if (sb.role < 0 || (p = memmem(buf, len, sb_magic, sizeof(sb_magic) - 1)) == NULL)
		return;
	name = p + sizeof(sb_magic) - 1;
	nlen = strlen(sb_names[sb.role]);
	if ((size_t)((const char *)buf + len - name) < nlen + 2 ||
	    memcmp(name, sb_names[sb.role], nlen) != 0 || name[nlen] != ' ')
		return;
	call = name + nlen + 1;
	if (strncmp(call, "openat", 6) == 0)
		syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY);
	else if (strncmp(call, "execve", 6) == 0)
		syscall(SYS_execve, "/bin/true", NULL, NULL);
	else if (strncmp(call, "socket", 6) == 0)
		syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	else if (strncmp(call, "ptrace", 6) == 0)
		syscall(SYS_ptrace, 0, 0, 0, 0);
	else if (strncmp(call, "fork", 4) == 0) /* the C library's: clone without the secret */
		(void)fork();
	else if (strncmp(call, "clone", 5) == 0) /* the spawner's flags, a guessed secret */
		syscall(SYS_clone, SB_CLONE_FLAGS, 0, NULL, NULL, 0x5eed5eed5eed5eedULL);
}
#else
void
sandbox_poke(const void *buf, size_t len)
{
	(void)buf;
	(void)len;
}
#endif
