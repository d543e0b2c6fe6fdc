/*
 * zombie.c - a child that has exited but has not been waited for is a zombie.
 *
 * Seed notes: "좀비 프로세스".  When a process exits, the kernel keeps its pid and exit status
 * until the parent collects them with wait or waitpid; until then the process shows as Z
 * (<defunct>) in ps.  Zombies use no memory beyond that entry, but they hold their pid, and a
 * server that never reaps fills the process table.  (If the parent exits first, the child is
 * adopted by init, or a subreaper, which reaps it.)
 *
 * What it does, line by line, so that you (or a test) can look at /proc/<pid>/stat:
 *   "zombie: parent P forked child C"
 *   "zombie: child C is now a zombie; ..."   C has exited and is not reaped for 2 s
 *   "zombie: reaped C (exit status 7) ..."   C is gone; the parent stays 1 s more
 *
 * In mpechod: master.c reaps every session and the store (master_sigchld), so a long-running
 * server leaves no zombies; sigchld.c shows how.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define ZOMBIE_SECONDS 2
#define GONE_SECONDS 1

int
main(void)
{
	siginfo_t info;
	int status;
	pid_t pid;

	setvbuf(stdout, NULL, _IOLBF, 0);
	pid = fork();
	if (pid < 0) {
		perror("zombie: fork");
		return 1;
	}
	if (pid == 0) {
		printf("zombie: child %d exits with status 7\n", (int)getpid());
		_exit(7);
	}
	printf("zombie: parent %d forked child %d\n", (int)getpid(), (int)pid);

	/* Wait until the child has exited but leave it unreaped: WNOWAIT reports the exit and
	 * keeps the child waitable.  A sleep would usually do as well, but how long is long
	 * enough on a loaded machine? */
	while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) < 0) {
		if (errno != EINTR) {
			perror("zombie: waitid");
			return 1;
		}
	}
	printf("zombie: child %d is now a zombie; the parent sleeps %d s without reaping it "
	    "(try: ps -o pid,stat,comm -p %d)\n", (int)pid, ZOMBIE_SECONDS, (int)pid);
	sleep(ZOMBIE_SECONDS);

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("zombie: waitpid");
			return 1;
		}
	}
	printf("zombie: reaped %d (exit status %d); it is gone, and the parent stays %d s more\n",
	    (int)pid, WIFEXITED(status) ? WEXITSTATUS(status) : -1, GONE_SECONDS);
	sleep(GONE_SECONDS);
	return 0;
}
