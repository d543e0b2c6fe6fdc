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

enum sandbox_role {
	SANDBOX_SESSION, /* one connection (fork mode) */
	SANDBOX_POOL,    /* a pool process (--prefork): accepts, then a session */
	SANDBOX_STORE,   /* the store: its file, its directory (rotation), its locks */
	SANDBOX_DGRAM,   /* the datagram process (--udp) */
	SANDBOX_INETD,   /* --inetd: a session that also waits for (and may kill) its store */
	SANDBOX_METRICS, /* the metrics process (--metrics): accepts, answers one request, closes */
	SANDBOX_NROLES
};

/* Called by the master (and --inetd) once, before any fork: on (1) builds the filters, off (0)
 * makes sandbox_enter do nothing.  Returns 0, or -1 with errno (a filter too long: a bug). */
int sandbox_configure(int on);

/* In a child, once its setup needs no more: no new privileges, Landlock (the store's directory
 * is dir's; NULL for every other role), then the role's seccomp filter.  Returns 0 (also when
 * the sandbox is off, or Landlock absent: logged once by the caller through sandbox_landlock_abi),
 * or -1 with errno when the seccomp filter could not be installed. */
int sandbox_enter(enum sandbox_role role, const char *store_path);

/* sandbox_enter, or the process ends (EX_OSERR) with a line saying why: a child never runs
 * unconfined when the sandbox is on. */
void sandbox_child(enum sandbox_role role, const char *store_path);

/* The Landlock ABI the kernel offers, 0 when it has none (or Landlock is disabled). */
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

#endif
