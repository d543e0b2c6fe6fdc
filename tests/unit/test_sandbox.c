/*
 * Unit tests for sandbox.c's programs: each role's compiled search (shared ends, argument
 * blocks) gives, for every system call number and the argument values the table names, the
 * verdict the table gives; other architectures and x32 numbers are killed; the programs stay
 * short (every child compiles its own again).  A small classic BPF interpreter runs them.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>

/* Runs prog on d as the kernel does; fails the test on an instruction seccomp would refuse,
 * a jump out of the program or a fall off its end. */
static uint32_t
run(const struct sock_filter *prog, unsigned len, const struct seccomp_data *d, unsigned *steps)
{
	uint32_t a = 0;
	unsigned pc = 0;

	*steps = 0;
	while (pc < len) {
		const struct sock_filter *f = &prog[pc];
		int taken;

		(*steps)++;
		switch (f->code) {
		case BPF_LD | BPF_W | BPF_ABS:
			cr_assert(f->k % 4 == 0 && f->k + 4 <= sizeof(*d), "load at %u", f->k);
			memcpy(&a, (const char *)d + f->k, 4);
			pc++;
			continue;
		case BPF_RET | BPF_K:
			return f->k;
		case BPF_JMP | BPF_JEQ | BPF_K:
			taken = a == f->k;
			break;
		case BPF_JMP | BPF_JGE | BPF_K:
			taken = a >= f->k;
			break;
		case BPF_JMP | BPF_JSET | BPF_K:
			taken = (a & f->k) != 0;
			break;
		default:
			cr_assert_fail("instruction %u: code %#x", pc, f->code);
		}
		pc += 1U + (taken ? f->jt : f->jf);
	}
	cr_assert_fail("ran off the end (pc %u of %u)", pc, len);
	return 0;
}

/* Argument values worth trying: every value a rule names, with and without PROT_EXEC, and a
 * few that no rule names. */
static const uint64_t probes[] = {
	0, 1, 2, 3, 7, FIONREAD, TIOCSTI, F_GETFL, F_SETFL, F_GETFD, F_SETFD, F_DUPFD,
	F_GETPIPE_SZ, F_SETPIPE_SZ, F_OFD_SETLK, F_SETLK, F_SETLKW, F_SETOWN,
	PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC, PROT_EXEC, AF_UNIX, AF_INET, AF_INET6,
	AF_NETLINK, 0x100000000ULL | FIONREAD, 0xffffffffULL,
};

Test(program, gives_the_tables_verdict_for_every_call)
{
	cr_assert_eq(sandbox_configure(1, 0), 0);
	for (int role = 0; role < SANDBOX_NROLES; role++) {
		unsigned len;
		const struct sock_filter *prog = sandbox_program((enum sandbox_role)role, &len);

		cr_assert_gt(len, 0);
		for (int nr = 0; nr < 600; nr++)
			for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
				for (int arg = 0; arg < 3; arg++) {
					struct seccomp_data d = { .nr = nr, .arch = AUDIT_ARCH_X86_64 };
					uint64_t args[6] = { 0 };
					unsigned steps;
					uint32_t got;

					d.args[arg] = args[arg] = probes[i];
					got = run(prog, len, &d, &steps);
					cr_assert_eq(got, sandbox_table_verdict((enum sandbox_role)role, nr,
					    args), "%s: call %d arg%d=%#llx: %#x",
					    sandbox_role_name((enum sandbox_role)role), nr, arg,
					    (unsigned long long)probes[i], got);
					cr_assert_leq(steps, 24, "%s: call %d: %u steps",
					    sandbox_role_name((enum sandbox_role)role), nr, steps);
				}
	}
}

Test(program, the_table_allows_what_a_session_needs_and_not_more)
{
	uint64_t args[6] = { 0 };

	cr_assert_eq(sandbox_configure(1, 0), 0);
	cr_assert_eq(sandbox_table_verdict(SANDBOX_SESSION, SYS_read, args), SECCOMP_RET_ALLOW);
	cr_assert_eq(sandbox_table_verdict(SANDBOX_SESSION, SYS_openat, args),
	    SECCOMP_RET_KILL_PROCESS);
	cr_assert_eq(sandbox_table_verdict(SANDBOX_STORE, SYS_openat, args), SECCOMP_RET_ALLOW);
	cr_assert_eq(sandbox_table_verdict(SANDBOX_SESSION, SYS_execve, args),
	    SECCOMP_RET_KILL_PROCESS);
	args[0] = AF_UNIX;
	cr_assert_eq(sandbox_table_verdict(SANDBOX_SESSION, SYS_socket, args),
	    SECCOMP_RET_ERRNO | EACCES);
	args[0] = AF_INET;
	cr_assert_eq(sandbox_table_verdict(SANDBOX_SESSION, SYS_socket, args),
	    SECCOMP_RET_KILL_PROCESS);
	args[2] = PROT_READ | PROT_EXEC;
	cr_assert_eq(sandbox_table_verdict(SANDBOX_SESSION, SYS_mmap, args),
	    SECCOMP_RET_KILL_PROCESS);
}

Test(program, other_architectures_and_x32_calls_are_killed)
{
	cr_assert_eq(sandbox_configure(1, 0), 0);
	for (int role = 0; role < SANDBOX_NROLES; role++) {
		unsigned len, steps;
		const struct sock_filter *prog = sandbox_program((enum sandbox_role)role, &len);
		struct seccomp_data i386 = { .nr = SYS_read, .arch = AUDIT_ARCH_I386 };
		struct seccomp_data x32 = { .nr = 0x40000000U | SYS_read, .arch = AUDIT_ARCH_X86_64 };

		cr_assert_eq(run(prog, len, &i386, &steps), SECCOMP_RET_KILL_PROCESS);
		cr_assert_eq(run(prog, len, &x32, &steps), SECCOMP_RET_KILL_PROCESS);
	}
}

Test(program, is_short)
{
	/* Every child converts and compiles its program again: one instruction per call allowed
	 * whatever its arguments, not a compare and a return each (155 for a session before). */
	cr_assert_eq(sandbox_configure(1, 0), 0);
	for (int role = 0; role < SANDBOX_NROLES; role++) {
		unsigned len;

		(void)sandbox_program((enum sandbox_role)role, &len);
		cr_assert_leq(len, 100, "%s: %u instructions",
		    sandbox_role_name((enum sandbox_role)role), len);
	}
}

Test(program, the_spawners_clone_needs_its_flags_and_the_whole_secret)
{
	/* sandbox_configure builds the spawner's program with the secret 0 (the spawner draws
	 * its own and builds it again); the tests below use that one. */
	const uint64_t flags = CLONE_PARENT | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID |
	    CLONE_CHILD_CLEARTID | SIGCHLD;
	const uint64_t fork_flags = CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD;
	const struct {
		uint64_t flags, tls;
		uint32_t want;
	} cases[] = {
		{ flags, 0, SECCOMP_RET_ALLOW },
		{ flags, 1, SECCOMP_RET_KILL_PROCESS },
		{ flags, 1ULL << 32, SECCOMP_RET_KILL_PROCESS },
		{ fork_flags, 0, SECCOMP_RET_KILL_PROCESS },
		{ flags | CLONE_VM, 0, SECCOMP_RET_KILL_PROCESS },
	};
	unsigned len, steps;
	const struct sock_filter *prog;

	cr_assert_eq(sandbox_configure(1, 0), 0);
	prog = sandbox_program(SANDBOX_SPAWNER, &len);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t args[6] = { cases[i].flags, 0, 0, 0, cases[i].tls, 0 };
		struct seccomp_data d = { .nr = SYS_clone, .arch = AUDIT_ARCH_X86_64 };

		memcpy(d.args, args, sizeof(args));
		cr_assert_eq(sandbox_table_verdict(SANDBOX_SPAWNER, SYS_clone, args), cases[i].want,
		    "case %zu", i);
		cr_assert_eq(run(prog, len, &d, &steps), cases[i].want, "case %zu", i);
		/* A session (in prefork mode's pool too) may not clone at all. */
		cr_assert_eq(sandbox_table_verdict(SANDBOX_SESSION, SYS_clone, args),
		    SECCOMP_RET_KILL_PROCESS);
		cr_assert_eq(sandbox_table_verdict(SANDBOX_POOL, SYS_clone, args),
		    SECCOMP_RET_KILL_PROCESS);
	}
}

Test(program, the_spawner_may_make_every_call_a_session_may)
{
	/* Its sessions run under its filter: whatever a session needs, it must allow. */
	cr_assert_eq(sandbox_configure(1, 0), 0);
	for (int nr = 0; nr < 600; nr++)
		for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
			for (int arg = 0; arg < 3; arg++) {
				uint64_t args[6] = { 0 };

				args[arg] = probes[i];
				if (sandbox_table_verdict(SANDBOX_SESSION, nr, args) != SECCOMP_RET_ALLOW)
					continue;
				cr_assert_eq(sandbox_table_verdict(SANDBOX_SPAWNER, nr, args),
				    SECCOMP_RET_ALLOW, "call %d arg%d=%#llx", nr, arg,
				    (unsigned long long)probes[i]);
			}
}
