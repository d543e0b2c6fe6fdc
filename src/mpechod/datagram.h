/*
 * datagram.h - the datagram process: UDP echo (RFC 862's other half), made safe to expose.
 *
 * The master forks it, like the store, when --udp is given, restarts it if it dies and stops it
 * at shutdown (SIGTERM).  It answers each datagram with the same bytes, to its source, after
 * recording it in the store pipe, unless dgguard.c says not to answer (a source that could
 * loop, broadcast or multicast, over a rate limit) or the store pipe has no room: a datagram
 * that is not recorded is not echoed, so every byte echoed is in the store.  Dropped datagrams
 * are counted in the shared counters and logged at most once a second.
 */
#ifndef MPECHO_DATAGRAM_H
#define MPECHO_DATAGRAM_H

#include "dgguard.h"

#include <stdint.h>
#include <sys/types.h>

/* Counters the datagram process keeps in memory shared with the master, for its stats line. */
struct datagram_stats {
	uint64_t echoed, bytes;
	uint64_t dropped[DG_NVERDICTS]; /* by dgguard's verdict (DG_OK unused) */
	uint64_t dropped_store;         /* the store pipe had no room */
};

struct datagram_args {
	const int *fds;            /* bound UDP sockets, nonblocking */
	int nfds;
	int pipe_wr;               /* the store pipe, nonblocking; -1: no store */
	uint16_t port;             /* the port served: never answered as a source */
	int per_source, global;    /* replies a second; 0: no limit */
	pid_t master;              /* to notice the master's death */
	struct datagram_stats *stats;
	int prefix4, prefix6;      /* --source-prefix */
};

_Noreturn void datagram_run(const struct datagram_args *a);

#endif
