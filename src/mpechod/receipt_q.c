/*
 * receipt_q.c - the store's receipts in waiting (see receipt_q.h).  Pure: no I/O, no clock.
 */
#include "receipt_q.h"

#include <errno.h>
#include <stdlib.h>

static int
receipt_q_grow(struct receipt_q *q)
{
	size_t cap = q->cap == 0 ? 64 : 2 * q->cap;
	struct receipt_ent *e = realloc(q->e, cap * sizeof(*e));

	if (e == NULL) {
		errno = ENOMEM;
		return -1;
	}
	q->e = e;
	q->cap = cap;
	return 0;
}

int
receipt_q_note(struct receipt_q *q, uint32_t idx, uint32_t ord, uint32_t tag, uint32_t n,
    uint64_t gen)
{
	struct receipt_ent *last = q->len > 0 ? &q->e[q->len - 1] : NULL;

	if (last != NULL && last->idx == idx && last->tag == tag && last->gen == gen &&
	    (last->ord + last->n) % RECEIPT_ORD_MOD == ord % RECEIPT_ORD_MOD) {
		last->n += n;
		return 0;
	}
	if ((q->e == NULL || q->len == q->cap) && receipt_q_grow(q) < 0)
		return -1;
	q->e[q->len++] = (struct receipt_ent){ .idx = idx, .tag = tag, .n = n,
	    .ord = ord % RECEIPT_ORD_MOD, .gen = gen };
	return 0;
}

long
receipt_q_settle(struct receipt_q *q, uint64_t gen_now, uint64_t wrote_gen,
    struct receipt_q *out)
{
	size_t keep = 0;
	long dropped = 0;
	int failed = 0;

	for (size_t i = 0; i < q->len; i++) {
		struct receipt_ent *e = &q->e[i];

		if (e->gen == gen_now)
			q->e[keep++] = *e;
		else if (e->gen == wrote_gen && !failed &&
		    receipt_q_note(out, e->idx, e->ord, e->tag, e->n, e->gen) == 0)
			continue;
		else {
			failed |= e->gen == wrote_gen;
			dropped++;
		}
	}
	q->len = keep;
	if (failed) {
		errno = ENOMEM;
		return -1;
	}
	return dropped;
}

void
receipt_q_clear(struct receipt_q *q)
{
	q->len = 0;
}

void
receipt_q_free(struct receipt_q *q)
{
	free(q->e);
	q->e = NULL;
	q->len = q->cap = 0;
}
