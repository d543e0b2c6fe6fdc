/*
 * mstore_filt.c - connection, peer, time and reason filters (see mstore_filt.h).
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

int
mfilt_parse_net(const char *s, struct mfilt_net *n)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t len = slash ? (size_t)(slash - s) : strlen(s);
	uint64_t bits;
	const char *end;

	memset(n, 0, sizeof(*n));
	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(host))
		return -1;
	memcpy(host, s, len);
	host[len] = '\0';
	if (inet_pton(AF_INET, host, n->addr) == 1) {
		n->bits = 32;
	} else if (inet_pton(AF_INET6, host, n->addr) == 1) {
		n->v6 = 1;
		n->bits = 128;
	} else {
		return -1;
	}
	if (slash == NULL)
		return 0;
	if (strcmp(slash + 1, "0") == 0) {
		n->bits = 0;
		return 0;
	}
	if (mfilt_number(slash + 1, (uint64_t)n->bits, "", &bits, &end) < 0)
		return -1;
	n->bits = (int)bits;
	return 0;
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

static int
mfilt_prefix_eq(const unsigned char *a, const unsigned char *b, int bits)
{
	int whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)whole) != 0)
		return 0;
	return rest == 0 || ((a[whole] ^ b[whole]) & (0xff00 >> rest) & 0xff) == 0;
}

int
mfilt_net_matches(const struct mfilt_net *n, const char *peer)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	unsigned char a[16];
	char host[64];

	mfilt_peer_host(peer, host, sizeof(host));
	if (inet_pton(AF_INET, host, a) == 1)
		return !n->v6 && mfilt_prefix_eq(a, n->addr, n->bits);
	if (inet_pton(AF_INET6, host, a) != 1)
		return 0;
	if (n->v6)
		return mfilt_prefix_eq(a, n->addr, n->bits);
	return memcmp(a, mapped, sizeof(mapped)) == 0 && mfilt_prefix_eq(a + 12, n->addr, n->bits);
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
