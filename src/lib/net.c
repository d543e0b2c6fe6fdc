/*
 * net.c - listening on numeric IPv6 and IPv4 addresses, and formatting addresses.  Connecting
 * by name (getaddrinfo) is in dial.c, so that the statically linked server never links the
 * resolver.
 */
#define _GNU_SOURCE
#include "net.h"
#include "io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define NET_BACKLOG (SOMAXCONN > 511 ? SOMAXCONN : 511)

const char *
net_strip_brackets(const char *host, char *buf, size_t len)
{
	size_t n;

	if (host == NULL || host[0] != '[')
		return host;
	n = strlen(host);
	if (n < 2 || host[n - 1] != ']' || n - 2 >= len)
		return host;
	memcpy(buf, host + 1, n - 2);
	buf[n - 2] = '\0';
	return buf;
}

static void
net_set_port(struct sockaddr *sa, int port)
{
	if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
	else if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
}

int
net_error(char *err, size_t errlen, const char *what, const struct sockaddr *sa, int fd)
{
	int saved = errno;
	char addr[NET_ADDRLEN];

	net_addr_str(sa, addr, sizeof(addr));
	snprintf(err, errlen, "%s %s: %s", what, addr, strerror(saved));
	if (fd >= 0)
		close(fd);
	errno = saved;
	return -1;
}

/* SO_REUSEADDR only for TCP: it lets a restarted server bind past old connections in
 * TIME_WAIT, while for UDP it would let a second server share the port unnoticed. */
static int
net_listen_sa(struct sockaddr *sa, socklen_t salen, int type, int *port, char *err,
    size_t errlen)
{
	const char *what = type == SOCK_DGRAM ? "cannot bind UDP" : "cannot listen on";
	char addr[NET_ADDRLEN];
	int fd, one = 1;

	if (*port != 0)
		net_set_port(sa, *port);

	fd = socket(sa->sa_family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return net_error(err, errlen, what, sa, -1);
	if ((type == SOCK_STREAM &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) ||
	    (sa->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, sa, salen) < 0 || (type == SOCK_STREAM && listen(fd, NET_BACKLOG) < 0))
		return net_error(err, errlen, what, sa, fd);
	if (*port == 0)
		*port = net_local_addr(fd, addr, sizeof(addr));
	return fd;
}

/* Parses a numeric IPv4 or IPv6 address ("::1" or "[::1]"); no name is looked up. */
static int
net_parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	char buf[NET_ADDRLEN];

	memset(ss, 0, sizeof(*ss));
	text = net_strip_brackets(text, buf, sizeof(buf));
	if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		*len = sizeof(*s6);
		return 0;
	}
	return -1;
}

int
net_listen(const char *host, int type, int *port, int *fds, int max, char *err, size_t errlen)
{
	static const char *const wildcard[] = { "::", "0.0.0.0", NULL };
	static const char *const loopback[] = { "127.0.0.1", "::1", NULL };
	const char *one[] = { host, NULL };
	const char *const *list = one;
	struct sockaddr_storage ss;
	socklen_t len;
	int n = 0, fd;

	if (host == NULL)
		list = wildcard;
	else if (strcmp(host, "localhost") == 0)
		list = loopback;
	for (; *list != NULL && n < max; list++) {
		if (net_parse_addr(*list, &ss, &len) < 0) {
			snprintf(err, errlen, "bind address '%.64s' is not a numeric IPv4 or IPv6 "
			    "address", *list);
			goto error;
		}
		fd = net_listen_sa((struct sockaddr *)&ss, len, type, port, err, errlen);
		if (fd < 0) {
			/* A host without IPv6 (or IPv4) still serves on the other family. */
			if (host == NULL || strcmp(host, "localhost") == 0) {
				if (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)
					continue;
			}
			goto error;
		}
		fds[n++] = fd;
	}
	if (n == 0)
		snprintf(err, errlen, "no usable address for %s", host ? host : "*");
	return n > 0 ? n : -1;
error:
	while (n > 0)
		close(fds[--n]);
	return -1;
}

void
net_addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
	char ip[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(s6->sin6_port));
	} else if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
	} else if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(s4->sin_port));
	} else {
		snprintf(buf, len, "unknown");
	}
}

int
net_local_addr(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -1;
	net_addr_str((struct sockaddr *)&ss, buf, len);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

enum net_peer_state
net_peer_state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int queued = 0;

	/* TCP_INFO, not a MSG_PEEK read: a read would consume a pending reset's error. */
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return NET_PEER_LIVE;
	if (ti.tcpi_state == TCP_CLOSE)
		return NET_PEER_RESET;
	if (ti.tcpi_state == TCP_CLOSE_WAIT && ioctl(fd, SIOCINQ, &queued) == 0)
		return queued == 0 ? NET_PEER_CLOSED : NET_PEER_HALF;
	return NET_PEER_LIVE;
}
