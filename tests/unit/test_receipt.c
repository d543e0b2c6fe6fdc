/*
 * Unit tests for --echo-after's pure parts: the store's receipt queue (receipt_q.c), a slot's
 * tag and count (receipt.c's receipt_done and receipt_add), and the store buffer's batches and
 * whole chunks (store_buf.c), with a file in memory whose writer fails on demand.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "receipt.h"
#include "receipt_q.h"
#include "store_buf.h"

Test(receipt_q, one_entry_per_writer_and_batch)
{
	struct receipt_q q = { 0 };

	cr_assert_eq(receipt_q_note(&q, 3, 0, 17, 1, 5), 0);
	cr_assert_eq(receipt_q_note(&q, 3, 1, 17, 1, 5), 0);
	cr_assert_eq(receipt_q_note(&q, 4, 0, 18, 1, 5), 0);
	cr_assert_eq(receipt_q_note(&q, 3, 2, 17, 1, 5), 0);
	cr_assert_eq(receipt_q_note(&q, 3, 3, 17, 1, 6), 0);
	cr_assert_eq(q.len, 4);
	cr_assert_eq(q.e[0].n, 2);
	cr_assert_eq(q.e[0].ord, 0);
	cr_assert_eq(q.e[2].ord, 2);
	receipt_q_free(&q);
}

/* Frames of one writer with a gap between them (the ones between were lost: a store killed
 * between its read and its write) stay apart, so the later ones are never counted for the
 * lost ones; the ordinal wraps at RECEIPT_ORD_MOD. */
Test(receipt_q, a_gap_starts_a_new_entry)
{
	struct receipt_q q = { 0 };

	cr_assert_eq(receipt_q_note(&q, 3, 0, 17, 1, 5), 0);
	cr_assert_eq(receipt_q_note(&q, 3, 2, 17, 1, 5), 0);
	cr_assert_eq(q.len, 2);
	cr_assert_eq(receipt_q_note(&q, 5, RECEIPT_ORD_MOD - 1, 9, 1, 5), 0);
	cr_assert_eq(receipt_q_note(&q, 5, 0, 9, 1, 5), 0);
	cr_assert_eq(q.len, 3);
	cr_assert_eq(q.e[2].n, 2);
	receipt_q_free(&q);
}

Test(receipt_q, a_written_batch_moves_a_dropped_one_is_forgotten)
{
	struct receipt_q q = { 0 }, out = { 0 };

	receipt_q_note(&q, 1, 0, 10, 2, 5);
	receipt_q_note(&q, 2, 0, 20, 1, 6);
	receipt_q_note(&q, 3, 0, 30, 1, 7);
	/* Batch 5 was written, 6 dropped (drop policy), 7 is still in the buffer. */
	cr_assert_eq(receipt_q_settle(&q, 7, 5, &out), 1);
	cr_assert_eq(q.len, 1);
	cr_assert_eq(q.e[0].idx, 3);
	cr_assert_eq(out.len, 1);
	cr_assert_eq(out.e[0].idx, 1);
	cr_assert_eq(out.e[0].n, 2);
	/* Nothing of the batch in the buffer moves, whatever wrote_gen says. */
	cr_assert_eq(receipt_q_settle(&q, 7, 7, &out), 0);
	cr_assert_eq(q.len, 1);
	cr_assert_eq(out.len, 1);
	receipt_q_free(&q);
	receipt_q_free(&out);
}

Test(receipt_q, grows_past_its_first_capacity)
{
	struct receipt_q q = { 0 }, out = { 0 };

	for (uint32_t i = 0; i < 1000; i++)
		cr_assert_eq(receipt_q_note(&q, i, 0, i, 1, 1), 0);
	cr_assert_eq(receipt_q_settle(&q, 2, 1, &out), 0);
	cr_assert_eq(out.len, 1000);
	cr_assert_eq(out.e[999].idx, 999);
	receipt_q_free(&q);
	receipt_q_free(&out);
}

Test(receipt, counts_only_for_the_tag_in_the_slot)
{
	struct receipt_slot s = { .w.word = 0 };

	s.w.h.tag = 7;
	cr_assert(receipt_done(&s, 7, 0));
	cr_assert_not(receipt_done(&s, 7, 1));
	s.sleeping = 1;
	cr_assert_eq(receipt_add(&s, 7, 0, 2), 1);
	cr_assert(receipt_done(&s, 7, 2));
	cr_assert_not(receipt_done(&s, 7, 3));
	/* A frame of the slot's writer before (an old connection) never counts for the new one. */
	s.w.h.tag = 8;
	s.w.h.count = 0;
	cr_assert_eq(receipt_add(&s, 7, 0, 1), -1);
	cr_assert_eq(s.w.h.count, 0);
	cr_assert_not(receipt_done(&s, 7, 0));
}

Test(receipt, wakes_the_writer_only_once_its_count_is_there)
{
	struct receipt_slot s = { .w.word = 0 };

	s.w.h.tag = 3;
	s.want = 17;
	s.sleeping = 1;
	cr_assert_eq(receipt_add(&s, 3, 0, 10), 0);
	cr_assert_eq(receipt_add(&s, 3, 10, 6), 0);
	cr_assert_eq(receipt_add(&s, 3, 16, 1), 1);
	cr_assert(receipt_done(&s, 3, 17));
}

Test(receipt, wakes_only_a_writer_that_sleeps)
{
	struct receipt_slot s = { .w.word = 0 };

	/* A writer that saw its count before it slept needs no system call from the store. */
	s.w.h.tag = 3;
	s.want = 2;
	cr_assert_eq(receipt_add(&s, 3, 0, 2), 0);
	cr_assert(receipt_done(&s, 3, 2));
	s.want = 3;
	s.sleeping = 1;
	cr_assert_eq(receipt_add(&s, 3, 2, 1), 1);
}

/* Frames after a gap (the ones before them never acknowledged: lost with a store killed between
 * its read and its write, dropped, or not synced) never count: a count of n is the writer's
 * first n frames, and a writer with several chunks in flight must not take later frames for
 * its first chunk's. */
Test(receipt, frames_after_a_gap_never_count)
{
	struct receipt_slot s = { .w.word = 0 };

	s.w.h.tag = 3;
	s.want = 16;
	s.sleeping = 1;
	cr_assert_eq(receipt_add(&s, 3, 0, 4), 0);
	/* Frames 4..15 lost; 16..31 written by the next store. */
	cr_assert_eq(receipt_add(&s, 3, 16, 16), -1);
	cr_assert_eq(s.w.h.count, 4);
	cr_assert_not(receipt_done(&s, 3, 16));
	cr_assert_eq(receipt_add(&s, 3, 4, 12), 1);
	cr_assert(receipt_done(&s, 3, 16));
}

Test(receipt, the_count_wraps)
{
	struct receipt_slot s = { .w.word = 0 };

	s.w.h.tag = 1;
	s.w.h.count = UINT32_MAX;
	cr_assert(receipt_done(&s, 1, UINT32_MAX));
	cr_assert_not(receipt_done(&s, 1, 0));
	cr_assert_eq(receipt_add(&s, 1, RECEIPT_ORD_MOD - 1, 1), 0);
	cr_assert(receipt_done(&s, 1, 0));
}

/* A file in memory that fails while full. */
static struct {
	char data[1 << 20];
	size_t len;
	int full;
} file;

static int
writer(void *ctx, const char *buf, size_t len)
{
	(void)ctx;
	if (file.full) {
		errno = ENOSPC;
		return -1;
	}
	memcpy(file.data + file.len, buf, len);
	file.len += len;
	return 0;
}

static struct store_buf *
new_buf(int block)
{
	struct store_buf_cfg cfg;
	struct store_buf *b;

	memset(&file, 0, sizeof(file));
	store_buf_defaults(&cfg, STORE_JSONL, block, writer, NULL);
	b = store_buf_new(&cfg);
	cr_assert_not_null(b);
	return b;
}

static const struct store_buf_now now0 = { .ms = 1000, .us = 1700000000000000LL };

static void
add(struct store_buf *b, enum rec_type type, unsigned flags, const char *data, size_t len)
{
	struct rec r = { .type = type, .conn = 9, .pid = 42, .ts_us = now0.us, .flags = flags,
	    .data = (const unsigned char *)data, .len = len };

	store_buf_add(b, &r, now0);
}

static uint32_t
gen_of(const struct store_buf *b)
{
	uint32_t gen;

	store_buf_batch(b, &gen, NULL);
	return gen;
}

static uint32_t
wrote_of(const struct store_buf *b)
{
	uint32_t gen, wrote;

	store_buf_batch(b, &gen, &wrote);
	return wrote;
}

Test(store_buf_receipt, a_batch_written_is_said_one_dropped_is_not)
{
	struct store_buf *b = new_buf(0);
	uint32_t gen = gen_of(b);

	add(b, REC_OPEN, 0, "127.0.0.1:1", 11);
	add(b, REC_DATA, 0, "abc", 3);
	store_buf_flush(b, now0);
	cr_assert_eq(wrote_of(b), gen);
	cr_assert_neq(gen_of(b), gen);
	gen = gen_of(b);
	file.full = 1;
	add(b, REC_DATA, 0, "def", 3);
	store_buf_flush(b, now0);
	cr_assert_neq(gen_of(b), gen, "the dropped batch is over");
	cr_assert_neq(wrote_of(b), gen, "and was not written");
	store_buf_free(b);
}

Test(store_buf_receipt, block_keeps_the_batch_until_it_is_written)
{
	struct store_buf *b = new_buf(1);
	uint32_t gen = gen_of(b);

	add(b, REC_OPEN, 0, "127.0.0.1:1", 11);
	file.full = 1;
	add(b, REC_DATA, 0, "abc", 3);
	store_buf_flush(b, now0);
	cr_assert_eq(gen_of(b), gen);
	cr_assert_neq(wrote_of(b), gen);
	file.full = 0;
	store_buf_flush(b, (struct store_buf_now){ .ms = now0.ms + 1000, .us = now0.us });
	cr_assert_eq(wrote_of(b), gen);
	cr_assert_not_null(memmem(file.data, file.len, "\"data\":\"abc\"", 12));
	store_buf_free(b);
}

Test(store_buf_receipt, a_whole_chunk_leaves_no_utf8_carry)
{
	struct store_buf *b = new_buf(0);

	add(b, REC_OPEN, 0, "127.0.0.1:1", 11);
	/* "h" and the first byte of e-acute: without REC_F_WHOLE, 0xc3 waits for the next. */
	add(b, REC_DATA, REC_F_RECEIPT, "h\xc3", 2);
	store_buf_flush(b, now0);
	cr_assert_null(memmem(file.data, file.len, "w4M=", 4));
	add(b, REC_DATA, REC_F_RECEIPT | REC_F_WHOLE, "\xa9x\xc3", 3);
	store_buf_flush(b, now0);
	cr_assert_not_null(memmem(file.data, file.len, "\"data\":\"h\"", 10));
	cr_assert_not_null(memmem(file.data, file.len, "\"data\":\"\xc3\xa9x\"", 12));
	/* The cut character's first byte, in a line of its own, base64. */
	cr_assert_not_null(memmem(file.data, file.len, "\"b64\":\"ww==\"", 12), "%.*s",
	    (int)file.len, file.data);
	store_buf_free(b);
}

/* A store that died after reading a writer's frames never acknowledges them: the writer, with
 * no deadline of its own, gives up RECEIPT_LOST_MS (300 ms in this build) after it sees the
 * death; one that had everything acknowledged before the death waits as before. */
Test(receipt, a_wait_ends_once_the_store_that_owed_it_died)
{
	static const volatile sig_atomic_t go_on = 0;
	struct receipt_ticket t;
	struct rec_hdr h = { 0 };

	cr_assert_eq(receipt_setup(RECEIPT_WRITTEN, 4), 0);
	receipt_begin(&t, 2, 42);
	receipt_stamp(&t, &h, 1);
	receipt_publish(2, receipt_tag(42), 0, 1);
	cr_assert_eq(receipt_wait(&t, 0, &go_on), 0);
	receipt_stamp(&t, &h, 1);
	receipt_store_died();
	errno = 0;
	cr_assert_eq(receipt_wait(&t, 0, &go_on), -1);
	cr_assert_eq(errno, ETIMEDOUT);
	/* The frame, acknowledged by the next store after all: no deadline left over. */
	receipt_publish(2, receipt_tag(42), 1, 1);
	cr_assert_eq(receipt_wait(&t, 0, &go_on), 0);
	receipt_stamp(&t, &h, 1);
	receipt_publish(2, receipt_tag(42), 2, 1);
	cr_assert_eq(receipt_wait(&t, 0, &go_on), 0);
}

static volatile sig_atomic_t receipt_test_alarm;

static void
receipt_test_on_alarm(int signo)
{
	(void)signo;
	receipt_test_alarm = 1;
}

/* A writer that read ahead waits for its first chunk only: the next chunk's frames, sent before
 * a store died, are still owed, so their wait ends RECEIPT_LOST_MS (300 ms here) after the death
 * with ETIMEDOUT (a wait for the first chunk must not make them look acknowledged: that wait
 * would go on until the alarm, 10 s, and end with EINTR). */
Test(receipt, a_wait_for_the_first_chunk_leaves_the_next_one_owed)
{
	static const volatile sig_atomic_t go_on = 0;
	struct sigaction sa = { .sa_handler = receipt_test_on_alarm };
	struct receipt_ticket t;
	struct rec_hdr h = { 0 };
	uint32_t gen_b;

	cr_assert_eq(receipt_setup(RECEIPT_WRITTEN, 4), 0);
	receipt_begin(&t, 1, 7);
	receipt_stamp(&t, &h, 1);
	gen_b = receipt_gen();
	receipt_stamp(&t, &h, 0);
	receipt_stamp(&t, &h, 1);
	receipt_publish(1, receipt_tag(7), 0, 2);
	cr_assert(receipt_has(&t, 1));
	cr_assert(receipt_has(&t, 2));
	cr_assert(!receipt_has(&t, 3));
	receipt_store_died();
	cr_assert_eq(receipt_wait_upto(&t, 1, gen_b, 0, &go_on), 0);
	sigaction(SIGALRM, &sa, NULL);
	alarm(10);
	errno = 0;
	cr_assert_eq(receipt_wait_upto(&t, 3, 0, 0, &receipt_test_alarm), -1);
	cr_assert_eq(errno, ETIMEDOUT);
	alarm(0);
	/* The next store writes the rest: acknowledged, and nothing owed after that. */
	receipt_publish(1, receipt_tag(7), 2, 1);
	cr_assert_eq(receipt_wait_upto(&t, 3, 0, 0, &go_on), 0);
	receipt_stamp(&t, &h, 1);
	receipt_publish(1, receipt_tag(7), 3, 1);
	cr_assert_eq(receipt_wait(&t, 0, &go_on), 0);
}

/* A frame's stamp carries its writer's slot and its ordinal, which wraps at RECEIPT_ORD_MOD. */
Test(receipt, a_stamp_carries_the_slot_and_the_ordinal)
{
	struct receipt_ticket t;
	struct rec_hdr h = { 0 };

	cr_assert_eq(receipt_setup(RECEIPT_WRITTEN, 4), 0);
	receipt_begin(&t, 3, 99);
	receipt_stamp(&t, &h, 1);
	cr_assert_eq(RECEIPT_STAMP_SLOT(h.reserved), 3);
	cr_assert_eq(RECEIPT_STAMP_ORD(h.reserved), 0);
	t.sent = RECEIPT_ORD_MOD + 5;
	receipt_stamp(&t, &h, 1);
	cr_assert_eq(RECEIPT_STAMP_SLOT(h.reserved), 3);
	cr_assert_eq(RECEIPT_STAMP_ORD(h.reserved), 5);
	/* A board whose slots would not fit in a stamp is refused. */
	errno = 0;
	cr_assert_eq(receipt_setup(RECEIPT_WRITTEN, 1u << RECEIPT_SLOT_BITS), -1);
	cr_assert_eq(errno, EINVAL);
}
