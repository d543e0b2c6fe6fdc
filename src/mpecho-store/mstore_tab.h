/*
 * mstore_tab.h - mpecho-store's table of open connections, keyed by (instance, life, conn),
 * and a set of closed conn numbers kept as ranges.  Both grow with the connections open at
 * once, not with the store: a connection leaves the table at its close, and closed numbers,
 * allocated in increasing order, merge into a few ranges.
 */
#ifndef MPECHO_MSTORE_TAB_H
#define MPECHO_MSTORE_TAB_H

#include <stddef.h>
#include <stdint.h>

#define MTAB_TEXT 64

struct mconn {
	unsigned inst, life;   /* 0: an empty slot */
	uint64_t conn;
	int64_t opened, closed; /* microseconds; INT64_MIN when unknown */
	long pid;
	uint64_t sum;          /* bytes of the data records seen */
	uint64_t bytes;        /* what the close record says */
	char peer[MTAB_TEXT], via[MTAB_TEXT], reason[MTAB_TEXT];
	const char *path;      /* where the open record is (path as given) */
	unsigned long line;
	unsigned flags;        /* the command's own */
};

/* At most half full; a deletion moves other entries (htab.h): a pointer into the table is good
 * until the next mtab_add or mtab_del. */
struct mtab {
	struct mconn *slot;
	size_t cap, live;
};

/* The connection, or NULL. */
struct mconn *mtab_find(struct mtab *t, unsigned inst, unsigned life, uint64_t conn);
/* The connection, added (zeroed but for its key) if absent; NULL when out of memory. */
struct mconn *mtab_add(struct mtab *t, unsigned inst, unsigned life, uint64_t conn);
void mtab_del(struct mtab *t, struct mconn *c);
/* Calls fn on every connection once (in no order); fn may delete the one it is given. */
void mtab_each(struct mtab *t, void (*fn)(struct mconn *, void *), void *arg);
void mtab_free(struct mtab *t);
/* Copies n bytes of text into a MTAB_TEXT field, cut to fit, NUL-terminated. */
void mtab_text(char *dst, const char *src, size_t n);

/* A set of numbers as sorted, disjoint, non-adjacent ranges. */
struct mranges {
	uint64_t (*r)[2];
	size_t n, cap;
};

int mranges_has(const struct mranges *s, uint64_t v);
/* Adds v; returns 0, or -1 when out of memory. */
int mranges_add(struct mranges *s, uint64_t v);
void mranges_free(struct mranges *s);

#endif
