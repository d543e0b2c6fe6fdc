/*
 * dial.c - connecting by name or address over getaddrinfo, every address in turn (CSAPP's
 * open_clientfd), each attempt bounded in time.  Used by the client and the load generator.
 */
#define _GNU_SOURCE
#include "io.h"
#include "net.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
	char hbuf[NET_ADDRLEN];
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
		net_error(err, errlen, "cannot connect to", ai->ai_addr, -1);
	}
	freeaddrinfo(res);
	return fd;
}

