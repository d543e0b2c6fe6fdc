/*
 * proxy.c - the PROXY protocol header, v1 (text) and v2 (binary).  Pure and incremental (see
 * proxy.h): each call parses the bytes received so far from the start, so a partial header
 * yields PROXY_NEED_MORE as long as it can still be completed, and PROXY_INVALID at the first
 * byte that no valid header has there.
 */
#define _GNU_SOURCE
#include "proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

/* The shortest valid header: "PROXY UNKNOWN\r\n". */
#define PROXY_MIN 15
/* The v2 fixed part: signature, version and command, family and protocol, length. */
#define V2_FIXED 16
#define V2_TYPE_CRC32C 0x03

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

static enum proxy_status
proxy_invalid(struct proxy_result *out, const char *reason)
{
	out->reason = reason;
	return PROXY_INVALID;
}

static enum proxy_status
proxy_more(struct proxy_result *out, size_t need)
{
	out->need = need;
	return PROXY_NEED_MORE;
}

/* Sets ss to family's address addr (4 or 16 bytes, network order) and port. */
static void
proxy_sockaddr(struct sockaddr_storage *ss, int family, const unsigned char *addr, uint16_t port)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, addr, 4);
		s4->sin_port = htons(port);
	} else {
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, addr, 16);
		s6->sin6_port = htons(port);
	}
}

/*
 * Version 1: "PROXY TCP4 SRC DST SPORT DPORT\r\n", "PROXY TCP6 ...", "PROXY UNKNOWN[ ...]\r\n".
 * The parser walks the line with a state that stays V1_GOING while every byte so far fits;
 * each step does nothing once it is not, so the grammar reads as a list of steps.  When the
 * bytes end first, the step they end in says how many more it needs at least (more), and the
 * steps after it how many they take at least (rest): their sum is a length no valid line is
 * shorter than, which lets a server read up to it without reading past the header.
 */
enum v1_state { V1_GOING, V1_SHORT, V1_BAD };

struct v1 {
	const unsigned char *buf;
	size_t pos, end;      /* end: the bytes there are, at most PROXY_V1_MAX */
	enum v1_state st;
	const char *why;      /* V1_BAD */
	size_t more, rest;    /* V1_SHORT: see above */
	int family;           /* TCP4: AF_INET, TCP6: AF_INET6, UNKNOWN: 0 */
	unsigned char src[16], dst[16];
	uint16_t sport, dport;
};

/* The steps of a TCP4 or TCP6 line after "PROXY TCPn ". */
enum v1_step { V1_SRC, V1_DST, V1_SPORT, V1_DPORT, V1_SP, V1_CRLF };

static const enum v1_step v1_tcp[] = {
	V1_SRC, V1_SP, V1_DST, V1_SP, V1_SPORT, V1_SP, V1_DPORT, V1_CRLF,
};
#define V1_TCP_STEPS (sizeof(v1_tcp) / sizeof(v1_tcp[0]))

static void
v1_bad(struct v1 *c, const char *why)
{
	if (c->st == V1_BAD)
		return;
	c->st = V1_BAD;
	c->why = why;
}

/* The bytes ended inside the current step, which needs at least more of them. */
static void
v1_short(struct v1 *c, size_t more)
{
	if (c->st != V1_GOING)
		return;
	c->st = V1_SHORT;
	c->more = more;
}

/* Matches the literal s; the bytes may end inside it. */
static void
v1_lit(struct v1 *c, const char *s, const char *why)
{
	size_t n = strlen(s), have;

	if (c->st != V1_GOING)
		return;
	have = c->end - c->pos;
	if (memcmp(c->buf + c->pos, s, have < n ? have : n) != 0)
		v1_bad(c, why);
	else if (have < n)
		v1_short(c, n - have);
	else
		c->pos += n;
}

/* The fewest bytes a step takes. */
static size_t
v1_min(int family, enum v1_step step)
{
	switch (step) {
	case V1_SRC:
	case V1_DST:
		return family == AF_INET ? 7 : 2; /* "0.0.0.0", "::" */
	case V1_CRLF:
		return 2;
	default:
		return 1;
	}
}

/* The fewest bytes the TCP steps from the first-th on take. */
static size_t
v1_tcp_min(int family, size_t first)
{
	size_t n = 0;

	for (size_t i = first; i < V1_TCP_STEPS; i++)
		n += v1_min(family, v1_tcp[i]);
	return n;
}

/* "TCP4 ", "TCP6 " or "UNKNOWN", which sets the family. */
static void
v1_proto(struct v1 *c)
{
	static const char *const words[] = { "UNKNOWN", "TCP4 ", "TCP6 " };
	static const int families[] = { 0, AF_INET, AF_INET6 };
	size_t have = c->end - c->pos, least = SIZE_MAX;

	if (c->st != V1_GOING)
		return;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t n = strlen(words[i]), after;

		if (memcmp(c->buf + c->pos, words[i], have < n ? have : n) != 0)
			continue;
		if (have >= n) {
			c->pos += n;
			c->family = families[i];
			return;
		}
		after = families[i] == 0 ? 2 : v1_tcp_min(families[i], 0);
		if (n - have + after < least)
			least = n - have + after;
	}
	if (least == SIZE_MAX)
		v1_bad(c, "v1: the protocol is not TCP4, TCP6 or UNKNOWN");
	c->rest = 0;
	v1_short(c, least);
}

/* Reads the run of bytes from set at the cursor into tok (at most max, NUL-terminated); a
 * complete token has at least min bytes. */
static size_t
v1_token(struct v1 *c, const char *set, size_t min, size_t max, char *tok)
{
	size_t n = 0;

	/* strchr would find the terminator of set for a NUL byte. */
	while (c->pos < c->end && c->buf[c->pos] != '\0' && strchr(set, c->buf[c->pos]) != NULL) {
		if (n == max) {
			v1_bad(c, "v1: a field is too long");
			break;
		}
		tok[n++] = (char)c->buf[c->pos++];
	}
	tok[n] = '\0';
	if (c->pos == c->end)
		v1_short(c, n < min ? min - n : 0);
	return n;
}

/* Whether s (digits and dots) is, or can begin, four numbers 0-255 without leading zeros. */
static int
v1_quad_ok(const char *s)
{
	int parts = 1, digits = 0, val = 0;

	for (; *s != '\0'; s++) {
		if (*s == '.') {
			if (digits == 0 || ++parts > 4)
				return 0;
			digits = val = 0;
			continue;
		}
		if (digits == 1 && val == 0)
			return 0;
		val = val * 10 + (*s - '0');
		if (++digits > 3 || val > 255)
			return 0;
	}
	return 1;
}

/* An address of the line's family.  A partial one is checked as far as it goes. */
static void
v1_addr(struct v1 *c, unsigned char *addr)
{
	int v4 = c->family == AF_INET;
	char tok[INET6_ADDRSTRLEN];

	v1_token(c, v4 ? "0123456789." : "0123456789abcdefABCDEF:.", v1_min(c->family, V1_SRC),
	    v4 ? 15 : 45, tok);
	if (c->st == V1_BAD)
		return;
	if (v4 && !v1_quad_ok(tok))
		v1_bad(c, "v1: not an IPv4 address");
	else if (c->st == V1_GOING && inet_pton(c->family, tok, addr) != 1)
		v1_bad(c, v4 ? "v1: not an IPv4 address" : "v1: not an IPv6 address");
}

/* A port: 0-65535, no sign, no leading zero. */
static void
v1_port(struct v1 *c, uint16_t *port)
{
	char tok[8];
	size_t n = v1_token(c, "0123456789", 1, 5, tok);
	unsigned long v = 0;

	if (c->st == V1_BAD)
		return;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned long)(tok[i] - '0');
	if ((n > 1 && tok[0] == '0') || v > 65535 || (n == 0 && c->st == V1_GOING))
		v1_bad(c, "v1: a port is not a number from 0 to 65535");
	*port = (uint16_t)v;
}

static void
v1_step(struct v1 *c, enum v1_step step)
{
	switch (step) {
	case V1_SRC:
		v1_addr(c, c->src);
		break;
	case V1_DST:
		v1_addr(c, c->dst);
		break;
	case V1_SPORT:
		v1_port(c, &c->sport);
		break;
	case V1_DPORT:
		v1_port(c, &c->dport);
		break;
	case V1_SP:
		v1_lit(c, " ", "v1: the fields are not one space apart");
		break;
	case V1_CRLF:
		v1_lit(c, "\r\n", "v1: the ports are not followed by CRLF");
		break;
	}
}

/* After "UNKNOWN": CRLF, or a space and anything but CR and LF up to the CRLF. */
static void
v1_unknown(struct v1 *c)
{
	if (c->pos < c->end && c->buf[c->pos] == ' ') {
		c->pos++;
		while (c->pos < c->end && c->buf[c->pos] != '\r' && c->buf[c->pos] != '\n')
			c->pos++;
	}
	c->rest = 0;
	v1_lit(c, "\r\n", "v1: the UNKNOWN line does not end in CRLF");
}

static void
v1_line(struct v1 *c)
{
	c->rest = 9; /* "UNKNOWN\r\n" */
	v1_lit(c, "PROXY ", "not a PROXY header");
	v1_proto(c);
	if (c->st == V1_GOING && c->family == 0)
		v1_unknown(c);
	for (size_t i = 0; i < V1_TCP_STEPS && c->st == V1_GOING && c->family != 0; i++) {
		c->rest = v1_tcp_min(c->family, i + 1);
		v1_step(c, v1_tcp[i]);
	}
}

static enum proxy_status
v1_parse(const unsigned char *buf, size_t len, struct proxy_result *out)
{
	struct v1 c;
	size_t need;

	memset(&c, 0, sizeof(c));
	c.buf = buf;
	c.end = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
	out->version = 1;
	v1_line(&c);
	if (c.st == V1_BAD)
		return proxy_invalid(out, c.why);
	if (c.st == V1_SHORT) {
		need = c.end + c.more + c.rest;
		if (len >= PROXY_V1_MAX || need > PROXY_V1_MAX)
			return proxy_invalid(out, "v1: no CRLF in the first 107 bytes");
		return proxy_more(out, need > len ? need : len + 1);
	}
	out->len = c.pos;
	out->cmd = c.family == 0 ? PROXY_CMD_LOCAL : PROXY_CMD_PROXY;
	if (c.family != 0) {
		proxy_sockaddr(&out->src, c.family, c.src, c.sport);
		proxy_sockaddr(&out->dst, c.family, c.dst, c.dport);
	}
	return PROXY_OK;
}

/*
 * Version 2: the signature, version and command, family and protocol, a 16-bit length, then
 * that many bytes: the addresses and the TLVs.
 */

/* The size of the address block of a family/protocol byte, or -1 for one the spec does not
 * list. */
static int
v2_addr_size(unsigned char fam)
{
	switch (fam) {
	case 0x00:
		return 0;
	case 0x11:
	case 0x12:
		return 12;
	case 0x21:
	case 0x22:
		return 36;
	case 0x31:
	case 0x32:
		return 216;
	default:
		return -1;
	}
}

/* CRC32C (Castagnoli, as RFC 4960 appendix B) of the n bytes of p, the four at skip counted as
 * zeros: the header with its own checksum field cleared. */
static uint32_t
v2_crc32c(const unsigned char *p, size_t n, size_t skip)
{
	uint32_t crc = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		crc ^= i - skip < 4 ? 0u : p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

/* Checks that the TLVs in buf[off, total) fill it exactly, and any CRC32C; NULL when they do,
 * else why not. */
static const char *
v2_tlvs(const unsigned char *buf, size_t off, size_t total)
{
	while (off < total) {
		size_t vlen;
		uint32_t sent;

		if (total - off < 3)
			return "v2: a TLV is cut short";
		vlen = (size_t)buf[off + 1] << 8 | buf[off + 2];
		if (vlen > total - off - 3)
			return "v2: a TLV runs past the header";
		if (buf[off] == V2_TYPE_CRC32C) {
			if (vlen != 4)
				return "v2: the CRC32C TLV is not 4 bytes";
			sent = (uint32_t)buf[off + 3] << 24 | (uint32_t)buf[off + 4] << 16 |
			    (uint32_t)buf[off + 5] << 8 | buf[off + 6];
			if (sent != v2_crc32c(buf, total, off + 3))
				return "v2: the CRC32C does not match";
		}
		off += 3 + vlen;
	}
	return NULL;
}

/* The TCP addresses at a: both addresses, then both ports. */
static void
v2_addresses(const unsigned char *a, unsigned char fam, struct proxy_result *out)
{
	size_t n = fam == 0x11 ? 4 : 16;
	int family = fam == 0x11 ? AF_INET : AF_INET6;
	const unsigned char *ports = a + 2 * n;

	proxy_sockaddr(&out->src, family, a, (uint16_t)(ports[0] << 8 | ports[1]));
	proxy_sockaddr(&out->dst, family, a + n, (uint16_t)(ports[2] << 8 | ports[3]));
}

static enum proxy_status
v2_parse(const unsigned char *buf, size_t len, struct proxy_result *out)
{
	int asize = 0, relayed;
	size_t total;
	const char *why;

	out->version = 2;
	if (memcmp(buf, v2_sig, len < sizeof(v2_sig) ? len : sizeof(v2_sig)) != 0)
		return proxy_invalid(out, "v2: bad signature");
	if (len > 12 && (buf[12] & 0xf0) != 0x20)
		return proxy_invalid(out, "v2: the version is not 2");
	if (len > 12 && (buf[12] & 0x0f) > 1)
		return proxy_invalid(out, "v2: the command is neither LOCAL nor PROXY");
	if (len > 13 && (asize = v2_addr_size(buf[13])) < 0)
		return proxy_invalid(out, "v2: unknown address family or protocol");
	if (len < V2_FIXED)
		return proxy_more(out, V2_FIXED);
	total = V2_FIXED + ((size_t)buf[14] << 8 | buf[15]);
	relayed = (buf[12] & 0x0f) == 1;
	if (total > PROXY_V2_MAX)
		return proxy_invalid(out, "v2: longer than 2064 bytes");
	if (relayed && total < V2_FIXED + (size_t)asize)
		return proxy_invalid(out, "v2: the length cannot hold the addresses");
	if (len < total)
		return proxy_more(out, total);
	/* LOCAL's block, and an UNSPEC one, are discarded unread, as the spec says. */
	if (relayed && buf[13] != 0x00) {
		why = v2_tlvs(buf, V2_FIXED + (size_t)asize, total);
		if (why != NULL)
			return proxy_invalid(out, why);
		if (buf[13] == 0x11 || buf[13] == 0x21)
			v2_addresses(buf + V2_FIXED, buf[13], out);
	}
	out->cmd = relayed ? PROXY_CMD_PROXY : PROXY_CMD_LOCAL;
	out->len = total;
	return PROXY_OK;
}

enum proxy_status
proxy_parse(const unsigned char *buf, size_t len, struct proxy_result *out)
{
	memset(out, 0, sizeof(*out));
	out->src.ss_family = AF_UNSPEC;
	out->dst.ss_family = AF_UNSPEC;
	if (len == 0)
		return proxy_more(out, PROXY_MIN);
	if (buf[0] == 'P')
		return v1_parse(buf, len, out);
	if (buf[0] == '\r')
		return v2_parse(buf, len, out);
	return proxy_invalid(out, "not a PROXY header");
}
