/*
 * sigaction.c - sigaction(2): a handler that stays installed, EINTR, and a race-free wait.
 *
 * Seed notes: "sigaction()".  The seed fills in sa_handler, sa_mask and sa_flags and calls
 * sigaction(SIGALRM, &act, 0); that is right, and this program adds three things:
 *
 * - Zero the whole struct before filling it in.  It has more members than the three the notes
 *   show (on Linux, sa_restorer; and sa_sigaction, used with SA_SIGINFO), and stack garbage in
 *   them is undefined behaviour waiting to happen.
 *
 * - The action set with sigaction stays until it is changed: no System V reset, whatever the
 *   feature macros (compare signal.c).  sa_mask lists signals held off while the handler runs;
 *   sa_flags = 0 means no SA_RESTART, so a blocking call that the signal interrupts fails with
 *   EINTR and the caller gets to look at its flags.  Part 2 shows that on a read(2) that would
 *   otherwise wait forever.
 *
 * - A flag set by a handler is waited for without a race: block the signal, check the flag,
 *   and sleep in sigsuspend(2), which unblocks the signal and sleeps in one step.  With
 *   "check, then pause()" a signal arriving between the two is slept through.
 *
 * In mpechod: sig_handle() in sig.c is this call (with every other signal in sa_mask, and
 * flags 0 or SA_NOCLDSTOP); the master keeps its signals blocked except inside ppoll(2), the
 * same one-step unblock-and-wait as sigsuspend, and sig.h says why no handler sets SA_RESTART.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ALARMS 2

static volatile sig_atomic_t alarms, rearm;

static void
on_alarm(int signo)
{
	int saved = errno;

	(void)signo;
	alarms++;
	if (rearm)
		alarm(1);
	errno = saved;
}

static const char *
action_name(const struct sigaction *sa)
{
	if (sa->sa_handler == SIG_DFL)
		return "SIG_DFL (the default: terminate)";
	if (sa->sa_handler == SIG_IGN)
		return "SIG_IGN";
	return "a handler";
}

/* Part 1: ALARMS alarms, each awaited with sigsuspend while SIGALRM is otherwise blocked. */
static int
wait_for_alarms(void)
{
	sigset_t block, waitmask, orig;

	sigemptyset(&block);
	sigaddset(&block, SIGALRM);
	if (sigprocmask(SIG_BLOCK, &block, &orig) < 0)
		return -1;
	waitmask = orig;
	sigdelset(&waitmask, SIGALRM);
	for (int i = 1; i <= ALARMS; i++) {
		alarm(1);
		while (alarms < i)
			sigsuspend(&waitmask); /* always returns -1 with EINTR */
		printf("sigaction: SIGALRM %d handled; the handler is still installed\n", i);
	}
	return sigprocmask(SIG_SETMASK, &orig, NULL);
}

/* Part 2: nobody ever writes to this pipe, so only a signal can end the read. */
static int
show_eintr(void)
{
	int p[2], err;
	ssize_t n;
	char c;

	if (pipe(p) < 0) {
		perror("sigaction: pipe");
		return -1;
	}
	rearm = 1; /* if the first alarm came before read started, the next one would end it */
	alarm(1);
	n = read(p[0], &c, 1);
	err = errno;
	rearm = 0;
	alarm(0);
	close(p[0]);
	close(p[1]);
	if (n < 0 && err == EINTR)
		printf("sigaction: read() on an empty pipe failed with EINTR when SIGALRM arrived: "
		    "without SA_RESTART a blocking call returns to its caller\n");
	else
		printf("sigaction: read() returned %zd, errno %d: expected -1 with EINTR\n", n, err);
	return n < 0 && err == EINTR ? 0 : -1;
}

int
main(void)
{
	struct sigaction sa, old;

	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGINT); /* a Ctrl-C waits until on_alarm has returned */
	sa.sa_flags = 0;                /* no SA_RESTART, no SA_RESETHAND */
	if (sigaction(SIGALRM, &sa, &old) < 0) {
		perror("sigaction: sigaction");
		return 1;
	}
	printf("sigaction: pid %d: installed on_alarm for SIGALRM; the previous action was %s\n",
	    (int)getpid(), action_name(&old));
	if (wait_for_alarms() < 0) {
		perror("sigaction: sigprocmask");
		return 1;
	}
	if (show_eintr() < 0)
		return 1;
	printf("sigaction: done: the handler ran %d times and the process is still alive\n",
	    (int)alarms);
	return 0;
}
