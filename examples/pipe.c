/*
 * pipe.c - a pipe from a child to its parent.
 *
 *   usage: pipe [message]      default "Who are you?"
 *
 * Seed notes: "파이프 기반의 프로세스간 통신".  pipe(fds) makes fds[0] the read end and fds[1]
 * the write end; fork copies both into the child.  The child writes the message, the parent
 * reads it.  What the seed's snippet leaves out:
 *
 * - Each process closes the end it does not use.  read() returns 0 (end of file) only when
 *   every copy of the write end is closed, the parent's own copy included; a parent that kept
 *   fds[1] open would wait forever once the child is done.  A writer whose readers are all
 *   gone gets EPIPE (and SIGPIPE) instead of filling the pipe.
 *
 * - A pipe carries bytes, not messages: one read may return part of a write, or parts of two.
 *   So the parent reads until end of file instead of trusting a single read(..., BUF_SIZE),
 *   and write() is looped too, since a write can be short.
 *
 * - The seed writes sizeof(str), the terminating NUL included, which the reader then has to
 *   know about.  Send the bytes, and let end of file (or a length) mark the end.
 *
 * In mpechod: the store pipe, created in master_open_store() (master.c); sessions hold only
 * the write end, the store only the read end, and the store ends when read() returns 0, that
 * is, when the last writer has closed (store_drain in store.c).  See also pipe_store.c.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int
write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *msg = argc > 1 ? argv[1] : "Who are you?";
	char buf[4096];
	size_t got = 0;
	ssize_t n;
	int fds[2];
	pid_t pid;

	if (argc > 2 || strlen(msg) >= sizeof(buf)) {
		fprintf(stderr, "usage: pipe [message shorter than %zu bytes]\n", sizeof(buf));
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pipe(fds) < 0) {
		perror("pipe: pipe");
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		perror("pipe: fork");
		return 1;
	}
	if (pid == 0) {
		close(fds[0]);
		if (write_all(fds[1], msg, strlen(msg)) < 0) {
			perror("pipe: child: write");
			_exit(1);
		}
		printf("pipe: child %d wrote %zu bytes\n", (int)getpid(), strlen(msg));
		_exit(0);
	}

	close(fds[1]);
	while (got < sizeof(buf) - 1 && (n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("pipe: read");
			return 1;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	close(fds[0]);
	printf("pipe: parent %d read %zu bytes from child %d, then end of file: \"%s\"\n",
	    (int)getpid(), got, (int)pid, buf);
	if (waitpid(pid, NULL, 0) < 0) {
		perror("pipe: waitpid");
		return 1;
	}
	return 0;
}
