/*
 * htab.h - one open-addressing hash table for the tables of mpechod and mpecho-store:
 * admission's sources (admit.c, in the master's shared mapping), the store's open connections
 * (store_buf.c) and mpecho-store's (mstore_tab.c).  Pure: no I/O, and no allocation but
 * htab_grow's.
 *
 * The slots are the caller's: an array of cap slots (a power of two) of size bytes, each
 * starting with its key of ksize bytes.  A slot whose key is all zero bytes is empty, so a key
 * is never all zero.  Probing is linear; a removal shifts the later entries of its cluster back
 * (Knuth's algorithm R), so there are no tombstones and a lookup never walks past deleted
 * entries.  The table holds no pointer, so it can live in memory shared by several processes.
 * The caller keeps it at most half full, so that a probe always ends at an empty slot.
 *
 * A removal moves other entries: a pointer to a slot is good until the next removal or
 * rehash.  htab_each allows the callback to remove the entry it is given.
 */
#ifndef MPECHO_HTAB_H
#define MPECHO_HTAB_H

#include <stddef.h>
#include <stdint.h>

struct htab_shape {
	size_t size;  /* bytes a slot */
	size_t ksize; /* bytes of its key, at its start */
};

/* The hash of a key (FNV-1a, 64 bits, then mixed). */
uint64_t htab_hash(const void *key, size_t ksize);
int htab_is_empty(const void *slot, const struct htab_shape *s);
/* The index of the slot holding key, or of the empty slot where it would go. */
size_t htab_find(const void *slots, size_t cap, const struct htab_shape *s, const void *key);
/* Empties slot i, moving later entries of its cluster back into the hole. */
void htab_remove(void *slots, size_t cap, const struct htab_shape *s, size_t i);
/* Puts every entry of old (oldcap slots) into slots (cap slots, all empty). */
void htab_rehash(void *slots, size_t cap, const void *old, size_t oldcap,
    const struct htab_shape *s);
/* A table of twice cap slots (64 when cap is 0) holding every entry of slots, freed; or NULL when
 * memory is short (slots is kept). */
void *htab_grow(void *slots, size_t cap, const struct htab_shape *s, size_t *newcap);
/* Calls fn on every entry once, in no order; fn may remove (htab_remove) the entry it is given,
 * and nothing else. */
void htab_each(void *slots, size_t cap, const struct htab_shape *s,
    void (*fn)(void *slot, size_t i, void *arg), void *arg);

#endif
