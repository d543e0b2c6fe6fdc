/*
 * Unit tests for record.c: frames, the latin-1 JSON escape and the JSON Lines form (the UTF-8,
 * JSON text and base64 underneath are test_rec_text.c's).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
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

/* An upgrade in place: frames of the life before carry its key, and their lines name it. */
Test(frame, the_life_before_an_upgrade)
{
	unsigned char buf[REC_FRAME_MAX];
	char out[REC_JSON_MAX];
	const uint64_t id[2] = { 3, 4 };
	struct rec r;
	size_t n;

	rec_set_key(0x1234);
	n = frame(buf, REC_DATA, 0, 5, "x", 1);
	rec_set_key(0x9999);
	rec_set_life(id);
	cr_assert_eq(rec_decode(buf, n, &r), -1);
	rec_set_prev(0x1234, "0000000000000009000000000000000a");
	cr_assert_eq(rec_decode(buf, n, &r), (ssize_t)n);
	cr_assert(r.flags & REC_F_PREV);
	n = rec_format_json(out, &r);
	out[n] = '\0';
	cr_assert_not_null(strstr(out, "\"life\":\"0000000000000009000000000000000a\""), "%s", out);
	n = frame(buf, REC_DATA, 0, 6, "y", 1);
	cr_assert_eq(rec_decode(buf, n, &r), (ssize_t)n);
	cr_assert_eq(r.flags & REC_F_PREV, 0u);
	n = rec_format_json(out, &r);
	out[n] = '\0';
	cr_assert_not_null(strstr(out, "\"life\":\"00000000000000030000000000000004\""), "%s", out);
	rec_set_prev(0, "");
	rec_set_key(0);
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

#define LIFE "00000000000000010000000000000002"

static void
set_life(void)
{
	const uint64_t id[2] = { 1, 2 };

	rec_set_life(id);
}

Test(json, lines)
{
	char out[REC_JSON_MAX];
	size_t n;

	set_life();
	struct rec r = { .type = REC_OPEN, .conn = 17, .pid = 4242,
	    .ts_us = 1795255200123456ll, .data = (const unsigned char *)"127.0.0.1:50312",
	    .len = 15 };

	n = rec_format_json(out, &r);
	out[n] = '\0';
	cr_assert_str_eq(out, "{\"ts\":\"2026-11-21T10:00:00.123456Z\",\"life\":\"" LIFE "\","
	    "\"conn\":17,\"pid\":4242,"
	    "\"ev\":\"open\",\"peer\":\"127.0.0.1:50312\"}\n");
	r.type = REC_DATA;
	r.data = (const unsigned char *)"hello\n";
	r.len = 6;
	n = rec_format_json(out, &r);
	out[n] = '\0';
	cr_assert_str_eq(out, "{\"ts\":\"2026-11-21T10:00:00.123456Z\",\"life\":\"" LIFE "\","
	    "\"conn\":17,\"ev\":\"data\",\"data\":\"hello\\n\"}\n");
	r.type = REC_CLOSE;
	r.data = (const unsigned char *)"eof";
	r.len = 3;
	r.bytes = 6;
	r.ts_us += 1000000; /* the cached date must move on */
	n = rec_format_json(out, &r);
	out[n] = '\0';
	cr_assert_str_eq(out, "{\"ts\":\"2026-11-21T10:00:01.123456Z\",\"life\":\"" LIFE "\","
	    "\"conn\":17,\"ev\":\"close\",\"reason\":\"eof\",\"bytes\":6}\n");
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
	size_t n;

	set_life();
	n = rec_format_gap(buf, &g);
	buf[n] = '\0';
	cr_assert_str_eq(buf, "{\"ts\":\"1970-01-01T00:00:00.000000Z\",\"life\":\"" LIFE "\","
	    "\"ev\":\"gap\","
	    "\"dropped_bytes\":4096,\"dropped_records\":2,\"conns\":[3,17]}\n");
	g.nconns = 0;
	g.truncated = 1;
	n = rec_format_gap(buf, &g);
	buf[n] = '\0';
	cr_assert(strstr(buf, "\"conns\":[],\"conns_truncated\":true}\n") != NULL, "%s", buf);
}

/* Decodes one line of rec_format_line's data records: appends its bytes to out. */
static size_t
line_bytes(const char *line, unsigned char *out, int *was_b64)
{
	const char *p = strstr(line, "\"ev\":\"data\",");
	size_t o = 0;

	cr_assert_not_null(p, "not a data line: %s", line);
	p += strlen("\"ev\":\"data\",");
	if (strncmp(p, "\"b64\":\"", 7) == 0) {
		const char *q = strchr(p + 7, '"');
		ssize_t n = rec_b64_decode(out, p + 7, (size_t)(q - p - 7));
		cr_assert_geq(n, 0);
		*was_b64 = 1;
		return (size_t)n;
	}
	cr_assert_eq(strncmp(p, "\"data\":\"", 8), 0, "%s", line);
	*was_b64 = 0;
	for (p += 8; *p != '"'; p++) {
		if (*p != '\\') {
			out[o++] = (unsigned char)*p;
			continue;
		}
		p++;
		if (*p == 'u') {
			unsigned v;
			sscanf(p + 1, "%4x", &v);
			cr_assert_lt(v, 0x20);
			out[o++] = (unsigned char)v;
			p += 4;
		} else {
			const char *from = "\"\\nrt", *to = "\"\\\n\r\t";
			out[o++] = (unsigned char)to[strchr(from, *p) - from];
		}
	}
	return o;
}

/* Formats data as two reads split at k and the close, and decodes the lines back. */
static size_t
split_round_trip(const unsigned char *data, size_t n, size_t k, unsigned char *back,
    int *b64s)
{
	static char out[3 * REC_JSON_MAX];
	struct rec_carry carry = { .n = 0 };
	struct rec r = { .type = REC_DATA, .conn = 9, .data = data, .len = k };
	size_t len = 0, got = 0;
	char *line, *save = NULL;
	int b;

	len += rec_format_line(out + len, &r, &carry);
	r.data = data + k;
	r.len = n - k;
	len += rec_format_line(out + len, &r, &carry);
	r = (struct rec){ .type = REC_CLOSE, .conn = 9, .data = (const unsigned char *)"eof",
	    .len = 3, .bytes = n };
	len += rec_format_line(out + len, &r, &carry);
	out[len] = '\0';
	cr_assert_eq(carry.n, 0, "the close left a carry");
	*b64s = 0;
	for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (strstr(line, "\"ev\":\"close\"") != NULL)
			continue;
		got += line_bytes(line, back + got, &b);
		*b64s += b;
	}
	return got;
}

Test(carry, every_split_of_text_stays_text)
{
	const char *text = "ab \xea\xb0\x80\xeb\x82\x98 e\xcc\x81 \xf0\x9f\x98\x80\xf0\x9f\x87\xb0"
	    "\xf0\x9f\x87\xb7 q\nmore text \xe2\x80\xa8z";
	size_t n = strlen(text);
	unsigned char back[256];
	int b64s;

	for (size_t k = 0; k <= n; k++) {
		cr_assert_eq(split_round_trip((const unsigned char *)text, n, k, back, &b64s), n,
		    "split at %zu", k);
		cr_assert_arr_eq(back, text, n, "split at %zu", k);
		cr_assert_eq(b64s, 0, "split at %zu went to base64", k);
	}
}

Test(carry, a_character_never_finished_is_written_before_the_close)
{
	const unsigned char data[] = { 'x', 0xf0, 0x9f, 0x98 };
	unsigned char back[16];
	int b64s;

	for (size_t k = 0; k <= sizeof(data); k++) {
		cr_assert_eq(split_round_trip(data, sizeof(data), k, back, &b64s), sizeof(data));
		cr_assert_arr_eq(back, data, sizeof(data));
		cr_assert_geq(b64s, 1, "split at %zu", k);
	}
}

Test(carry, invalid_bytes_go_to_base64_whole)
{
	const unsigned char data[] = { 'o', 'k', 0xff, 'n', 'o', 0xe2, 0x82 };
	unsigned char back[16];
	int b64s;

	for (size_t k = 0; k <= sizeof(data); k++) {
		cr_assert_eq(split_round_trip(data, sizeof(data), k, back, &b64s), sizeof(data));
		cr_assert_arr_eq(back, data, sizeof(data));
	}
}

static size_t
data_line(char *out, const unsigned char *data, size_t n)
{
	struct rec r = { .type = REC_DATA, .conn = UINT64_MAX - 1, .ts_us = INT64_MAX,
	    .data = data, .len = n };
	size_t len = rec_format_json(out, &r);

	out[len] = '\0';
	return len;
}

Test(choice, text_escapes_only_what_json_requires)
{
	char out[REC_JSON_MAX];
	const char *text = "\x7f\xc2\x85\xe2\x80\xa8/'<\"\\\t\x01 and some plain text";

	data_line(out, (const unsigned char *)text, strlen(text));
	cr_assert_not_null(strstr(out, "\"data\":\"\x7f\xc2\x85\xe2\x80\xa8/'<\\\"\\\\\\t\\u0001 and"),
	    "%s", out);
	for (size_t at = 0; at < 20; at++) {
		char s[21];
		memset(s, 'a', 20);
		s[20] = '\0';
		s[at] = '"';
		data_line(out, (const unsigned char *)s, 20);
		cr_assert_not_null(strstr(out, "\\\""), "quote at %zu: %s", at, out);
	}
}

Test(choice, base64_where_shorter_or_not_utf8)
{
	char out[REC_JSON_MAX];
	unsigned char ctl[30], bin[4] = { 'a', 0xff, 'b', 'c' };

	memset(ctl, 0x01, sizeof(ctl));
	data_line(out, ctl, sizeof(ctl));
	cr_assert_not_null(strstr(out, "\"b64\":\"AQEB"), "%s", out);
	cr_assert_null(strstr(out, "\"data\":"), "%s", out);
	data_line(out, bin, sizeof(bin));
	cr_assert_not_null(strstr(out, "\"b64\":\"Yf9iYw==\"}"), "%s", out);
	data_line(out, (const unsigned char *)"\nabcde", 6);
	cr_assert_not_null(strstr(out, "\"data\":\"\\nabcde\""), "%s", out);
	data_line(out, (const unsigned char *)"\n\nabcd", 6); /* a tie stays text */
	cr_assert_not_null(strstr(out, "\"data\":\"\\n\\nabcd\""), "%s", out);
	data_line(out, (const unsigned char *)"\n\n\nabc", 6);
	cr_assert_not_null(strstr(out, "\"b64\":\"CgoKYWJj\""), "%s", out);
}

Test(choice, a_whole_frame_fits_rsyslogs_8k_line)
{
	static unsigned char data[REC_PAYLOAD_MAX + REC_CARRY_MAX];
	static char out[REC_JSON_MAX];
	const unsigned char fills[] = { 0x00, 0x01, '"', '\\', 'a', 0xff, 0x80 };
	size_t bound = REC_DATA_LINE_MAX(sizeof(data));

	cr_assert_leq(bound, 8192);
	for (size_t f = 0; f < sizeof(fills); f++) {
		memset(data, fills[f], sizeof(data));
		cr_assert_leq(data_line(out, data, sizeof(data)), bound, "fill %02x", fills[f]);
	}
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 2654435761u >> 13);
	cr_assert_leq(data_line(out, data, sizeof(data)), bound);
	/* Text with an escape in every 8 bytes, just under its base64 length. */
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = i % 4 == 0 ? '\n' : 'a';
	cr_assert_leq(data_line(out, data, sizeof(data)), bound);
}

Test(life, start_and_stop_lines)
{
	char out[REC_START_LEN];
	struct rec_start st = { .ts_us = 0, .version = "0.1.0", .host = "web\"1", .pid = 42,
	    .fsync = "everysec", .full = "drop", .inetd = 1 };
	size_t n;

	set_life();
	n = rec_format_start(out, &st);
	out[n] = '\0';
	cr_assert_str_eq(out, "{\"ts\":\"1970-01-01T00:00:00.000000Z\",\"life\":\"" LIFE "\","
	    "\"ev\":\"start\",\"format\":2,\"version\":\"0.1.0\",\"host\":\"web\\\"1\",\"pid\":42,"
	    "\"fsync\":\"everysec\",\"store_full\":\"drop\",\"inetd\":true}\n");
	n = rec_format_stop(out, 0);
	out[n] = '\0';
	cr_assert_str_eq(out, "{\"ts\":\"1970-01-01T00:00:00.000000Z\",\"life\":\"" LIFE "\","
	    "\"ev\":\"stop\"}\n");
}

Test(life, new_key_draws_a_new_life)
{
	char a[REC_LIFE_LEN + 1];

	rec_new_key();
	memcpy(a, rec_life_id(), sizeof(a));
	rec_new_key();
	cr_assert_str_neq(a, rec_life_id());
	cr_assert_eq(strlen(a), REC_LIFE_LEN);
}
