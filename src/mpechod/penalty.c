/*
 * penalty.c - sources refused for a while after repeated culls or bad PROXY headers (see
 * penalty.h).
 */
#include "penalty.h"
#include "htab.h"

#include <string.h>

static const struct htab_shape penalty_shape = {
	sizeof(struct penalty_src), sizeof(struct admit_key)
};

size_t
penalty_size(uint32_t cap)
{
	return sizeof(struct penalty) + (size_t)cap * sizeof(struct penalty_src);
}

void
penalty_init(struct penalty *p, uint32_t cap, int seconds)
{
	p->len_ms = (int64_t)seconds * 1000;
	p->cap = cap;
	p->count = 0;
}

/* The slot of k, or NULL. */
static const struct penalty_src *
penalty_find(const struct penalty *p, const struct admit_key *k)
{
	size_t i = htab_find(p->tab, p->cap, &penalty_shape, k);

	return htab_is_empty(&p->tab[i], &penalty_shape) ? NULL : &p->tab[i];
}

/* A source with nothing left to remember at now_ms: no penalty running, no strike in the
 * window. */
static int
penalty_stale(const struct penalty *p, const struct penalty_src *s, int64_t now_ms)
{
	return s->until_ms <= now_ms && now_ms - s->first_ms >= p->len_ms;
}

/* Drops the stale sources.  A removal moves later entries back into the hole: the same index
 * is looked at again. */
static void
penalty_sweep(struct penalty *p, int64_t now_ms)
{
	for (size_t i = 0; i < p->cap;) {
		if (!htab_is_empty(&p->tab[i], &penalty_shape) && penalty_stale(p, &p->tab[i], now_ms)) {
			htab_remove(p->tab, p->cap, &penalty_shape, i);
			p->count--;
			continue;
		}
		i++;
	}
}

int
penalty_check(const struct penalty *p, const struct admit_key *k, int64_t now_ms)
{
	const struct penalty_src *s = penalty_find(p, k);

	if (s == NULL || s->until_ms <= now_ms)
		return 0;
	return (int)((s->until_ms - now_ms + 999) / 1000);
}

int
penalty_strike(struct penalty *p, const struct admit_key *k, int64_t now_ms)
{
	size_t i = htab_find(p->tab, p->cap, &penalty_shape, k);
	struct penalty_src *s = &p->tab[i];

	if (htab_is_empty(s, &penalty_shape)) {
		if (2 * (p->count + 1) > p->cap) {
			penalty_sweep(p, now_ms);
			if (2 * (p->count + 1) > p->cap)
				return 0;
			i = htab_find(p->tab, p->cap, &penalty_shape, k);
			s = &p->tab[i];
		}
		memset(s, 0, sizeof(*s));
		s->key = *k;
		s->first_ms = now_ms;
		p->count++;
	}
	if (s->until_ms > now_ms)
		return 0; /* already refused: nothing more to count */
	if (now_ms - s->first_ms >= p->len_ms) {
		s->strikes = 0;
		s->first_ms = now_ms;
	}
	if (++s->strikes < PENALTY_STRIKES)
		return 0;
	s->strikes = 0;
	s->first_ms = now_ms + p->len_ms;
	s->until_ms = now_ms + p->len_ms;
	return 1;
}
