/*
 * receipt.c - --echo-after: the receipt board, a writer's wait and the store's acknowledgement
 * (see receipt.h).  A futex on a word of a MAP_SHARED mapping: the writer sleeps in the kernel
 * only when its count is not there yet, on the board's wake word with its slot's bit (slot
 * modulo 32) as the bitset; the store adds one to the wake word after a batch's counts and wakes
 * the bits of the writers that sleep, in one FUTEX_WAKE_BITSET.  Two writers whose slots share a
 * bit may wake for the other's receipt: they look at their own count and sleep again.
 */
#define _GNU_SOURCE
#include "receipt.h"
#include "io.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* A waiting writer looks at its stop flag at least this often: a signal that came just before
 * it went to sleep did not wake it. */
#define RECEIPT_SLICE_MS 100

struct receipt_board {
	uint32_t mode;
	uint32_t nslots;
	uint32_t dg_base;
	uint32_t store_gen; /* how many stores died: the master counts them (receipt_store_died) */
	uint32_t wake;      /* the futex writers sleep on: the store adds 1 before each wake-up */
	uint32_t pad;
	struct receipt_slot slot[];
};

/* Inherited by every child through fork, like the mapping itself. */
static struct receipt_board *receipt_board;

/* The store: the bits of the writers to wake once this round of receipt_publish is done. */
static uint32_t receipt_wake_bits;

static uint32_t
receipt_bit(uint32_t idx)
{
	return 1u << (idx % 32);
}

int
receipt_setup(enum receipt_mode mode, uint32_t nsessions)
{
	size_t n = (size_t)nsessions + RECEIPT_DG_SLOTS;
	size_t len = offsetof(struct receipt_board, slot) + n * sizeof(struct receipt_slot);
	void *p;

	if (mode == RECEIPT_OFF)
		return 0;
	if (n > RECEIPT_STAMP_SLOT(~0u) + (size_t)1) {
		errno = EINVAL; /* a slot would not fit in a frame's stamp */
		return -1;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	receipt_board = p;
	receipt_board->mode = (uint32_t)mode;
	receipt_board->nslots = (uint32_t)n;
	receipt_board->dg_base = nsessions;
	return 0;
}

enum receipt_mode
receipt_mode(void)
{
	return receipt_board == NULL ? RECEIPT_OFF : (enum receipt_mode)receipt_board->mode;
}

uint32_t
receipt_dg_slot(unsigned i)
{
	return receipt_board->dg_base + (uint32_t)i % RECEIPT_DG_SLOTS;
}

uint32_t
receipt_tag(uint64_t conn)
{
	return (uint32_t)(conn ^ (conn >> 32));
}

void
receipt_begin(struct receipt_ticket *t, uint32_t idx, uint64_t conn)
{
	union receipt_word v;

	t->slot = &receipt_board->slot[idx];
	t->idx = idx;
	t->tag = receipt_tag(conn);
	t->sent = 0;
	t->gen = __atomic_load_n(&receipt_board->store_gen, __ATOMIC_ACQUIRE);
	v.h.count = 0;
	v.h.tag = t->tag;
	__atomic_store_n(&t->slot->want, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&t->slot->sleeping, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&t->slot->w.word, v.word, __ATOMIC_SEQ_CST);
}

void
receipt_stamp(struct receipt_ticket *t, struct rec_hdr *h, int whole)
{
	h->flags |= REC_F_RECEIPT | (whole ? REC_F_WHOLE : 0u);
	h->reserved = t->idx | (t->sent % RECEIPT_ORD_MOD) << RECEIPT_SLOT_BITS;
	t->sent++;
}

int
receipt_done(const struct receipt_slot *s, uint32_t tag, uint32_t sent)
{
	union receipt_word v;

	v.word = __atomic_load_n(&s->w.word, __ATOMIC_SEQ_CST);
	return v.h.tag == tag && (int32_t)(v.h.count - sent) >= 0;
}

int
receipt_add(struct receipt_slot *s, uint32_t tag, uint32_t ord, uint32_t n)
{
	union receipt_word old, v;

	old.word = __atomic_load_n(&s->w.word, __ATOMIC_SEQ_CST);
	do {
		if (old.h.tag != tag || old.h.count % RECEIPT_ORD_MOD != ord % RECEIPT_ORD_MOD)
			return -1;
		v = old;
		v.h.count += n;
	} while (!__atomic_compare_exchange_n(&s->w.word, &old.word, v.word, 0, __ATOMIC_SEQ_CST,
	    __ATOMIC_SEQ_CST));
	/* The writer says what it waits for and that it sleeps, then reads the count; this adds
	 * to the count, then reads both (all sequentially consistent): one of the two sees the
	 * other's store, so a writer never sleeps through the count it needs. */
	return (int32_t)(v.h.count - __atomic_load_n(&s->want, __ATOMIC_SEQ_CST)) >= 0 &&
	    __atomic_load_n(&s->sleeping, __ATOMIC_SEQ_CST) != 0;
}

void
receipt_publish(uint32_t idx, uint32_t tag, uint32_t ord, uint32_t n)
{
	struct receipt_slot *s;

	if (receipt_board == NULL || idx >= receipt_board->nslots)
		return;
	s = &receipt_board->slot[idx];
	if (receipt_add(s, tag, ord, n) == 1)
		receipt_wake_bits |= receipt_bit(idx);
}

void
receipt_wake(void)
{
	if (receipt_board == NULL || receipt_wake_bits == 0)
		return;
	/* After every count: a writer that read the wake word before this sleeps only while it
	 * is unchanged (EAGAIN otherwise), and reads its count again. */
	__atomic_add_fetch(&receipt_board->wake, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &receipt_board->wake, FUTEX_WAKE_BITSET, INT_MAX, NULL, NULL,
	    receipt_wake_bits);
	receipt_wake_bits = 0;
}

void
receipt_store_died(void)
{
	if (receipt_board != NULL)
		__atomic_add_fetch(&receipt_board->store_gen, 1, __ATOMIC_RELEASE);
}

/* The deadline of a wait once a store has died since the writer's frames were acknowledged last:
 * what that store had read but not written is never acknowledged, and with no --idle-timeout
 * the writer would wait for ever.  The restarted store has RECEIPT_LOST_MS to acknowledge what
 * was still in the pipe; the writer then gives up (its close reason says receipt-timeout). */
static int64_t
receipt_lost_deadline(struct receipt_ticket *t, int64_t deadline_ms, int64_t *lost_ms)
{
	if (*lost_ms == 0 &&
	    __atomic_load_n(&receipt_board->store_gen, __ATOMIC_ACQUIRE) != t->gen)
		*lost_ms = io_now_ms() + RECEIPT_LOST_MS;
	if (*lost_ms != 0 && (deadline_ms == 0 || *lost_ms < deadline_ms))
		return *lost_ms;
	return deadline_ms;
}

uint32_t
receipt_gen(void)
{
	return __atomic_load_n(&receipt_board->store_gen, __ATOMIC_ACQUIRE);
}

int
receipt_has(const struct receipt_ticket *t, uint32_t want)
{
	return receipt_done(t->slot, t->tag, want);
}

int
receipt_wait(struct receipt_ticket *t, int64_t deadline_ms, const volatile sig_atomic_t *stop)
{
	return receipt_wait_upto(t, t->sent, 0, deadline_ms, stop);
}

int
receipt_wait_upto(struct receipt_ticket *t, uint32_t want, uint32_t gen_after,
    int64_t deadline_ms, const volatile sig_atomic_t *stop)
{
	struct timespec ts;
	int64_t left, lost_ms = 0, until;
	uint32_t seen;
	int r = 0;

	if (receipt_done(t->slot, t->tag, want))
		goto done;
	__atomic_store_n(&t->slot->want, want, __ATOMIC_SEQ_CST);
	__atomic_store_n(&t->slot->sleeping, 1, __ATOMIC_SEQ_CST);
	for (;;) {
		seen = __atomic_load_n(&receipt_board->wake, __ATOMIC_SEQ_CST);
		if (receipt_done(t->slot, t->tag, want))
			break;
		if (*stop) {
			errno = EINTR;
			r = -1;
			break;
		}
		until = receipt_lost_deadline(t, deadline_ms, &lost_ms);
		left = RECEIPT_SLICE_MS;
		if (until > 0) {
			left = until - io_now_ms();
			if (left <= 0) {
				errno = ETIMEDOUT;
				r = -1;
				break;
			}
			if (left > RECEIPT_SLICE_MS)
				left = RECEIPT_SLICE_MS;
		}
		/* FUTEX_WAIT_BITSET's timeout is absolute, on CLOCK_MONOTONIC. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)left * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		/* Sleeps only while the wake word is still what was read before the count (EAGAIN
		 * otherwise): a store that counted since has changed it. */
		syscall(SYS_futex, &receipt_board->wake, FUTEX_WAIT_BITSET, seen, &ts, NULL,
		    receipt_bit(t->idx));
	}
	__atomic_store_n(&t->slot->sleeping, 0, __ATOMIC_SEQ_CST);
	if (r < 0)
		return r;
done:
	/* Everything before is acknowledged: a store that dies later loses only what comes
	 * after.  Frames stamped after want were sent when the board said gen_after: a store
	 * that died since then may have read them. */
	t->gen = want == t->sent ? receipt_gen() : gen_after;
	return 0;
}
