/*
 * Unit tests for store_buf.c: the store's output buffer and its --store-full policy, with a
 * file in memory whose writer fails on demand (a full disk: ENOSPC; EIO; short writes; a disk
 * that fills in the middle of a write) and recovers, and the clock stepped by hand.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_buf.h"

/* The file: its bytes, how many more it takes before it fails (a disk's room), the errno it
 * fails with, and the most one write(2) takes (short writes). */
static struct {
	char data[1 << 22];
	size_t len;
	size_t room;
	int err;
	size_t per_write;
	unsigned writes, cuts;
} file;

static ssize_t
fake_write(void *ctx, const char *buf, size_t len)
{
	size_t n = len;

	(void)ctx;
	file.writes++;
	if (file.room == 0) {
		errno = file.err;
		return -1;
	}
	if (n > file.room)
		n = file.room;
	if (file.per_write > 0 && n > file.per_write)
		n = file.per_write;
	memcpy(file.data + file.len, buf, n);
	file.len += n;
	file.room -= n;
	return (ssize_t)n;
}

static int
fake_cut(void *ctx, size_t len)
{
	(void)ctx;
	cr_assert_leq(len, file.len);
	file.len -= len;
	file.room += len;
	file.cuts++;
	return 0;
}

static const struct store_buf_io fake_io = { fake_write, fake_cut, NULL };

static int
writer(void *ctx, const char *buf, size_t len)
{
	(void)ctx;
	return store_buf_write_whole(&fake_io, buf, len);
}

static void
disk(size_t room, int err)
{
	file.room = room;
	file.err = err;
}

static struct store_buf *
new_buf(enum store_format format, int block, size_t held_max)
{
	struct store_buf_cfg cfg;
	struct store_buf *b;

	memset(&file, 0, sizeof(file));
	disk(SIZE_MAX / 2, ENOSPC);
	store_buf_defaults(&cfg, format, block, writer, NULL);
	if (held_max > 0)
		cfg.held_max = held_max;
	b = store_buf_new(&cfg);
	cr_assert_not_null(b);
	return b;
}

static struct store_buf_now
at(int64_t ms)
{
	return (struct store_buf_now){ .ms = ms, .us = 1700000000000000LL + ms * 1000 };
}

static char payload[8 + REC_REASON_MAX];

static void
add(struct store_buf *b, enum rec_type type, uint64_t conn, const char *data, int64_t ms)
{
	struct rec r = { .type = type, .conn = conn, .pid = 42, .ts_us = at(ms).us };

	if (type == REC_CLOSE) {
		r.len = rec_close_payload((unsigned char *)payload, 0, "eof") - 8;
		r.data = (const unsigned char *)payload + 8;
		r.flags = REC_F_BEHALF;
	} else {
		r.data = (const unsigned char *)data;
		r.len = strlen(data);
	}
	store_buf_add(b, &r, at(ms));
}

static void
conn_whole(struct store_buf *b, uint64_t conn, const char *data, int64_t ms)
{
	add(b, REC_OPEN, conn, "127.0.0.1:4000", ms);
	add(b, REC_DATA, conn, data, ms);
	add(b, REC_CLOSE, conn, NULL, ms);
}

/* How many lines of the file hold needle (and a check that it ends with a whole line). */
static int
lines_with(const char *needle)
{
	int n = 0;
	char *p = file.data, *end = file.data + file.len, *nl;

	cr_assert(file.len == 0 || file.data[file.len - 1] == '\n',
	    "the file ends inside a line: ...%.40s", end - (file.len < 40 ? file.len : 40));
	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		cr_assert_not_null(nl);
		cr_assert_eq(p[0], '{', "not a JSON line: %.60s", p);
		if (memmem(p, (size_t)(nl - p), needle, strlen(needle)) != NULL)
			n++;
	}
	return n;
}

static int
count_conn(uint64_t conn, const char *ev)
{
	char needle[96];

	snprintf(needle, sizeof(needle), "\"conn\":%llu,%s", (unsigned long long)conn, ev);
	return lines_with(needle);
}

#define OPEN_EV "\"pid\":42,\"ev\":\"open\""
#define CLOSE_EV "\"ev\":\"close\""

Test(write_whole, loops_over_short_writes)
{
	store_buf_free(new_buf(STORE_JSONL, 0, 0)); /* only the file is used */
	file.per_write = 7;
	cr_assert_eq(store_buf_write_whole(&fake_io, "0123456789abcdef\n", 17), 0);
	cr_assert_eq(file.len, 17u);
	cr_assert_eq(memcmp(file.data, "0123456789abcdef\n", 17), 0);
	cr_assert_eq(file.writes, 3u, "writes %u", file.writes);
}

Test(write_whole, a_disk_that_fills_mid_write_is_cut_back_to_the_last_line)
{
	store_buf_free(new_buf(STORE_JSONL, 0, 0)); /* only the file is used */
	cr_assert_eq(store_buf_write_whole(&fake_io, "line one\n", 9), 0);
	disk(5, ENOSPC);
	file.per_write = 2;
	errno = 0;
	cr_assert_eq(store_buf_write_whole(&fake_io, "line two\n", 9), -1);
	cr_assert_eq(errno, ENOSPC, "errno %d", errno);
	cr_assert_eq(file.len, 9u, "the partial line stayed: %zu bytes", file.len);
	cr_assert_eq(file.cuts, 1u);
}

Test(write_whole, a_write_of_nothing_is_a_full_disk)
{
	store_buf_free(new_buf(STORE_JSONL, 0, 0)); /* only the file is used */
	disk(0, 0);
	errno = 0;
	cr_assert_eq(store_buf_write_whole(&fake_io, "x\n", 2), -1);
	cr_assert_eq(errno, 0, "the fake's errno");
	file.err = EIO;
	cr_assert_eq(store_buf_write_whole(&fake_io, "x\n", 2), -1);
	cr_assert_eq(errno, EIO, "errno %d", errno);
}

Test(flush, writes_every_record_as_a_line)
{
	struct store_buf *b = new_buf(STORE_JSONL, 0, 0);

	conn_whole(b, 1, "hello\n", 0);
	cr_assert_eq(file.len, 0u, "written before the flush");
	cr_assert_eq(store_buf_flush(b, at(1)), STORE_BUF_OK);
	cr_assert_eq(lines_with(""), 3);
	cr_assert_eq(lines_with("\"data\":\"hello\\n\""), 1);
	cr_assert_eq(lines_with("\"bytes\":6"), 1, "the master's close got the bytes counted");
	cr_assert_eq(store_buf_live(b), 0u);
	store_buf_free(b);
}

Test(drop, a_full_disk_drops_data_holds_open_and_close_then_says_the_gap)
{
	struct store_buf *b = new_buf(STORE_JSONL, 0, 0);

	conn_whole(b, 1, "first\n", 0);
	cr_assert_eq(store_buf_flush(b, at(0)), STORE_BUF_OK);
	disk(0, ENOSPC);
	conn_whole(b, 2, "lost!\n", 10);
	errno = 0;
	cr_assert_eq(store_buf_flush(b, at(10)), STORE_BUF_DROPPING);
	cr_assert_eq(errno, ENOSPC, "errno %d", errno);
	cr_assert(store_buf_failing(b));
	cr_assert_not(store_buf_blocked(b), "drop mode never holds sessions back");
	cr_assert_eq(store_buf_gap(b)->dropped_bytes, 6u);
	/* Not tried again before retry_ms. */
	disk(SIZE_MAX / 2, ENOSPC);
	file.writes = 0;
	cr_assert_eq(store_buf_flush(b, at(100)), STORE_BUF_OK);
	cr_assert_eq(file.writes, 0u);
	add(b, REC_DATA, 9, "late\n", 150);
	cr_assert_eq(store_buf_flush(b, at(250)), STORE_BUF_RECOVERED);
	cr_assert_not(store_buf_failing(b));
	cr_assert_eq(store_buf_said(b)->dropped_bytes, 6u, "the figures said");
	cr_assert_eq(lines_with("\"ev\":\"gap\",\"dropped_bytes\":6,\"dropped_records\":1,"
	    "\"conns\":[2]}"), 1);
	cr_assert_eq(count_conn(2, OPEN_EV), 1);
	cr_assert_eq(count_conn(2, CLOSE_EV), 1);
	cr_assert_eq(lines_with("lost!"), 0);
	cr_assert_eq(lines_with("late"), 1);
	store_buf_free(b);
}

Test(drop, eio_is_handled_like_a_full_disk_and_said_once_a_minute)
{
	struct store_buf *b = new_buf(STORE_JSONL, 0, 0);

	disk(0, EIO);
	conn_whole(b, 1, "a\n", 0);
	errno = 0;
	cr_assert_eq(store_buf_flush(b, at(0)), STORE_BUF_DROPPING);
	cr_assert_eq(errno, EIO);
	disk(SIZE_MAX / 2, EIO);
	cr_assert_eq(store_buf_flush(b, at(300)), STORE_BUF_RECOVERED);
	disk(0, EIO);
	conn_whole(b, 2, "b\n", 400);
	cr_assert_eq(store_buf_flush(b, at(400)), STORE_BUF_OK, "said again within a minute");
	disk(0, EIO);
	conn_whole(b, 3, "c\n", 70000);
	cr_assert_eq(store_buf_flush(b, at(70000)), STORE_BUF_DROPPING);
	store_buf_free(b);
}

Test(drop, a_disk_that_fills_mid_buffer_leaves_whole_lines)
{
	struct store_buf *b = new_buf(STORE_JSONL, 0, 0);

	disk(150, ENOSPC);
	file.per_write = 64;
	for (uint64_t c = 1; c <= 20; c++)
		conn_whole(b, c, "0123456789", 0);
	cr_assert_eq(store_buf_flush(b, at(0)), STORE_BUF_DROPPING);
	cr_assert_eq(file.len, 0u, "the part that got in was not cut off");
	disk(SIZE_MAX / 2, ENOSPC);
	cr_assert_eq(store_buf_flush(b, at(1000)), STORE_BUF_RECOVERED);
	cr_assert_eq(lines_with(OPEN_EV), 20);
	cr_assert_eq(lines_with(CLOSE_EV), 20);
	cr_assert_eq(lines_with("\"dropped_bytes\":200,\"dropped_records\":20,"), 1);
	store_buf_free(b);
}

/* Fault 22.9: past the bound on held lines, a connection whose open is dropped loses its close
 * too, also when both are in the buffer that failed (short connections). */
Test(drop, past_the_bound_a_connection_is_dropped_whole)
{
	struct store_buf *b = new_buf(STORE_JSONL, 0, 2000);
	int both = 0, none = 0;

	disk(0, ENOSPC);
	for (uint64_t c = 1; c <= 200; c++)
		conn_whole(b, c, "x", 0);
	store_buf_flush(b, at(0));
	for (uint64_t c = 201; c <= 400; c++) {
		add(b, REC_OPEN, c, "127.0.0.1:4000", 10);
		store_buf_flush(b, at(10));
		add(b, REC_CLOSE, c, NULL, 20);
		store_buf_flush(b, at(20));
	}
	disk(SIZE_MAX / 2, ENOSPC);
	cr_assert_eq(store_buf_flush(b, at(1000)), STORE_BUF_RECOVERED);
	for (uint64_t c = 1; c <= 400; c++) {
		int o = count_conn(c, OPEN_EV), k = count_conn(c, CLOSE_EV);

		cr_assert_eq(o, k, "conn %llu: %d open and %d close records",
		    (unsigned long long)c, o, k);
		both += o;
		none += !o;
	}
	cr_assert_gt(both, 0);
	cr_assert_gt(none, 0, "the bound was never reached");
	cr_assert_eq(store_buf_said(b)->dropped_records, 200u + 2u * (unsigned)none);
	store_buf_free(b);
}

/* Fault 22.10 (the store's part): the held lines stay bounded however long the outage. */
Test(drop, held_lines_stay_bounded_through_a_long_outage)
{
	struct store_buf *b = new_buf(STORE_JSONL, 0, 4096);
	size_t most = 0;

	add(b, REC_OPEN, 1, "127.0.0.1:1", 0); /* open before the outage: its close is kept */
	store_buf_flush(b, at(0));
	disk(0, ENOSPC);
	for (uint64_t c = 2; c < 20000; c++) {
		conn_whole(b, c, "data", (int64_t)c);
		if (c % 7 == 0)
			store_buf_flush(b, at((int64_t)c));
		if (store_buf_held(b) > most)
			most = store_buf_held(b);
	}
	add(b, REC_CLOSE, 1, NULL, 30000);
	store_buf_flush(b, at(30000));
	cr_assert_leq(most, 2 * 4096u, "held %zu bytes", most);
	disk(SIZE_MAX / 2, ENOSPC);
	store_buf_flush(b, at(40000));
	cr_assert_eq(count_conn(1, CLOSE_EV), 1, "the close of a connection opened before was lost");
	cr_assert_eq(lines_with("\"conns_truncated\":true"), 1);
	store_buf_free(b);
}

Test(block, a_full_disk_holds_everything_until_it_has_room)
{
	struct store_buf *b = new_buf(STORE_JSONL, 1, 0);

	disk(0, ENOSPC);
	conn_whole(b, 1, "kept\n", 0);
	cr_assert_eq(store_buf_flush(b, at(0)), STORE_BUF_HOLDING);
	cr_assert(store_buf_blocked(b));
	cr_assert_eq(store_buf_flush(b, at(50)), STORE_BUF_OK, "tried before retry_ms, or said twice");
	cr_assert_eq(store_buf_flush(b, at(250)), STORE_BUF_OK);
	cr_assert(store_buf_blocked(b));
	disk(SIZE_MAX / 2, ENOSPC);
	cr_assert_eq(store_buf_flush(b, at(500)), STORE_BUF_WRITABLE);
	cr_assert_not(store_buf_blocked(b));
	cr_assert_eq(lines_with("kept"), 1);
	cr_assert_eq(lines_with("\"ev\":\"gap\""), 0, "nothing was dropped");
	store_buf_free(b);
}

Test(block, wants_a_flush_before_the_buffer_is_too_full_for_a_datagram)
{
	struct store_buf *b = new_buf(STORE_JSONL, 1, 0);
	static char big[3000];
	int n = 0;

	memset(big, 'z', sizeof(big) - 1);
	while (!store_buf_wants_flush(b)) {
		add(b, REC_DATA, 1, big, 0);
		n++;
		cr_assert_lt(n, 1000);
	}
	cr_assert_gt(n, 1);
	store_buf_free(b);
}

Test(block, giving_up_drops_what_cannot_be_written_and_says_so)
{
	struct store_buf *b = new_buf(STORE_JSONL, 1, 0);

	disk(0, ENOSPC);
	conn_whole(b, 1, "stuck", 0);
	cr_assert_eq(store_buf_flush(b, at(0)), STORE_BUF_HOLDING);
	cr_assert_eq(store_buf_give_up(b), 1);
	cr_assert_not(store_buf_blocked(b));
	cr_assert_eq(store_buf_gap(b)->dropped_bytes, 5u);
	cr_assert_neq(store_buf_finish(b, at(1)), STORE_BUF_RECOVERED);
	cr_assert(store_buf_failing(b), "the file never took them: the exit status says so");
	disk(SIZE_MAX / 2, ENOSPC);
	cr_assert_eq(store_buf_finish(b, at(2)), STORE_BUF_RECOVERED);
	cr_assert_eq(count_conn(1, OPEN_EV), 1);
	cr_assert_eq(count_conn(1, CLOSE_EV), 1);
	store_buf_free(b);
}

Test(exit, a_connection_without_a_close_is_closed_as_lost)
{
	struct store_buf *b = new_buf(STORE_JSONL, 0, 0);

	add(b, REC_OPEN, 5, "127.0.0.1:5", 0);
	add(b, REC_DATA, 5, "abc", 0);
	cr_assert_eq(store_buf_live(b), 1u);
	store_buf_close_lost(b, at(1));
	store_buf_flush(b, at(1));
	cr_assert_eq(lines_with("\"reason\":\"lost\",\"bytes\":3"), 1);
	cr_assert_eq(store_buf_live(b), 0u);
	store_buf_free(b);
}

Test(handover, a_held_incomplete_character_is_written_out_before_the_file_changes_hands)
{
	struct store_buf *b = new_buf(STORE_JSONL, 0, 0);

	add(b, REC_OPEN, 7, "127.0.0.1:7", 0);
	/* "ab" and the first two bytes of U+AC00: the two are held for the next record. */
	add(b, REC_DATA, 7, "ab\xea\xb0", 0);
	store_buf_flush(b, at(0));
	cr_assert_eq(lines_with("\"data\":\"ab\""), 1);
	cr_assert_eq(lines_with("\"b64\""), 0);
	store_buf_carry_out(b, at(1));
	store_buf_flush(b, at(1));
	cr_assert_eq(lines_with("\"b64\":\"6rA=\""), 1, "%.*s", (int)file.len, file.data);
	/* Nothing is held any more, and nothing is counted twice. */
	store_buf_carry_out(b, at(2));
	store_buf_close_lost(b, at(2));
	store_buf_flush(b, at(2));
	cr_assert_eq(lines_with("\"b64\""), 1);
	cr_assert_eq(lines_with("\"reason\":\"lost\",\"bytes\":4"), 1);
	store_buf_free(b);
}

Test(note, records_dropped_elsewhere_are_said_in_a_gap_record)
{
	struct store_buf *b = new_buf(STORE_JSONL, 0, 0);
	uint64_t conns[] = { 7, 8 };

	add(b, REC_OPEN, 8, "127.0.0.1:8", 0);
	add(b, REC_DATA, 8, "12345", 0);
	store_buf_note_dropped(b, 4, conns, 2, 1, at(1));
	cr_assert_eq(store_buf_live(b), 0u, "the connection whose close was dropped is still open");
	cr_assert_eq(store_buf_flush(b, at(1)), STORE_BUF_OK);
	cr_assert_eq(lines_with("\"dropped_bytes\":0,\"dropped_records\":4,\"conns\":[7,8],"
	    "\"conns_truncated\":true}"), 1);
	cr_assert_eq(lines_with("\"conn\":8,\"ev\":\"close\",\"reason\":\"lost\",\"bytes\":5"), 1);
	store_buf_free(b);
}

Test(raw, a_full_disk_drops_bytes_and_recovers_without_a_gap_line)
{
	struct store_buf *b = new_buf(STORE_RAW, 0, 0);

	add(b, REC_OPEN, 1, "127.0.0.1:1", 0);
	add(b, REC_DATA, 1, "abc", 0);
	store_buf_flush(b, at(0));
	disk(0, ENOSPC);
	add(b, REC_DATA, 1, "def", 1);
	cr_assert_eq(store_buf_flush(b, at(1)), STORE_BUF_DROPPING);
	disk(SIZE_MAX / 2, ENOSPC);
	add(b, REC_DATA, 1, "ghi", 300);
	store_buf_flush(b, at(300));
	cr_assert_eq(file.len, 6u);
	cr_assert_eq(memcmp(file.data, "abcghi", 6), 0);
	store_buf_free(b);
}

/* A session killed after its open got into the pipe but before it marked it written: the
 * master writes the open again on its behalf, and the file must not have two. */
Test(flush, the_masters_open_after_the_sessions_own_is_dropped)
{
	struct store_buf *b = new_buf(STORE_JSONL, 0, 0);
	struct rec r = { .type = REC_OPEN, .conn = 3, .pid = 42, .flags = REC_F_BEHALF,
	    .data = (const unsigned char *)"127.0.0.1:3", .len = 11 };

	add(b, REC_OPEN, 3, "127.0.0.1:3", 0);
	add(b, REC_DATA, 3, "abcd", 0);
	store_buf_add(b, &r, at(1));
	add(b, REC_CLOSE, 3, NULL, 2);
	store_buf_flush(b, at(2));
	cr_assert_eq(count_conn(3, OPEN_EV), 1);
	cr_assert_eq(lines_with("\"bytes\":4"), 1);
	/* The master's open for a session that wrote none is kept. */
	r.conn = 4;
	store_buf_add(b, &r, at(3));
	add(b, REC_CLOSE, 4, NULL, 3);
	store_buf_flush(b, at(3));
	cr_assert_eq(count_conn(4, OPEN_EV), 1);
	store_buf_free(b);
}

Test(flush, the_masters_close_after_the_sessions_own_is_dropped)
{
	struct store_buf *b = new_buf(STORE_JSONL, 0, 0);
	struct rec own = { .type = REC_CLOSE, .conn = 5, .pid = 42, .ts_us = at(1).us };

	own.len = rec_close_payload((unsigned char *)payload, 4, "eof") - 8;
	own.data = (const unsigned char *)payload + 8;
	add(b, REC_OPEN, 5, "127.0.0.1:5", 0);
	add(b, REC_DATA, 5, "abcd", 0);
	/* The session's own close got into the pipe; it died before it marked it written, and
	 * the master writes one on its behalf. */
	store_buf_add(b, &own, at(1));
	add(b, REC_CLOSE, 5, NULL, 2);
	store_buf_flush(b, at(2));
	cr_assert_eq(count_conn(5, CLOSE_EV), 1);
	/* A connection opened before this store started (a restart): the master's close is the
	 * only one, and is kept. */
	add(b, REC_CLOSE, 6, NULL, 3);
	store_buf_flush(b, at(3));
	cr_assert_eq(count_conn(6, CLOSE_EV), 1);
	store_buf_free(b);
}
