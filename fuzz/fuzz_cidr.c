/*
 * libFuzzer target for cidr.c.  The input is a peer address (a byte choosing IPv4 or IPv6,
 * then 16 address bytes) followed by the text of a block, cut at its first NUL:
 *  - a refused block leaves a reason of one printable line;
 *  - an accepted one has a prefix in range and no host bit, is written back in at most
 *    CIDR_TEXT_MAX bytes as text that reads back the same, and contains its own address;
 *  - cidr_match agrees with a bit-by-bit model (IPv4-mapped peers as IPv4), also in the mapped
 *    form of an IPv4 peer, and the allow/deny verdicts follow from it.
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PEER_LEN 17

static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static int
bit(const unsigned char *a, unsigned k)
{
	return (a[k / 8] >> (7 - k % 8)) & 1;
}

static int
model_match(const struct cidr *c, int family, const unsigned char *a)
{
	if (family == AF_INET6 && memcmp(a, mapped, sizeof(mapped)) == 0) {
		family = AF_INET;
		a += 12;
	}
	if (family != c->family)
		return 0;
	for (unsigned k = 0; k < c->bits; k++)
		if (bit(a, k) != bit(c->addr, k))
			return 0;
	return 1;
}

/* Makes ss the address a of family; an IPv4 address also in its mapped form in ss6. */
static void
make_peer(int family, const unsigned char *a, struct sockaddr_storage *ss,
    struct sockaddr_storage *ss6)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss6;

	memset(ss, 0, sizeof(*ss));
	memset(ss6, 0, sizeof(*ss6));
	s6->sin6_family = AF_INET6;
	if (family == AF_INET) {
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a, 4);
		memcpy(s6->sin6_addr.s6_addr, mapped, sizeof(mapped));
		memcpy(s6->sin6_addr.s6_addr + 12, a, 4);
	} else {
		memcpy(s6->sin6_addr.s6_addr, a, 16);
		memcpy(ss, ss6, sizeof(*ss));
	}
}

static void
check_accepted(const struct cidr *c)
{
	unsigned max = c->family == AF_INET ? 32 : 128;
	char text[CIDR_TEXT_MAX], err[256];
	struct cidr back;
	struct sockaddr_storage ss, ss6;

	if ((c->family != AF_INET && c->family != AF_INET6) || c->bits > max)
		abort();
	for (unsigned k = c->bits; k < 128; k++)
		if (bit(c->addr, k))
			abort();
	cidr_format(c, text, sizeof(text));
	if (strlen(text) >= sizeof(text) || cidr_parse(text, &back, err, sizeof(err)) != 0 ||
	    memcmp(&back, c, sizeof(*c)) != 0)
		abort();
	make_peer(c->family, c->addr, &ss, &ss6);
	if (!cidr_match(c, (struct sockaddr *)&ss))
		abort();
}

static void
check_match(const struct cidr *c, const uint8_t *p)
{
	int family = p[0] & 1 ? AF_INET6 : AF_INET;
	struct sockaddr_storage ss, ss6;
	struct cidr_rules r;
	int m = model_match(c, family, p + 1);

	make_peer(family, p + 1, &ss, &ss6);
	if (cidr_match(c, (struct sockaddr *)&ss) != m || cidr_match(c, (struct sockaddr *)&ss6) != m)
		abort();
	memset(&r, 0, sizeof(r));
	if (cidr_rules_check(&r, (struct sockaddr *)&ss) != CIDR_ALLOWED)
		abort();
	cidr_rules_add(&r, p[0] & 2 ? CIDR_DENY : CIDR_ALLOW, c);
	if (cidr_rules_check(&r, (struct sockaddr *)&ss) !=
	    (p[0] & 2 ? (m ? CIDR_DENIED : CIDR_ALLOWED) : (m ? CIDR_ALLOWED : CIDR_NOT_ALLOWED)))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[512], err[256];
	size_t n;
	struct cidr c;

	if (size < PEER_LEN)
		return 0;
	n = size - PEER_LEN < sizeof(text) - 1 ? size - PEER_LEN : sizeof(text) - 1;
	memcpy(text, data + PEER_LEN, n);
	text[n] = '\0';
	err[0] = '\0';
	if (cidr_parse(text, &c, err, sizeof(err)) != 0) {
		if (err[0] == '\0')
			abort();
		for (const char *p = err; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				abort();
		return 0;
	}
	check_accepted(&c);
	check_match(&c, data);
	return 0;
}
