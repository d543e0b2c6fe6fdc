/*
 * net.c - listening and connecting over getaddrinfo, IPv6 and IPv4 alike.
 */
#define _GNU_SOURCE
#include "net.h"
#include "io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NET_BACKLOG (SOMAXCONN > 511 ? SOMAXCONN : 511)

/* Accepts "[::1]" as well as "::1" for an IPv6 literal. */
static const char *
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

static int
net_listen_ai(struct addrinfo *ai, int *port, char *err, size_t errlen)
{
	char addr[NET_ADDRLEN];
	int fd, one = 1;

	if (*port != 0)
		net_set_port(ai->ai_addr, *port);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0) {
		one = errno;
		net_addr_str(ai->ai_addr, addr, sizeof(addr));
		snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(one));
		errno = one;
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto error;
	if (ai->ai_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto error;
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, NET_BACKLOG) < 0)
		goto error;
	if (*port == 0)
		*port = net_local_addr(fd, addr, sizeof(addr));
	return fd;
error:
	net_addr_str(ai->ai_addr, addr, sizeof(addr));
	one = errno;
	snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(one));
	close(fd);
	errno = one;
	return -1;
}

int
net_listen(const char *host, int *port, int numeric, int *fds, int max, char *err, size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	char portstr[16], hbuf[NET_ADDRLEN];
	int rc, n = 0, fd;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | (numeric ? AI_NUMERICHOST : 0);
	snprintf(portstr, sizeof(portstr), "%d", *port);
	host = net_strip_brackets(host, hbuf, sizeof(hbuf));
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve bind address %s: %s", host ? host : "*",
		    gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL && n < max; ai = ai->ai_next) {
		fd = net_listen_ai(ai, port, err, errlen);
		if (fd < 0) {
			/* A wildcard bind on a host without IPv6 is not an error. */
			if (host == NULL && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL))
				continue;
			goto error;
		}
		fds[n++] = fd;
	}
	freeaddrinfo(res);
	if (n == 0)
		snprintf(err, errlen, "no usable address for %s", host ? host : "*");
	return n > 0 ? n : -1;
error:
	freeaddrinfo(res);
	while (n > 0)
		close(fds[--n]);
	return -1;
}

/* A nonblocking connect bounded by timeout_ms, so an unreachable address fails promptly. */
static int
net_connect_ai(const struct addrinfo *ai, int timeout_ms)
{
	struct pollfd pfd;
	socklen_t len = sizeof(int);
	int fd, rc, soerr = 0;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			goto error;
		pfd.fd = fd;
		pfd.events = POLLOUT;
		do
			rc = poll(&pfd, 1, timeout_ms);
		while (rc < 0 && errno == EINTR);
		if (rc == 0)
			errno = ETIMEDOUT;
		if (rc <= 0)
			goto error;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			goto error;
		if (soerr != 0) {
			errno = soerr;
			goto error;
		}
	}
	if (io_set_nonblock(fd, 0) < 0)
		goto error;
	return fd;
error:
	rc = errno;
	close(fd);
	errno = rc;
	return -1;
}

int
net_connect(const char *host, const char *port, int timeout_ms, char *err, size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	char addr[NET_ADDRLEN], hbuf[NET_ADDRLEN];
	int rc, fd = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	host = net_strip_brackets(host, hbuf, sizeof(hbuf));
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc == EAI_NONAME || rc == EAI_ADDRFAMILY || rc == EAI_FAMILY) {
		/* AI_ADDRCONFIG hides ::1 and 127.0.0.1 on a host with only loopback. */
		hints.ai_flags = 0;
		rc = getaddrinfo(host, port, &hints, &res);
	}
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %s port %s: %s", host, port,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = net_connect_ai(ai, timeout_ms);
		if (fd >= 0)
			break;
		net_addr_str(ai->ai_addr, addr, sizeof(addr));
		snprintf(err, errlen, "cannot connect to %s: %s", addr, strerror(errno));
	}
	freeaddrinfo(res);
	return fd;
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
