/*
 * Unit tests for cidr.c: blocks and bare addresses parsed and written back, matching at every
 * kind of prefix, IPv4-mapped peers, refused host bits and junk, and the allow/deny verdicts.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "cidr.h"

static struct cidr
block(const char *text)
{
	struct cidr c;
	char err[160] = "";

	cr_assert_eq(cidr_parse(text, &c, err, sizeof(err)), 0, "'%s' refused: %s", text, err);
	return c;
}

/* A peer address, with a port that must not matter. */
static struct sockaddr_storage
peer(const char *ip)
{
	struct addrinfo hints, *ai;
	struct sockaddr_storage ss;

	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	hints.ai_socktype = SOCK_STREAM;
	cr_assert_eq(getaddrinfo(ip, "40000", &hints, &ai), 0, "%s", ip);
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return ss;
}

static int
in(const char *blk, const char *ip)
{
	struct cidr c = block(blk);
	struct sockaddr_storage ss = peer(ip);

	return cidr_match(&c, (struct sockaddr *)&ss);
}

static void
expect_text(const char *text, const char *want)
{
	struct cidr c = block(text);
	char out[CIDR_TEXT_MAX];

	cr_assert_str_eq(cidr_format(&c, out, sizeof(out)), want, "'%s'", text);
}

/* Refused, with a reason on one line that contains want. */
static void
expect_refused(const char *text, const char *want)
{
	struct cidr c;
	char err[160] = "";

	cr_assert_eq(cidr_parse(text, &c, err, sizeof(err)), -1, "'%s' was accepted", text);
	cr_assert_gt(strlen(err), 0, "'%s': no reason", text);
	for (const char *p = err; *p != '\0'; p++)
		cr_assert((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f,
		    "'%s': reason with byte %#x: %s", text, (unsigned char)*p, err);
	cr_assert_not_null(strstr(err, want), "'%s': reason '%s' lacks '%s'", text, err, want);
}

Test(parse, blocks_and_bare_addresses)
{
	struct cidr c = block("192.0.2.0/24");

	cr_assert_eq(c.family, AF_INET);
	cr_assert_eq(c.bits, 24u);
	c = block("2001:db8::/32");
	cr_assert_eq(c.family, AF_INET6);
	cr_assert_eq(c.bits, 32u);
	expect_text("192.0.2.1", "192.0.2.1/32");
	expect_text("::1", "::1/128");
	expect_text("[::1]", "::1/128");
	expect_text("[2001:db8::]/32", "2001:db8::/32");
	expect_text("2001:DB8:0:0::/64", "2001:db8::/64");
	expect_text("0.0.0.0/0", "0.0.0.0/0");
	expect_text("::/0", "::/0");
	expect_text("255.255.255.255/32", "255.255.255.255/32");
	expect_text("10.128.0.0/9", "10.128.0.0/9");
	expect_text("fe80::/10", "fe80::/10");
}

Test(parse, mapped_blocks_of_96_bits_or_more_are_ipv4)
{
	expect_text("::ffff:192.0.2.1", "192.0.2.1/32");
	expect_text("::ffff:192.0.2.0/120", "192.0.2.0/24");
	expect_text("::ffff:10.0.0.0/104", "10.0.0.0/8");
	expect_text("::ffff:0:0/96", "0.0.0.0/0");
	expect_text("::fffe:0:0/95", "::fffe:0:0/95");
	expect_refused("::ffff:0:0/95", "::fffe:0:0/95");
	expect_text("::/80", "::/80");
	expect_text("::ffff:0:0/96", "0.0.0.0/0");
}

Test(parse, host_bits_are_refused_with_the_block_meant)
{
	expect_refused("10.1.2.3/8", "10.0.0.0/8");
	expect_refused("192.0.2.1/24", "192.0.2.0/24");
	expect_refused("192.0.2.129/25", "192.0.2.128/25");
	expect_refused("0.0.0.1/0", "0.0.0.0/0");
	expect_refused("2001:db8::1/32", "2001:db8::/32");
	expect_refused("::1/0", "::/0");
	expect_refused("fe80::1/10", "fe80::/10");
	expect_refused("::ffff:10.1.0.0/104", "10.0.0.0/8");
}

Test(parse, junk_is_refused_on_one_line)
{
	static const char *const addr[] = {
		"", "/", "/24", "localhost", "1.2.3", "1.2.3.4.5", "01.2.3.4", "256.0.0.0", "[1.2.3.4]",
		"[::1", "::1]", "[::1]]", "fe80::1%eth0", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4 /8",
		"1:2:3:4:5:6:7:8:9", "::g", "\n", "1.2.3.4\n", "\x01\x7f\xff",
	};
	static const char *const bits[] = {
		"1.2.3.4/", "1.2.3.4/33", "::/129", "1.2.3.4/-1", "1.2.3.4/+8", "1.2.3.0/024",
		"1.2.3.0/24/8", "1.2.3.0/24x", "1.2.3.0/ 24", "::/1280", "::/99999999999999999999",
		"1.2.3.0/24\n", "::ffff:0:0/",
	};
	char longer[300];

	for (size_t i = 0; i < sizeof(addr) / sizeof(addr[0]); i++)
		expect_refused(addr[i], "not an IPv4 or IPv6 address");
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		expect_refused(bits[i], "prefix length");
	expect_refused("1.2.3.4/33", "0 to 32");
	expect_refused("::/129", "0 to 128");
	memset(longer, '1', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	expect_refused(longer, "not an IPv4 or IPv6 address");
}

Test(parse, a_short_error_buffer_is_cut_not_overrun)
{
	struct cidr c;
	char err[8];

	memset(err, 'x', sizeof(err));
	cr_assert_eq(cidr_parse("junk", &c, err, 6), -1);
	cr_assert_eq(err[5], '\0');
	cr_assert_eq(err[6], 'x');
}

Test(match, prefix_zero_takes_every_address_of_its_family)
{
	cr_assert(in("0.0.0.0/0", "0.0.0.0"));
	cr_assert(in("0.0.0.0/0", "255.255.255.255"));
	cr_assert(in("0.0.0.0/0", "::ffff:203.0.113.9"), "a mapped peer is IPv4");
	cr_assert(!in("0.0.0.0/0", "::1"));
	cr_assert(in("::/0", "::1"));
	cr_assert(in("::/0", "2001:db8::1"));
	cr_assert(!in("::/0", "192.0.2.1"), "an IPv6 rule matched an IPv4 peer");
	cr_assert(!in("::/0", "::ffff:192.0.2.1"), "an IPv6 rule matched a mapped peer");
}

Test(match, full_length_is_one_address)
{
	cr_assert(in("192.0.2.1", "192.0.2.1"));
	cr_assert(!in("192.0.2.1", "192.0.2.0"));
	cr_assert(!in("192.0.2.1", "192.0.2.2"));
	cr_assert(in("::1", "::1"));
	cr_assert(!in("::1", "::"));
	cr_assert(!in("::1", "::2"));
	cr_assert(!in("::1", "127.0.0.1"));
	cr_assert(in("2001:db8::ffff/128", "2001:db8::ffff"));
	cr_assert(!in("2001:db8::ffff/128", "2001:db8::fffe"));
}

Test(match, odd_prefixes_cut_inside_a_byte)
{
	cr_assert(in("10.0.0.0/9", "10.127.255.255"));
	cr_assert(!in("10.0.0.0/9", "10.128.0.0"));
	cr_assert(in("128.0.0.0/1", "200.1.1.1"));
	cr_assert(!in("128.0.0.0/1", "127.255.255.255"));
	cr_assert(in("192.0.2.128/25", "192.0.2.255"));
	cr_assert(!in("192.0.2.128/25", "192.0.2.127"));
	cr_assert(in("192.0.2.2/31", "192.0.2.3"));
	cr_assert(!in("192.0.2.2/31", "192.0.2.4"));
	cr_assert(in("2001:db8::/33", "2001:db8:7fff::1"));
	cr_assert(!in("2001:db8::/33", "2001:db8:8000::1"));
	cr_assert(in("fe80::/10", "febf::1"));
	cr_assert(!in("fe80::/10", "fec0::1"));
	cr_assert(in("2001:db8::/127", "2001:db8::1"));
	cr_assert(!in("2001:db8::/127", "2001:db8::2"));
}

Test(match, mapped_peers_match_ipv4_blocks)
{
	cr_assert(in("192.0.2.0/24", "::ffff:192.0.2.77"));
	cr_assert(!in("192.0.2.0/24", "::ffff:192.0.3.1"));
	cr_assert(in("127.0.0.0/8", "::ffff:127.0.0.1"));
	cr_assert(in("::ffff:192.0.2.0/120", "192.0.2.5"), "a mapped rule on a plain IPv4 peer");
	/* Only ::ffff:0:0/96 is mapped; the old compatible form ::a.b.c.d is IPv6. */
	cr_assert(!in("192.0.2.0/24", "::192.0.2.1"));
	cr_assert(!in("192.0.2.0/24", "64:ff9b::192.0.2.1"));
}

Test(match, other_families_match_nothing)
{
	struct sockaddr_un un;
	struct cidr c = block("0.0.0.0/0"), c6 = block("::/0");

	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	cr_assert(!cidr_match(&c, (struct sockaddr *)&un));
	cr_assert(!cidr_match(&c6, (struct sockaddr *)&un));
}

/* The verdict for ip under allow and deny lists (NULL-terminated). */
static enum cidr_verdict
verdict(const char *const *allow, const char *const *deny, const char *ip)
{
	struct cidr_rules r;
	struct sockaddr_storage ss = peer(ip);

	memset(&r, 0, sizeof(r));
	for (; allow != NULL && *allow != NULL; allow++) {
		struct cidr c = block(*allow);
		cr_assert_eq(cidr_rules_add(&r, CIDR_ALLOW, &c), 0);
	}
	for (; deny != NULL && *deny != NULL; deny++) {
		struct cidr c = block(*deny);
		cr_assert_eq(cidr_rules_add(&r, CIDR_DENY, &c), 0);
	}
	return cidr_rules_check(&r, (struct sockaddr *)&ss);
}

Test(rules, no_rule_allows_everyone)
{
	cr_assert_eq(verdict(NULL, NULL, "192.0.2.1"), CIDR_ALLOWED);
	cr_assert_eq(verdict(NULL, NULL, "2001:db8::1"), CIDR_ALLOWED);
}

Test(rules, deny_alone_refuses_only_what_it_matches)
{
	static const char *const deny[] = { "192.0.2.0/24", "2001:db8::/32", NULL };

	cr_assert_eq(verdict(NULL, deny, "192.0.2.9"), CIDR_DENIED);
	cr_assert_eq(verdict(NULL, deny, "::ffff:192.0.2.9"), CIDR_DENIED);
	cr_assert_eq(verdict(NULL, deny, "2001:db8:1::1"), CIDR_DENIED);
	cr_assert_eq(verdict(NULL, deny, "198.51.100.1"), CIDR_ALLOWED);
	cr_assert_eq(verdict(NULL, deny, "2001:db9::1"), CIDR_ALLOWED);
}

Test(rules, allow_alone_refuses_everything_else)
{
	static const char *const allow[] = { "10.0.0.0/8", "::1", NULL };

	cr_assert_eq(verdict(allow, NULL, "10.9.8.7"), CIDR_ALLOWED);
	cr_assert_eq(verdict(allow, NULL, "::1"), CIDR_ALLOWED);
	cr_assert_eq(verdict(allow, NULL, "::ffff:10.0.0.1"), CIDR_ALLOWED);
	cr_assert_eq(verdict(allow, NULL, "11.0.0.1"), CIDR_NOT_ALLOWED);
	cr_assert_eq(verdict(allow, NULL, "::2"), CIDR_NOT_ALLOWED);
}

Test(rules, deny_wins_over_allow)
{
	static const char *const allow[] = { "10.0.0.0/8", NULL };
	static const char *const deny[] = { "10.1.0.0/16", NULL };

	cr_assert_eq(verdict(allow, deny, "10.2.0.1"), CIDR_ALLOWED);
	cr_assert_eq(verdict(allow, deny, "10.1.0.1"), CIDR_DENIED);
	cr_assert_eq(verdict(allow, deny, "192.0.2.1"), CIDR_NOT_ALLOWED);
	cr_assert_eq(verdict(deny, deny, "10.1.0.1"), CIDR_DENIED, "allowed and denied at once");
}

Test(rules, a_list_holds_its_max_blocks_and_refuses_one_more)
{
	struct cidr_rules r;
	struct cidr_list l;
	struct sockaddr_storage ss, last = peer("10.9.9.9");
	char text[32];

	memset(&r, 0, sizeof(r));
	memset(&l, 0, sizeof(l));
	cr_assert(!cidr_list_match(&l, (struct sockaddr *)&ss), "an empty list matched");
	for (int i = 0; i < CIDR_LIST_MAX; i++) {
		struct cidr c;
		snprintf(text, sizeof(text), "10.0.%d.%d", i / 256, i % 256);
		c = block(text);
		cr_assert_eq(cidr_rules_add(&r, CIDR_DENY, &c), 0, "rule %d", i);
		cr_assert_eq(cidr_list_add(&l, &c), 0, "block %d", i);
	}
	ss = peer(text); /* the last block added */
	cr_assert_geq(CIDR_LIST_MAX, 256, "100+ --allow rules must fit");
	struct cidr extra = block("10.9.9.9");
	cr_assert_eq(cidr_rules_add(&r, CIDR_DENY, &extra), -1);
	cr_assert_eq(cidr_list_add(&l, &extra), -1);
	cr_assert_eq(cidr_rules_add(&r, CIDR_ALLOW, &extra), 0, "the allow list is separate");
	cr_assert_eq(r.deny.n, (unsigned)CIDR_LIST_MAX);
	cr_assert(cidr_list_match(&l, (struct sockaddr *)&ss));
	cr_assert(!cidr_list_match(&l, (struct sockaddr *)&last));
	cr_assert_eq(cidr_rules_check(&r, (struct sockaddr *)&ss), CIDR_DENIED);
	cr_assert_eq(cidr_rules_check(&r, (struct sockaddr *)&last), CIDR_ALLOWED);
}

/* Random blocks written and read back come back the same, and contain their own address. */
Test(format, round_trips)
{
	char text[CIDR_TEXT_MAX], err[160];

	srand(14);
	for (int i = 0; i < 20000; i++) {
		struct cidr c, back;
		struct sockaddr_storage ss;
		unsigned char a[16];
		int v6 = rand() % 2;
		unsigned bits = (unsigned)rand() % (v6 ? 129 : 33);

		for (int k = 0; k < 16; k++)
			a[k] = (unsigned char)rand();
		if (!v6)
			inet_ntop(AF_INET, a, text, sizeof(text));
		else
			inet_ntop(AF_INET6, a, text, sizeof(text));
		ss = peer(text);
		c = block(text);
		cidr_format(&c, text, sizeof(text));
		err[0] = '\0';
		cr_assert(cidr_parse(text, &back, err, sizeof(err)) == 0 &&
		    memcmp(&back, &c, sizeof(c)) == 0, "'%s' did not read back: %s", text, err);
		/* Now the block of the same address with a random prefix. */
		c.bits = c.family == AF_INET ? (bits > 32 ? 32 : bits) : bits;
		for (unsigned k = c.bits; k < (c.family == AF_INET ? 32u : 128u); k++)
			c.addr[k / 8] &= (unsigned char)~(0x80u >> (k % 8));
		cidr_format(&c, text, sizeof(text));
		err[0] = '\0';
		cr_assert(cidr_parse(text, &back, err, sizeof(err)) == 0 &&
		    memcmp(&back, &c, sizeof(c)) == 0, "'%s' did not read back: %s", text, err);
		cr_assert(cidr_match(&back, (struct sockaddr *)&ss), "%s", text);
	}
}
