/*
 * mstore_tab.c - open connections in an open-addressing hash table (linear probing, with
 * tombstones), and sets of numbers as ranges.
 */
#define _GNU_SOURCE
#include "mstore_tab.h"

#include <stdlib.h>
#include <string.h>

#define MTAB_TOMB ((unsigned)-1)

static size_t
mtab_hash(unsigned inst, unsigned life, uint64_t conn)
{
	uint64_t h = conn * 0x9e3779b97f4a7c15ull ^ ((uint64_t)inst << 32 | life) * 0xff51afd7ed558ccdull;

	return (size_t)(h ^ (h >> 29));
}

static int
mtab_is(const struct mconn *c, unsigned inst, unsigned life, uint64_t conn)
{
	return c->inst == inst && c->life == life && c->conn == conn;
}

struct mconn *
mtab_find(struct mtab *t, unsigned inst, unsigned life, uint64_t conn)
{
	if (t->cap == 0)
		return NULL;
	for (size_t i = mtab_hash(inst, life, conn) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
		struct mconn *c = &t->slot[i];

		if (c->inst == 0)
			return NULL;
		if (mtab_is(c, inst, life, conn))
			return c;
	}
}

/* Doubles the table when it is over half full (tombstones count), or rebuilds it in place. */
static int
mtab_grow(struct mtab *t)
{
	size_t cap = t->cap == 0 ? 64 : t->live * 4 > t->cap ? t->cap * 2 : t->cap;
	struct mconn *old = t->slot, *ns = calloc(cap, sizeof(*ns));
	size_t oldcap = t->cap;

	if (ns == NULL)
		return -1;
	t->slot = ns;
	t->cap = cap;
	t->used = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].inst == 0 || old[i].inst == MTAB_TOMB)
			continue;
		size_t j = mtab_hash(old[i].inst, old[i].life, old[i].conn) & (cap - 1);
		while (ns[j].inst != 0)
			j = (j + 1) & (cap - 1);
		ns[j] = old[i];
		t->used++;
	}
	free(old);
	return 0;
}

struct mconn *
mtab_add(struct mtab *t, unsigned inst, unsigned life, uint64_t conn)
{
	struct mconn *c = mtab_find(t, inst, life, conn);
	size_t i;

	if (c != NULL)
		return c;
	if ((t->used + 1) * 2 > t->cap && mtab_grow(t) < 0)
		return NULL;
	for (i = mtab_hash(inst, life, conn) & (t->cap - 1); t->slot[i].inst != 0 &&
	    t->slot[i].inst != MTAB_TOMB; i = (i + 1) & (t->cap - 1))
		;
	c = &t->slot[i];
	if (c->inst == 0)
		t->used++;
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
	c->inst = MTAB_TOMB;
	c->life = 0;
	c->conn = 0;
	t->live--;
}

void
mtab_each(struct mtab *t, void (*fn)(struct mconn *, void *), void *arg)
{
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i].inst != 0 && t->slot[i].inst != MTAB_TOMB)
			fn(&t->slot[i], arg);
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
