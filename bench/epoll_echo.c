/*
 * epoll_echo.c - the yardstick of bench/compare.sh: a minimal single-process TCP echo server,
 * one level-triggered epoll loop over nonblocking sockets, no store and no limits.  It reads
 * into one buffer and writes straight back; only an echo the socket would not take at once is
 * kept (per connection) until EPOLLOUT, and the connection is not read meanwhile.  A
 * connection is closed on EOF or any error.
 *
 *   cc -O2 -o epoll_echo epoll_echo.c && ./epoll_echo 127.0.0.1 7007
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSZ 65536

struct conn {
	int fd;
	size_t off, len;	/* the part of pend not yet written */
	char *pend;
};

static char buf[BUFSZ];

static void
conn_close(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->pend);
	free(c);
}

/* Writes what is pending; 1 when all of it went, 0 when the socket is full, -1 on error. */
static int
conn_flush(struct conn *c)
{
	ssize_t n;

	while (c->off < c->len) {
		if ((n = write(c->fd, c->pend + c->off, c->len - c->off)) < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		c->off += (size_t)n;
	}
	return 1;
}

/* One read and its echo; what the socket does not take waits for EPOLLOUT. */
static int
conn_echo(int ep, struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	ssize_t n = read(c->fd, buf, sizeof(buf)), w;

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	if ((w = write(c->fd, buf, (size_t)n)) < 0 && errno != EAGAIN)
		return -1;
	if (w == n)
		return 0;
	w = w < 0 ? 0 : w;
	if (c->pend == NULL && (c->pend = malloc(BUFSZ)) == NULL)
		return -1;
	memcpy(c->pend, buf + w, (size_t)(n - w));
	c->off = 0;
	c->len = (size_t)(n - w);
	return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
accept_all(int ep, int lfd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct conn *c;
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if ((c = malloc(sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		*c = (struct conn){ .fd = fd };
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			conn_close(ep, c);
	}
}

/* Handles one event on a connection: writes the rest when an echo is pending (and reads
 * again once it is all written), else reads. */
static void
conn_event(int ep, struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	int r;

	if (c->off < c->len) {
		if ((r = conn_flush(c)) == 1) {
			c->off = c->len = 0;
			r = epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		}
	} else {
		r = conn_echo(ep, c);
	}
	if (r < 0)
		conn_close(ep, c);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct epoll_event ev = { .events = EPOLLIN }, evs[256];
	char *end = NULL;
	long port = argc == 3 ? strtol(argv[2], &end, 10) : 0;
	int lfd, ep, n, one = 1;

	if (argc != 3 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 || *end != '\0' ||
	    port < 1 || port > 65535) {
		fprintf(stderr, "usage: epoll_echo IPV4ADDR PORT\n");
		return 64;
	}
	sa.sin_port = htons((unsigned short)port);
	signal(SIGPIPE, SIG_IGN);
	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, SOMAXCONN) < 0 ||
	    (ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		perror("epoll_echo");
		return 71;
	}
	for (;;) {
		if ((n = epoll_wait(ep, evs, 256, -1)) < 0 && errno != EINTR) {
			perror("epoll_wait");
			return 71;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL)
				accept_all(ep, lfd);
			else
				conn_event(ep, evs[i].data.ptr);
		}
	}
}
