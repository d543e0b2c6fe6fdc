/*
 * proc.h - the one way mpechod starts a child process (OpenBSD httpd's proc_run): every role,
 * a session, a pool process, the store, the datagram process, the metrics process, is forked
 * here, and holds only what it owns; and a helper that overstays its bounded wait is ended here.
 *
 * In the child the descriptors it keeps are moved to 3, 4, ... in the order given, and every
 * other descriptor from there up is closed with one close_range(2): nothing is closed by name,
 * so nothing the parent opened that a list forgot (a put-aside connection, systemd's notify
 * socket, the master's lock, another helper's pipe) can leak into a child.  Descriptors 0, 1
 * and 2 are left as they are.
 */
#ifndef MPECHO_PROC_H
#define MPECHO_PROC_H

#include <signal.h>
#include <sys/types.h>

/* What a child is: the master tells its children apart by this tag, not by their pids. */
enum proc_role {
	PROC_SESSION,  /* one connection (fork mode) */
	PROC_POOL,     /* a pool process (--prefork) */
	PROC_STORE,    /* the store's only writer */
	PROC_DGRAM,    /* the datagram process (--udp) */
	PROC_METRICS,  /* the metrics endpoint (--metrics) */
	PROC_NROLES
};

/* The most descriptors a child keeps: its listeners and three more. */
#define PROC_KEEP_MAX 40

/* Every child proc_fork starts also keeps *fdp (-1: none), after its own kept descriptors, and
 * *fdp is updated to its number there: the sandbox's Landlock ruleset, which the child closes
 * once it has used it.  The descriptor stays wherever it was made (no high number held aside,
 * which a low RLIMIT_NOFILE would refuse to a child). */
void proc_keep_always(int *fdp);

/* Forks.  In the child, each *keep[i] that is not -1 is moved to the next descriptor from 3 up
 * (close-on-exec) and the variable updated to its new number; every other descriptor from 3 up
 * is closed, and syslog's socket (reopened at the next syslog(3)).  Returns as fork(2) does;
 * nkeep is at most PROC_KEEP_MAX. */
pid_t proc_fork(int *const keep[], int nkeep);
/* proc_fork for a child that forks others on the master's behalf (fork mode's spawner): it
 * takes the master's raised priority (proc_favour_self) where proc_fork puts a child back, and
 * its own children start at nice 0, when the server was started at nice 0 (else it is put
 * back like any child). */
pid_t proc_fork_favoured(int *const keep[], int nkeep);
/* The one way a helper that did not finish in its bounded wait is ended (the store, at the end
 * of the master's shutdown or of an --inetd session): SIGKILL, then waitpid, so that no zombie
 * is left.  Returns its wait status. */
int proc_kill_wait(pid_t pid);

/* A helper process's signals (the datagram and metrics processes): stop(SIGTERM or SIGUSR2)
 * asks it to leave, SIGUSR2 coming at the master's death (PR_SET_PDEATHSIG: nothing is left to
 * finish, and it must not hold what the master gave it for ever); INT, HUP and USR1 are
 * ignored.  TERM and USR2 are blocked but in waitmask, for ppoll.  Returns 1 when the master
 * (pid master) is gone already, 0 otherwise. */
int proc_helper_signals(void (*stop)(int), pid_t master, sigset_t *waitmask);

/* The calling process's scheduling weight raised by boost nice steps (at most to -20), while
 * every child proc_fork starts from now on is put back at the nice value it had before: for
 * fork mode's master, the one process that accepts and forks for every client, which at an
 * even share among a thousand busy processes on two cores got a few per cent of a CPU and left
 * connections in the listen queue for seconds.  Returns -1 with errno (EPERM, EACCES: the
 * process may not raise its priority; root, CAP_SYS_NICE or RLIMIT_NICE may) and then changes
 * nothing. */
int proc_favour_self(int boost);

#endif
