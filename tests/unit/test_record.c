/*
 * Unit tests for record.c: frames, JSON escaping and the JSON Lines form.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <string.h>

#include "record.h"

static size_t
frame(unsigned char *buf, enum rec_type type, unsigned flags, uint64_t conn, const void *p,
    size_t n)
{
	struct rec_hdr h;

	rec_header(&h, type, flags, conn, 4242, n);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), p, n);
	return sizeof(h) + n;
}

Test(frame, fits_pipe_buf)
{
	cr_assert_eq(sizeof(struct rec_hdr) + REC_PAYLOAD_MAX, (size_t)PIPE_BUF);
}

Test(frame, needs_the_key_and_a_conn)
{
	unsigned char buf[REC_FRAME_MAX];
	struct rec r;
	size_t n;

	rec_set_key(0x1234);
	n = frame(buf, REC_DATA, 0, 5, "x", 1);
	cr_assert_eq(rec_decode(buf, n, &r), (ssize_t)n);
	rec_set_key(0x1235);
	cr_assert_eq(rec_decode(buf, n, &r), -1, "a frame with another key was accepted");
	rec_set_key(0);
	n = frame(buf, REC_DATA, 0, 0, "x", 1);
	cr_assert_eq(rec_decode(buf, n, &r), -1, "conn 0 was accepted");
	n = frame(buf, REC_DATA, 0, UINT64_MAX, "x", 1);
	cr_assert_eq(rec_decode(buf, n, &r), -1, "conn UINT64_MAX was accepted");
}

Test(frame, round_trip)
{
	unsigned char buf[REC_FRAME_MAX];
	struct rec r;
	size_t n = frame(buf, REC_DATA, 0, 17, "hello", 5);

	cr_assert_eq(rec_decode(buf, n, &r), (ssize_t)n);
	cr_assert_eq(r.type, REC_DATA);
	cr_assert_eq(r.conn, 17);
	cr_assert_eq(r.pid, 4242);
	cr_assert_eq(r.len, 5);
	cr_assert_arr_eq(r.data, "hello", 5);
}

Test(frame, incomplete_needs_more)
{
	unsigned char buf[REC_FRAME_MAX];
	struct rec r;
	size_t n = frame(buf, REC_DATA, 0, 1, "abcdef", 6);

	for (size_t k = 0; k < n; k++)
		cr_assert_eq(rec_decode(buf, k, &r), 0, "a prefix of %zu bytes decoded", k);
}

Test(frame, corrupt_rejected)
{
	unsigned char buf[REC_FRAME_MAX];
	struct rec r;
	struct rec_hdr h;
	size_t n = frame(buf, REC_DATA, 0, 1, "x", 1);

	buf[0] ^= 0xff;
	cr_assert_eq(rec_decode(buf, n, &r), -1);
	buf[0] ^= 0xff;
	memcpy(&h, buf, sizeof(h));
	h.len = REC_PAYLOAD_MAX + 1;
	memcpy(buf, &h, sizeof(h));
	cr_assert_eq(rec_decode(buf, n, &r), -1);
	h.len = 1;
	h.type = 9;
	memcpy(buf, &h, sizeof(h));
	cr_assert_eq(rec_decode(buf, n, &r), -1);
}

Test(frame, close_payload)
{
	unsigned char buf[REC_FRAME_MAX], pay[8 + REC_REASON_MAX];
	struct rec r;
	size_t n = frame(buf, REC_CLOSE, REC_F_BEHALF, 3, pay,
	    rec_close_payload(pay, 123456789012ull, "signal 9"));

	cr_assert_eq(rec_decode(buf, n, &r), (ssize_t)n);
	cr_assert_eq(r.bytes, 123456789012ull);
	cr_assert_eq(r.len, 8);
	cr_assert_arr_eq(r.data, "signal 9", 8);
	cr_assert_eq(r.flags, REC_F_BEHALF);
}

Test(json, escapes_every_byte_as_latin1)
{
	unsigned char all[256];
	char out[6 * 256 + 8];
	size_t n;

	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	n = rec_json_escape(out, all, 256);
	out[n] = '\0';
	cr_assert_eq(strncmp(out, "\\u0000\\u0001", 12), 0, "got %.12s", out);
	cr_assert_not_null(strstr(out, "\\t\\n\\u000b\\u000c\\r"));
	cr_assert_not_null(strstr(out, " !\\\"#"));
	cr_assert_not_null(strstr(out, "[\\\\]"));
	cr_assert_not_null(strstr(out, "~\\u007f\\u0080"));
	cr_assert_not_null(strstr(out, "\\u009f\xc2\xa0"));
	cr_assert_eq(strcmp(out + n - 2, "\xc3\xbf"), 0);
	/* No raw control byte and no lone high byte reaches the file. */
	for (size_t i = 0; i < n; i++)
		cr_assert((unsigned char)out[i] >= 0x20, "raw control byte at %zu", i);
}

Test(json, worst_case_fits)
{
	unsigned char data[REC_PAYLOAD_MAX];
	static char out[REC_JSON_MAX];
	struct rec r = { .type = REC_DATA, .conn = UINT64_MAX - 1, .ts_us = INT64_MAX, .data = data,
	    .len = sizeof(data) };

	memset(data, 0x01, sizeof(data));
	cr_assert_leq(rec_format_json(out, &r), sizeof(out));
}

Test(json, lines)
{
	char out[REC_JSON_MAX];
	size_t n;
	struct rec r = { .type = REC_OPEN, .conn = 17, .pid = 4242,
	    .ts_us = 1795255200123456ll, .data = (const unsigned char *)"127.0.0.1:50312",
	    .len = 15 };

	n = rec_format_json(out, &r);
	out[n] = '\0';
	cr_assert_str_eq(out, "{\"ts\":\"2026-11-21T10:00:00.123456Z\",\"conn\":17,\"pid\":4242,"
	    "\"ev\":\"open\",\"peer\":\"127.0.0.1:50312\"}\n");
	r.type = REC_DATA;
	r.data = (const unsigned char *)"hello\n";
	r.len = 6;
	n = rec_format_json(out, &r);
	out[n] = '\0';
	cr_assert_str_eq(out, "{\"ts\":\"2026-11-21T10:00:00.123456Z\",\"conn\":17,"
	    "\"ev\":\"data\",\"data\":\"hello\\n\"}\n");
	r.type = REC_CLOSE;
	r.data = (const unsigned char *)"eof";
	r.len = 3;
	r.bytes = 6;
	r.ts_us += 1000000; /* the cached date must move on */
	n = rec_format_json(out, &r);
	out[n] = '\0';
	cr_assert_str_eq(out, "{\"ts\":\"2026-11-21T10:00:01.123456Z\",\"conn\":17,"
	    "\"ev\":\"close\",\"reason\":\"eof\",\"bytes\":6}\n");
}

Test(json, timestamp_microseconds_padded)
{
	char ts[REC_TS_LEN + 1];

	rec_format_ts(ts, 1795255200000007ll);
	ts[REC_TS_LEN] = '\0';
	cr_assert_str_eq(ts, "2026-11-21T10:00:00.000007Z");
}

Test(gap, one_json_line_with_the_conns)
{
	uint64_t conns[] = { 3, 17 };
	struct rec_gap g = { .ts_us = 0, .dropped_bytes = 4096, .dropped_records = 2,
	    .conns = conns, .nconns = 2 };
	char buf[REC_GAP_LEN(2)];
	size_t n = rec_format_gap(buf, &g);

	buf[n] = '\0';
	cr_assert_str_eq(buf, "{\"ts\":\"1970-01-01T00:00:00.000000Z\",\"ev\":\"gap\","
	    "\"dropped_bytes\":4096,\"dropped_records\":2,\"conns\":[3,17]}\n");
	g.nconns = 0;
	g.truncated = 1;
	n = rec_format_gap(buf, &g);
	buf[n] = '\0';
	cr_assert(strstr(buf, "\"conns\":[],\"conns_truncated\":true}\n") != NULL, "%s", buf);
}
