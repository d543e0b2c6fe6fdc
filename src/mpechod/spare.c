/*
 * spare.c - the pool's size decisions (see spare.h).
 */
#include "spare.h"

static int
spare_room(const struct spare_view *v, int want)
{
	int room = v->max_clients - v->total;

	return want < room ? (want > 0 ? want : 0) : (room > 0 ? room : 0);
}

struct spare_plan
spare_tick(const struct spare_view *v, int *rate)
{
	struct spare_plan p = { 0, 0 };
	int have = v->idle + v->starting;

	if (have < v->min_spare) {
		p.spawn = spare_room(v, v->min_spare - have < *rate ? v->min_spare - have : *rate);
		if (*rate < SPARE_RATE_MAX)
			*rate *= 2;
		return p;
	}
	*rate = 1;
	/* Half the excess a tick (at least one): after a burst of thousands the pool is back to
	 * its spares in a dozen seconds, not the hours that Apache's one a second would take. */
	if (v->idle > v->max_spare)
		p.retire = (v->idle - v->max_spare + 1) / 2;
	return p;
}

int
spare_burst(const struct spare_view *v, int *rate)
{
	int n;

	if (v->idle > 0 || v->starting > 0)
		return 0;
	n = spare_room(v, *rate);
	if (n > 0 && *rate < SPARE_RATE_MAX)
		*rate *= 2;
	return n;
}

void
spare_map_set(const struct spare_map *m, int slot)
{
	__atomic_fetch_or(&m->bits[slot / 64], (uint64_t)1 << (slot % 64), __ATOMIC_ACQ_REL);
}

int
spare_map_clear(const struct spare_map *m, int slot)
{
	uint64_t bit = (uint64_t)1 << (slot % 64);

	if (__atomic_fetch_and(&m->bits[slot / 64], ~bit, __ATOMIC_ACQ_REL) != bit)
		return 0;
	for (int i = 0; i < m->words; i++)
		if (__atomic_load_n(&m->bits[i], __ATOMIC_ACQUIRE) != 0)
			return 0;
	return 1;
}

int
spare_map_count(const struct spare_map *m)
{
	int n = 0;

	for (int i = 0; i < m->words; i++)
		n += __builtin_popcountll(__atomic_load_n(&m->bits[i], __ATOMIC_ACQUIRE));
	return n;
}
