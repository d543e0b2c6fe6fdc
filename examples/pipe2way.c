/*
 * pipe2way.c - two-way communication between parent and child with two pipes.
 *
 *   usage: pipe2way [child-message parent-message]
 *          pipe2way --one-pipe        shows why one pipe is not enough
 *
 * Seed notes: "파이프 기반의 프로세스간 통신", the two-pipe example.  A pipe goes one way, so
 * two-way talk takes two: "up" carries the child's message to the parent and "down" the
 * parent's reply to the child.  Each side writes its message, closes its write end (that is
 * the end of the message for the reader), and reads until end of file.  Each process first
 * closes the two ends it does not use; otherwise its own copy of a write end would keep its
 * read from ever seeing end of file.
 *
 * Why one pipe is not enough: a pipe does not know who is reading.  If both processes read and
 * write the same pipe, the child writes its question and then reads, and if the parent has not
 * read the question yet, the child gets its own question back; the parent then finds the pipe
 * empty.  The seed's book version papers over this with sleep() calls, which only make the
 * wrong outcome less likely.  --one-pipe makes the parent slow on purpose, so the child reads
 * back its own message every time.
 *
 * In mpechod: sessions and the store talk one way only (session -> store), and nothing comes
 * back on the pipe: what the master needs from a session it learns from its exit status.  The
 * client mpecho (client.c) splits the two directions of its socket, which, unlike a pipe, is
 * two-way: the writer (the child) copies standard input to the socket and then half-closes it
 * with shutdown(SHUT_WR), while the reader (the parent) prints what comes back until the
 * server closes.  The only pipe between them is one-way too: the writer's "all sent" byte.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG_MAX 1024

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

/* Reads until end of file into buf (NUL-terminated); returns the length or -1. */
static ssize_t
read_all(int fd, char *buf, size_t size)
{
	size_t got = 0;
	ssize_t n;

	while (got < size - 1) {
		n = read(fd, buf + got, size - 1 - got);
		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return (ssize_t)got;
}

/* One side: send msg on out, close out, then read the other side's message from in.  Both
 * sides write first.  That cannot deadlock because a message of at most MSG_MAX bytes fits in
 * the pipe's buffer (64 KiB on Linux, at least PIPE_BUF everywhere), so write returns without
 * waiting for a reader.  With messages larger than the buffer, both would block in write,
 * each waiting for the other to read. */
static int
converse(const char *who, const char *msg, int out, int in)
{
	char buf[MSG_MAX + 1];

	if (write_all(out, msg, strlen(msg)) < 0)
		return -1;
	close(out);
	if (read_all(in, buf, sizeof(buf)) < 0)
		return -1;
	close(in);
	printf("pipe2way: %s %d sent \"%s\" and received \"%s\"\n", who, (int)getpid(), msg, buf);
	return 0;
}

static int
two_pipes(const char *child_msg, const char *parent_msg)
{
	int up[2], down[2]; /* up: child -> parent; down: parent -> child */
	pid_t pid;

	if (pipe(up) < 0 || pipe(down) < 0) {
		perror("pipe2way: pipe");
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		perror("pipe2way: fork");
		return 1;
	}
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		if (converse("child", child_msg, up[1], down[0]) < 0) {
			perror("pipe2way: child");
			_exit(1);
		}
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	if (converse("parent", parent_msg, down[1], up[0]) < 0) {
		perror("pipe2way: parent");
		return 1;
	}
	return waitpid(pid, NULL, 0) == pid ? 0 : 1;
}

static int
one_pipe(void)
{
	static const char question[] = "Who are you?";
	struct timespec busy = { .tv_sec = 0, .tv_nsec = 500000000L };
	char buf[MSG_MAX + 1];
	int fds[2];
	ssize_t n;
	pid_t pid;

	if (pipe(fds) < 0) {
		perror("pipe2way: pipe");
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		perror("pipe2way: fork");
		return 1;
	}
	if (pid == 0) {
		write_all(fds[1], question, strlen(question));
		n = read(fds[0], buf, MSG_MAX);
		buf[n > 0 ? n : 0] = '\0';
		printf("pipe2way: one pipe: child %d wrote \"%s\" and read back \"%s\": its own "
		    "message\n", (int)getpid(), question, buf);
		_exit(0);
	}
	nanosleep(&busy, NULL); /* the parent is busy for a moment; that is enough */
	waitpid(pid, NULL, 0);
	/* Nonblocking, or this read would wait forever for a message that is already gone. */
	fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
	n = read(fds[0], buf, MSG_MAX);
	if (n < 0 && errno == EAGAIN)
		printf("pipe2way: one pipe: parent %d found the pipe empty: the child's message "
		    "never reached it\n", (int)getpid());
	else
		printf("pipe2way: one pipe: parent %d read %zd bytes\n", (int)getpid(), n);
	return 0;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "--one-pipe") == 0)
		return one_pipe();
	if (argc == 1)
		return two_pipes("Who are you?", "Thank you for your message");
	if (argc == 3 && strlen(argv[1]) <= MSG_MAX && strlen(argv[2]) <= MSG_MAX)
		return two_pipes(argv[1], argv[2]);
	fprintf(stderr, "usage: pipe2way [child-message parent-message] | pipe2way --one-pipe\n"
	    "       (messages of at most %d bytes)\n", MSG_MAX);
	return 2;
}
