/*
 * sigchld.c - reaping children in a SIGCHLD handler, so that none stays a zombie.
 *
 *   usage: sigchld [children]      default 5, at most 64
 *
 * Seed notes: "시그널 핸들링을 통한 좀비 프로세스의 소멸", and the note on process-based
 * servers: signals do not queue, so the handler must be ready to reap several children.
 * The children wait on a pipe and all exit at once when the parent closes it.  The parent
 * keeps SIGCHLD blocked meanwhile, so the exits pile up behind one pending signal, which one
 * run of the handler must turn into every exit status.
 *
 * The seed's handler, and what is done here instead:
 *
 * - sigaction(SIGCHID, ...) does not compile: the signal is SIGCHLD.  (Nor does "stauts".)
 *
 * - It calls waitpid once per signal.  Several children that end close together raise one
 *   SIGCHLD, so all but one would stay zombies.  Loop until waitpid returns 0 (children
 *   remain, none has ended) or -1 (ECHILD, no children at all).
 *
 * - It reads status without looking at what waitpid returned.  With 0 or -1, status was never
 *   written.  Use status only when waitpid returned a pid.
 *
 * - It calls printf, which is not async-signal-safe (see signal.c).  This handler stores the
 *   pids and statuses in arrays that main prints later.  That is safe only because SIGCHLD is
 *   blocked everywhere except inside sigsuspend: the handler never interrupts main while it
 *   reads the arrays.
 *
 * - It does not save errno, which waitpid sets to ECHILD at the end of every loop: main would
 *   find errno changed under its feet, between a failed call and the code that reads errno.
 *
 * SA_NOCLDSTOP keeps children that are stopped (Ctrl-Z), rather than ended, from raising it.
 *
 * In mpechod: this is master_sigchld() in master.c nearly line for line: a waitpid(-1, ...,
 * WNOHANG) loop into a small array (reap_ring), errno saved, SIGCHLD blocked except inside
 * ppoll(2), and the master's loop reports what was reaped.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 64
#define DEADLINE_SECONDS 5

static struct { pid_t pid; int status; } reaped[MAX_CHILDREN];
static volatile sig_atomic_t nreaped, handler_runs, timed_out;

static void
on_sigchld(int signo)
{
	int saved = errno, status;
	pid_t pid;

	(void)signo;
	handler_runs++;
	while (nreaped < MAX_CHILDREN && (pid = waitpid(-1, &status, WNOHANG)) > 0) {
		reaped[nreaped].pid = pid;
		reaped[nreaped].status = status;
		nreaped++;
	}
	errno = saved;
}

static void
on_alarm(int signo)
{
	(void)signo;
	timed_out = 1;
}

static int
handle(int signo, void (*handler)(int), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigfillset(&sa.sa_mask);
	sa.sa_flags = flags;
	return sigaction(signo, &sa, NULL);
}

/* A child: wait for the parent to close the start pipe, then exit with the given code. */
static _Noreturn void
child(int start[2], int code)
{
	char c;

	/* Our copy of the write end would keep read() from ever seeing end of file. */
	close(start[1]);
	while (read(start[0], &c, 1) < 0 && errno == EINTR)
		;
	_exit(code);
}

static int
fork_children(int n)
{
	int start[2];
	pid_t pid;

	if (pipe(start) < 0) {
		perror("sigchld: pipe");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		pid = fork();
		if (pid < 0) {
			perror("sigchld: fork");
			n = i;
			break;
		}
		if (pid == 0)
			child(start, 10 + i);
		printf("sigchld: forked child %d; it will exit with %d\n", (int)pid, 10 + i);
	}
	printf("sigchld: closing the start pipe: %d children exit at once\n", n);
	close(start[0]);
	close(start[1]);
	return n;
}

int
main(int argc, char **argv)
{
	struct timespec pause_ts = { .tv_sec = 0, .tv_nsec = 300000000L };
	sigset_t block, waitmask;
	int n = 5, forked;

	if (argc > 1) {
		char *end;
		long v = strtol(argv[1], &end, 10);
		if (argc > 2 || end == argv[1] || *end != '\0' || v < 1 || v > MAX_CHILDREN) {
			fprintf(stderr, "usage: sigchld [children 1-%d]\n", MAX_CHILDREN);
			return 2;
		}
		n = (int)v;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGALRM);
	if (sigprocmask(SIG_BLOCK, &block, &waitmask) < 0 ||
	    handle(SIGCHLD, on_sigchld, SA_NOCLDSTOP) < 0 || handle(SIGALRM, on_alarm, 0) < 0) {
		perror("sigchld: signals");
		return 1;
	}
	sigdelset(&waitmask, SIGCHLD);
	sigdelset(&waitmask, SIGALRM);

	forked = fork_children(n);
	if (forked <= 0)
		return 1;
	nanosleep(&pause_ts, NULL); /* SIGCHLD stays pending while the children exit */

	alarm(DEADLINE_SECONDS); /* so that a child that never exits cannot hang us */
	while (nreaped < forked && !timed_out)
		sigsuspend(&waitmask);
	alarm(0);

	for (int i = 0; i < nreaped; i++)
		printf("sigchld: reaped child %d, exit status %d\n", (int)reaped[i].pid,
		    WIFEXITED(reaped[i].status) ? WEXITSTATUS(reaped[i].status) : -1);
	printf("sigchld: the handler ran %d time(s) for %d children: one SIGCHLD can stand for "
	    "several exits\n", (int)handler_runs, forked);
	if (nreaped < forked) {
		printf("sigchld: only %d of %d children reaped after %d s\n", (int)nreaped, forked,
		    DEADLINE_SECONDS);
		return 1;
	}
	printf("sigchld: all %d children reaped, no zombie left; parent %d stays 1 s more\n",
	    forked, (int)getpid());
	sleep(1);
	return 0;
}
