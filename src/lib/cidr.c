/*
 * cidr.c - address blocks and the allow/deny rules made of them.  Pure (see cidr.h): the
 * master parses the blocks from its options once, and then checks every accepted connection
 * (and, with --proxy-protocol, the client address its header announces) against them.
 */
#define _GNU_SOURCE
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* The 12 bytes that start an IPv4-mapped IPv6 address (RFC 4291, 2.5.5.2). */
static const unsigned char cidr_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Quotes at most 48 bytes of what the user typed, anything unprintable as '?', so that an
 * error stays one line. */
static const char *
cidr_quote(const char *text, char *q, size_t qlen)
{
	size_t n = strnlen(text, qlen - 1);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)text[i];

		q[i] = text[i];
		if (c < 0x20 || c >= 0x7f)
			q[i] = '?';
	}
	q[n] = '\0';
	return q;
}

/* Whether the first bits bits of a and b are equal. */
static int
cidr_prefix_equal(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;
	unsigned mask = (0xff00u >> rest) & 0xffu;

	if (memcmp(a, b, whole) != 0)
		return 0;
	return rest == 0 || ((a[whole] ^ b[whole]) & mask) == 0;
}

/* Clears the bits of addr (len bytes) past the first bits. */
static void
cidr_mask(unsigned char *addr, size_t len, unsigned bits)
{
	for (size_t i = 0; i < len; i++) {
		if (bits >= 8) {
			bits -= 8;
			continue;
		}
		addr[i] &= (unsigned char)(0xff00u >> bits);
		bits = 0;
	}
}

/* The address part: IPv4, IPv6, or IPv6 in brackets.  Returns 0 or -1. */
static int
cidr_parse_addr(const char *s, size_t len, struct cidr *out)
{
	char host[INET6_ADDRSTRLEN + 2];

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
		if (len >= sizeof(host))
			return -1;
		memcpy(host, s, len);
		host[len] = '\0';
		out->family = AF_INET6;
		return inet_pton(AF_INET6, host, out->addr) == 1 ? 0 : -1;
	}
	if (len >= sizeof(host))
		return -1;
	memcpy(host, s, len);
	host[len] = '\0';
	out->family = AF_INET;
	if (inet_pton(AF_INET, host, out->addr) == 1)
		return 0;
	out->family = AF_INET6;
	return inet_pton(AF_INET6, host, out->addr) == 1 ? 0 : -1;
}

/* A prefix length: decimal digits, no sign, no leading zero, at most max.  Returns 0 or -1. */
static int
cidr_parse_bits(const char *s, unsigned max, unsigned *bits)
{
	unsigned v = 0;

	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > max)
			return -1;
	}
	*bits = v;
	return 0;
}

/* A mapped block of /96 or more is the IPv4 block it covers (see cidr.h). */
static void
cidr_unmap(struct cidr *c)
{
	if (c->family != AF_INET6 || c->bits < 96 ||
	    memcmp(c->addr, cidr_mapped, sizeof(cidr_mapped)) != 0)
		return;
	c->family = AF_INET;
	c->bits -= 96;
	memmove(c->addr, c->addr + 12, 4);
	memset(c->addr + 4, 0, 12);
}

int
cidr_parse(const char *text, struct cidr *out, char *err, size_t errlen)
{
	const char *slash = strchr(text, '/');
	size_t hostlen = slash != NULL ? (size_t)(slash - text) : strlen(text);
	char q[49], net[CIDR_TEXT_MAX];
	struct cidr masked;
	unsigned max;

	memset(out, 0, sizeof(*out));
	if (cidr_parse_addr(text, hostlen, out) < 0) {
		snprintf(err, errlen, "'%s' is not an IPv4 or IPv6 address or block",
		    cidr_quote(text, q, sizeof(q)));
		return -1;
	}
	max = out->family == AF_INET ? 32 : 128;
	out->bits = max;
	if (slash != NULL && cidr_parse_bits(slash + 1, max, &out->bits) < 0) {
		snprintf(err, errlen, "'%s': the prefix length is not a number from 0 to %u",
		    cidr_quote(text, q, sizeof(q)), max);
		return -1;
	}
	cidr_unmap(out);
	masked = *out;
	cidr_mask(masked.addr, sizeof(masked.addr), masked.bits);
	if (memcmp(masked.addr, out->addr, sizeof(out->addr)) != 0) {
		snprintf(err, errlen, "'%s' has address bits set past its prefix (the block is %s)",
		    cidr_quote(text, q, sizeof(q)), cidr_format(&masked, net, sizeof(net)));
		return -1;
	}
	return 0;
}

int
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	const unsigned char *a;

	if (sa->sa_family == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		return c->family == AF_INET && cidr_prefix_equal(a, c->addr, c->bits);
	}
	if (sa->sa_family != AF_INET6)
		return 0;
	a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
	if (memcmp(a, cidr_mapped, sizeof(cidr_mapped)) == 0)
		return c->family == AF_INET && cidr_prefix_equal(a + 12, c->addr, c->bits);
	return c->family == AF_INET6 && cidr_prefix_equal(a, c->addr, c->bits);
}

char *
cidr_format(const struct cidr *c, char *buf, size_t buflen)
{
	char host[INET6_ADDRSTRLEN];

	if (inet_ntop(c->family, c->addr, host, sizeof(host)) == NULL)
		snprintf(host, sizeof(host), "?");
	snprintf(buf, buflen, "%s/%u", host, c->bits);
	return buf;
}

int
cidr_list_add(struct cidr_list *l, const struct cidr *c)
{
	if (l->n >= CIDR_LIST_MAX)
		return -1;
	l->v[l->n++] = *c;
	return 0;
}

int
cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	for (unsigned i = 0; i < l->n && i < CIDR_LIST_MAX; i++)
		if (cidr_match(&l->v[i], sa))
			return 1;
	return 0;
}

int
cidr_rules_add(struct cidr_rules *r, enum cidr_kind kind, const struct cidr *c)
{
	return cidr_list_add(kind == CIDR_DENY ? &r->deny : &r->allow, c);
}

enum cidr_verdict
cidr_rules_check(const struct cidr_rules *r, const struct sockaddr *sa)
{
	if (cidr_list_match(&r->deny, sa))
		return CIDR_DENIED;
	if (r->allow.n > 0 && !cidr_list_match(&r->allow, sa))
		return CIDR_NOT_ALLOWED;
	return CIDR_ALLOWED;
}
