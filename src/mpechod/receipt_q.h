/*
 * receipt_q.h - the store's receipts in waiting, without I/O: which writer's frames are in which
 * batch of the output buffer, and which of them the file has taken.
 *
 * The store notes a tagged record as it goes into the buffer, with the buffer's batch number
 * (store_buf_batch).  Once that batch is gone from the buffer, it was either written
 * (store_buf_batch says it was) or dropped (--store-full drop on a failing file): its
 * receipts move to the written queue, or are forgotten, and those writers never hear back.  In
 * synced mode the written queue waits for the next fdatasync.  Consecutive records of one writer
 * share one entry, so a queue grows with the writers of a batch, not its records.
 */
#ifndef MPECHO_RECEIPT_Q_H
#define MPECHO_RECEIPT_Q_H

#include <stddef.h>
#include <stdint.h>

/* A frame's ordinal among its writer's stamped frames is carried modulo RECEIPT_ORD_MOD
 * (receipt.h: in the bits of the frame's stamp above its slot). */
#define RECEIPT_ORD_MOD 4096u

struct receipt_ent {
	uint32_t idx, tag, n;
	uint32_t ord; /* the ordinal of the first of its n frames, modulo RECEIPT_ORD_MOD */
	uint64_t gen;
};

struct receipt_q {
	struct receipt_ent *e;
	size_t len, cap;
};

/* Notes n records of slot idx, tag, in batch gen, the first of them the writer's frame ord
 * (modulo RECEIPT_ORD_MOD); they join the last entry only when they follow its frames without a
 * gap.  0, or -1 with errno (ENOMEM: the record is then never acknowledged, and its writer ends
 * at its timeout). */
int receipt_q_note(struct receipt_q *q, uint32_t idx, uint32_t ord, uint32_t tag, uint32_t n,
    uint64_t gen);
/* Sorts every entry of a batch other than gen_now: those of batch wrote_gen go to out (written),
 * the others are dropped.  Returns the number of entries dropped, or -1 (ENOMEM, out not
 * grown: those entries are dropped too). */
long receipt_q_settle(struct receipt_q *q, uint64_t gen_now, uint64_t wrote_gen,
    struct receipt_q *out);
void receipt_q_clear(struct receipt_q *q);
void receipt_q_free(struct receipt_q *q);

#endif
