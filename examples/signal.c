/*
 * signal.c - signal(2) with SIGALRM from alarm(2), and SIGINT.
 *
 * Seed notes: "시그널" and "signal()".  alarm(1) asks the kernel for a SIGALRM in one second;
 * the handler re-arms it, so one arrives every second.  SIGINT (Ctrl-C, or kill -INT <pid>)
 * runs its own handler instead of ending the program.  The program ends by itself after three
 * alarms, whether or not anyone sends SIGINT.
 *
 * What the seed's book version gets wrong, and what is done here instead:
 *
 * - Its handlers call printf (puts).  printf is not async-signal-safe: if the signal lands
 *   while main is inside printf, the handler re-enters stdio and can deadlock on its lock or
 *   corrupt its buffer.  These handlers only count, in volatile sig_atomic_t variables, and
 *   main prints.  (alarm and signal themselves are async-signal-safe.)
 *
 * - What signal() means depends on the system.  System V semantics reset the action to SIG_DFL
 *   when the signal is delivered, so a second SIGALRM would end the program; BSD semantics keep
 *   the handler.  glibc gives BSD semantics by default but System V ones when compiled with a
 *   strict standard and a POSIX feature macro, as this file is (-std=c11, _XOPEN_SOURCE).  So
 *   each handler re-installs itself first and records whether it had to; the program prints
 *   which semantics it got.  Even then a second signal that arrives before the re-install
 *   gets the default action.  sigaction.c shows the portable way, which has no such window.
 *
 * - The main loop sleeps and checks the counters when sleep returns early.  A signal that
 *   arrives after the check and before sleep starts is noticed only on the next signal; here
 *   the next alarm is a second away, so it only delays a line.  sigaction.c waits without
 *   that race (sigsuspend), as mpechod does (ppoll).
 *
 * In mpechod: no handler does more than set a flag or reap; master.c counts SIGTERM and SIGINT
 * in got_term and starts the shutdown from its loop, and session.c does not use alarm for
 * timeouts (SO_RCVTIMEO and SO_SNDTIMEO instead, see the comment at its top).
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#define ALARMS 3

static volatile sig_atomic_t alarms, interrupts, was_reset;

static void
on_alarm(int signo)
{
	int saved = errno; /* alarm and signal could change errno under main's feet */

	if (signal(signo, on_alarm) == SIG_DFL)
		was_reset = 1;
	alarms++;
	alarm(1);
	errno = saved;
}

static void
on_int(int signo)
{
	int saved = errno;

	if (signal(signo, on_int) == SIG_DFL)
		was_reset = 1;
	interrupts++;
	errno = saved;
}

int
main(void)
{
	int seen_alarms = 0, seen_ints = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (signal(SIGALRM, on_alarm) == SIG_ERR || signal(SIGINT, on_int) == SIG_ERR) {
		perror("signal: signal");
		return 1;
	}
	printf("signal: pid %d: SIGALRM every second; Ctrl-C (or kill -INT %d) is handled; "
	    "the program ends after %d alarms\n", (int)getpid(), (int)getpid(), ALARMS);
	alarm(1);
	while (seen_alarms < ALARMS) {
		/* sleep returns early when a handler has run. */
		unsigned left = sleep(10);

		while (seen_alarms < alarms)
			printf("signal: SIGALRM handler ran (%d of %d); sleep woke with %u s left\n",
			    ++seen_alarms, ALARMS, left);
		while (seen_ints < interrupts)
			printf("signal: SIGINT handler ran (%d); SIGINT no longer ends the program\n",
			    ++seen_ints);
	}
	alarm(0);
	if (was_reset)
		printf("signal: the action was reset to SIG_DFL on delivery (System V semantics); "
		    "the handlers re-installed themselves\n");
	else
		printf("signal: the handlers stayed installed after delivery (BSD semantics)\n");
	printf("signal: done after %d alarms and %d interrupts\n", seen_alarms, seen_ints);
	return 0;
}
