/*
 * Unit tests for spare.c: the pool grows by doubling, shrinks one a tick, bursts when a
 * connection waits with nobody idle, and never passes the ceiling.
 */
#include <criterion/criterion.h>

#include "spare.h"

static struct spare_view
view(int total, int idle, int starting)
{
	return (struct spare_view){ .total = total, .idle = idle, .starting = starting,
		.max_clients = 100, .min_spare = 5, .max_spare = 10 };
}

Test(tick, grows_by_doubling_until_min_spare)
{
	int rate = 1, total = 0, idle = 0, ticks = 0;
	int want[] = { 1, 2, 2 };

	while (idle < 5) {
		struct spare_view v = view(total, idle, 0);
		struct spare_plan p = spare_tick(&v, &rate);

		cr_assert_eq(p.spawn, want[ticks], "tick %d spawned %d", ticks, p.spawn);
		total += p.spawn;
		idle += p.spawn; /* they start before the next tick */
		ticks++;
	}
	cr_assert_eq(ticks, 3);
	struct spare_view v = view(total, idle, 0);
	cr_assert_eq(spare_tick(&v, &rate).spawn, 0);
	cr_assert_eq(rate, 1, "the rate goes back to 1 once the spares are there");
}

Test(tick, rate_caps_and_starting_processes_count)
{
	int rate = 1;
	struct spare_view v = view(0, 0, 0);

	v.min_spare = 1000;
	v.max_clients = 100000;
	for (int i = 0; i < 20; i++)
		(void)spare_tick(&v, &rate);
	cr_assert_eq(rate, SPARE_RATE_MAX);
	cr_assert_eq(spare_tick(&v, &rate).spawn, SPARE_RATE_MAX);
	v = view(4, 0, 5);
	rate = 1;
	cr_assert_eq(spare_tick(&v, &rate).spawn, 0, "5 starting are the 5 spares");
}

Test(tick, retires_half_the_excess_a_tick_above_max_spare)
{
	int rate = 4, idle = 10010, ticks = 0;
	struct spare_view v = view(30, 25, 0);
	struct spare_plan p = spare_tick(&v, &rate);

	cr_assert_eq(p.retire, 8, "retired %d of 15 too many", p.retire);
	cr_assert_eq(p.spawn, 0);
	v = view(30, 11, 0);
	cr_assert_eq(spare_tick(&v, &rate).retire, 1, "one too many: one retired");
	v = view(30, 10, 0);
	cr_assert_eq(spare_tick(&v, &rate).retire, 0, "at max_spare nothing is retired");
	/* After a burst of 10,000 held connections: back to the spares in few ticks. */
	while (idle > 10) {
		v = view(idle, idle, 0);
		v.max_clients = 20000;
		idle -= spare_tick(&v, &rate).retire;
		ticks++;
	}
	cr_assert(ticks <= 15, "%d ticks", ticks);
}

Test(tick, never_past_max_clients)
{
	int rate = 32;
	struct spare_view v = view(98, 0, 0);

	cr_assert_eq(spare_tick(&v, &rate).spawn, 2);
	v = view(100, 0, 0);
	cr_assert_eq(spare_tick(&v, &rate).spawn, 0);
}

Test(burst, only_when_nobody_is_idle_or_starting)
{
	int rate = 1;
	struct spare_view v = view(10, 1, 0);

	cr_assert_eq(spare_burst(&v, &rate), 0);
	v = view(10, 0, 1);
	cr_assert_eq(spare_burst(&v, &rate), 0);
	v = view(10, 0, 0);
	cr_assert_eq(spare_burst(&v, &rate), 1);
	cr_assert_eq(spare_burst(&v, &rate), 2);
	cr_assert_eq(spare_burst(&v, &rate), 4);
	v = view(97, 0, 0);
	cr_assert_eq(spare_burst(&v, &rate), 3, "the ceiling bounds a burst");
	v = view(100, 0, 0);
	cr_assert_eq(spare_burst(&v, &rate), 0);
}

/* 500 connections at once on an empty pool, each process busy until the burst is served: the
 * number of bursts (master wakeups) stays small. */
Test(burst, five_hundred_at_once_in_few_rounds)
{
	int rate = 1, total = 0, rounds = 0;
	struct spare_view v;

	while (total < 500) {
		v = view(total, 0, 0);
		v.max_clients = 1024;
		total += spare_burst(&v, &rate);
		rounds++;
	}
	cr_assert(rounds <= 6 + (500 - 63) / SPARE_RATE_MAX + 1, "%d rounds", rounds);
}

/* The pool's idle and starting maps: a bit per slot, counted; clearing says when the last one
 * went. */
Test(map, counts_bits_and_says_when_the_last_one_goes)
{
	uint64_t bits[SPARE_MAP_WORDS(130)] = { 0 };
	struct spare_map m = { .words = SPARE_MAP_WORDS(130), .bits = bits };

	cr_assert_eq(m.words, 3);
	spare_map_set(&m, 0);
	spare_map_set(&m, 64);
	spare_map_set(&m, 129);
	spare_map_set(&m, 129);
	cr_assert_eq(spare_map_count(&m), 3);
	cr_assert_eq(spare_map_clear(&m, 64), 0);
	cr_assert_eq(spare_map_clear(&m, 5), 0, "a bit not set is not the last one");
	cr_assert_eq(spare_map_clear(&m, 0), 0);
	cr_assert_eq(spare_map_clear(&m, 129), 1, "the last bit cleared");
	cr_assert_eq(spare_map_clear(&m, 129), 0, "cleared twice (the master after a death)");
	cr_assert_eq(spare_map_count(&m), 0);
}
