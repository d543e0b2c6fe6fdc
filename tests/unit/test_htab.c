/*
 * Unit tests for htab.c: lookups, removals that shift clusters back (also across the end of
 * the table), a rehash, and htab_each removing as it goes, checked against a plain list.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"

struct ent {
	uint64_t key;
	uint64_t val;
};

static const struct htab_shape shape = { sizeof(struct ent), sizeof(uint64_t) };

static struct ent *
put(struct ent *t, size_t cap, uint64_t key, uint64_t val)
{
	struct ent *e = &t[htab_find(t, cap, &shape, &key)];

	e->key = key;
	e->val = val;
	return e;
}

static struct ent *
get(struct ent *t, size_t cap, uint64_t key)
{
	struct ent *e = &t[htab_find(t, cap, &shape, &key)];

	return e->key == key ? e : NULL;
}

static int
del(struct ent *t, size_t cap, uint64_t key)
{
	size_t i = htab_find(t, cap, &shape, &key);

	if (t[i].key != key)
		return 0;
	htab_remove(t, cap, &shape, i);
	return 1;
}

Test(htab, finds_what_was_put_and_not_what_was_not)
{
	struct ent t[64] = { { 0, 0 } };

	for (uint64_t k = 1; k <= 32; k++)
		put(t, 64, k, k * 10);
	for (uint64_t k = 1; k <= 32; k++)
		cr_assert(get(t, 64, k) != NULL && get(t, 64, k)->val == k * 10, "key %llu",
		    (unsigned long long)k);
	cr_assert_null(get(t, 64, 33));
	cr_assert(htab_is_empty(&t[htab_find(t, 64, &shape, &(uint64_t){ 99 })], &shape));
}

/* Random puts and removals against a list of what should be there: every key present is
 * found, every key removed is not, whatever clusters the removals split or wrap. */
Test(htab, removals_keep_every_cluster_reachable)
{
	enum { CAP = 32, KEYS = 16 };
	struct ent t[CAP] = { { 0, 0 } };
	uint64_t in[KEYS] = { 0 };
	unsigned seed = 12345;

	for (int step = 0; step < 20000; step++) {
		int slot;
		uint64_t k;

		seed = seed * 1103515245u + 12345u;
		slot = (int)((seed >> 16) % KEYS);
		/* Keys from a small range collide often. */
		k = 1 + (seed >> 8) % 40;
		if (in[slot] != 0) {
			cr_assert(del(t, CAP, in[slot]), "step %d: key %llu lost", step,
			    (unsigned long long)in[slot]);
			in[slot] = 0;
		} else {
			int dup = 0;

			for (int j = 0; j < KEYS; j++)
				dup |= in[j] == k;
			if (!dup) {
				put(t, CAP, k, k);
				in[slot] = k;
			}
		}
		for (int j = 0; j < KEYS; j++)
			if (in[j] != 0)
				cr_assert(get(t, CAP, in[j]) != NULL, "step %d: key %llu not found",
				    step, (unsigned long long)in[j]);
		for (uint64_t q = 1; q <= 40; q++) {
			int want = 0;

			for (int j = 0; j < KEYS; j++)
				want |= in[j] == q;
			cr_assert_eq(get(t, CAP, q) != NULL, want, "step %d: key %llu", step,
			    (unsigned long long)q);
		}
	}
}

Test(htab, rehash_into_a_larger_table_keeps_every_entry)
{
	struct ent a[16] = { { 0, 0 } }, b[64] = { { 0, 0 } };

	for (uint64_t k = 1; k <= 8; k++)
		put(a, 16, k * 1000, k);
	htab_rehash(b, 64, a, 16, &shape);
	for (uint64_t k = 1; k <= 8; k++)
		cr_assert(get(b, 64, k * 1000) != NULL && get(b, 64, k * 1000)->val == k);
}

struct visit {
	struct ent *t;
	size_t cap;
	uint64_t seen[64];
	int n;
};

/* Removes every entry it is given with an odd key. */
static void
visit_remove_odd(void *slot, size_t i, void *arg)
{
	struct visit *v = arg;
	struct ent *e = slot;

	v->seen[v->n++] = e->key;
	if (e->key % 2 == 1)
		htab_remove(v->t, v->cap, &shape, i);
}

Test(htab, each_visits_every_entry_once_while_removing)
{
	struct ent t[64] = { { 0, 0 } };
	struct visit v = { .t = t, .cap = 64 };

	/* Keys that crowd a few homes, so removals shift entries back into visited slots. */
	for (uint64_t k = 1; k <= 30; k++)
		put(t, 64, k, k);
	htab_each(t, 64, &shape, visit_remove_odd, &v);
	cr_assert_eq(v.n, 30);
	for (uint64_t k = 1; k <= 30; k++) {
		int times = 0;

		for (int j = 0; j < v.n; j++)
			times += v.seen[j] == k;
		cr_assert_eq(times, 1, "key %llu visited %d times", (unsigned long long)k, times);
		cr_assert_eq(get(t, 64, k) != NULL, k % 2 == 0);
	}
}

Test(htab, grow_doubles_and_keeps_every_entry)
{
	size_t cap = 0;
	struct ent *t = htab_grow(NULL, 0, &shape, &cap);

	cr_assert_not_null(t);
	cr_assert_eq(cap, 64);
	for (uint64_t k = 1; k <= 32; k++)
		put(t, cap, k, k);
	t = htab_grow(t, cap, &shape, &cap);
	cr_assert_not_null(t);
	cr_assert_eq(cap, 128);
	for (uint64_t k = 1; k <= 32; k++)
		cr_assert(get(t, cap, k) != NULL && get(t, cap, k)->val == k);
	free(t);
}
