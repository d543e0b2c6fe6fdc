/*
 * receipt.h - --echo-after written|synced: the echo is the store's receipt.
 *
 * The master maps one board of words shared with every child before it forks any (like the
 * scoreboard), one word a writer: a session's or pool process's slot, and RECEIPT_DG_SLOTS for the
 * datagram process, one per datagram of its batch.  A word is the writer's tag (the low 32 bits of
 * the connection's number, or of the datagram's) and how many of its tagged frames the store has
 * written (written) or written and fdatasynced (synced).  A writer sets its tag and a count of 0
 * (receipt_begin), marks each frame it writes with its slot and the frame's ordinal
 * (receipt_stamp), and waits for the count (receipt_wait) before it echoes, saying the count it
 * needs.  The store adds to the count of the frames it wrote, by compare-and-swap only while the
 * tag is still the frame's and only for frames that follow the count without a gap (the count's
 * ordinal is the frames' first): a count of n then always means the writer's first n frames, even
 * when later frames were written after earlier ones were lost (a store killed between its read and
 * its write, a batch dropped, a failed fdatasync), which matters to a writer with several chunks
 * in flight (session.c reads a stream ahead).  The store wakes the writers whose count is there
 * and who sleep: every writer sleeps on one futex(2) word of the board, with its slot's bit in the
 * wait's bitset, so that one FUTEX_WAKE_BITSET per batch (or per fdatasync) wakes them all, not one
 * system call each (receipt_wake).  A frame left in the pipe by a writer before (a session killed,
 * a slot reused) never counts for the next one, and a store counts only what it wrote itself (a
 * store restarted after a crash cannot acknowledge what its predecessor read but never wrote:
 * those writers wait, and end at their idle timeout or 30 s after the death).
 *
 * Off (the default), nothing here runs: no board, no flag, no syscall.
 */
#ifndef MPECHO_RECEIPT_H
#define MPECHO_RECEIPT_H

#include "receipt_q.h"
#include "record.h"

#include <signal.h>
#include <stdint.h>

enum receipt_mode { RECEIPT_OFF, RECEIPT_WRITTEN, RECEIPT_SYNCED };

/* A frame's stamp (its header's reserved field): the writer's slot in the low RECEIPT_SLOT_BITS
 * bits, its ordinal modulo RECEIPT_ORD_MOD (receipt_q.h) above them.  A writer never has
 * RECEIPT_ORD_MOD frames unacknowledged (a session at most SESSION_AHEAD chunks of 16 frames),
 * so the ordinal modulo it tells a gap from none. */
#define RECEIPT_SLOT_BITS 20
#define RECEIPT_STAMP_SLOT(stamp) ((stamp) & ((1u << RECEIPT_SLOT_BITS) - 1))
#define RECEIPT_STAMP_ORD(stamp) ((stamp) >> RECEIPT_SLOT_BITS)

/* The datagram process's slots: at least its batch (datagram.c's DG_BATCH). */
#define RECEIPT_DG_SLOTS 32

/* One writer's word: its tag and its count. */
union receipt_word {
	uint64_t word;
	struct {
		uint32_t count; /* frames of tag the store has acknowledged */
		uint32_t tag;
	} h;
};

/* A writer's slot: its word, the count it waits for and whether it sleeps (the store wakes it
 * only then: one wake-up per chunk at most, however many batches its frames took). */
struct receipt_slot {
	union receipt_word w;
	uint32_t want;
	uint32_t sleeping;
};

/* What a writer knows of its own receipts. */
struct receipt_ticket {
	struct receipt_slot *slot;
	uint32_t idx;  /* the slot's index, in every frame */
	uint32_t tag;
	uint32_t sent; /* frames stamped since receipt_begin */
	uint32_t gen;  /* the board's store_gen when everything sent before was acknowledged */
};

/* How long a writer waits for a receipt once the store that should have given it died: the
 * restarted store's time to write what was left in the pipe. */
#ifndef RECEIPT_LOST_MS
#define RECEIPT_LOST_MS 30000
#endif

/* The master, before it forks anything: maps the board for nsessions slots and the datagram
 * process's.  0, or -1 with errno. */
int receipt_setup(enum receipt_mode mode, uint32_t nsessions);
/* RECEIPT_OFF when there is no board (in this process's family). */
enum receipt_mode receipt_mode(void);
/* The slot of the datagram process's i-th datagram of a batch. */
uint32_t receipt_dg_slot(unsigned i);

/* Takes slot idx for the writer of conn (a connection or a datagram): its count starts at 0. */
void receipt_begin(struct receipt_ticket *t, uint32_t idx, uint64_t conn);
/* Marks a frame's header as one the writer waits for; whole: a chunk's last frame. */
void receipt_stamp(struct receipt_ticket *t, struct rec_hdr *h, int whole);
/* Waits until the store has acknowledged every frame stamped, until deadline_ms (io_now_ms;
 * 0: none) or while *stop stays 0.  0, or -1 with errno ETIMEDOUT or EINTR (*stop). */
int receipt_wait(struct receipt_ticket *t, int64_t deadline_ms,
    const volatile sig_atomic_t *stop);
/* A writer that reads ahead (session.c: the next chunk read and recorded while the one before
 * waits) waits for the first want frames only.  receipt_gen is the board's store count, read
 * before a chunk's first frame is stamped; receipt_wait_upto's gen_after is that of the chunk
 * after the first want frames (ignored when want is every frame stamped): a store that died
 * since may have read those frames and never written them.  receipt_has only looks. */
uint32_t receipt_gen(void);
int receipt_has(const struct receipt_ticket *t, uint32_t want);
int receipt_wait_upto(struct receipt_ticket *t, uint32_t want, uint32_t gen_after,
    int64_t deadline_ms, const volatile sig_atomic_t *stop);
/* The master, when it reaps a store: a writer waiting for a receipt gives up RECEIPT_LOST_MS
 * later if it has not come by then (what the dead store read but did not write never comes). */
void receipt_store_died(void);

/* Pure, on any slot: whether the store has acknowledged sent frames of tag; and adds n to the
 * count if the tag is still tag and the first of the n frames is the count's next one (ord, the
 * frame's ordinal modulo RECEIPT_ORD_MOD): returns 1 when the writer's wait is then over and it
 * sleeps (wake it), 0 when not, -1 (nothing added) when the slot has another writer now or
 * frames before these were never acknowledged. */
int receipt_done(const struct receipt_slot *s, uint32_t tag, uint32_t sent);
int receipt_add(struct receipt_slot *s, uint32_t tag, uint32_t ord, uint32_t n);
/* The store: acknowledges n frames of tag in slot idx of the board, the first of them frame ord
 * (as receipt_add); receipt_wake then wakes every writer whose wait that ended, with one system
 * call. */
void receipt_publish(uint32_t idx, uint32_t tag, uint32_t ord, uint32_t n);
void receipt_wake(void);
/* The tag of a connection or datagram number: its low 32 bits folded with its high ones (the
 * datagram process numbers its datagrams from its pid times 2^32, so a restarted one never
 * takes the tags of frames its predecessor left in the pipe). */
uint32_t receipt_tag(uint64_t conn);

#endif
