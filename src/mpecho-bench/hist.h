/*
 * hist.h - a latency histogram (HdrHistogram's layout, as wrk's stats.c): exact below 128,
 * then 64 buckets per power of two up to 2^64.  The value reported for a bucket is its middle,
 * which is within 1/128 (0.8%) of every value the bucket holds, so a quantile read from it is
 * within 0.8% of the true sample of that rank (and never above the exact maximum).  The unit is
 * the caller's (mpecho-bench records nanoseconds).  Pure: nothing here prints, exits or
 * allocates, so a histogram can live in memory shared between processes.
 */
#ifndef MPECHO_HIST_H
#define MPECHO_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_LINEAR (2 * HIST_SUB)
#define HIST_BUCKETS (HIST_LINEAR + (64 - HIST_SUB_BITS - 1) * HIST_SUB)

struct hist {
	uint64_t count[HIST_BUCKETS];
	uint64_t max;            /* the exact largest value recorded */
	uint64_t sum;            /* for the mean; wraps only past 584 years of nanoseconds */
};

/* The bucket that holds v. */
int hist_index(uint64_t v);
/* The middle of bucket i: the value reported for everything in it. */
double hist_value(int i);
/* The smallest value that falls into bucket i. */
uint64_t hist_bucket_low(int i);
void hist_add(struct hist *h, uint64_t v);
/* Adds every count of src into dst. */
void hist_merge(struct hist *dst, const struct hist *src);
uint64_t hist_total(const struct hist *h);
/* The q-quantile (0 < q <= 1) by the nearest-rank method: the value of the sample of rank
 * ceil(q * n); 0 for an empty histogram. */
double hist_quantile(const struct hist *h, double q);
/* The mean, 0 for an empty histogram. */
double hist_mean(const struct hist *h);

#endif
