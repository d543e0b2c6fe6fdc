/*
 * htab.c - open addressing with linear probing and backward-shift deletion over the caller's
 * slots (see htab.h).
 */
#include "htab.h"

#include <stdlib.h>
#include <string.h>

uint64_t
htab_hash(const void *key, size_t ksize)
{
	const unsigned char *k = key;
	uint64_t h = 14695981039346656037ull;

	for (size_t i = 0; i < ksize; i++)
		h = (h ^ k[i]) * 1099511628211ull;
	/* FNV's low bits are weak for keys that differ in their last byte only (conn numbers);
	 * the mask keeps the low bits, so fold the high ones in. */
	return h ^ (h >> 29) ^ (h >> 47);
}

static unsigned char *
htab_slot(void *slots, const struct htab_shape *s, size_t i)
{
	return (unsigned char *)slots + i * s->size;
}

static const unsigned char *
htab_cslot(const void *slots, const struct htab_shape *s, size_t i)
{
	return (const unsigned char *)slots + i * s->size;
}

int
htab_is_empty(const void *slot, const struct htab_shape *s)
{
	const unsigned char *k = slot;

	for (size_t i = 0; i < s->ksize; i++)
		if (k[i] != 0)
			return 0;
	return 1;
}

size_t
htab_find(const void *slots, size_t cap, const struct htab_shape *s, const void *key)
{
	size_t mask = cap - 1, i = (size_t)htab_hash(key, s->ksize) & mask;

	for (;; i = (i + 1) & mask) {
		const unsigned char *e = htab_cslot(slots, s, i);

		if (memcmp(e, key, s->ksize) == 0 || htab_is_empty(e, s))
			return i;
	}
}

void
htab_remove(void *slots, size_t cap, const struct htab_shape *s, size_t hole)
{
	size_t mask = cap - 1, j = hole, home;

	memset(htab_slot(slots, s, hole), 0, s->size);
	for (;;) {
		unsigned char *e;

		j = (j + 1) & mask;
		e = htab_slot(slots, s, j);
		if (htab_is_empty(e, s))
			return;
		/* An entry stays when its home lies cyclically after the hole, up to itself. */
		home = (size_t)htab_hash(e, s->ksize) & mask;
		if (((j - home) & mask) < ((j - hole) & mask))
			continue;
		memcpy(htab_slot(slots, s, hole), e, s->size);
		memset(e, 0, s->size);
		hole = j;
	}
}

void
htab_rehash(void *slots, size_t cap, const void *old, size_t oldcap,
    const struct htab_shape *s)
{
	for (size_t i = 0; i < oldcap; i++) {
		const unsigned char *e = htab_cslot(old, s, i);

		if (!htab_is_empty(e, s))
			memcpy(htab_slot(slots, s, htab_find(slots, cap, s, e)), e, s->size);
	}
}

void *
htab_grow(void *slots, size_t cap, const struct htab_shape *s, size_t *newcap)
{
	size_t ncap = cap == 0 ? 64 : cap * 2;
	void *ns = calloc(ncap, s->size);

	if (ns == NULL)
		return NULL;
	htab_rehash(ns, ncap, slots, cap, s);
	free(slots);
	*newcap = ncap;
	return ns;
}

/* From an empty slot round the table: a removal moves entries back within a cluster, which
 * never spans an empty slot, so an entry moved into the slot just visited is one not yet
 * visited, and is visited next. */
void
htab_each(void *slots, size_t cap, const struct htab_shape *s,
    void (*fn)(void *slot, size_t i, void *arg), void *arg)
{
	unsigned char key[64];
	size_t start = 0, n = 0, i;

	if (cap == 0 || s->ksize > sizeof(key))
		return;
	while (start < cap && !htab_is_empty(htab_slot(slots, s, start), s))
		start++;
	if (start == cap)
		start = 0; /* full: never, as the table is kept half empty */
	while (n < cap) {
		unsigned char *e;

		i = (start + n) & (cap - 1);
		e = htab_slot(slots, s, i);
		if (htab_is_empty(e, s)) {
			n++;
			continue;
		}
		memcpy(key, e, s->ksize);
		fn(e, i, arg);
		/* Removed with nothing moved in, or kept: on; another entry moved in: it next. */
		if (htab_is_empty(e, s) || memcmp(e, key, s->ksize) == 0)
			n++;
	}
}
