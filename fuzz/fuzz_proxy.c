/*
 * libFuzzer target for proxy_parse.  The input is the start of a connection; the parser must
 * read every prefix of it consistently, as a server calling it on each arrival would:
 *  - NEED_MORE asks for more than it has, never past the header it ends up accepting, and
 *    never past the largest header there is;
 *  - once INVALID, always INVALID (with a reason); once OK, always OK with the same result;
 *  - an OK header is at most 107 bytes ending in CRLF (v1) or 16 + its length field (v2), its
 *    addresses are AF_INET, AF_INET6 or none, and none for LOCAL;
 *  - the addresses written back as a v1 line and as a v2 header read back the same.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same(const struct proxy_result *a, const struct proxy_result *b)
{
	return a->version == b->version && a->cmd == b->cmd && a->len == b->len &&
	    memcmp(&a->src, &b->src, sizeof(a->src)) == 0 &&
	    memcmp(&a->dst, &b->dst, sizeof(a->dst)) == 0;
}

static void
check_ok(const uint8_t *data, const struct proxy_result *r)
{
	int fam = r->src.ss_family;

	if (r->len == 0 || r->len > PROXY_HDR_MAX || r->reason != NULL)
		abort();
	if (r->version == 1 && (r->len > PROXY_V1_MAX || data[r->len - 2] != '\r' ||
	    data[r->len - 1] != '\n' || memchr(data, '\n', r->len - 1) != NULL))
		abort();
	if (r->version == 2 && r->len != 16 + ((size_t)data[14] << 8 | data[15]))
		abort();
	if (r->version != 1 && r->version != 2)
		abort();
	if (fam != AF_UNSPEC && fam != AF_INET && fam != AF_INET6)
		abort();
	if (r->dst.ss_family != fam || (r->cmd == PROXY_CMD_LOCAL && fam != AF_UNSPEC))
		abort();
}

/* The addresses and port of ss. */
static uint16_t
split(const struct sockaddr_storage *ss, const unsigned char **addr)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		*addr = (const unsigned char *)&s4->sin_addr;
		return ntohs(s4->sin_port);
	}
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	*addr = s6->sin6_addr.s6_addr;
	return ntohs(s6->sin6_port);
}

/* Writes r's addresses back as a v1 line and as a v2 header; each must read back the same. */
static void
check_rewrite(const struct proxy_result *r)
{
	unsigned char h[64];
	char line[PROXY_V1_MAX + 1], s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	const unsigned char *sa, *da;
	uint16_t sp = split(&r->src, &sa), dp = split(&r->dst, &da);
	int v4 = r->src.ss_family == AF_INET, n;
	size_t alen = v4 ? 4 : 16, off = 16;
	struct proxy_result back;

	inet_ntop(r->src.ss_family, sa, s, sizeof(s));
	inet_ntop(r->src.ss_family, da, d, sizeof(d));
	n = snprintf(line, sizeof(line), "PROXY TCP%c %s %s %u %u\r\n", v4 ? '4' : '6', s, d, sp,
	    dp);
	if (n > 0 && (size_t)n < sizeof(line)) {
		if (proxy_parse((const unsigned char *)line, (size_t)n, &back) != PROXY_OK ||
		    back.len != (size_t)n || memcmp(&back.src, &r->src, sizeof(r->src)) != 0 ||
		    memcmp(&back.dst, &r->dst, sizeof(r->dst)) != 0)
			abort();
	}
	memcpy(h, "\r\n\r\n\0\r\nQUIT\n\x21", 13);
	h[13] = v4 ? 0x11 : 0x21;
	h[14] = 0;
	h[15] = (unsigned char)(2 * alen + 4);
	memcpy(h + off, sa, alen);
	memcpy(h + off + alen, da, alen);
	off += 2 * alen;
	h[off++] = (unsigned char)(sp >> 8), h[off++] = (unsigned char)sp;
	h[off++] = (unsigned char)(dp >> 8), h[off++] = (unsigned char)dp;
	if (proxy_parse(h, off, &back) != PROXY_OK || back.len != off ||
	    memcmp(&back.src, &r->src, sizeof(r->src)) != 0 ||
	    memcmp(&back.dst, &r->dst, sizeof(r->dst)) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_result full, r;
	enum proxy_status fst = proxy_parse(data, size, &full), st = PROXY_NEED_MORE;
	size_t i;

	/* Every prefix up to the first decision, then the decision against the whole input. */
	for (i = 0; i <= size; i++) {
		st = proxy_parse(data, i, &r);
		if (st != PROXY_NEED_MORE)
			break;
		if (r.need <= i || r.need > PROXY_HDR_MAX || (i == size && fst != PROXY_NEED_MORE))
			abort();
		if (fst == PROXY_OK && r.need > full.len)
			abort();
	}
	if (st != fst)
		abort();
	if (st == PROXY_INVALID && (r.reason == NULL || full.reason == NULL || r.reason[0] == '\0'))
		abort();
	if (st == PROXY_OK) {
		if (!same(&r, &full) || r.len > i)
			abort();
		check_ok(data, &full);
		if (full.src.ss_family != AF_UNSPEC)
			check_rewrite(&full);
	}
	return 0;
}
