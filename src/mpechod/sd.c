/*
 * sd.c - socket activation and readiness notification, systemd's protocols spoken directly (see
 * sd.h, sd_listen_fds(3), sd_notify(3) and systemd's notify-selfcontained-example.c).  The master
 * uses it: at start, to take the sockets it was passed instead of binding; while it runs, to
 * tell the manager it is ready, reloading, stopping, and its figures.
 */
#define _GNU_SOURCE
#include "sd.h"
#include "num.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Fills err, sets errno to e, and returns -1. */
__attribute__((format(printf, 4, 5))) static int
sd_fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	errno = e;
	return -1;
}

int
sd_listen_fds_env(const char *listen_pid, const char *listen_fds, pid_t self, int *n, char *err,
    size_t errlen)
{
	long pid, count;

	*n = 0;
	if (listen_pid == NULL || listen_fds == NULL)
		return 0;
	if (num_parse(listen_pid, 1, INT_MAX, &pid) == -1)
		return sd_fail(err, errlen, EINVAL, "LISTEN_PID='%.32s' is not a process id",
		    listen_pid);
	if (pid != (long)self)
		return 0;
	if (num_parse(listen_fds, 0, INT_MAX, &count) == -1)
		return sd_fail(err, errlen, EINVAL, "LISTEN_FDS='%.32s' is not a number", listen_fds);
	if (count > SD_FDS_MAX)
		return sd_fail(err, errlen, E2BIG, "LISTEN_FDS=%.32s: more sockets than the %d mpechod "
		    "can serve", listen_fds, SD_FDS_MAX);
	*n = (int)count;
	return *n;
}

int
sd_listen_fds(int unset, char *err, size_t errlen)
{
	int n, r;

	r = sd_listen_fds_env(getenv("LISTEN_PID"), getenv("LISTEN_FDS"), getpid(), &n, err, errlen);
	if (unset) {
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_FDNAMES");
	}
	return r;
}

/* What a socket is: its type, protocol and family, as the kernel reports them. */
struct sd_sock {
	int type, proto, family, accepting;
};

static int
sd_sockopt(int fd, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, opt, &v, &len) == -1)
		return -1;
	return v;
}

/* Fills *s for fd; -1 with err ("fd 3 is not a socket") when fd is none. */
static int
sd_describe(int fd, struct sd_sock *s, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) == -1)
		return sd_fail(err, errlen, errno, "fd %d is not open", fd);
	if (!S_ISSOCK(st.st_mode))
		return sd_fail(err, errlen, ENOTSOCK, "fd %d is not a socket", fd);
	s->type = sd_sockopt(fd, SO_TYPE);
	s->proto = sd_sockopt(fd, SO_PROTOCOL);
	s->family = sd_sockopt(fd, SO_DOMAIN);
	s->accepting = sd_sockopt(fd, SO_ACCEPTCONN);
	if (s->type == -1 || s->proto == -1 || s->family == -1 || s->accepting == -1)
		return sd_fail(err, errlen, errno, "fd %d: cannot read its socket options", fd);
	return 0;
}

/* Makes fd close-on-exec and nonblocking, as the master's own listeners are. */
static int
sd_adopt(int fd, char *err, size_t errlen)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFD)) == -1 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == -1 ||
	    (fl = fcntl(fd, F_GETFL)) == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return sd_fail(err, errlen, errno, "fd %d: cannot set close-on-exec and nonblocking",
		    fd);
	return 0;
}

/* The kind of socket s is, for the messages. */
static const char *
sd_kind(const struct sd_sock *s)
{
	if (s->type == SOCK_STREAM && s->proto == IPPROTO_TCP)
		return "TCP";
	if (s->type == SOCK_DGRAM && s->proto == IPPROTO_UDP)
		return "UDP";
	if (s->type == SOCK_STREAM)
		return "stream";
	if (s->type == SOCK_DGRAM)
		return "datagram";
	return "non-stream, non-datagram";
}

/* Fills *s for fd and checks that it is an IPv4 or IPv6 socket of type and proto, named name
 * in the messages. */
static int
sd_check(int fd, struct sd_sock *s, int type, int proto, const char *name, char *err,
    size_t errlen)
{
	if (sd_describe(fd, s, err, errlen) == -1)
		return -1;
	if (s->family == AF_UNIX)
		return sd_fail(err, errlen, EAFNOSUPPORT, "fd %d is a unix socket, not %s", fd, name);
	if (s->type != type || s->proto != proto)
		return sd_fail(err, errlen, EPROTOTYPE, "fd %d is a %s socket, not %s", fd, sd_kind(s),
		    name);
	if (s->family != AF_INET && s->family != AF_INET6)
		return sd_fail(err, errlen, EAFNOSUPPORT, "fd %d is a socket of family %d, not IPv4 "
		    "or IPv6", fd, s->family);
	return 0;
}

int
sd_check_listener(int fd, char *err, size_t errlen)
{
	struct sd_sock s = { 0 };

	if (sd_check(fd, &s, SOCK_STREAM, IPPROTO_TCP, "TCP", err, errlen) == -1)
		return -1;
	if (!s.accepting)
		return sd_fail(err, errlen, EINVAL, "fd %d is a TCP socket that is not listening", fd);
	return sd_adopt(fd, err, errlen);
}

int
sd_check_datagram(int fd, char *err, size_t errlen)
{
	struct sd_sock s = { 0 };
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} u;
	socklen_t len = sizeof(u);

	if (sd_check(fd, &s, SOCK_DGRAM, IPPROTO_UDP, "UDP", err, errlen) == -1)
		return -1;
	memset(&u, 0, sizeof(u));
	if (getsockname(fd, &u.sa, &len) == -1)
		return sd_fail(err, errlen, errno, "fd %d: cannot read its address", fd);
	if ((u.sa.sa_family == AF_INET ? u.in.sin_port : u.in6.sin6_port) == 0)
		return sd_fail(err, errlen, EINVAL, "fd %d is a UDP socket that is not bound", fd);
	return sd_adopt(fd, err, errlen);
}

/* NOTIFY_SOCKET's value as an address: "/path" or "@abstract" (a leading NUL in sun_path, and
 * a length that counts only the name, as systemd binds it). */
static int
sd_notify_addr(const char *text, struct sockaddr_un *sun, socklen_t *len)
{
	size_t n;

	if (text == NULL || text[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	if (text[0] != '/' && text[0] != '@') {
		errno = EAFNOSUPPORT;
		return -1;
	}
	n = strlen(text);
	if (n >= sizeof(sun->sun_path) || n < 2) {
		errno = n < 2 ? EINVAL : ENAMETOOLONG;
		return -1;
	}
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, text, n);
	if (text[0] == '@')
		sun->sun_path[0] = '\0';
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (text[0] == '/'));
	return 0;
}

int
sd_notify_open(const char *notify_socket)
{
	struct sockaddr_un sun;
	socklen_t len;

	if (sd_notify_addr(notify_socket, &sun, &len) == -1)
		return -1;
	return socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
}

int
sd_notify_send(int fd, const char *addr_text, const char *msg)
{
	struct sockaddr_un sun;
	socklen_t len;
	size_t n = strlen(msg);
	ssize_t w;

	if (sd_notify_addr(addr_text, &sun, &len) == -1)
		return -1;
	do
		w = sendto(fd, msg, n, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sun, len);
	while (w == -1 && errno == EINTR);
	if (w == -1)
		return -1;
	if ((size_t)w != n) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}
