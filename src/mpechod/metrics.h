/*
 * metrics.h - the metrics process (--metrics ADDR:PORT): answers HTTP GET /metrics with every
 * figure in Prometheus's text format, read from the master's shared memory (scoreboard.h).
 *
 * The master forks it, like the datagram process, after the store; restarts it at most once a
 * second if it dies; stops it with SIGTERM at shutdown; it leaves by itself when the master
 * dies.  It serves one connection at a time, each bounded: a request of at most MH_MAX bytes,
 * read within METRICS_TIMEOUT_MS, one answer, then the close.  Only addresses in its allow
 * list (--metrics-allow; loopback by default) get an answer; others are closed unread.
 */
#ifndef MPECHO_METRICS_H
#define MPECHO_METRICS_H

#include "cidr.h"

#include <sys/types.h>

#define METRICS_TIMEOUT_MS 5000
#define METRICS_MAX_FDS 32

struct metrics_args {
	const int *fds;               /* its listeners */
	int nfds;
	const struct cidr_list *allow; /* who may scrape */
	int pipe_rd;                  /* the store pipe's read end, for its fill only; -1: none */
	pid_t master;                 /* to notice the master's death */
};

_Noreturn void metrics_run(const struct metrics_args *a);

#endif
