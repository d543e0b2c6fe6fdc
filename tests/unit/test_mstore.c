/*
 * Unit tests for mpecho-store's pure parts: record decoding (both decoders, latin-1 data back
 * to bytes), times and durations, CIDR matching, connection ids, the connection table and
 * range sets, and the sources: rotation order, server lives and the merge by time.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "mstore_filt.h"
#include "mstore_rec.h"
#include "mstore_src.h"
#include "mstore_tab.h"
#include "record.h"

static struct mrec_ctx ctx;
static char err[MREC_ERRLEN];

static int
decode(const char *line, struct mrec *r)
{
	err[0] = '\0';
	return mrec_decode(&ctx, line, strlen(line), r, err, sizeof(err));
}

Test(rec, every_byte_back_from_the_servers_form)
{
	unsigned char bytes[256];
	static char line[REC_JSON_MAX];
	struct rec in = { .type = REC_DATA, .conn = 7, .ts_us = 1795255200123456, .data = bytes,
	    .len = sizeof(bytes) };
	struct mrec r;
	unsigned long fast = ctx.fast;
	size_t n;

	for (int i = 0; i < 256; i++)
		bytes[i] = (unsigned char)(255 - i);
	n = rec_format_json(line, &in);
	line[n - 1] = '\0';
	cr_assert_eq(decode(line, &r), 0, "%s", err);
	cr_assert_eq(ctx.fast, fast + 1, "the strict decoder did not take the server's own line");
	cr_assert_eq(r.ev, MREC_DATA);
	cr_assert_eq(r.conn, 7);
	cr_assert_eq(r.ts_us, 1795255200123456);
	cr_assert_eq(r.data.len, 256);
	cr_assert_arr_eq(r.data.p, bytes, 256);
}

Test(rec, reordered_and_reescaped_keys_read_the_same)
{
	struct mrec r;
	unsigned long slow = ctx.slow;

	cr_assert_eq(decode("{\"data\":\"\\u00e9\xc3\xa9\\u0000A\\/\",\"ev\":\"data\","
	    "\"conn\":3,\"ts\":\"2026-11-21T11:00:00.5+01:00\"}", &r), 0, "%s", err);
	cr_assert_eq(ctx.slow, slow + 1);
	cr_assert_eq(r.data.len, 5);
	cr_assert_arr_eq(r.data.p, "\xe9\xe9\0A/", 5);
	cr_assert_eq(r.ts_us, 1795255200500000, "ts %lld", (long long)r.ts_us);
}

Test(rec, open_close_and_via)
{
	struct mrec r;

	cr_assert_eq(decode("{\"ts\":\"2026-11-21T10:00:00.000001Z\",\"conn\":17,\"pid\":4242,"
	    "\"ev\":\"open\",\"peer\":\"127.0.0.1:50312\"}", &r), 0, "%s", err);
	cr_assert_eq(r.ev, MREC_OPEN);
	cr_assert_eq(r.pid, 4242);
	cr_assert_eq(r.peer.len, 15);
	cr_assert_eq(memcmp(r.peer.p, "127.0.0.1:50312", 15), 0);
	cr_assert_null(r.via.p);
	cr_assert_eq(decode("{\"ts\":\"2026-11-21T10:00:00.000001Z\",\"conn\":17,\"pid\":1,"
	    "\"ev\":\"open\",\"peer\":\"10.0.0.1:9\",\"via\":\"127.0.0.1:5\"}", &r), 0, "%s", err);
	cr_assert_eq(r.via.len, 11);
	cr_assert_eq(decode("{\"ts\":\"2026-11-21T10:00:00.000001Z\",\"conn\":17,\"ev\":\"close\","
	    "\"reason\":\"signal 9\",\"bytes\":12345}", &r), 0, "%s", err);
	cr_assert_eq(r.ev, MREC_CLOSE);
	cr_assert_eq(r.bytes, 12345);
	cr_assert_eq(memcmp(r.reason.p, "signal 9", 8), 0);
}

Test(rec, gap)
{
	struct mrec r;

	cr_assert_eq(decode("{\"ts\":\"2026-11-21T10:00:00Z\",\"ev\":\"gap\",\"dropped_bytes\":900,"
	    "\"dropped_records\":3,\"conns\":[4,9]}", &r), 0, "%s", err);
	cr_assert_eq(r.ev, MREC_GAP);
	cr_assert_eq(r.dropped_bytes, 900);
	cr_assert_eq(r.nconns, 2);
	cr_assert_eq(r.conns[1], 9);
	cr_assert(!r.conns_truncated);
	cr_assert_eq(decode("{\"ts\":\"2026-11-21T10:00:00Z\",\"ev\":\"gap\",\"dropped_bytes\":9,"
	    "\"dropped_records\":3,\"conns\":[],\"conns_truncated\":true}", &r), 0, "%s", err);
	cr_assert(r.conns_truncated);
}

Test(rec, datagram)
{
	struct mrec r;

	cr_assert_eq(decode("{\"ts\":\"2026-11-21T10:00:00Z\",\"ev\":\"datagram\","
	    "\"peer\":\"127.0.0.1:40000\",\"data\":\"hi\\u00ff\"}", &r), 0, "%s", err);
	cr_assert_eq(r.ev, MREC_DGRAM);
	cr_assert_eq(r.conn, 0);
	cr_assert_eq(r.data.len, 3);
	cr_assert_arr_eq(r.data.p, "hi\xff", 3);
	cr_assert_eq(r.peer.len, 15);
}

Test(rec, bad_lines_say_why)
{
	static const struct { const char *line, *why; } bad[] = {
		{ "{\"ts\":\"2026-11-21T10:00:00.000001Z\",\"conn\":1,\"ev\":\"data\",\"data\":\"ab",
		    "not JSON" },
		{ "hello", "not JSON" },
		{ "[1]", "not a JSON object" },
		{ "{\"ts\":\"2026-11-21T10:00:00Z\",\"ev\":\"data\",\"data\":\"\"}", "\"conn\"" },
		{ "{\"ts\":\"2026-11-21T10:00:00Z\",\"conn\":1,\"ev\":\"close\",\"reason\":\"eof\"}",
		    "\"bytes\"" },
		{ "{\"ts\":\"2026-02-30T10:00:00Z\",\"conn\":1,\"ev\":\"data\",\"data\":\"\"}", "\"ts\"" },
		{ "{\"ts\":\"2026-11-21T10:00:00Z\",\"conn\":1,\"ev\":\"data\",\"data\":\"\\u0100\"}",
		    "U+00FF" },
		{ "{\"ts\":\"2026-11-21T10:00:00Z\",\"conn\":0,\"ev\":\"data\",\"data\":\"\"}", "0" },
		{ "{\"ts\":\"2026-11-21T10:00:00Z\",\"conn\":1,\"ev\":\"shout\"}", "unknown event" },
		{ "{\"ts\":\"2026-11-21T10:00:00Z\",\"conn\":-1,\"ev\":\"data\",\"data\":\"\"}", "conn" },
		{ "{\"ts\":\"2026-11-21T10:00:00Z\",\"conn\":1,\"conn\":2,\"ev\":\"data\",\"data\":\"\"}",
		    "duplicate" },
	};
	struct mrec r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(decode(bad[i].line, &r), -1, "accepted: %s", bad[i].line);
		cr_assert(strstr(err, bad[i].why) != NULL, "'%s' for %s (expected '%s')", err,
		    bad[i].line, bad[i].why);
	}
}

Test(time, rfc3339)
{
	int64_t us;

	cr_assert_eq(mrec_parse_ts("1970-01-01T00:00:00Z", 20, &us), 0);
	cr_assert_eq(us, 0);
	cr_assert_eq(mrec_parse_ts("2026-11-21T10:00:00.123456Z", 27, &us), 0);
	cr_assert_eq(us, 1795255200123456);
	cr_assert_eq(mrec_parse_ts("2026-11-21", 10, &us), 0);
	cr_assert_eq(us, 1795219200000000);
	cr_assert_eq(mrec_parse_ts("2026-11-21T05:30:00-04:30", 25, &us), 0);
	cr_assert_eq(us, 1795255200000000);
	cr_assert_eq(mrec_parse_ts("2024-02-29T00:00:00Z", 20, &us), 0, "a leap day");
	cr_assert_eq(mrec_parse_ts("1969-12-31T23:59:59.5Z", 22, &us), 0);
	cr_assert_eq(us, -500000);
	cr_assert_eq(mrec_parse_ts("2023-02-29T00:00:00Z", 20, &us), -1);
	cr_assert_eq(mrec_parse_ts("2026-11-21T24:00:00Z", 20, &us), -1);
	cr_assert_eq(mrec_parse_ts("2026-11-21T10:00:00", 19, &us), -1, "no zone");
	cr_assert_eq(mrec_parse_ts("2026-11-21T10:00:00.Z", 21, &us), -1);
}

Test(time, relative_and_durations)
{
	int64_t us;

	cr_assert_eq(mfilt_parse_duration("90", &us), 0);
	cr_assert_eq(us, 90000000);
	cr_assert_eq(mfilt_parse_duration("1h", &us), 0);
	cr_assert_eq(us, 3600000000LL);
	cr_assert_eq(mfilt_parse_duration("250ms", &us), 0);
	cr_assert_eq(us, 250000);
	cr_assert_eq(mfilt_parse_duration("0s", &us), -1);
	cr_assert_eq(mfilt_parse_duration("1y", &us), -1);
	cr_assert_eq(mfilt_parse_duration("-5m", &us), -1);
	cr_assert_eq(mfilt_parse_time("-2d", 1000000000000LL, &us), 0);
	cr_assert_eq(us, 1000000000000LL - 2 * 86400000000LL);
	cr_assert_eq(mfilt_parse_time("now", 42, &us), 0);
	cr_assert_eq(us, 42);
	cr_assert_eq(mfilt_parse_time("yesterday", 42, &us), -1);
}

static int
in_net(const char *net, const char *peer)
{
	char why[256];
	struct cidr n;

	cr_assert_eq(cidr_parse(net, &n, why, sizeof(why)), 0, "rejected %s: %s", net, why);
	return mfilt_net_matches(&n, peer);
}

/* Blocks are cidr.c's (tested in test_cidr.c); this is the store's peer text against them. */
Test(cidr, peer_text_matching)
{
	cr_assert(in_net("10.0.0.0/8", "10.1.2.3:5"));
	cr_assert(!in_net("10.0.0.0/8", "11.1.2.3:5"));
	cr_assert(in_net("192.168.1.128/25", "192.168.1.200:80"));
	cr_assert(!in_net("192.168.1.128/25", "192.168.1.127:80"));
	cr_assert(in_net("127.0.0.1", "127.0.0.1:50312"));
	cr_assert(!in_net("127.0.0.1", "127.0.0.2:50312"));
	cr_assert(in_net("::1", "[::1]:7"));
	cr_assert(in_net("[::1]", "[::1]:7"));
	cr_assert(in_net("fe80::/10", "[fe80::1]:7"));
	cr_assert(!in_net("fe80::/10", "[fec0::1]:7"));
	cr_assert(in_net("10.0.0.0/8", "[::ffff:10.9.9.9]:7"), "an IPv4-mapped peer");
	cr_assert(!in_net("::/0", "10.0.0.1:1"), "an IPv6 block holds no IPv4 peer");
	cr_assert(in_net("0.0.0.0/0", "1.2.3.4:1"));
	cr_assert(!in_net("0.0.0.0/0", "-"), "no peer");
	cr_assert(!in_net("0.0.0.0/0", "garbage:1"));
}

Test(conn, ids)
{
	struct mfilt_conn c;

	cr_assert_eq(mfilt_parse_conn("17", &c), 0);
	cr_assert(c.inst == 0 && c.life == 0 && c.conn == 17);
	cr_assert_eq(mfilt_parse_conn("2.17", &c), 0);
	cr_assert(c.inst == 0 && c.life == 2 && c.conn == 17);
	cr_assert_eq(mfilt_parse_conn("3:17", &c), 0);
	cr_assert(c.inst == 3 && c.life == 0 && c.conn == 17);
	cr_assert_eq(mfilt_parse_conn("3:2.17", &c), 0);
	cr_assert(c.inst == 3 && c.life == 2 && c.conn == 17);
	cr_assert(mfilt_conn_matches(&c, 3, 2, 17));
	cr_assert(!mfilt_conn_matches(&c, 3, 1, 17));
	cr_assert_eq(mfilt_parse_conn("0", &c), -1);
	cr_assert_eq(mfilt_parse_conn("17x", &c), -1);
	cr_assert_eq(mfilt_parse_conn("a.jsonl", &c), -1);
	cr_assert_eq(mfilt_parse_conn("1.2.3", &c), -1);
}

Test(tab, add_find_delete_grow)
{
	struct mtab t = { 0 };

	for (uint64_t i = 1; i <= 5000; i++)
		cr_assert_not_null(mtab_add(&t, 1 + (unsigned)(i % 2), 1, i));
	for (uint64_t i = 1; i <= 5000; i += 2)
		mtab_del(&t, mtab_find(&t, 1 + (unsigned)(i % 2), 1, i));
	cr_assert_eq(t.live, 2500);
	for (uint64_t i = 1; i <= 5000; i++)
		cr_assert_eq(mtab_find(&t, 1 + (unsigned)(i % 2), 1, i) != NULL, i % 2 == 0, "conn %llu",
		    (unsigned long long)i);
	cr_assert_null(mtab_find(&t, 1, 2, 2), "another life");
	mtab_free(&t);
}

Test(tab, ranges_stay_few)
{
	struct mranges s = { 0 };

	for (uint64_t i = 1000; i >= 1; i--)
		if (i % 3 != 0)
			cr_assert_eq(mranges_add(&s, i), 0);
	cr_assert(mranges_has(&s, 1) && !mranges_has(&s, 3) && mranges_has(&s, 1000));
	for (uint64_t i = 3; i <= 1000; i += 3)
		mranges_add(&s, i);
	cr_assert_eq(s.n, 1, "%zu ranges", s.n);
	cr_assert(!mranges_has(&s, 0) && !mranges_has(&s, 1001));
	mranges_free(&s);
}

/* Sources: files written to a temporary directory. */
static char dir[64];

static char *
put(const char *name, const char *text, int gz)
{
	static char path[8][128];
	static int k;
	char *p = path[k++ % 8];

	snprintf(p, 128, "%s/%s", dir, name);
	if (gz) {
		gzFile g = gzopen(p, "wb");
		gzwrite(g, text, (unsigned)strlen(text));
		gzclose(g);
	} else {
		FILE *f = fopen(p, "w");
		fputs(text, f);
		fclose(f);
	}
	return p;
}

static void
mkdir_tmp(void)
{
	strcpy(dir, "/tmp/test_mstore.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void
rm_tmp(void)
{
	char cmd[96];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

#define OPEN(t, c) "{\"ts\":\"2026-11-21T10:00:0" t "Z\",\"conn\":" c ",\"pid\":1,\"ev\":\"open\"," \
	"\"peer\":\"127.0.0.1:1\"}\n"

/* The items of a scan as "inst/life/conn" for records, "E inst/life" for life ends. */
static void
scan_all(char *const *paths, size_t n, int one, char *out, size_t outlen)
{
	struct mscan s;
	struct mscan_item it;
	size_t len = 0;

	cr_assert_eq(mscan_open(&s, paths, n, one), 0);
	for (mscan_next(&s, &it); it.kind != MSCAN_EOF; mscan_next(&s, &it)) {
		cr_assert(it.kind == MSCAN_REC || it.kind == MSCAN_LIFE_END, "%s:%lu: %s", it.path,
		    it.line, it.err);
		len += (size_t)snprintf(out + len, outlen - len, it.kind == MSCAN_REC ? "%u/%u/%llu " :
		    "E%u/%u ", it.inst, it.life, (unsigned long long)it.rec.conn);
	}
	mscan_close(&s);
}

Test(src, rotated_files_oldest_first_and_instances_merged_by_time, .init = mkdir_tmp,
    .fini = rm_tmp)
{
	char *paths[4];
	char out[512];

	paths[0] = put("a.jsonl", OPEN("5", "5"), 0);
	paths[1] = put("a.jsonl.1", OPEN("3", "3"), 0);
	paths[2] = put("b.jsonl", OPEN("2", "1") OPEN("4", "2"), 0);
	paths[3] = put("a.jsonl.2.gz", OPEN("1", "1"), 1);
	scan_all(paths, 4, 0, out, sizeof(out));
	cr_assert_str_eq(out, "1/1/1 2/1/1 1/1/3 2/1/2 E2/1 1/1/5 E1/1 ", "%s", out);
	/* One instance, in the order given: lower numbers while connections are open are the
	 * same life. */
	scan_all(paths, 4, 1, out, sizeof(out));
	cr_assert_str_eq(out, "1/1/5 1/1/3 1/1/1 1/1/2 E1/1 1/2/1 E1/2 ", "%s", out);
}

#define CLOSE(t, c) "{\"ts\":\"2026-11-21T10:00:0" t "Z\",\"conn\":" c ",\"ev\":\"close\"," \
	"\"reason\":\"eof\",\"bytes\":0}\n"

Test(src, where_lives_start, .init = mkdir_tmp,
    .fini = rm_tmp)
{
	char *paths[1];
	char out[512];

	/* Read from a life's start, opens out of order: conn 1 comes after conn 2's whole
	 * session, the same life. */
	paths[0] = put("r.jsonl", OPEN("3", "2") CLOSE("3", "2") OPEN("3", "1") CLOSE("4", "1"), 0);
	scan_all(paths, 1, 0, out, sizeof(out));
	cr_assert_str_eq(out, "1/1/2 1/1/2 1/1/1 1/1/1 E1/1 ", "%s", out);
	/* A life joined after a rotation (a close first), a restart: conn 1 starts the new life.
	 * Had the new life's conn 2 come first, it would count in the old one (mstore_src.h). */
	paths[0] = put("t.jsonl", CLOSE("1", "7") OPEN("2", "1") CLOSE("3", "1") OPEN("4", "2"), 0);
	scan_all(paths, 1, 0, out, sizeof(out));
	cr_assert_str_eq(out, "1/1/7 E1/1 1/2/1 1/2/1 1/2/2 E1/2 ", "%s", out);
	/* Joined at a quiet moment (an open first): conn 1 once all are closed, past conn 64. */
	paths[0] = put("u.jsonl", OPEN("1", "65") CLOSE("1", "65") OPEN("2", "1"), 0);
	scan_all(paths, 1, 0, out, sizeof(out));
	cr_assert_str_eq(out, "1/1/65 1/1/65 E1/1 1/2/1 E1/2 ", "%s", out);
}

Test(src, lives_and_raw_and_bad_lines, .init = mkdir_tmp, .fini = rm_tmp)
{
	struct mscan s;
	struct mscan_item it;
	char *p[1];

	p[0] = put("raw", "hello\nworld\n", 0);
	cr_assert_eq(mscan_open(&s, p, 1, 0), 0);
	mscan_next(&s, &it);
	cr_assert_eq(it.kind, MSCAN_ERR);
	cr_assert(strstr(it.err, "raw store") != NULL, "%s", it.err);
	mscan_close(&s);
	p[0] = put("cut.jsonl", OPEN("1", "1") "{\"ts\":\"2026-11-21T10:00:02Z\",\"co", 0);
	cr_assert_eq(mscan_open(&s, p, 1, 0), 0);
	mscan_next(&s, &it);
	cr_assert_eq(it.kind, MSCAN_REC);
	mscan_next(&s, &it);
	cr_assert_eq(it.kind, MSCAN_BAD);
	cr_assert_eq(it.line, 2);
	cr_assert(strstr(it.err, "cut short") != NULL, "%s", it.err);
	mscan_close(&s);
}

Test(src, rotation_names)
{
	size_t n;

	cr_assert_eq(msrc_rotation("a.jsonl.12.gz", &n), 12);
	cr_assert_eq(n, 7);
	cr_assert_eq(msrc_rotation("a.jsonl.gz", &n), -1);
	cr_assert_eq(n, 7);
	cr_assert_eq(msrc_rotation("store2", &n), -1);
	cr_assert_eq(n, 6);
}

Test(rec, datagram_in_parts)
{
	struct mrec r;

	cr_assert_eq(decode("{\"ts\":\"2026-11-21T10:00:00Z\",\"life\":\"9f0c41d2a7b35e6084c1f2a9d3b7e510\","
	    "\"ev\":\"datagram\",\"peer\":\"127.0.0.1:40000\",\"part\":2,\"parts\":3,\"b64\":\"AP8=\"}",
	    &r), 0, "%s", err);
	cr_assert_eq(r.ev, MREC_DGRAM);
	cr_assert_eq(r.part, 2);
	cr_assert_eq(r.parts, 3);
	cr_assert_eq(r.data.len, 2);
	cr_assert_eq(decode("{\"ts\":\"2026-11-21T10:00:00Z\",\"ev\":\"datagram\",\"peer\":\"x\","
	    "\"data\":\"hi\"}", &r), 0, "%s", err);
	cr_assert_eq(r.part, 0);
	cr_assert_eq(r.parts, 0);
	cr_assert_eq(decode("{\"ts\":\"2026-11-21T10:00:00Z\",\"ev\":\"datagram\",\"peer\":\"x\","
	    "\"part\":4,\"parts\":3,\"data\":\"hi\"}", &r), -1);
	cr_assert_eq(decode("{\"ts\":\"2026-11-21T10:00:00Z\",\"ev\":\"datagram\",\"peer\":\"x\","
	    "\"part\":1,\"data\":\"hi\"}", &r), -1);
}
