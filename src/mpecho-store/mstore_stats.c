/*
 * mstore_stats.c - mpecho-store stats: connections, bytes, close reasons and the busiest
 * peers, for the whole store or per --interval.  A connection counts in the interval it was
 * opened in (its close time if its open is missing), with all its bytes, once its close is
 * read; so the filters of list apply.  Memory: one entry per interval, per reason and per
 * distinct peer address within it.
 */
#define _GNU_SOURCE
#include "mstore.h"

#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

struct mcount {
	char key[MTAB_TEXT];
	uint64_t n;
};

/* Keys counted in an open-addressing table. */
struct mcounts {
	struct mcount *v;
	size_t cap, n;
};

struct mbucket {
	int64_t start;
	uint64_t conns, bytes;
	struct mcounts reasons, peers;
};

struct mstats {
	const struct mopts *o;
	struct mscan s;
	struct mtab tab;
	struct mbucket *b;
	size_t nb, capb;
	int oom;
};

static size_t
mcounts_hash(const char *s)
{
	size_t h = 5381;

	while (*s != '\0')
		h = h * 33 ^ (unsigned char)*s++;
	return h;
}

static int
mcounts_add(struct mcounts *t, const char *key)
{
	size_t i;

	if ((t->n + 1) * 2 > t->cap) {
		struct mcounts g = { .cap = t->cap ? t->cap * 2 : 16 };
		if ((g.v = calloc(g.cap, sizeof(*g.v))) == NULL)
			return -1;
		for (i = 0; i < t->cap; i++)
			if (t->v[i].n > 0) {
				size_t j = mcounts_hash(t->v[i].key) & (g.cap - 1);
				while (g.v[j].n > 0)
					j = (j + 1) & (g.cap - 1);
				g.v[j] = t->v[i];
			}
		g.n = t->n;
		free(t->v);
		*t = g;
	}
	for (i = mcounts_hash(key) & (t->cap - 1); t->v[i].n > 0 && strcmp(t->v[i].key, key) != 0;
	    i = (i + 1) & (t->cap - 1))
		;
	if (t->v[i].n++ == 0) {
		snprintf(t->v[i].key, sizeof(t->v[i].key), "%s", key);
		t->n++;
	}
	return 0;
}

static int
mcount_desc(const void *a, const void *b)
{
	const struct mcount *x = a, *y = b;

	if (x->n != y->n)
		return (x->n < y->n) - (x->n > y->n);
	return strcmp(x->key, y->key);
}

/* Prints the top entries, most first ("eof 10, reset 2"). */
static void
mcounts_print(struct mcounts *t, const char *label, int top)
{
	size_t k = 0;

	for (size_t i = 0; i < t->cap; i++)
		if (t->v[i].n > 0)
			t->v[k++] = t->v[i];
	if (k > 1)
		qsort(t->v, k, sizeof(*t->v), mcount_desc);
	printf("  %s:", label);
	for (size_t i = 0; i < k && (top < 0 || i < (size_t)top); i++)
		printf("%s %s %llu", i ? "," : "", t->v[i].key, (unsigned long long)t->v[i].n);
	if (top >= 0 && k > (size_t)top)
		printf(", and %zu more", k - (size_t)top);
	putchar('\n');
}

static struct mbucket *
mstats_bucket(struct mstats *st, int64_t ts)
{
	int64_t w = st->o->interval, start = 0;

	if (w > 0)
		start = ts == INT64_MIN ? INT64_MIN : (ts >= 0 ? ts / w : (ts - w + 1) / w) * w;
	for (size_t i = st->nb; i > 0; i--)
		if (st->b[i - 1].start == start)
			return &st->b[i - 1];
	if (st->nb == st->capb) {
		size_t cap = st->capb ? st->capb * 2 : 16;
		struct mbucket *nb = realloc(st->b, cap * sizeof(*nb));
		if (nb == NULL)
			return NULL;
		st->b = nb;
		st->capb = cap;
	}
	memset(&st->b[st->nb], 0, sizeof(*st->b));
	st->b[st->nb].start = start;
	return &st->b[st->nb++];
}

static void
mstats_done(struct mconn *c, void *arg)
{
	struct mstats *st = arg;
	struct mbucket *b;
	char host[MTAB_TEXT];

	if (!mfilt_match(&st->o->filt, c))
		return;
	if ((b = mstats_bucket(st, c->opened != INT64_MIN ? c->opened : c->closed)) == NULL) {
		st->oom = 1;
		return;
	}
	b->conns++;
	b->bytes += c->closed != INT64_MIN ? c->bytes : c->sum;
	mfilt_peer_host(c->peer[0] ? c->peer : "-", host, sizeof(host));
	if (mcounts_add(&b->reasons, c->closed != INT64_MIN ? c->reason : "(not closed)") < 0 ||
	    mcounts_add(&b->peers, host) < 0)
		st->oom = 1;
}

static int
mbucket_cmp(const void *a, const void *b)
{
	const struct mbucket *x = a, *y = b;

	return (x->start > y->start) - (x->start < y->start);
}

static void
mstats_print(struct mstats *st)
{
	char ts[32];

	if (st->nb > 1)
		qsort(st->b, st->nb, sizeof(*st->b), mbucket_cmp);
	for (size_t i = 0; i < st->nb; i++) {
		struct mbucket *b = &st->b[i];

		if (st->o->interval > 0)
			mout_ts(ts, b->start);
		printf("%s%sconnections %llu, bytes %llu\n", st->o->interval > 0 ? ts : "",
		    st->o->interval > 0 ? "  " : "", (unsigned long long)b->conns,
		    (unsigned long long)b->bytes);
		mcounts_print(&b->reasons, "reasons", -1);
		mcounts_print(&b->peers, "top peers", st->o->top);
	}
}

int
mstats_run(const struct mopts *o)
{
	struct mstats st = { .o = o };
	int status;

	if ((status = mout_open(o, &st.s)) != 0)
		return status;
	status = mout_track_all(o, &st.s, &st.tab, mstats_done, &st);
	if (st.oom) {
		fprintf(stderr, "%s: out of memory\n", MSTORE_PROG);
		status = EX_OSERR;
	}
	/* The whole store has one line even with no connection in it. */
	if (status == 0 && o->interval == 0 && st.nb == 0 && mstats_bucket(&st, 0) == NULL)
		status = EX_OSERR;
	if (status == 0)
		mstats_print(&st);
	for (size_t i = 0; i < st.nb; i++) {
		free(st.b[i].reasons.v);
		free(st.b[i].peers.v);
	}
	free(st.b);
	mtab_free(&st.tab);
	mscan_close(&st.s);
	return mout_finish(status);
}
