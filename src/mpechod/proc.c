/*
 * proc.c - the one way mpechod starts a child process (see proc.h).
 */
#define _GNU_SOURCE
#include "proc.h"
#include "sig.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <signal.h>
#include <syslog.h>
#include <sys/wait.h>
#include <unistd.h>

static int *proc_always;

void
proc_keep_always(int *fdp)
{
	proc_always = fdp;
}

/* The kept descriptors go to 3, 4, ... in two steps, so that moving one never lands on another
 * that is still to be moved: first each is copied above every descriptor involved, then each
 * copy goes to its place.  The first step's copies and the originals are all above the last
 * place, and the one close_range takes them with everything else. */
static void
proc_keep(int *const given[], int ngiven)
{
	int *keep[PROC_KEEP_MAX + 1], tmp[PROC_KEEP_MAX + 1], nkeep = 0, base, to = 3;

	for (int i = 0; i < ngiven; i++)
		keep[nkeep++] = given[i];
	if (proc_always != NULL && *proc_always >= 0)
		keep[nkeep++] = proc_always;
	base = 3 + nkeep;
	for (int i = 0; i < nkeep; i++)
		if (*keep[i] >= base)
			base = *keep[i] + 1;
	for (int i = 0; i < nkeep; i++)
		tmp[i] = *keep[i] >= 0 ? fcntl(*keep[i], F_DUPFD_CLOEXEC, base) : -1;
	for (int i = 0; i < nkeep; i++) {
		if (tmp[i] < 0) {
			*keep[i] = -1;
			continue;
		}
		*keep[i] = dup3(tmp[i], to, O_CLOEXEC) < 0 ? -1 : to;
		to++;
	}
	close_range((unsigned)to, ~0U, 0);
}

/* The nice value children are put back at, once proc_favour_self raised the parent's (to
 * proc_raised), and the RLIMIT_NICE it had then. */
static int proc_nice, proc_raised, proc_boosted;
static struct rlimit proc_nice_limit;
static int proc_limit_saved;

static pid_t
proc_fork_as(int *const keep[], int nkeep, int favoured)
{
	/* _Fork is fork without the atfork work: the master has one thread and holds no lock at
	 * this point, and fork()'s reset of malloc's and stdio's locks in the child would dirty
	 * three pages of libc data in every session, 12 KiB per held connection. */
	pid_t pid = _Fork();

	if (pid != 0)
		return pid;
	/* Lowering one's own priority needs no privilege.  A favoured child takes the raised
	 * one again, and has its own children start at nice 0 (SCHED_RESET_ON_FORK, which anyone
	 * may set on itself; the flag is not inherited): the nice the server was started with,
	 * when that was 0.  Otherwise (a server started under nice(1)) it runs at that nice like
	 * any child, and so do its children. */
	if (proc_boosted && favoured && proc_nice == 0) {
		const struct sched_param sp = { .sched_priority = 0 };

		/* The master's SCHED_RESET_ON_FORK started it at nice 0: the raised RLIMIT_NICE
		 * lets it go back up without a privilege (it may have none left). */
		(void)setpriority(PRIO_PROCESS, 0, proc_raised);
		(void)sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, &sp);
	} else if (proc_boosted) {
		(void)setpriority(PRIO_PROCESS, 0, proc_nice);
	}
	/* No child keeps the right to raise its priority. */
	if (proc_limit_saved)
		(void)setrlimit(RLIMIT_NICE, &proc_nice_limit);
	/* syslog's socket is closed below like the rest: its number could be reused by a kept
	 * descriptor, which syslog(3) would then write to (and close). */
	closelog();
	proc_keep(keep, nkeep < PROC_KEEP_MAX ? nkeep : PROC_KEEP_MAX);
	return 0;
}

pid_t
proc_fork(int *const keep[], int nkeep)
{
	return proc_fork_as(keep, nkeep, 0);
}

pid_t
proc_fork_favoured(int *const keep[], int nkeep)
{
	return proc_fork_as(keep, nkeep, 1);
}

int
proc_kill_wait(pid_t pid)
{
	int status = 0;

	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

int
proc_helper_signals(void (*stop)(int), pid_t master, sigset_t *waitmask)
{
	static const int blocked[] = { SIGTERM, SIGUSR2, 0 };

	sig_default(SIGCHLD);
	sig_ignore(SIGINT);
	sig_ignore(SIGHUP);
	sig_ignore(SIGUSR1);
	sig_handle(SIGTERM, stop, 0);
	sig_handle(SIGUSR2, stop, 0);
	sig_setmask(blocked);
	sigprocmask(SIG_SETMASK, NULL, waitmask);
	sigdelset(waitmask, SIGTERM);
	sigdelset(waitmask, SIGUSR2);
	prctl(PR_SET_PDEATHSIG, SIGUSR2);
	return getppid() != master;
}

int
proc_favour_self(int boost)
{
	const struct sched_param sp = { .sched_priority = 0 };
	int now, want;

	errno = 0;
	now = getpriority(PRIO_PROCESS, 0);
	if (now == -1 && errno != 0)
		return -1;
	want = now - boost < -20 ? -20 : now - boost;
	if (want == now || setpriority(PRIO_PROCESS, 0, want) < 0)
		return want == now ? 0 : -1;
	proc_nice = now;
	proc_raised = want;
	proc_boosted = 1;
	/* For a favoured child (proc_fork_favoured), which has to raise its own priority again
	 * once the privileges are gone: RLIMIT_NICE up to this value.  Every child puts the
	 * limit back. */
	if (getrlimit(RLIMIT_NICE, &proc_nice_limit) == 0) {
		struct rlimit up = proc_nice_limit;
		rlim_t need = (rlim_t)(20 - want);

		if (up.rlim_max != RLIM_INFINITY && up.rlim_max < need)
			up.rlim_max = need;
		if (up.rlim_cur != RLIM_INFINITY && up.rlim_cur < need)
			up.rlim_cur = need;
		proc_limit_saved = setrlimit(RLIMIT_NICE, &up) == 0;
	}
	/* And in the kernel: the flag outlives an execve, so that the children of a new image of
	 * this process, which starts at the raised nice value and cannot raise it again, start at
	 * nice 0 rather than at it.  Best effort: proc_fork puts them back anyway. */
	(void)sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, &sp);
	return 0;
}
