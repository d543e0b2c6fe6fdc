/*
 * net.h - protocol-independent socket helpers (CSAPP's open_listenfd/open_clientfd, Redis's
 * anet.c).  Functions never print or exit: they return -1 and leave a one-line reason in the
 * caller's buffer.  Every descriptor they create is close-on-exec.
 */
#ifndef MPECHO_NET_H
#define MPECHO_NET_H

#include <stddef.h>
#include <sys/socket.h>

#define NET_ERRLEN 256
/* "[" + IPv6 text + "]:" + port + NUL */
#define NET_ADDRLEN 64

/* Binds (and for SOCK_STREAM listens) on host, a numeric IPv4 or IPv6 address (no name is
 * looked up), or "localhost" (127.0.0.1 and ::1), or NULL (the IPv6 and IPv4 wildcards; IPv6
 * sockets are made IPv6-only so the IPv4 wildcard binds beside them).  type is SOCK_STREAM or
 * SOCK_DGRAM.  When *port is 0, the port the kernel gives the first socket is stored in *port
 * and used for the rest.  Fills fds, up to max, and returns their number, or -1 with err
 * filled and errno set.  Nonblocking sockets; listeners with a backlog of at least 511.
 * (net.c) */
int net_listen(const char *host, int type, int *port, int *fds, int max, char *err,
    size_t errlen);
/* Strips the brackets of "[::1]" into buf; returns host itself otherwise. */
const char *net_strip_brackets(const char *host, char *buf, size_t len);
/* Connects to the first address of host:port that answers, waiting at most timeout_ms for each.
 * Returns a blocking, close-on-exec socket, or -1 with err filled.  (dial.c) */
int net_connect(const char *host, const char *port, int timeout_ms, char *err, size_t errlen);
/* Formats sa as "1.2.3.4:80" or "[::1]:80" (IPv4-mapped IPv6 addresses as IPv4). */
void net_addr_str(const struct sockaddr *sa, char *buf, size_t len);
/* The address a socket is bound to, formatted as above; returns its port or -1. */
int net_local_addr(int fd, char *buf, size_t len);
/* Fills err with "WHAT ADDR: strerror(errno)", closes fd unless it is -1, and returns -1 with
 * errno as it was on entry (read before any other call can change it). */
int net_error(char *err, size_t errlen, const char *what, const struct sockaddr *sa, int fd);

/* How an accepted TCP connection stands before anything was read from it. */
enum net_peer_state {
	NET_PEER_LIVE,   /* open */
	NET_PEER_HALF,   /* half-closed by the peer after it sent data, which waits for its echo */
	NET_PEER_RESET,  /* the peer reset it (or it is otherwise fully closed) */
	NET_PEER_CLOSED  /* the peer closed its side with nothing left to read */
};
/* Costs one getsockopt (and an ioctl for a half-closed one); reads nothing.  (net.c) */
enum net_peer_state net_peer_state(int fd);

#endif
