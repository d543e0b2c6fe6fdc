/*
 * fork.c - fork(2) and its two return values.
 *
 * Seed notes: "프로세스의 생성(fork)".  fork copies the calling process, and both copies go on
 * from the return of fork.  The parent gets the child's pid (always > 0), the child gets 0, and
 * -1 means that no child was made; the seed's examples never check for -1, and a parent that
 * takes -1 for a pid would later pass it to kill(2) or waitpid(2), where -1 means "every
 * process" or "any child".  The child's memory is a copy: a variable it changes keeps its old
 * value in the parent.
 *
 * In mpechod: master.c forks one session per accepted connection (master_fork_session) and the
 * store once (master_start_store); right after fork each child closes what it inherited but
 * does not own, and sessions leave with _exit.
 */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int counter = 10; /* a global: the child gets a copy too */

int
main(void)
{
	int local = 20;
	pid_t pid;

	/* Output to a pipe or a file is fully buffered.  A line printed before fork but not yet
	 * flushed would sit in both copies of the buffer and come out twice, so every example
	 * makes stdout line buffered (fflush(stdout) just before fork works too). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("fork: before fork: pid %d, counter %d, local %d\n", (int)getpid(), counter, local);

	pid = fork();
	if (pid < 0) {
		perror("fork: fork");
		return 1;
	}
	if (pid == 0) {
		counter++;
		local++;
		printf("fork: child: fork returned 0; my pid is %d, my parent is %d\n",
		    (int)getpid(), (int)getppid());
		printf("fork: child: changed my copies to counter %d, local %d\n", counter, local);
		/* _exit, not exit or return from main: exit would run the atexit handlers and
		 * flush the stdio buffers that the child inherited, a second time. */
		_exit(0);
	}

	printf("fork: parent: fork returned %d (the child's pid); my pid is %d\n", (int)pid,
	    (int)getpid());
	if (waitpid(pid, NULL, 0) < 0) {
		perror("fork: waitpid");
		return 1;
	}
	printf("fork: parent: after the child exited: counter %d, local %d (the child changed "
	    "only its own copies)\n", counter, local);
	return 0;
}
