/*
 * dgguard.h - which datagrams the UDP echo answers (RFC 862's other half, made safe to expose).
 *
 * An echo that answers anything is a reflector: a forged source address turns it against a
 * victim, and two services that answer each other loop forever (CERT CA-1996-01's chargen and
 * echo storms; CVE-2024-2169, "Loop DoS").  So, as OpenBSD inetd's dg_badinput() does, no reply
 * goes to a source port below 1024 or to the port of another service known to answer datagrams,
 * nor to a broadcast, multicast or unspecified address; and a token bucket per source address
 * and one for everyone bound the rate of replies.  Pure: the caller passes the time and the
 * memory; nothing here prints, reads a clock or allocates.
 */
#ifndef MPECHO_DGGUARD_H
#define MPECHO_DGGUARD_H

#include "admit.h"

#include <stdint.h>
#include <sys/socket.h>

enum dg_verdict {
	DG_OK,
	DG_BAD_PORT,    /* a privileged source port, or one of a service that answers datagrams */
	DG_BAD_ADDR,    /* broadcast, multicast or unspecified source */
	DG_RATE_SOURCE, /* over the per-source rate */
	DG_RATE_ALL,    /* over the global rate */
	DG_NVERDICTS
};

/* Sources whose buckets are kept; past it, the least recently seen in a probe run is reused
 * (a forgotten source starts with a full bucket: the per-source limit is then approximate,
 * while the global one still holds). */
#define DG_SOURCES 4096
#define DG_PROBE 8

struct dg_source {
	struct admit_key key;
	int64_t seen_ms;
	struct admit_bucket bucket;
};

struct dg_guard {
	uint16_t own_port;              /* the port we serve: never a source we answer */
	int per_source;                 /* replies a second per source address; 0: no limit */
	int global;                     /* replies a second in all; 0: no limit */
	struct admit_bucket all;
	struct dg_source src[DG_SOURCES];
	int prefix4, prefix6;           /* the source blocks per_source counts (admit_key_prefix) */
};

void dg_init(struct dg_guard *g, uint16_t own_port, int per_source, int global);
/* Counts per_source per block of prefix4 (IPv4) or prefix6 (IPv6) bits; dg_init's are 32
 * and 64. */
void dg_set_prefix(struct dg_guard *g, int prefix4, int prefix6);
/* The address and port checks alone. */
enum dg_verdict dg_check_source(const struct sockaddr *sa, uint16_t own_port);
/* Whether to answer a datagram from sa at now_ms; DG_OK takes a token from both buckets. */
enum dg_verdict dg_check(struct dg_guard *g, const struct sockaddr *sa, int64_t now_ms);
/* A word for each verdict, for the log. */
const char *dg_reason(enum dg_verdict v);

#endif
