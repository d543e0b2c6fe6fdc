/*
 * Unit tests for admit.c: sessions per source and the token bucket, with the clock stepped by
 * hand.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"

static struct admit *
new_admit(int max_clients, int per_source, int rate)
{
	struct admit *a = calloc(1, admit_size(max_clients, per_source));

	cr_assert_not_null(a);
	admit_init(a, max_clients, per_source, rate);
	return a;
}

/* The key of ip (IPv4 or IPv6 text) cut to its block (admit_key_prefix; 0: whole), from an
 * address with a random port. */
static struct admit_key
key_in(const char *ip, int prefix4, int prefix6)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct admit_key k;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)(rand() & 0xffff));
	} else {
		cr_assert_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1, "%s", ip);
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)(rand() & 0xffff));
	}
	admit_key_prefix(&ss, prefix4, prefix6, &k);
	return k;
}

static struct admit_key
key(const char *ip)
{
	return key_in(ip, 0, 0);
}

static int
same(struct admit_key a, struct admit_key b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

/* One IPv6 /64 is one source by default (32:64), its neighbour another. */
Test(prefix, an_ipv6_64_is_one_source)
{
	cr_assert(same(key_in("2001:db8:0:1::1", 32, 64), key_in("2001:db8:0:1:ffff::9", 32, 64)));
	cr_assert(!same(key_in("2001:db8:0:1::1", 32, 64), key_in("2001:db8:0:2::1", 32, 64)));
	cr_assert(same(key_in("2001:db8:0:1::", 32, 64), key_in("2001:db8:0:1::", 32, 0)));
	/* A whole address is its own source. */
	cr_assert(!same(key_in("2001:db8::1", 32, 128), key_in("2001:db8::2", 32, 128)));
}

/* Prefixes that are not whole bytes cut inside one. */
Test(prefix, cuts_inside_a_byte)
{
	cr_assert(same(key_in("2001:db8:0:ff::1", 32, 57), key_in("2001:db8:0:80::1", 32, 57)));
	cr_assert(!same(key_in("2001:db8:0:ff::1", 32, 57), key_in("2001:db8:0:7f::1", 32, 57)));
	cr_assert(same(key_in("198.51.100.7", 24, 64), key_in("198.51.100.200", 24, 64)));
	cr_assert(!same(key_in("198.51.100.7", 24, 64), key_in("198.51.101.7", 24, 64)));
	cr_assert(same(key_in("198.51.100.7", 30, 64), key_in("198.51.100.4", 30, 64)));
	cr_assert(!same(key_in("198.51.100.7", 30, 64), key_in("198.51.100.8", 30, 64)));
	cr_assert(!same(key_in("198.51.100.7", 32, 64), key_in("198.51.100.6", 32, 64)));
}

/* An IPv4-mapped IPv6 address counts as IPv4, cut by the IPv4 prefix, not the IPv6 one. */
Test(prefix, a_mapped_address_takes_the_ipv4_prefix)
{
	cr_assert(same(key_in("::ffff:198.51.100.7", 24, 64), key_in("198.51.100.9", 24, 64)));
	cr_assert(!same(key_in("::ffff:198.51.100.7", 32, 64), key_in("198.51.100.9", 32, 64)));
	cr_assert(!same(key_in("::ffff:198.51.100.7", 24, 64), key_in("2001:db8::1", 24, 64)));
}

/* The limit counts the block: twenty addresses of a /64 share one count. */
Test(prefix, the_limit_counts_the_block)
{
	struct admit *a = new_admit(100, 3, 0);
	char ip[64];
	int ok = 0;

	for (int i = 1; i <= 20; i++) {
		struct admit_key k;

		snprintf(ip, sizeof(ip), "2001:db8:0:1::%x", i);
		k = key_in(ip, 32, 64);
		ok += admit_check(a, &k, 0) == ADMIT_OK;
	}
	cr_assert_eq(ok, 3, "%d admitted, want 3", ok);
	{
		struct admit_key n = key_in("2001:db8:0:2::1", 32, 64);

		cr_assert_eq(admit_check(a, &n, 0), ADMIT_OK);
	}
	free(a);
}

Test(key, ignores_the_port_and_tells_families_apart)
{
	struct admit_key a = key("192.0.2.1"), b = key("192.0.2.1"), c = key("192.0.2.2");
	struct admit_key d = key("2001:db8::c000:201");

	cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
	cr_assert_neq(memcmp(&a, &c, sizeof(a)), 0);
	cr_assert_neq(memcmp(&a, &d, sizeof(a)), 0);
}

/* A v4 client on a dual-stack socket, or named ::ffff:a.b.c.d by one balancer and a.b.c.d by
 * another, is one source. */
Test(key, folds_an_ipv4_mapped_address_into_ipv4)
{
	struct admit_key a = key("192.0.2.1"), d = key("::ffff:192.0.2.1");

	cr_assert_eq(memcmp(&a, &d, sizeof(a)), 0);
}

/* After a death under the lock the master empties the table and counts the claims again: the
 * table is then what the claims say, whatever state it was left in. */
Test(per_source, a_rebuild_from_the_claims_undoes_a_torn_removal)
{
	struct admit *a = new_admit(2, 1, 0);
	struct admit_key k[3] = { key("192.0.2.1"), key("192.0.2.2"), key("192.0.2.3") };

	for (int i = 0; i < 3; i++)
		cr_assert_eq(admit_check(a, &k[i], 0), ADMIT_OK);
	/* Torn: every slot a copy of one entry, as a removal killed mid-way could leave it. */
	for (uint32_t i = 0; i < a->cap; i++)
		a->tab[i] = (struct admit_src){ .key = k[0], .count = 1 };
	admit_clear(a);
	admit_add(a, &k[1]);
	admit_add(a, &k[1]);
	cr_assert_eq(admit_count(a, &k[0]), 0u);
	cr_assert_eq(admit_count(a, &k[1]), 2u, "admit_add passes the limit: it counts claims");
	cr_assert_eq(admit_check(a, &k[0], 0), ADMIT_OK);
	cr_assert_eq(admit_check(a, &k[1], 0), ADMIT_PER_SOURCE);
	free(a);
}

Test(per_source, refuses_past_the_limit_and_counts_nothing_refused)
{
	struct admit *a = new_admit(8, 2, 0);
	struct admit_key k = key("192.0.2.1"), other = key("192.0.2.9");

	cr_assert_eq(admit_check(a, &k, 0), ADMIT_OK);
	cr_assert_eq(admit_check(a, &k, 0), ADMIT_OK);
	cr_assert_eq(admit_check(a, &k, 0), ADMIT_PER_SOURCE);
	cr_assert_eq(admit_count(a, &k), 2u, "count %u", admit_count(a, &k));
	cr_assert_eq(admit_check(a, &other, 0), ADMIT_OK, "another source was refused");
	admit_release(a, &k);
	cr_assert_eq(admit_check(a, &k, 0), ADMIT_OK, "a released slot was not given back");
	free(a);
}

Test(per_source, no_limit_counts_nothing)
{
	struct admit *a = new_admit(4, 0, 0);
	struct admit_key k = key("192.0.2.1");

	cr_assert_eq(a->cap, 0u);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(admit_check(a, &k, 0), ADMIT_OK);
	admit_release(a, &k);
	free(a);
}

Test(per_source, release_of_an_unknown_source_is_harmless)
{
	struct admit *a = new_admit(4, 1, 0);
	struct admit_key k = key("192.0.2.1"), u = key("192.0.2.2");

	cr_assert_eq(admit_check(a, &k, 0), ADMIT_OK);
	admit_release(a, &u);
	cr_assert_eq(admit_count(a, &k), 1u);
	free(a);
}

/* Random opens and closes over many sources that collide in a small table, checked against a
 * plain array: deletion must never lose an entry that lies past the hole it leaves. */
Test(per_source, matches_a_model_under_random_churn)
{
	enum { CLIENTS = 64, SOURCES = 40, STEPS = 200000 };
	struct admit *a = new_admit(CLIENTS, 3, 0);
	struct admit_key keys[SOURCES];
	unsigned model[SOURCES] = { 0 }, total = 0;
	char ip[32];

	srand(7);
	for (int i = 0; i < SOURCES; i++) {
		snprintf(ip, sizeof(ip), "2001:db8::%x", i * 977);
		keys[i] = key(ip);
	}
	for (int s = 0; s < STEPS; s++) {
		int i = rand() % SOURCES;

		if (rand() % 2 && total < CLIENTS) {
			enum admit_verdict v = admit_check(a, &keys[i], 0);
			cr_assert_eq(v, model[i] < 3 ? ADMIT_OK : ADMIT_PER_SOURCE, "step %d", s);
			if (v == ADMIT_OK) {
				model[i]++;
				total++;
			}
		} else if (model[i] > 0) {
			admit_release(a, &keys[i]);
			model[i]--;
			total--;
		}
		cr_assert_eq(admit_count(a, &keys[i]), model[i], "step %d source %d", s, i);
	}
	for (int i = 0; i < SOURCES; i++)
		cr_assert_eq(admit_count(a, &keys[i]), model[i], "source %d", i);
	free(a);
}

Test(rate, bucket_starts_full_holds_a_second_and_refills)
{
	struct admit *a = new_admit(100, 0, 5);
	struct admit_key k = key("192.0.2.1");
	int ok = 0;

	for (int i = 0; i < 20; i++)
		ok += admit_check(a, &k, 1000) == ADMIT_OK;
	cr_assert_eq(ok, 5, "%d admitted at once, want 5", ok);
	/* 5 a second: one token every 200 ms. */
	cr_assert_eq(admit_check(a, &k, 1199), ADMIT_RATE);
	cr_assert_eq(admit_check(a, &k, 1200), ADMIT_OK);
	cr_assert_eq(admit_check(a, &k, 1200), ADMIT_RATE);
	/* A long pause refills no more than a second's worth. */
	ok = 0;
	for (int i = 0; i < 20; i++)
		ok += admit_check(a, &k, 100000) == ADMIT_OK;
	cr_assert_eq(ok, 5, "%d admitted after a pause, want 5", ok);
	free(a);
}

Test(rate, steady_arrivals_get_the_rate)
{
	struct admit *a = new_admit(100, 0, 10);
	struct admit_key k = key("192.0.2.1");
	int ok = 0;

	/* One attempt a millisecond for 10 s, after the first full bucket: 10 a second pass. */
	for (int64_t t = 0; t < 10000; t++)
		ok += admit_check(a, &k, t) == ADMIT_OK;
	cr_assert(ok >= 10 + 99 && ok <= 10 + 101, "%d admitted in 10 s at 10/s", ok);
	free(a);
}

Test(rate, a_clock_that_steps_back_refills_nothing)
{
	struct admit *a = new_admit(100, 0, 1);
	struct admit_key k = key("192.0.2.1");

	cr_assert_eq(admit_check(a, &k, 5000), ADMIT_OK);
	cr_assert_eq(admit_check(a, &k, 1000), ADMIT_RATE);
	cr_assert_eq(admit_check(a, &k, 5999), ADMIT_RATE);
	cr_assert_eq(admit_check(a, &k, 6000), ADMIT_OK);
	free(a);
}

Test(rate, refused_per_source_takes_no_token)
{
	struct admit *a = new_admit(100, 1, 2);
	struct admit_key k = key("192.0.2.1"), o = key("192.0.2.2"), t = key("192.0.2.3");

	cr_assert_eq(admit_check(a, &k, 0), ADMIT_OK);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(admit_check(a, &k, 0), ADMIT_PER_SOURCE);
	cr_assert_eq(admit_check(a, &o, 0), ADMIT_OK, "the per-source refusals took tokens");
	cr_assert_eq(admit_check(a, &t, 0), ADMIT_RATE);
	free(a);
}

Test(halves, rate_at_accept_and_source_later_match_admit_check)
{
	struct admit *a = new_admit(16, 1, 2);
	struct admit_key k = key("192.0.2.1");

	cr_assert_eq(admit_take_rate(a, 0), ADMIT_OK);
	cr_assert_eq(admit_take_source(a, &k), ADMIT_OK);
	cr_assert_eq(admit_take_rate(a, 0), ADMIT_OK);
	cr_assert_eq(admit_take_source(a, &k), ADMIT_PER_SOURCE, "one per source");
	cr_assert_eq(admit_take_rate(a, 0), ADMIT_RATE, "two a second");
	cr_assert_eq(admit_count(a, &k), 1u);
	admit_release(a, &k);
	cr_assert_eq(admit_take_source(a, &k), ADMIT_OK);
	free(a);
}

/* A reload: new limits apply to the next check; sources counted stay counted; a per-source
 * limit cannot appear or go (the table is sized at init), the rate can. */
Test(reload, new_limits_apply_to_the_next_check)
{
	struct admit *a = new_admit(8, 3, 0);
	struct admit *none = new_admit(8, 0, 0);
	struct admit_key k = key("192.0.2.1");
	int ok = 0;

	cr_assert_eq(admit_check(a, &k, 0), ADMIT_OK);
	cr_assert_eq(admit_check(a, &k, 0), ADMIT_OK);
	admit_set_limits(a, 2, 2);
	cr_assert(admit_check(a, &k, 0) == ADMIT_PER_SOURCE && admit_count(a, &k) == 2u,
	    "the two counted before the reload count against the new limit");
	admit_set_limits(a, 0, 2);
	cr_assert_eq(a->max_per_source, 2, "a limit went although the table stays");
	cr_assert_eq(admit_check(a, &k, 0), ADMIT_PER_SOURCE);
	admit_set_limits(none, 5, 0);
	cr_assert_eq(none->max_per_source, 0, "a limit came with no table for it");
	admit_set_limits(none, 0, 3);
	for (int i = 0; i < 10; i++)
		ok += admit_check(none, &k, 5000) == ADMIT_OK;
	cr_assert_eq(ok, 3, "%d admitted at once under a new rate of 3", ok);
	free(a);
	free(none);
}
