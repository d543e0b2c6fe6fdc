/*
 * wait.c - wait(2) and the status macros.
 *
 *   usage: wait [exit-code [signal]]      defaults: 3 and 15 (SIGTERM)
 *
 * Seed notes: "wait()" and "statloc 매크로".  Two children end in the two ways a process can
 * end: the first calls _exit(exit-code), the second is killed by the parent with the signal.
 * wait blocks until some child has ended and fills in a status that only the macros may
 * decode: WIFEXITED then WEXITSTATUS for a normal exit (the low 8 bits of the exit code),
 * WIFSIGNALED then WTERMSIG for death by a signal.  WEXITSTATUS of a killed child is
 * meaningless, so test WIFEXITED first, as the seed does.  (WIFSTOPPED is only ever true with
 * waitpid's WUNTRACED.)  What the seed leaves out: wait returns -1 too, with ECHILD once no
 * child is left, which is how a loop knows it is done, and with EINTR when a signal handler
 * interrupted it; the status is only valid when wait returned a pid.
 *
 * In mpechod: master_child_died() in master.c tells a session that exited (its exit code is
 * the reason it ended, see session_reason) from one killed by a signal, for which the master
 * writes the close record itself.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Signals whose default action ends a process without a core file. */
static const int killers[] = { SIGHUP, SIGINT, SIGKILL, SIGPIPE, SIGALRM, SIGTERM, SIGUSR1,
	SIGUSR2 };

static int
parse_int(const char *s, long lo, long hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int
is_killer(int signo)
{
	for (size_t i = 0; i < sizeof(killers) / sizeof(killers[0]); i++)
		if (killers[i] == signo)
			return 1;
	return 0;
}

static void
describe(pid_t pid, int status)
{
	if (WIFEXITED(status))
		printf("wait: child %d exited normally: WIFEXITED true, WEXITSTATUS %d\n", (int)pid,
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		printf("wait: child %d was killed: WIFSIGNALED true, WTERMSIG %d (%s)\n", (int)pid,
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		printf("wait: child %d: status 0x%x is neither an exit nor a signal\n", (int)pid,
		    (unsigned)status);
}

/* The child to be killed just waits.  The alarm is a safety net: if the parent's signal were
 * lost, SIGALRM would end the child after 10 s and the program would still finish. */
static _Noreturn void
wait_for_death(void)
{
	alarm(10);
	for (;;)
		pause();
}

int
main(int argc, char **argv)
{
	int code = 3, signo = SIGTERM, status;
	pid_t exiter, victim, pid;
	sigset_t none;

	if (argc > 3 || (argc > 1 && parse_int(argv[1], 0, 255, &code) < 0) ||
	    (argc > 2 && (parse_int(argv[2], 1, INT_MAX, &signo) < 0 || !is_killer(signo)))) {
		fprintf(stderr, "usage: wait [exit-code 0-255 [signal:");
		for (size_t i = 0; i < sizeof(killers) / sizeof(killers[0]); i++)
			fprintf(stderr, " %d", killers[i]);
		fprintf(stderr, "]]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* An ignored or blocked signal stays ignored or blocked across fork (and exec).  If
	 * whoever started us ignored this one, the child would never die of it, so put back the
	 * default action and an empty mask before forking. */
	signal(signo, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	exiter = fork();
	if (exiter == 0)
		_exit(code);
	victim = exiter < 0 ? -1 : fork();
	if (victim == 0)
		wait_for_death();
	if (exiter < 0 || victim < 0) {
		perror("wait: fork");
		return 1;
	}
	printf("wait: child %d calls _exit(%d)\n", (int)exiter, code);
	printf("wait: child %d waits to be killed with signal %d\n", (int)victim, signo);
	if (kill(victim, signo) < 0) {
		perror("wait: kill");
		return 1;
	}

	/* Reap in whatever order the children end, until wait says there are none left. */
	for (;;) {
		pid = wait(&status);
		if (pid > 0) {
			describe(pid, status);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == ECHILD)
			break;
		perror("wait: wait");
		return 1;
	}
	printf("wait: wait returned -1 with ECHILD: no children left\n");
	return 0;
}
