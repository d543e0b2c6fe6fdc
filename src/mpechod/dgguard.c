/*
 * dgguard.c - the UDP echo's rules for whom it answers, and its rate limits (see dgguard.h).
 */
#include "dgguard.h"

#include <netinet/in.h>
#include <string.h>

/* Services that answer a datagram with a datagram, from the Loop DoS advisory (CVE-2024-2169)
 * and OpenBSD inetd's dg_badinput(), at ports of 1024 and above (below is refused anyway):
 * SSDP, WS-Discovery, mDNS, LLMNR, memcached.  The list ends with 0. */
static const uint16_t dg_loop_ports[] = { 1900, 3702, 5353, 5355, 11211, 0 };

static const char *const dg_reasons[DG_NVERDICTS] = {
	[DG_OK] = "ok",
	[DG_BAD_PORT] = "source port that could loop (below 1024, ours, or a service that answers)",
	[DG_BAD_ADDR] = "broadcast, multicast or unspecified source",
	[DG_RATE_SOURCE] = "over the per-source rate",
	[DG_RATE_ALL] = "over the global rate",
};

const char *
dg_reason(enum dg_verdict v)
{
	return (unsigned)v < DG_NVERDICTS ? dg_reasons[v] : "unknown";
}

void
dg_init(struct dg_guard *g, uint16_t own_port, int per_source, int global)
{
	memset(g, 0, sizeof(*g));
	g->own_port = own_port;
	g->per_source = per_source;
	g->global = global;
	admit_bucket_init(&g->all, global);
	dg_set_prefix(g, 32, 64);
}

void
dg_set_prefix(struct dg_guard *g, int prefix4, int prefix6)
{
	g->prefix4 = prefix4;
	g->prefix6 = prefix6;
}

/* Our own port is refused too: another echo server on it (another mpechod) would answer our
 * answer, and a forged datagram between the two would loop. */
static int
dg_bad_port(uint16_t port, uint16_t own)
{
	if (port < 1024 || port == own)
		return 1;
	for (int i = 0; dg_loop_ports[i] != 0; i++)
		if (dg_loop_ports[i] == port)
			return 1;
	return 0;
}

/* 0.0.0.0, 255.255.255.255 (and the rest of 240/4, reserved) and 224/4 multicast. */
static int
dg_bad_ipv4(uint32_t a)
{
	return a == 0 || (a & 0xf0000000u) == 0xe0000000u || (a & 0xf0000000u) == 0xf0000000u;
}

enum dg_verdict
dg_check_source(const struct sockaddr *sa, uint16_t own)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		if (dg_bad_ipv4(ntohl(s4->sin_addr.s_addr)))
			return DG_BAD_ADDR;
		return dg_bad_port(ntohs(s4->sin_port), own) ? DG_BAD_PORT : DG_OK;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		const struct in6_addr *a = &s6->sin6_addr;
		uint32_t v4;

		if (IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_MULTICAST(a))
			return DG_BAD_ADDR;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			memcpy(&v4, &a->s6_addr[12], 4);
			if (dg_bad_ipv4(ntohl(v4)))
				return DG_BAD_ADDR;
		}
		return dg_bad_port(ntohs(s6->sin6_port), own) ? DG_BAD_PORT : DG_OK;
	}
	return DG_BAD_ADDR;
}

/* The source's entry: found within DG_PROBE slots, else a free one, else the least recently
 * seen of them, reset. */
static struct dg_source *
dg_source(struct dg_guard *g, const struct admit_key *k, int64_t now_ms)
{
	uint32_t h = admit_hash(k);
	struct dg_source *victim = NULL;

	for (int i = 0; i < DG_PROBE; i++) {
		struct dg_source *e = &g->src[(h + (uint32_t)i) & (DG_SOURCES - 1)];

		if (e->seen_ms != 0 && memcmp(&e->key, k, sizeof(*k)) == 0)
			return e;
		if (victim == NULL || e->seen_ms < victim->seen_ms)
			victim = e;
	}
	victim->key = *k;
	admit_bucket_init(&victim->bucket, g->per_source);
	victim->seen_ms = now_ms;
	return victim;
}

enum dg_verdict
dg_check(struct dg_guard *g, const struct sockaddr *sa, int64_t now_ms)
{
	enum dg_verdict v = dg_check_source(sa, g->own_port);
	struct sockaddr_storage ss;
	struct admit_key k;
	struct dg_source *e;

	if (v != DG_OK)
		return v;
	if (g->per_source > 0) {
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
		    sizeof(struct sockaddr_in));
		admit_key_prefix(&ss, g->prefix4, g->prefix6, &k);
		e = dg_source(g, &k, now_ms);
		/* seen_ms 0 marks a free slot: a clock at 0 still counts as seen. */
		e->seen_ms = now_ms > 0 ? now_ms : 1;
		if (!admit_bucket_take(&e->bucket, g->per_source, now_ms))
			return DG_RATE_SOURCE;
	}
	if (g->global > 0 && !admit_bucket_take(&g->all, g->global, now_ms))
		return DG_RATE_ALL;
	return DG_OK;
}
