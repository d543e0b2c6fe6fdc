/*
 * Unit tests for dgguard.c: the sources the UDP echo never answers, and its rate limits, with
 * the clock stepped by hand.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dgguard.h"

static struct sockaddr_storage
addr(const char *ip, unsigned port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
	} else {
		cr_assert_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1, "%s", ip);
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
	}
	return ss;
}

static enum dg_verdict
source(const char *ip, unsigned port)
{
	struct sockaddr_storage ss = addr(ip, port);

	return dg_check_source((struct sockaddr *)&ss, 7007);
}

Test(source, ports_that_could_loop_are_refused)
{
	static const unsigned bad[] = { 0, 7, 13, 17, 19, 37, 53, 69, 123, 1023, 1900, 3702,
		5353, 5355, 11211, 7007 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(source("192.0.2.1", bad[i]), DG_BAD_PORT, "port %u", bad[i]);
		cr_assert_eq(source("2001:db8::1", bad[i]), DG_BAD_PORT, "port %u", bad[i]);
	}
	cr_assert_eq(source("192.0.2.1", 1024), DG_OK);
	cr_assert_eq(source("127.0.0.1", 40000), DG_OK);
	cr_assert_eq(source("::1", 65535), DG_OK);
}

Test(source, broadcast_multicast_unspecified_are_refused)
{
	static const char *const bad[] = { "0.0.0.0", "255.255.255.255", "224.0.0.1",
		"239.255.255.250", "240.0.0.1", "::", "ff02::1", "ff05::c", "::ffff:255.255.255.255",
		"::ffff:224.0.0.251", "::ffff:0.0.0.0" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(source(bad[i], 40000), DG_BAD_ADDR, "%s", bad[i]);
	cr_assert_eq(source("::ffff:192.0.2.1", 40000), DG_OK);
	cr_assert_eq(source("223.255.255.255", 40000), DG_OK);
}

static struct dg_guard *
guard(int per_source, int global)
{
	struct dg_guard *g = malloc(sizeof(*g));

	cr_assert_not_null(g);
	dg_init(g, 7007, per_source, global);
	return g;
}

static enum dg_verdict
check(struct dg_guard *g, const char *ip, int64_t now)
{
	struct sockaddr_storage ss = addr(ip, 40000);

	return dg_check(g, (struct sockaddr *)&ss, now);
}

Test(rate, per_source_bucket_and_others_unaffected)
{
	struct dg_guard *g = guard(3, 0);
	int ok = 0;

	for (int i = 0; i < 10; i++)
		ok += check(g, "192.0.2.1", 1000) == DG_OK;
	cr_assert_eq(ok, 3, "%d answered, want 3", ok);
	cr_assert_eq(check(g, "192.0.2.1", 1000), DG_RATE_SOURCE);
	cr_assert_eq(check(g, "192.0.2.2", 1000), DG_OK, "another source was limited");
	cr_assert_eq(check(g, "192.0.2.1", 1334), DG_OK, "a third of a second refills one");
	free(g);
}

Test(rate, global_bucket_over_all_sources)
{
	struct dg_guard *g = guard(0, 5);
	char ip[32];
	int ok = 0;

	for (int i = 0; i < 50; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i + 1);
		ok += check(g, ip, 500) == DG_OK;
	}
	cr_assert_eq(ok, 5, "%d answered, want 5", ok);
	cr_assert_eq(check(g, "198.51.100.1", 500), DG_RATE_ALL);
	free(g);
}

Test(rate, more_sources_than_slots_still_limits_each)
{
	struct dg_guard *g = guard(1, 0);
	char ip[48];
	int refused = 0;

	/* Twice as many sources as slots, each sending twice in the same millisecond. */
	for (int i = 0; i < 2 * DG_SOURCES; i++) {
		snprintf(ip, sizeof(ip), "2001:db8:%x:%x::1", i >> 16, i & 0xffff);
		cr_assert_eq(check(g, ip, 10), DG_OK, "source %d", i);
		refused += check(g, ip, 10) == DG_RATE_SOURCE;
	}
	cr_assert_eq(refused, 2 * DG_SOURCES, "%d refused", refused);
	free(g);
}

/* --udp-per-source counts a /64 by default: a source that moves around its /64 gains nothing;
 * dg_set_prefix to 128 gives each address its own bucket again. */
Test(rate, per_source_counts_the_64)
{
	struct dg_guard *g = guard(2, 0);
	char ip[48];
	int ok = 0;

	for (int i = 1; i <= 10; i++) {
		snprintf(ip, sizeof(ip), "2001:db8:0:1::%x", i);
		ok += check(g, ip, 10) == DG_OK;
	}
	cr_assert_eq(ok, 2, "%d answered, want 2", ok);
	cr_assert_eq(check(g, "2001:db8:0:2::1", 10), DG_OK);
	dg_set_prefix(g, 32, 128);
	cr_assert_eq(check(g, "2001:db8:0:1::99", 10), DG_OK);
	free(g);
}

Test(rate, a_clock_at_zero_and_no_limits)
{
	struct dg_guard *g = guard(0, 0);

	for (int i = 0; i < 1000; i++)
		cr_assert_eq(check(g, "192.0.2.1", 0), DG_OK);
	cr_assert_str_eq(dg_reason(DG_RATE_ALL), "over the global rate");
	free(g);
}
