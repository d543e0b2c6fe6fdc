/*
 * sandbox.h - what each of the master's children may do once it runs (OpenSSH's
 * sandbox-seccomp-filter.c, per role): a seccomp-bpf allow-list and, where the kernel has it,
 * a Landlock domain.
 *
 * The master builds every role's filter once (sandbox_configure), from one table in sandbox.c
 * with a line per system call saying why it is allowed; a child only installs its role's
 * program (sandbox_enter), right after its own setup and before it reads a byte from a client.
 * A call that is not in its role's list ends the process with SIGSYS (SECCOMP_RET_KILL_PROCESS);
 * a filter running on another architecture, or an x32 call, does too.  The master keeps its
 * full rights: it accepts, forks, binds and supervises.
 */
#ifndef MPECHO_SANDBOX_H
#define MPECHO_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum sandbox_role {
	SANDBOX_SESSION, /* one connection (fork mode) */
	SANDBOX_POOL,    /* a pool process (--prefork): accepts, then a session */
	SANDBOX_STORE,   /* the store: its file, its directory (rotation), its locks */
	SANDBOX_DGRAM,   /* the datagram process (--udp) */
	SANDBOX_INETD,   /* --inetd: a session that also waits for (and may kill) its store */
	SANDBOX_METRICS, /* the metrics process (--metrics): accepts, answers one request, closes */
	SANDBOX_SPAWNER, /* fork mode's spawner: forks the sessions, which inherit its filter */
	SANDBOX_NROLES
};

/* Called by the master (and --inetd) once, before any fork: on (1) builds the filters, off (0)
 * makes sandbox_enter do nothing.  With shared set it also makes, once, the Landlock ruleset
 * of the roles that have no file (close-on-exec; see sandbox_ruleset_fd), so that a session only
 * restricts itself with it.  Returns 0, or -1 with errno (a filter too long: a bug). */
int sandbox_configure(int on, int shared);

/* Whether this process's children can be confined: a system call filter over mpechod (systemd's
 * SystemCallFilter=, a container's) may refuse prctl or seccomp with an errno, which every
 * child would meet.  Asks the kernel without changing anything.  Returns 0 (also when the
 * sandbox is off), or -1 with errno and *call the refused call's name. */
int sandbox_check(const char **call);

/* Where the descriptor of the ruleset sandbox_configure made is kept (-1: none): every child
 * keeps it (proc_keep_always) until it enters the sandbox, which closes it. */
int *sandbox_ruleset_fd(void);

/* Why the children have no Landlock (no Landlock in the kernel, or a filter refusing it), for
 * the master to say once; NULL when they have it or the sandbox is off. */
const char *sandbox_landlock_note(void);

/* In a child, once its setup needs no more: no new privileges, Landlock (the store's directory
 * is dir's; NULL for every other role), then the role's seccomp filter.  Returns 0 (also when
 * the sandbox is off, or Landlock absent or refused: sandbox_landlock_note, said once by the
 * master), or -1 with errno when the seccomp filter could not be installed. */
int sandbox_enter(enum sandbox_role role, const char *store_path);

/* sandbox_enter, or the process ends (EX_OSERR) with a line saying why: a child never runs
 * unconfined when the sandbox is on. */
void sandbox_child(enum sandbox_role role, const char *store_path);

/* Fork mode's spawner (spawner.h), once, in the spawner: draws the secret its clone must
 * pass, builds its program (the session's allow-list, plus receiving a connection, that clone
 * and what a session forked by it does before it serves: set_robust_list, PR_SET_PDEATHSIG),
 * enters the sandbox with it and wipes the program and the stack it was built on.  Every
 * session it forks inherits the filter and the Landlock domain, so installs nothing: the
 * JIT and the free of a filter per connection (bench/results/2026-12-07-sandbox-5.md) are
 * paid once.  Returns 0 or -1 with errno. */
int sandbox_spawner_enter(void);

/* In the spawner: clone(2) with CLONE_PARENT (the master is the child's parent, reaps it and
 * gets its SIGCHLD), the C library's fork flags (ctid: the thread's tid, PR_GET_TID_ADDRESS),
 * CLONE_PARENT_SETTID (the kernel writes the child's pid at ptid, in the master's shared
 * memory, before the clone returns and before the child runs) and the secret in the tls
 * argument, which no other flag reads.  The filter lets clone
 * through only with exactly these flags and this secret, and kills the caller otherwise: a
 * session that tries to fork (fork(3), clone3, vfork, another clone) dies with SIGSYS.  The
 * secret is loaded into the register and cleared again inside one asm statement, and the
 * child wipes the spawner's copy (sandbox_spawned) before it does anything else, so that no
 * session's memory holds it.  Returns the child's pid in the spawner, 0 in the child, -1
 * with errno. */
pid_t sandbox_spawn(int *ctid, int32_t *ptid);

/* In a session sandbox_spawn forked: the secret wiped, the process's role is a session's (its
 * filter is the spawner's, inherited), and it enters a Landlock domain of its own (nested in
 * the spawner's: sessions cannot signal each other or the spawner). */
void sandbox_spawned(void);

/* The Landlock ABI the kernel offers, 0 with errno when it has none (or Landlock is disabled,
 * or a filter over this process refuses it: EPERM). */
int sandbox_landlock_abi(void);

/* What a child's end by signal sig adds to its log line and close record: " (SIGSYS: sandbox)"
 * for the signal a forbidden call ends a process with, "" for any other. */
const char *sandbox_signal_note(int sig);

/* The role's name ("session", "pool", ...). */
const char *sandbox_role_name(enum sandbox_role role);

/* Test builds only (make ... MPECHO_TEST_HOOKS, bin/mpechod-hooks): when buf holds
 * "MPECHO-TEST-SANDBOX <this process's role> <call>", makes that forbidden call (openat, execve,
 * socket, connect, ptrace), which the filter must answer with SIGSYS.  In the release build it
 * does nothing. */
void sandbox_poke(const void *buf, size_t len);

/* For the unit tests (tests/unit/test_sandbox.c): the role's program as sandbox_configure built
 * it (a struct sock_filter array, *len instructions), and the verdict the table itself gives a
 * call with these arguments (SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | errno, or
 * SECCOMP_RET_KILL_PROCESS), which the program must give too. */
const void *sandbox_program(enum sandbox_role role, unsigned *len);
uint32_t sandbox_table_verdict(enum sandbox_role role, int nr, const uint64_t args[6]);

#endif
