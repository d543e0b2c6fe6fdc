/*
 * mstore_filt.h - what mpecho-store's arguments select: connection numbers, peers by address
 * or CIDR block, a time range, close reasons; and the parsing of times and durations.  Pure:
 * the clock comes from the caller.
 */
#ifndef MPECHO_MSTORE_FILT_H
#define MPECHO_MSTORE_FILT_H

#include "cidr.h"
#include "mstore_tab.h"

#include <stddef.h>
#include <stdint.h>

/* "N", "L.N", "I:N" or "I:L.N": conn N of life L of instance I; 0 means any. */
struct mfilt_conn {
	unsigned inst, life;
	uint64_t conn;
};

#define MFILT_MAX 64

struct mfilt {
	struct mfilt_conn conns[MFILT_MAX];
	size_t nconns;
	struct cidr nets[MFILT_MAX];
	size_t nnets;
	const char *reasons[MFILT_MAX];
	size_t nreasons;
	int64_t since, until; /* opened in [since, until); INT64_MIN / INT64_MAX: open-ended */
};

void mfilt_init(struct mfilt *f);
int mfilt_parse_conn(const char *s, struct mfilt_conn *c);
int mfilt_conn_matches(const struct mfilt_conn *c, unsigned inst, unsigned life, uint64_t conn);
/* Whether a peer as the store writes it ("10.0.0.1:50312", "[::1]:50312") is in the block
 * (cidr.c: an IPv4-mapped IPv6 peer matches IPv4 blocks). */
int mfilt_net_matches(const struct cidr *n, const char *peer);
/* The host part of a peer: "10.0.0.1" of "10.0.0.1:5", "::1" of "[::1]:5". */
size_t mfilt_peer_host(const char *peer, char *dst, size_t dstlen);
/* "90", "90s", "500ms", "15m", "1h", "2d", "1w" into microseconds (> 0). */
int mfilt_parse_duration(const char *s, int64_t *us);
/* An RFC 3339 time or date, "now", or "-DURATION" before now_us. */
int mfilt_parse_time(const char *s, int64_t now_us, int64_t *us);
/* Whether connection c passes every filter given. */
int mfilt_match(const struct mfilt *f, const struct mconn *c);
/* The same, for a conn filter alone (mfilt_match's first test). */
int mfilt_conn_any(const struct mfilt *f, unsigned inst, unsigned life, uint64_t conn);

#endif
