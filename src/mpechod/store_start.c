/*
 * store_start.c - the store process's start, one for the master and --inetd (see store_start.h).
 */
#define _GNU_SOURCE
#include "store_start.h"
#include "log.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

void
store_unusable(const char *path, const char *why)
{
	fatalx(STORE_EX_UNUSABLE, "cannot open store %.200s: %s", path, why);
}

int
store_start_file(const char *path, const struct user_ids *user)
{
	int fd = store_open(path);

	if (fd < 0)
		store_unusable(path, strerror(errno));
	if (user != NULL && fchown(fd, user->uid, user->gid) < 0)
		log_warn("cannot give %s to %s", path, user->name);
	return fd;
}

pid_t
store_start(struct store_args *a)
{
	int *const keep[] = { &a->pipe_rd, &a->filefd };
	pid_t pid = proc_fork(keep, 2);
	int null;

	if (pid != 0)
		return pid;
	null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null >= 0 && null != STDIN_FILENO) {
		dup2(null, STDIN_FILENO);
		close(null);
	}
	store_run(a);
}
