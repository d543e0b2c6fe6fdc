/*
 * Unit tests for penalty.c: strikes, the penalty they start, its end, the window, a full
 * table, with the clock stepped by hand.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "penalty.h"

static struct penalty *
new_penalty(uint32_t cap, int seconds)
{
	struct penalty *p = calloc(1, penalty_size(cap));

	cr_assert_not_null(p);
	penalty_init(p, cap, seconds);
	return p;
}

static struct admit_key
key(unsigned n)
{
	struct admit_key k;

	memset(&k, 0, sizeof(k));
	k.b[0] = 2; /* AF_INET */
	k.b[1] = (unsigned char)(n >> 8);
	k.b[2] = (unsigned char)n;
	return k;
}

/* One strike short of a penalty, step ms apart from *t on: none starts one. */
static void
short_of_one(struct penalty *p, const struct admit_key *k, int64_t *t, int64_t step)
{
	for (int i = 1; i < PENALTY_STRIKES; i++) {
		*t += step;
		cr_assert_eq(penalty_strike(p, k, *t), 0, "strike %d", i);
		cr_assert_eq(penalty_check(p, k, *t), 0);
	}
}

Test(penalty, strikes_start_a_penalty_said_once)
{
	struct penalty *p = new_penalty(64, 30);
	struct admit_key k = key(1), other = key(2);
	int64_t t = 1000;

	short_of_one(p, &k, &t, 1);
	cr_assert_eq(penalty_strike(p, &k, 2000), 1);
	cr_assert_eq(penalty_check(p, &k, 2000), 30);
	cr_assert_eq(penalty_check(p, &k, 2000 + 29500), 1);
	cr_assert_eq(penalty_check(p, &other, 2000), 0, "another source is not refused");
	/* More strikes while refused neither lengthen it nor say it again. */
	cr_assert_eq(penalty_strike(p, &k, 3000), 0);
	cr_assert_eq(penalty_check(p, &k, 2000 + 30000), 0, "it ends after its length");
	free(p);
}

Test(penalty, the_window_and_the_end_of_a_penalty_start_the_count_again)
{
	struct penalty *p = new_penalty(64, 10);
	struct admit_key k = key(1);
	int64_t t = 0;

	/* One strike short, then the window passes: the count starts again. */
	short_of_one(p, &k, &t, 100);
	t += 10000;
	short_of_one(p, &k, &t, 100);
	cr_assert_eq(penalty_strike(p, &k, t += 100), 1);
	/* After the penalty, from nothing again. */
	t += 10000;
	cr_assert_eq(penalty_check(p, &k, t), 0);
	short_of_one(p, &k, &t, 10);
	cr_assert_eq(penalty_strike(p, &k, t += 10), 1);
	free(p);
}

Test(penalty, a_full_table_drops_stale_sources_and_never_refuses_for_room)
{
	struct penalty *p = new_penalty(16, 1);
	struct admit_key bad = key(999);

	/* Eight sources fill half the table. */
	for (unsigned n = 0; n < 8; n++) {
		struct admit_key k = key(n);

		cr_assert_eq(penalty_strike(p, &k, 0), 0);
	}
	cr_assert_eq(p->count, 8);
	/* No room, nothing stale: a new source is not tracked, and not refused. */
	for (int i = 0; i < PENALTY_STRIKES; i++)
		cr_assert_eq(penalty_strike(p, &bad, 500), 0);
	cr_assert_eq(penalty_check(p, &bad, 500), 0);
	/* A second on, the eight are stale: swept, and the new one is tracked. */
	for (int i = 1; i < PENALTY_STRIKES; i++)
		cr_assert_eq(penalty_strike(p, &bad, 1000 + i), 0);
	cr_assert_eq(p->count, 1);
	cr_assert_eq(penalty_strike(p, &bad, 1100), 1);
	cr_assert_gt(penalty_check(p, &bad, 1100), 0);
	for (unsigned n = 0; n < 8; n++) {
		struct admit_key k = key(n);

		cr_assert_eq(penalty_check(p, &k, 1100), 0);
	}
	free(p);
}
