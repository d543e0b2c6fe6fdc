/*
 * Unit tests for proxy.c: the PROXY protocol header, v1 and v2, as HAProxy's
 * doc/proxy-protocol.txt gives it; every prefix of a valid header asks for more, with a need
 * that never reaches past the header, and every kind of bad input is refused as early as it
 * can be.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proxy.h"

static const unsigned char sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

static enum proxy_status
parse(const void *buf, size_t len, struct proxy_result *r)
{
	return proxy_parse(buf, len, r);
}

/* "ADDR:PORT" or "[ADDR]:PORT" of an address the parser gave, "-" for none. */
static const char *
addr_text(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, outlen, "%s:%u", host, ntohs(s4->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, outlen, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		snprintf(out, outlen, "-");
	}
	return out;
}

static void
expect_addrs(const struct proxy_result *r, const char *src, const char *dst)
{
	char a[80], b[80];

	cr_assert_str_eq(addr_text(&r->src, a, sizeof(a)), src);
	cr_assert_str_eq(addr_text(&r->dst, b, sizeof(b)), dst);
}

/* Every proper prefix of hdr (n bytes) needs more, and asks for no byte past the header; the
 * whole is OK and n long, also when data follows it. */
static void
expect_header(const unsigned char *hdr, size_t n, struct proxy_result *r)
{
	unsigned char buf[PROXY_HDR_MAX + 64];
	enum proxy_status st;

	cr_assert_leq(n, PROXY_HDR_MAX);
	for (size_t i = 0; i < n; i++) {
		st = parse(hdr, i, r);
		cr_assert_eq(st, PROXY_NEED_MORE, "prefix of %zu of %zu bytes: status %d (%s)", i, n,
		    st, st == PROXY_INVALID ? r->reason : "");
		cr_assert(r->need > i && r->need <= n, "prefix of %zu: need %zu, header %zu", i,
		    r->need, n);
	}
	memcpy(buf, hdr, n);
	memcpy(buf + n, "GET / HTTP/1.0\r\n\r\n\x16\x03\x01", 21);
	st = parse(buf, n + 21, r);
	cr_assert_eq(st, PROXY_OK, "with data after it: status %d (%s)", st,
	    st == PROXY_INVALID ? r->reason : "");
	cr_assert_eq(r->len, n, "with data after it: len %zu, want %zu", r->len, n);
	st = parse(hdr, n, r);
	cr_assert_eq(st, PROXY_OK, "status %d (%s)", st, st == PROXY_INVALID ? r->reason : "");
	cr_assert_eq(r->len, n, "len %zu, want %zu", r->len, n);
}

static void
expect_v1(const char *line, enum proxy_cmd cmd, const char *src, const char *dst)
{
	struct proxy_result r;

	expect_header((const unsigned char *)line, strlen(line), &r);
	cr_assert_eq(r.version, 1);
	cr_assert_eq(r.cmd, cmd, "%s: cmd %d", line, r.cmd);
	expect_addrs(&r, src, dst);
}

/* The input is refused, and no later than at its last byte: every shorter prefix of it that
 * the parser refuses must be refused for good, so checking the whole is enough. */
static void
expect_invalid(const void *buf, size_t n, const char *what)
{
	struct proxy_result r;
	enum proxy_status st = parse(buf, n, &r);

	cr_assert_eq(st, PROXY_INVALID, "%s: status %d, want INVALID", what, st);
	cr_assert_not_null(r.reason, "%s: no reason", what);
	cr_assert_gt(strlen(r.reason), 0);
}

static void
expect_v1_invalid(const char *line)
{
	expect_invalid(line, strlen(line), line);
}

/* Builds a v2 header: the signature, ver_cmd, fam, and a block of blen bytes (only the fixed
 * part, with that length, when block is NULL). */
static size_t
v2(unsigned char *b, unsigned char ver_cmd, unsigned char fam, const void *block, size_t blen)
{
	memcpy(b, sig, 12);
	b[12] = ver_cmd;
	b[13] = fam;
	b[14] = (unsigned char)(blen >> 8);
	b[15] = (unsigned char)blen;
	if (block != NULL)
		memcpy(b + 16, block, blen);
	return 16 + blen;
}

/* The TCP over IPv4 block of 192.0.2.1:12345 -> 198.51.100.2:7007, then room for TLVs. */
static size_t
block4(unsigned char *a)
{
	static const unsigned char b[12] = { 192, 0, 2, 1, 198, 51, 100, 2, 0x30, 0x39, 0x1b, 0x5f };

	memcpy(a, b, sizeof(b));
	return sizeof(b);
}

static size_t
tlv(unsigned char *p, unsigned char type, const void *value, size_t len)
{
	p[0] = type;
	p[1] = (unsigned char)(len >> 8);
	p[2] = (unsigned char)len;
	if (len > 0)
		memcpy(p + 3, value, len);
	return 3 + len;
}

/* CRC32C, table-driven (the parser's is bitwise), to build headers that carry one. */
static uint32_t
crc32c(const unsigned char *p, size_t n)
{
	static uint32_t table[256];
	uint32_t crc = 0xffffffffu;

	if (table[1] == 0)
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
			table[i] = c;
		}
	for (size_t i = 0; i < n; i++)
		crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* --- v1: the spec's examples --- */

Test(v1, spec_example_before_an_http_request)
{
	const char *in = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
			 "GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
	struct proxy_result r;

	cr_assert_eq(parse(in, strlen(in), &r), PROXY_OK);
	cr_assert_eq(r.len, 47u, "len %zu", r.len);
	expect_addrs(&r, "192.168.0.1:56324", "192.168.0.11:443");
	expect_v1("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", PROXY_CMD_PROXY,
	    "192.168.0.1:56324", "192.168.0.11:443");
}

Test(v1, spec_longest_tcp4_line_is_56_bytes)
{
	const char *l = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";

	cr_assert_eq(strlen(l), 56u);
	expect_v1(l, PROXY_CMD_PROXY, "255.255.255.255:65535", "255.255.255.255:65535");
}

Test(v1, spec_longest_tcp6_line_is_104_bytes)
{
	const char *l = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
			"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";

	cr_assert_eq(strlen(l), 104u);
	expect_v1(l, PROXY_CMD_PROXY, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
	    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

Test(v1, spec_unknown_short_form_is_local)
{
	expect_v1("PROXY UNKNOWN\r\n", PROXY_CMD_LOCAL, "-", "-");
}

Test(v1, spec_worst_case_unknown_line_of_107_bytes_is_ignored_up_to_crlf)
{
	const char *l = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
			"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";

	cr_assert_eq(strlen(l), 107u);
	expect_v1(l, PROXY_CMD_LOCAL, "-", "-");
	expect_v1("PROXY UNKNOWN anything at all, \x01\x7f\xff\r\n", PROXY_CMD_LOCAL, "-", "-");
}

Test(v1, shortest_addresses_and_ports)
{
	expect_v1("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", PROXY_CMD_PROXY, "0.0.0.0:0", "0.0.0.0:0");
	expect_v1("PROXY TCP6 :: ::1 1 65535\r\n", PROXY_CMD_PROXY, "[::]:1", "[::1]:65535");
	expect_v1("PROXY TCP6 2001:DB8::A 2001:db8::b 10 20\r\n", PROXY_CMD_PROXY,
	    "[2001:db8::a]:10", "[2001:db8::b]:20");
}

Test(v1, tcp6_takes_what_inet_pton_takes_including_mapped_ipv4)
{
	expect_v1("PROXY TCP6 ::ffff:192.0.2.1 ::ffff:192.0.2.2 5 6\r\n", PROXY_CMD_PROXY,
	    "[::ffff:192.0.2.1]:5", "[::ffff:192.0.2.2]:6");
}

/* --- v1: what is refused --- */

Test(v1, line_ends_only_in_crlf)
{
	expect_v1_invalid("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n");
	expect_v1_invalid("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\rX");
	expect_v1_invalid("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\r\n");
	expect_v1_invalid("PROXY UNKNOWN\n");
	expect_v1_invalid("PROXY UNKNOWN\r\r\n");
	expect_v1_invalid("PROXY UNKNOWN a\nb\r\n");
	expect_v1_invalid("PROXY UNKNOWN a\rb\r\n");
}

Test(v1, fields_are_exactly_one_space_apart)
{
	expect_v1_invalid("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8\r\n");
	expect_v1_invalid("PROXY TCP4\r\n");
	expect_v1_invalid("PROXY \r\n");
	expect_v1_invalid("PROXY\r\n");
}

Test(v1, protocol_is_tcp4_tcp6_or_unknown_in_capitals)
{
	expect_v1_invalid("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY UNKNOWNX\r\n");
	expect_v1_invalid("PROXY UNKNOWN4 1.2.3.4 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP 1.2.3.4 5.6.7.8 1 2\r\n");
}

Test(v1, ipv4_addresses_are_four_decimal_numbers_without_leading_zeros)
{
	expect_v1_invalid("PROXY TCP4 192.168.0.01 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP4 010.1.1.1 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP4 256.1.1.1 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP4 .1.2.3 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.1234 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP4 0x1.2.3.4 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP4 16909060 5.6.7.8 1 2\r\n");
}

Test(v1, addresses_must_be_of_the_family_named)
{
	expect_v1_invalid("PROXY TCP4 ::1 ::1 1 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 ::1 1 2\r\n");
	expect_v1_invalid("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP6 ::1 5.6.7.8 1 2\r\n");
	expect_v1_invalid("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n");
	expect_v1_invalid("PROXY TCP6 1::2::3 ::1 1 2\r\n");
	expect_v1_invalid("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n");
	expect_v1_invalid("PROXY TCP6 [::1] ::1 1 2\r\n");
	expect_v1_invalid("PROXY TCP6 12345::1 ::1 1 2\r\n");
}

Test(v1, ports_are_0_to_65535_without_sign_or_leading_zero)
{
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 080\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n");
	expect_v1_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n");
}

Test(v1, no_crlf_within_107_bytes)
{
	char l[200];
	struct proxy_result r;

	/* "PROXY UNKNOWN " and 91 bytes end in CRLF at byte 107: the longest line there is. */
	snprintf(l, sizeof(l), "PROXY UNKNOWN %091d\r\n", 0);
	cr_assert_eq(strlen(l), 107u);
	cr_assert_eq(parse(l, strlen(l), &r), PROXY_OK);
	cr_assert_eq(r.len, 107u);
	/* One byte more and the CRLF ends at byte 108: refused as soon as 106 bytes hold no CR. */
	snprintf(l, sizeof(l), "PROXY UNKNOWN %092d\r\n", 0);
	cr_assert_eq(parse(l, 105, &r), PROXY_NEED_MORE);
	cr_assert_eq(r.need, 107u);
	cr_assert_eq(parse(l, 106, &r), PROXY_INVALID, "no room left for the CRLF");
	cr_assert_eq(parse(l, 107, &r), PROXY_INVALID, "107 bytes without CRLF were accepted");
	cr_assert_eq(parse(l, strlen(l), &r), PROXY_INVALID);
	cr_assert_eq(parse(l, 107, &r), PROXY_INVALID);
	/* A CR as byte 107 cannot begin a CRLF that fits. */
	memset(l, 0, sizeof(l));
	snprintf(l, sizeof(l), "PROXY UNKNOWN %092d\r", 0);
	cr_assert_eq(parse(l, 107, &r), PROXY_INVALID);
}

Test(v1, garbage_fails_at_the_first_byte_that_cannot_fit)
{
	static const char *const in[] = {
		"GET / HTTP/1.0\r\n\r\n", "SSH-2.0-OpenSSH_9.2\r\n", "\x16\x03\x01\x02\x00", "",
		"HELO example.org\r\n", " PROXY UNKNOWN\r\n", "\nPROXY UNKNOWN\r\n",
	};
	struct proxy_result r;

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		size_t n = strlen(in[i]) > 0 ? strlen(in[i]) : 1;
		cr_assert_eq(parse(in[i], 1, &r), PROXY_INVALID, "input %zu", i);
		cr_assert_eq(parse(in[i], n, &r), PROXY_INVALID, "input %zu", i);
	}
	cr_assert_eq(parse("PROXZ", 5, &r), PROXY_INVALID);
	cr_assert_eq(parse("PROX", 4, &r), PROXY_NEED_MORE);
	cr_assert_eq(parse("PROXY TCP4 1.2.3.4 5", 20, &r), PROXY_NEED_MORE);
	cr_assert_eq(parse("PROXY TCP4 1.2.3.4 5x", 21, &r), PROXY_INVALID);
	cr_assert_eq(parse("PROXY TCP4 1.2.3.456", 20, &r), PROXY_INVALID, "an octet over 255");
	cr_assert_eq(parse("PROXY TCP4 01", 13, &r), PROXY_INVALID, "a leading zero");
	cr_assert_eq(parse("PROXY TCP4 1.2.3.4 5.6.7.8 65536", 32, &r), PROXY_INVALID);
	cr_assert_eq(parse("PROXY TCP6 ::g", 14, &r), PROXY_INVALID);
	cr_assert_eq(parse("PROXY TC", 8, &r), PROXY_NEED_MORE);
	cr_assert_eq(parse("PROXY TCP", 9, &r), PROXY_NEED_MORE);
	cr_assert_eq(parse("PROXY UN", 8, &r), PROXY_NEED_MORE);
	cr_assert_eq(parse("PROXY UX", 8, &r), PROXY_INVALID);
}

Test(v1, an_empty_buffer_asks_for_the_shortest_header)
{
	struct proxy_result r;

	cr_assert_eq(parse("", 0, &r), PROXY_NEED_MORE);
	cr_assert_eq(r.need, 15u, "need %zu", r.need);
	cr_assert_eq(parse("P", 1, &r), PROXY_NEED_MORE);
	cr_assert_eq(r.need, 15u);
	cr_assert_eq(r.version, 1);
}

/* --- v2: what is accepted --- */

Test(v2, proxy_tcp4)
{
	unsigned char a[64], h[128];
	size_t n = v2(h, 0x21, 0x11, a, block4(a));
	struct proxy_result r;

	cr_assert_eq(n, 28u);
	expect_header(h, n, &r);
	cr_assert_eq(r.version, 2);
	cr_assert_eq(r.cmd, PROXY_CMD_PROXY);
	expect_addrs(&r, "192.0.2.1:12345", "198.51.100.2:7007");
}

Test(v2, proxy_tcp6)
{
	unsigned char a[36] = { 0 }, h[128];
	struct proxy_result r;
	size_t n;

	inet_pton(AF_INET6, "2001:db8::1", a);
	inet_pton(AF_INET6, "2001:db8:ffff::2", a + 16);
	a[32] = 0xff, a[33] = 0xff, a[34] = 0x00, a[35] = 0x00;
	n = v2(h, 0x21, 0x21, a, sizeof(a));
	expect_header(h, n, &r);
	cr_assert_eq(r.cmd, PROXY_CMD_PROXY);
	expect_addrs(&r, "[2001:db8::1]:65535", "[2001:db8:ffff::2]:0");
}

Test(v2, local_uses_the_connection_and_discards_the_block_unread)
{
	unsigned char h[64], junk[7] = { 1, 2, 3, 4, 5, 6, 7 };
	struct proxy_result r;
	size_t n;

	n = v2(h, 0x20, 0x00, NULL, 0);
	expect_header(h, n, &r);
	cr_assert_eq(r.cmd, PROXY_CMD_LOCAL);
	expect_addrs(&r, "-", "-");
	/* A block, even one that could not hold the family's addresses, is skipped. */
	n = v2(h, 0x20, 0x11, junk, sizeof(junk));
	expect_header(h, n, &r);
	cr_assert_eq(r.cmd, PROXY_CMD_LOCAL);
	cr_assert_eq(r.len, 23u);
	expect_addrs(&r, "-", "-");
}

Test(v2, proxy_without_a_tcp_address_gives_none)
{
	unsigned char a[216] = { 0 }, h[300];
	static const unsigned char fams[] = { 0x00, 0x12, 0x22, 0x31, 0x32 };
	static const size_t sizes[] = { 0, 12, 36, 216, 216 };
	struct proxy_result r;

	for (size_t i = 0; i < sizeof(fams); i++) {
		size_t n = v2(h, 0x21, fams[i], a, sizes[i]);
		expect_header(h, n, &r);
		cr_assert_eq(r.cmd, PROXY_CMD_PROXY, "fam %#x", fams[i]);
		expect_addrs(&r, "-", "-");
	}
	/* UNSPEC's block is ignored, whatever it holds. */
	expect_header(h, v2(h, 0x21, 0x00, "\x01\x02", 2), &r);
}

Test(v2, tlvs_after_the_addresses_are_skipped_and_counted_in_the_length)
{
	unsigned char a[600], h[700];
	size_t b = block4(a), n;
	struct proxy_result r;

	b += tlv(a + b, 0x01, "h2", 2);                        /* ALPN */
	b += tlv(a + b, 0x02, "example.org", 11);              /* AUTHORITY */
	b += tlv(a + b, 0x04, NULL, 0);                        /* NOOP, empty */
	b += tlv(a + b, 0x05, "0123456789abcdef", 16);         /* UNIQUE_ID */
	b += tlv(a + b, 0x20, "\x01\x00\x00\x00\x00", 5);      /* SSL, no sub-TLV */
	b += tlv(a + b, 0xe0, NULL, 0);                        /* custom */
	n = v2(h, 0x21, 0x11, a, b);
	expect_header(h, n, &r);
	expect_addrs(&r, "192.0.2.1:12345", "198.51.100.2:7007");
}

Test(v2, crc32c_is_checked_when_present)
{
	unsigned char a[64], h[128];
	size_t b = block4(a), at, n;
	uint32_t c;
	struct proxy_result r;

	cr_assert_eq(crc32c((const unsigned char *)"123456789", 9), 0xe3069283u);
	b += tlv(a + b, 0x04, "pad", 3);
	at = 16 + b + 3;
	b += tlv(a + b, 0x03, "\0\0\0\0", 4);
	n = v2(h, 0x21, 0x11, a, b);
	c = crc32c(h, n);
	h[at] = (unsigned char)(c >> 24), h[at + 1] = (unsigned char)(c >> 16);
	h[at + 2] = (unsigned char)(c >> 8), h[at + 3] = (unsigned char)c;
	expect_header(h, n, &r);
	h[at + 3] ^= 1;
	expect_invalid(h, n, "a wrong CRC32C");
	h[at + 3] ^= 1;
	h[20] ^= 0x80;
	expect_invalid(h, n, "an address changed under its CRC32C");
	/* A CRC32C TLV of any other size than 4 bytes. */
	b = block4(a);
	b += tlv(a + b, 0x03, "\0\0\0", 3);
	expect_invalid(h, v2(h, 0x21, 0x11, a, b), "a 3-byte CRC32C");
}

Test(v2, the_longest_header_accepted_is_2064_bytes)
{
	static unsigned char a[4096], h[4200], pad[4096];
	size_t b = block4(a);
	struct proxy_result r;

	b += tlv(a + b, 0x04, pad, 2048 - 12 - 3);
	cr_assert_eq(b, 2048u);
	expect_header(h, v2(h, 0x21, 0x11, a, b), &r);
	cr_assert_eq(r.len, (size_t)PROXY_V2_MAX);
	/* One byte more is refused at the length field, before any of the block arrives. */
	b = block4(a) + tlv(a + 12, 0x04, pad, 2049 - 12 - 3);
	expect_invalid(h, v2(h, 0x21, 0x11, a, b), "a header of 2065 bytes");
	cr_assert_eq(parse(h, 16, &r), PROXY_INVALID);
	cr_assert_eq(parse(h, 15, &r), PROXY_NEED_MORE);
	cr_assert_eq(r.need, 16u);
	v2(h, 0x20, 0x00, NULL, 0xffff);
	expect_invalid(h, 16, "a LOCAL of 65535 bytes");
}

/* --- v2: what is refused --- */

Test(v2, every_byte_of_the_signature_is_checked_as_it_arrives)
{
	unsigned char a[64], h[128];
	size_t n = v2(h, 0x21, 0x11, a, block4(a));
	struct proxy_result r;

	for (size_t i = 1; i < 12; i++) {
		h[i] ^= 0x20;
		cr_assert_eq(parse(h, i, &r), PROXY_NEED_MORE, "byte %zu", i);
		expect_invalid(h, i + 1, "a signature byte changed");
		expect_invalid(h, n, "a signature byte changed");
		h[i] ^= 0x20;
	}
	expect_invalid("\r\n\r\n\r\n", 6, "CRLFs");
	expect_invalid("\r\nPROXY", 7, "CRLF before PROXY");
}

Test(v2, version_must_be_2)
{
	unsigned char a[64], h[128];
	static const unsigned char bad[] = { 0x01, 0x11, 0x31, 0x41, 0xf1, 0x00, 0x10 };

	for (size_t i = 0; i < sizeof(bad); i++) {
		v2(h, bad[i], 0x11, a, block4(a));
		expect_invalid(h, 13, "a version other than 2");
	}
}

Test(v2, command_must_be_local_or_proxy)
{
	unsigned char a[64], h[128];

	for (unsigned c = 2; c < 16; c++) {
		v2(h, (unsigned char)(0x20 | c), 0x11, a, block4(a));
		expect_invalid(h, 13, "an unknown command");
	}
}

Test(v2, family_and_protocol_must_be_one_the_spec_lists)
{
	unsigned char a[256] = { 0 }, h[300];
	static const unsigned char ok[] = { 0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32 };
	struct proxy_result r;

	for (unsigned f = 0; f < 256; f++) {
		int listed = memchr(ok, (int)f, sizeof(ok)) != NULL;
		size_t n;

		for (unsigned cmd = 0x20; cmd <= 0x21; cmd++) {
			n = v2(h, (unsigned char)cmd, (unsigned char)f, a, 216);
			cr_assert_eq(parse(h, n, &r), listed ? PROXY_OK : PROXY_INVALID,
			    "fam %#x cmd %#x", f, cmd);
			if (!listed)
				expect_invalid(h, 14, "an unlisted family byte");
		}
	}
}

Test(v2, proxy_length_must_hold_the_addresses)
{
	unsigned char a[256] = { 0 }, h[300];
	static const unsigned char fams[] = { 0x11, 0x12, 0x21, 0x22, 0x31, 0x32 };
	static const size_t sizes[] = { 12, 12, 36, 36, 216, 216 };
	struct proxy_result r;

	for (size_t i = 0; i < sizeof(fams); i++) {
		v2(h, 0x21, fams[i], a, sizes[i] - 1);
		expect_invalid(h, 16, "a block one byte short");
		cr_assert_eq(parse(h, 15, &r), PROXY_NEED_MORE);
		/* LOCAL needs none. */
		cr_assert_eq(parse(h, v2(h, 0x20, fams[i], a, 0), &r), PROXY_OK);
	}
}

Test(v2, tlvs_must_fill_the_rest_exactly)
{
	unsigned char a[64], h[128];
	size_t b;

	b = block4(a);
	a[b++] = 0x04;
	a[b++] = 0x00;
	expect_invalid(h, v2(h, 0x21, 0x11, a, b), "2 bytes after the addresses");
	b = block4(a);
	a[b++] = 0x04;
	expect_invalid(h, v2(h, 0x21, 0x11, a, b), "1 byte after the addresses");
	b = block4(a);
	b += tlv(a + b, 0x02, "example", 7);
	expect_invalid(h, v2(h, 0x21, 0x11, a, b - 1), "a TLV one byte short");
	b = block4(a);
	b += tlv(a + b, 0x04, NULL, 0);
	a[b - 1] = 0x01; /* says 1 byte, has none */
	expect_invalid(h, v2(h, 0x21, 0x11, a, b), "a TLV past the end");
}

/* --- both: reading without reading past the header --- */

/* Reads as a server without MSG_PEEK would: exactly need - have bytes at a time, from a stream
 * where data follows the header, and never takes a byte of the data; in at most max_reads
 * reads, as need is the shortest header that the bytes so far can begin. */
static void
read_exactly(const unsigned char *stream, size_t hdrlen, size_t total, int max_reads)
{
	struct proxy_result r;
	size_t have = 0;
	int reads = 0;
	enum proxy_status st;

	while ((st = parse(stream, have, &r)) == PROXY_NEED_MORE) {
		cr_assert_gt(r.need, have);
		cr_assert_leq(r.need, hdrlen, "asked for %zu bytes of a %zu-byte header", r.need,
		    hdrlen);
		have = r.need;
		reads++;
	}
	cr_assert_eq(st, PROXY_OK);
	cr_assert_eq(r.len, hdrlen);
	cr_assert_leq(have, total);
	cr_assert_leq(reads, max_reads, "%d reads for a %zu-byte header", reads, hdrlen);
}

Test(both, byte_exact_reads_never_take_data)
{
	const char *v1 = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nhello";
	const char *l4 = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\nhello";
	const char *l6 = "PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\nhello";
	unsigned char a[64], h[128];
	size_t n = v2(h, 0x21, 0x11, a, block4(a));

	memcpy(h + n, "hello", 5);

	read_exactly((const unsigned char *)v1, 47, strlen(v1), 6);
	read_exactly((const unsigned char *)l4, 56, strlen(l4), 8);
	read_exactly((const unsigned char *)l6, 45, strlen(l6), 7);
	read_exactly((const unsigned char *)"PROXY UNKNOWN\r\nhello", 15, 20, 1);
	read_exactly((const unsigned char *)"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nhello", 32, 37, 2);
	read_exactly(h, n, n + 5, 3);
}
