/*
 * hist.c - the latency histogram: log-linear buckets, quantiles by nearest rank.  See hist.h
 * for the accuracy it guarantees; tests/unit/test_hist.c checks it.
 */
#include "hist.h"

int
hist_index(uint64_t v)
{
	int e;

	if (v < (uint64_t)HIST_LINEAR)
		return (int)v;
	e = 63 - __builtin_clzll(v);
	return HIST_LINEAR + (e - HIST_SUB_BITS - 1) * HIST_SUB +
	    (int)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

uint64_t
hist_bucket_low(int i)
{
	int e, sub;

	if (i < HIST_LINEAR)
		return (uint64_t)i;
	e = (i - HIST_LINEAR) / HIST_SUB + HIST_SUB_BITS + 1;
	sub = (i - HIST_LINEAR) % HIST_SUB;
	return (uint64_t)(HIST_SUB + sub) << (e - HIST_SUB_BITS);
}

/* A bucket above the linear range spans 2^(e - HIST_SUB_BITS) values, and its lowest value is
 * at least HIST_SUB times that: half the span is at most 1/(2 * HIST_SUB) of any value in it. */
double
hist_value(int i)
{
	int e;

	if (i < HIST_LINEAR)
		return i;
	e = (i - HIST_LINEAR) / HIST_SUB + HIST_SUB_BITS + 1;
	return (double)hist_bucket_low(i) + (double)(1ULL << (e - HIST_SUB_BITS)) / 2;
}

void
hist_add(struct hist *h, uint64_t v)
{
	h->count[hist_index(v)]++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

void
hist_merge(struct hist *dst, const struct hist *src)
{
	for (int b = 0; b < HIST_BUCKETS; b++)
		dst->count[b] += src->count[b];
	dst->sum += src->sum;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t
hist_total(const struct hist *h)
{
	uint64_t n = 0;

	for (int b = 0; b < HIST_BUCKETS; b++)
		n += h->count[b];
	return n;
}

/* The middle of the top bucket can lie above every value recorded; the exact maximum bounds
 * it, so p100 is the maximum itself. */
double
hist_quantile(const struct hist *h, double q)
{
	uint64_t n = hist_total(h), rank, seen = 0;
	double v;

	if (n == 0)
		return 0;
	rank = (uint64_t)(q * (double)n);
	if ((double)rank < q * (double)n || rank < 1)
		rank++;
	for (int b = 0; b < HIST_BUCKETS; b++) {
		seen += h->count[b];
		if (seen >= rank) {
			v = hist_value(b);
			return v > (double)h->max ? (double)h->max : v;
		}
	}
	return (double)h->max;
}

double
hist_mean(const struct hist *h)
{
	uint64_t n = hist_total(h);

	return n ? (double)h->sum / (double)n : 0;
}
