/*
 * mstore_tab.c - open connections in htab.h's open-addressing table (linear probing, no
 * tombstones), and sets of numbers as ranges.
 */
#define _GNU_SOURCE
#include "mstore_tab.h"
#include "htab.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The key is (inst, life, conn), the first 16 bytes of struct mconn; inst is never 0, so a
 * used slot's key is never all zero (htab.h). */
static const struct htab_shape mtab_shape = { sizeof(struct mconn),
	offsetof(struct mconn, conn) + sizeof(uint64_t) };

struct mconn *
mtab_find(struct mtab *t, unsigned inst, unsigned life, uint64_t conn)
{
	struct mconn key = { .inst = inst, .life = life, .conn = conn };
	struct mconn *c;

	if (t->cap == 0)
		return NULL;
	c = &t->slot[htab_find(t->slot, t->cap, &mtab_shape, &key)];
	return c->inst == 0 ? NULL : c;
}

struct mconn *
mtab_add(struct mtab *t, unsigned inst, unsigned life, uint64_t conn)
{
	struct mconn *c = mtab_find(t, inst, life, conn);
	struct mconn key = { .inst = inst, .life = life, .conn = conn };

	if (c != NULL)
		return c;
	if ((t->live + 1) * 2 > t->cap) {
		struct mconn *ns = htab_grow(t->slot, t->cap, &mtab_shape, &t->cap);

		if (ns == NULL)
			return NULL;
		t->slot = ns;
	}
	c = &t->slot[htab_find(t->slot, t->cap, &mtab_shape, &key)];
	memset(c, 0, sizeof(*c));
	c->inst = inst;
	c->life = life;
	c->conn = conn;
	c->opened = c->closed = INT64_MIN;
	c->pid = -1;
	t->live++;
	return c;
}

void
mtab_del(struct mtab *t, struct mconn *c)
{
	htab_remove(t->slot, t->cap, &mtab_shape, (size_t)(c - t->slot));
	t->live--;
}

struct mtab_each_fn {
	void (*fn)(struct mconn *, void *);
	void *arg;
};

static void
mtab_each_one(void *slot, size_t i, void *arg)
{
	const struct mtab_each_fn *e = arg;

	(void)i;
	e->fn(slot, e->arg);
}

void
mtab_each(struct mtab *t, void (*fn)(struct mconn *, void *), void *arg)
{
	struct mtab_each_fn e = { fn, arg };

	htab_each(t->slot, t->cap, &mtab_shape, mtab_each_one, &e);
}

void
mtab_free(struct mtab *t)
{
	free(t->slot);
	memset(t, 0, sizeof(*t));
}

void
mtab_text(char *dst, const char *src, size_t n)
{
	if (n > MTAB_TEXT - 1)
		n = MTAB_TEXT - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* The index of the first range whose end is >= v. */
static size_t
mranges_at(const struct mranges *s, uint64_t v)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->r[mid][1] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int
mranges_has(const struct mranges *s, uint64_t v)
{
	size_t i = mranges_at(s, v);

	return i < s->n && s->r[i][0] <= v;
}

int
mranges_add(struct mranges *s, uint64_t v)
{
	size_t i = mranges_at(s, v);

	if (i < s->n && s->r[i][0] <= v)
		return 0;
	if (i > 0 && s->r[i - 1][1] + 1 == v) {
		s->r[i - 1][1] = v;
		if (i < s->n && s->r[i][0] == v + 1) {
			s->r[i - 1][1] = s->r[i][1];
			memmove(s->r + i, s->r + i + 1, (s->n - i - 1) * sizeof(*s->r));
			s->n--;
		}
		return 0;
	}
	if (i < s->n && s->r[i][0] == v + 1) {
		s->r[i][0] = v;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		uint64_t (*nr)[2] = realloc(s->r, cap * sizeof(*nr));
		if (nr == NULL)
			return -1;
		s->r = nr;
		s->cap = cap;
	}
	memmove(s->r + i + 1, s->r + i, (s->n - i) * sizeof(*s->r));
	s->r[i][0] = s->r[i][1] = v;
	s->n++;
	return 0;
}

void
mranges_free(struct mranges *s)
{
	free(s->r);
	memset(s, 0, sizeof(*s));
}
