/*
 * Unit tests for hist.c: the bucket layout, the accuracy hist.h claims (the value reported for
 * any v is within 1/128 of v), quantiles of known distributions, and the edges (0, the largest
 * 64-bit value, an empty histogram, merging).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

/* The claim: the middle of v's bucket is within 1/(2 * HIST_SUB) = 1/128 of v. */
#define CLAIM (1.0 / (2 * HIST_SUB))

static struct hist h;

static void
reset(void)
{
	memset(&h, 0, sizeof(h));
}

static void
assert_close(uint64_t v)
{
	double got = hist_value(hist_index(v));
	double err = fabs(got - (double)v) / (double)(v ? v : 1);

	cr_assert(err <= CLAIM, "v=%llu: reported %.1f, relative error %.6f over %.6f",
	    (unsigned long long)v, got, err, CLAIM);
}

Test(hist, exact_in_the_linear_range)
{
	for (uint64_t v = 0; v < HIST_LINEAR; v++) {
		cr_assert_eq(hist_index(v), (int)v, "v=%llu", (unsigned long long)v);
		cr_assert_eq(hist_value((int)v), (double)v, "v=%llu", (unsigned long long)v);
	}
}

/* Every bucket's bounds: v falls in the bucket whose low bound is the greatest not above it,
 * and the buckets are contiguous from 0 to 2^64 - 1. */
Test(hist, buckets_are_contiguous_and_ordered)
{
	for (int i = 1; i < HIST_BUCKETS; i++) {
		uint64_t lo = hist_bucket_low(i);

		cr_assert_gt(lo, hist_bucket_low(i - 1), "bucket %d", i);
		cr_assert_eq(hist_index(lo), i, "low bound %llu of bucket %d",
		    (unsigned long long)lo, i);
		cr_assert_eq(hist_index(lo - 1), i - 1, "%llu, below bucket %d",
		    (unsigned long long)(lo - 1), i);
	}
	cr_assert_eq(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
}

/* Both ends of every bucket (the worst cases for the middle) and their neighbours. */
Test(hist, every_bucket_edge_within_the_claim)
{
	for (int i = 0; i < HIST_BUCKETS; i++) {
		uint64_t lo = hist_bucket_low(i);
		uint64_t hi = i + 1 < HIST_BUCKETS ? hist_bucket_low(i + 1) - 1 : UINT64_MAX;

		assert_close(lo);
		assert_close(hi);
		assert_close(lo + (hi - lo) / 2);
	}
}

/* A million values spread log-uniformly from 1 to 2^63, plus every value up to 100,000. */
Test(hist, many_values_within_the_claim)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	for (uint64_t v = 0; v <= 100000; v++)
		assert_close(v);
	for (int i = 0; i < 1000000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		assert_close(x >> (x % 63));
	}
}

Test(hist, empty)
{
	reset();
	cr_assert_eq(hist_total(&h), 0);
	cr_assert_eq(hist_quantile(&h, 0.5), 0);
	cr_assert_eq(hist_quantile(&h, 1.0), 0);
	cr_assert_eq(hist_mean(&h), 0);
}

Test(hist, zero_and_max)
{
	reset();
	hist_add(&h, 0);
	cr_assert_eq(hist_quantile(&h, 0.5), 0);
	cr_assert_eq(h.max, 0);
	hist_add(&h, UINT64_MAX);
	cr_assert_eq(hist_total(&h), 2);
	cr_assert_eq(h.max, UINT64_MAX);
	cr_assert_eq(hist_quantile(&h, 0.5), 0, "the lower of two samples is p50");
	cr_assert(fabs(hist_quantile(&h, 1.0) - (double)UINT64_MAX) <= (double)UINT64_MAX * CLAIM,
	    "p100 %.0f within the claim of the max", hist_quantile(&h, 1.0));
}

/* The middle of a bucket may lie above every value it holds; a quantile never reports more
 * than the exact maximum. */
Test(hist, quantile_never_above_max)
{
	reset();
	hist_add(&h, 1000);
	cr_assert_lt(hist_value(hist_index(1000)), 1000.0 + 1000 * CLAIM + 1);
	cr_assert_gt(hist_value(hist_index(1000)), 1000.0, "1000 is its bucket's low bound");
	cr_assert_eq(hist_quantile(&h, 0.5), 1000.0);
	cr_assert_eq(hist_quantile(&h, 0.99), 1000.0);
}

/* The nearest-rank quantile of 1..n is ceil(q * n); the histogram's is within the claim. */
static void
assert_quantile(double q, double want)
{
	double got = hist_quantile(&h, q);

	cr_assert(fabs(got - want) <= want * CLAIM, "q=%g: got %.1f, want %.1f within %.2f%%",
	    q, got, want, 100 * CLAIM);
}

Test(hist, quantiles_of_a_uniform_distribution)
{
	const uint64_t n = 1000000;

	reset();
	for (uint64_t v = 1; v <= n; v++)
		hist_add(&h, v * 1000);    /* 1 us to 1 s in nanoseconds */
	cr_assert_eq(hist_total(&h), n);
	assert_quantile(0.5, 500000.0 * 1000);
	assert_quantile(0.9, 900000.0 * 1000);
	assert_quantile(0.99, 990000.0 * 1000);
	assert_quantile(0.999, 999000.0 * 1000);
	assert_quantile(1.0, 1000000.0 * 1000);
	cr_assert_float_eq(hist_mean(&h), 500000.5 * 1000, 1e-3);
}

/* A bimodal distribution: 90% at 100 us, 10% at 10 ms.  p90 must fall in the first mode and
 * p91 in the second, with nothing smeared between. */
Test(hist, quantiles_of_a_bimodal_distribution)
{
	reset();
	for (int i = 0; i < 9000; i++)
		hist_add(&h, 100000);
	for (int i = 0; i < 1000; i++)
		hist_add(&h, 10000000);
	assert_quantile(0.5, 100000);
	assert_quantile(0.9, 100000);
	assert_quantile(0.91, 10000000);
	assert_quantile(0.99, 10000000);
	cr_assert_eq(hist_quantile(&h, 1.0), 10000000.0);
}

/* An exponential distribution against the exact quantiles of the same samples, sorted. */
static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

Test(hist, quantiles_match_the_sorted_samples)
{
	enum { N = 200000 };
	static uint64_t s[N];
	static const double qs[] = { 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999 };
	uint64_t x = 42;

	reset();
	for (int i = 0; i < N; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		double u = ((double)(x >> 11) + 0.5) / 9007199254740992.0;
		s[i] = (uint64_t)(-log(u) * 50000.0);
		hist_add(&h, s[i]);
	}
	qsort(s, N, sizeof(s[0]), cmp_u64);
	for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
		size_t rank = (size_t)ceil(qs[k] * N);

		assert_quantile(qs[k], (double)s[rank - 1]);
	}
	cr_assert_eq(h.max, s[N - 1]);
}

Test(hist, merge_equals_adding_everything_to_one)
{
	static struct hist a, b, all;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&all, 0, sizeof(all));
	for (uint64_t v = 1; v <= 5000; v++) {
		hist_add(v % 2 ? &a : &b, v * v);
		hist_add(&all, v * v);
	}
	hist_merge(&a, &b);
	cr_assert_eq(memcmp(a.count, all.count, sizeof(a.count)), 0);
	cr_assert_eq(a.max, all.max);
	cr_assert_eq(a.sum, all.sum);
	cr_assert_eq(hist_quantile(&a, 0.9), hist_quantile(&all, 0.9));
}

Test(hist, merge_into_empty_and_of_empty)
{
	static struct hist empty, one;

	memset(&empty, 0, sizeof(empty));
	memset(&one, 0, sizeof(one));
	hist_add(&one, 777);
	hist_merge(&one, &empty);
	cr_assert_eq(hist_total(&one), 1);
	cr_assert_eq(one.max, 777);
	hist_merge(&empty, &one);
	cr_assert_eq(hist_total(&empty), 1);
	cr_assert_eq(hist_quantile(&empty, 0.5), 777.0);
}
