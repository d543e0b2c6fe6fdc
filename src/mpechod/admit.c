/*
 * admit.c - admission control: sessions per source and the new-session rate.  Pure: the
 * caller gives the time and the memory (see admit.h).
 */
#include "admit.h"
#include "htab.h"

#include <netinet/in.h>
#include <string.h>

void
admit_key(const struct sockaddr_storage *ss, struct admit_key *k)
{
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;

	memset(k, 0, sizeof(*k));
	k->b[0] = (unsigned char)ss->ss_family;
	if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(a6)) {
		k->b[0] = AF_INET;
		memcpy(k->b + 1, a6->s6_addr + 12, 4);
	} else if (ss->ss_family == AF_INET6)
		memcpy(k->b + 1, a6, 16);
	else if (ss->ss_family == AF_INET)
		memcpy(k->b + 1, &((const struct sockaddr_in *)ss)->sin_addr, 4);
}

/* Keeps the first bits of the len bytes at p, zeroing the rest. */
static void
admit_mask(unsigned char *p, size_t len, int bits)
{
	if (bits <= 0 || (size_t)bits >= len * 8)
		return;
	p[bits / 8] &= (unsigned char)(0xff00u >> (bits % 8));
	memset(p + bits / 8 + 1, 0, len - (size_t)bits / 8 - 1);
}

void
admit_key_prefix(const struct sockaddr_storage *ss, int prefix4, int prefix6,
    struct admit_key *k)
{
	admit_key(ss, k);
	if (k->b[0] == AF_INET)
		admit_mask(k->b + 1, 4, prefix4);
	else if (k->b[0] == AF_INET6)
		admit_mask(k->b + 1, 16, prefix6);
}

/* Without a per-source limit nothing is counted, and the table has no slot. */
static uint32_t
admit_cap(int max_clients, int max_per_source)
{
	uint32_t cap = 1;

	if (max_per_source == 0)
		return 0;
	while (cap < 2 * (uint32_t)max_clients)
		cap <<= 1;
	return cap;
}

size_t
admit_size(int max_clients, int max_per_source)
{
	return sizeof(struct admit) +
	    (size_t)admit_cap(max_clients, max_per_source) * sizeof(struct admit_src);
}

void
admit_init(struct admit *a, int max_clients, int max_per_source, int max_rate)
{
	a->max_per_source = max_per_source;
	a->max_rate = max_rate;
	admit_bucket_init(&a->rate, max_rate);
	a->cap = admit_cap(max_clients, max_per_source);
	memset(a->tab, 0, (size_t)a->cap * sizeof(a->tab[0]));
}

/* FNV-1a over the key's bytes. */
uint32_t
admit_hash(const struct admit_key *k)
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < ADMIT_KEY_LEN; i++)
		h = (h ^ k->b[i]) * 16777619u;
	return h;
}

/* The table is htab.h's: a slot's key is the source (never all zero: its first byte is the
 * address family), and a slot is emptied when its count drops to 0. */
static const struct htab_shape admit_shape = { sizeof(struct admit_src), ADMIT_KEY_LEN };

/* The slot holding k, or the empty slot where it would go.  The table is never more than half
 * full (at most max_clients sources, in at least twice as many slots), so the probe ends. */
static uint32_t
admit_find(const struct admit *a, const struct admit_key *k)
{
	return (uint32_t)htab_find(a->tab, a->cap, &admit_shape, k);
}

unsigned
admit_count(const struct admit *a, const struct admit_key *k)
{
	return a->cap == 0 ? 0 : a->tab[admit_find(a, k)].count;
}

void
admit_bucket_init(struct admit_bucket *b, int rate)
{
	b->tokens = (int64_t)rate * 1000;
	b->last_ms = -1;
}

int
admit_bucket_take(struct admit_bucket *b, int rate, int64_t now_ms)
{
	int64_t full = (int64_t)rate * 1000;

	if (b->last_ms >= 0 && now_ms > b->last_ms)
		b->tokens += (now_ms - b->last_ms) * rate;
	if (b->tokens > full)
		b->tokens = full;
	if (b->last_ms < 0 || now_ms > b->last_ms)
		b->last_ms = now_ms;
	if (b->tokens < 1000)
		return 0;
	b->tokens -= 1000;
	return 1;
}

enum admit_verdict
admit_check(struct admit *a, const struct admit_key *k, int64_t now_ms)
{
	uint32_t i = 0;

	if (a->cap > 0) {
		i = admit_find(a, k);
		if (a->tab[i].count >= (uint32_t)a->max_per_source)
			return ADMIT_PER_SOURCE;
	}
	if (a->max_rate > 0 && !admit_bucket_take(&a->rate, a->max_rate, now_ms))
		return ADMIT_RATE;
	if (a->cap > 0) {
		a->tab[i].key = *k;
		a->tab[i].count++;
	}
	return ADMIT_OK;
}

enum admit_verdict
admit_take_rate(struct admit *a, int64_t now_ms)
{
	if (a->max_rate > 0 && !admit_bucket_take(&a->rate, a->max_rate, now_ms))
		return ADMIT_RATE;
	return ADMIT_OK;
}

enum admit_verdict
admit_take_source(struct admit *a, const struct admit_key *k)
{
	uint32_t i;

	if (a->cap == 0)
		return ADMIT_OK;
	i = admit_find(a, k);
	if (a->tab[i].count >= (uint32_t)a->max_per_source)
		return ADMIT_PER_SOURCE;
	a->tab[i].key = *k;
	a->tab[i].count++;
	return ADMIT_OK;
}

void
admit_release(struct admit *a, const struct admit_key *k)
{
	uint32_t i;

	if (a->cap == 0)
		return;
	i = admit_find(a, k);
	if (a->tab[i].count == 0)
		return;
	if (--a->tab[i].count == 0)
		htab_remove(a->tab, a->cap, &admit_shape, i); /* no tombstones */
}

void
admit_clear(struct admit *a)
{
	memset(a->tab, 0, (size_t)a->cap * sizeof(a->tab[0]));
}

void
admit_add(struct admit *a, const struct admit_key *k)
{
	uint32_t i;

	if (a->cap == 0)
		return;
	i = admit_find(a, k);
	a->tab[i].key = *k;
	a->tab[i].count++;
}

void
admit_set_limits(struct admit *a, int max_per_source, int max_rate)
{
	if ((max_per_source == 0) == (a->max_per_source == 0))
		a->max_per_source = max_per_source;
	if (max_rate != a->max_rate) {
		a->max_rate = max_rate;
		admit_bucket_init(&a->rate, max_rate);
	}
}
