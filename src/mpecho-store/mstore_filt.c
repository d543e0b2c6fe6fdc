/*
 * mstore_filt.c - connection, peer, time and reason filters (see mstore_filt.h).  Address
 * blocks are cidr.c's, the server's own for --allow and --deny.
 */
#define _GNU_SOURCE
#include "mstore_filt.h"
#include "mstore_rec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void
mfilt_init(struct mfilt *f)
{
	memset(f, 0, sizeof(*f));
	f->since = INT64_MIN;
	f->until = INT64_MAX;
}

/* A whole decimal number in [1, max] at s, ending at one of the characters in ends; *next is
 * where it ended. */
static int
mfilt_number(const char *s, uint64_t max, const char *ends, uint64_t *v, const char **next)
{
	char *e;
	unsigned long long x;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	x = strtoull(s, &e, 10);
	if (errno != 0 || x == 0 || x > max || strchr(ends, *e) == NULL)
		return -1;
	*v = x;
	*next = e;
	return 0;
}

int
mfilt_parse_conn(const char *s, struct mfilt_conn *c)
{
	uint64_t a, b, n;
	const char *p;

	memset(c, 0, sizeof(*c));
	if (mfilt_number(s, UINT64_MAX - 1, ":.", &a, &p) < 0)
		return -1;
	if (*p == '\0') {
		c->conn = a;
		return 0;
	}
	if (*p == ':') {
		if (a > 1000000 || mfilt_number(p + 1, UINT64_MAX - 1, ".", &b, &p) < 0)
			return -1;
		c->inst = (unsigned)a;
		if (*p == '\0') {
			c->conn = b;
			return 0;
		}
		a = b;
	}
	if (a > 1000000 || mfilt_number(p + 1, UINT64_MAX - 1, "", &n, &p) < 0)
		return -1;
	c->life = (unsigned)a;
	c->conn = n;
	return 0;
}

int
mfilt_conn_matches(const struct mfilt_conn *c, unsigned inst, unsigned life, uint64_t conn)
{
	return c->conn == conn && (c->inst == 0 || c->inst == inst) &&
	    (c->life == 0 || c->life == life);
}

size_t
mfilt_peer_host(const char *peer, char *dst, size_t dstlen)
{
	const char *colon = strrchr(peer, ':');
	size_t len = colon ? (size_t)(colon - peer) : strlen(peer);

	if (peer[0] == '[' && len >= 2 && peer[len - 1] == ']') {
		peer++;
		len -= 2;
	}
	if (len >= dstlen)
		len = dstlen - 1;
	memcpy(dst, peer, len);
	dst[len] = '\0';
	return len;
}

int
mfilt_net_matches(const struct cidr *n, const char *peer)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	char host[64];

	mfilt_peer_host(peer, host, sizeof(host));
	if (inet_pton(AF_INET, host, &in.sin_addr) == 1)
		return cidr_match(n, (const struct sockaddr *)&in);
	if (inet_pton(AF_INET6, host, &in6.sin6_addr) == 1)
		return cidr_match(n, (const struct sockaddr *)&in6);
	return 0;
}

int
mfilt_parse_duration(const char *s, int64_t *us)
{
	static const struct { const char *unit; int64_t us; } units[] = {
		{ "", 1000000 }, { "s", 1000000 }, { "ms", 1000 }, { "m", 60000000 },
		{ "h", 3600000000LL }, { "d", 86400000000LL }, { "w", 604800000000LL },
	};
	char *e;
	long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &e, 10);
	if (errno != 0 || v <= 0 || v > 1000000000LL)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(e, units[i].unit) == 0) {
			if (v > INT64_MAX / units[i].us)
				return -1;
			*us = v * units[i].us;
			return 0;
		}
	return -1;
}

int
mfilt_parse_time(const char *s, int64_t now_us, int64_t *us)
{
	int64_t d;

	if (strcmp(s, "now") == 0) {
		*us = now_us;
		return 0;
	}
	if (s[0] == '-') {
		if (mfilt_parse_duration(s + 1, &d) < 0)
			return -1;
		*us = now_us - d;
		return 0;
	}
	return mrec_parse_ts(s, strlen(s), us);
}

int
mfilt_conn_any(const struct mfilt *f, unsigned inst, unsigned life, uint64_t conn)
{
	if (f->nconns == 0)
		return 1;
	for (size_t i = 0; i < f->nconns; i++)
		if (mfilt_conn_matches(&f->conns[i], inst, life, conn))
			return 1;
	return 0;
}

int
mfilt_match(const struct mfilt *f, const struct mconn *c)
{
	size_t i;

	if (!mfilt_conn_any(f, c->inst, c->life, c->conn))
		return 0;
	if ((f->since != INT64_MIN || f->until != INT64_MAX) &&
	    (c->opened == INT64_MIN || c->opened < f->since || c->opened >= f->until))
		return 0;
	for (i = 0; i < f->nnets && !mfilt_net_matches(&f->nets[i], c->peer); i++)
		;
	if (f->nnets > 0 && i == f->nnets)
		return 0;
	for (i = 0; i < f->nreasons && strcmp(f->reasons[i], c->reason) != 0; i++)
		;
	return f->nreasons == 0 || i < f->nreasons;
}
