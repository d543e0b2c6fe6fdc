/*
 * waitpid.c - waitpid(2) with WNOHANG: poll for a child's end while doing other work.
 *
 *   usage: waitpid [exit-code]      default 5; the child exits with it after 0.6 s
 *
 * Seed notes: "waitpid()".  waitpid(pid, &status, WNOHANG) has three outcomes, and the seed's
 * loop, while (!waitpid(-1, &status, WNOHANG)), tells only two apart:
 *   > 0   that child ended and status is filled in;
 *     0   children exist but none has ended yet: go and do something else;
 *    -1   an error: ECHILD (no such child, for example one already reaped) or EINTR.
 * The seed's loop also stops on -1 and then reads a status that waitpid never wrote.
 *
 * In mpechod: the master reaps with waitpid(-1, &status, WNOHANG) in its SIGCHLD handler (see
 * sigchld.c) and with a blocking waitpid(store_pid, NULL, 0) after killing a store that did
 * not finish in time (master_finish in master.c).
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void
sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int
main(int argc, char **argv)
{
	int code = 5, status, polls = 0;
	char *end;
	long v;
	pid_t pid, r;

	if (argc > 1) {
		errno = 0;
		v = strtol(argv[1], &end, 10);
		if (argc > 2 || errno != 0 || end == argv[1] || *end != '\0' || v < 0 || v > 255) {
			fprintf(stderr, "usage: waitpid [exit-code 0-255]\n");
			return 2;
		}
		code = (int)v;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	pid = fork();
	if (pid < 0) {
		perror("waitpid: fork");
		return 1;
	}
	if (pid == 0) {
		sleep_ms(600);
		_exit(code);
	}
	printf("waitpid: forked child %d; it exits with %d after 0.6 s\n", (int)pid, code);

	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r == 0) {
			printf("waitpid: poll %d: child %d still running; the parent does other "
			    "work\n", ++polls, (int)pid);
			sleep_ms(100);
			continue;
		}
		if (errno == EINTR)
			continue;
		perror("waitpid: waitpid");
		return 1;
	}
	if (WIFEXITED(status))
		printf("waitpid: child %d exited after %d polls: WEXITSTATUS %d\n", (int)pid, polls,
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		printf("waitpid: child %d was killed by signal %d\n", (int)pid, WTERMSIG(status));
	return 0;
}
