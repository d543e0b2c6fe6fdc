/*
 * libFuzzer target for mpecho-store's parsers.  The input is used as:
 *  - a store line: mrec_decode must never over-read or crash, and whatever its strict decoder
 *    accepts, Jansson must accept as the same record (the strict path is only a shortcut);
 *  - the bytes of a data record: mpechod's JSON form of them (record.c) must decode back to
 *    exactly those bytes, through the strict decoder;
 *  - a time, an address or CIDR block, a connection id and a duration, as typed on the command
 *    line: parsing them must never crash, and an accepted time in mpechod's form must format
 *    back to the same text.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mstore_filt.h"
#include "mstore_rec.h"
#include "record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mrec_ctx ctx, ctx2;

static int
str_eq(struct mrec_str a, struct mrec_str b)
{
	return (a.p == NULL) == (b.p == NULL) && a.len == b.len &&
	    (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static void
check_line(const char *line, size_t n)
{
	char err[MREC_ERRLEN];
	struct mrec a, b;
	unsigned long fast = ctx.fast;
	int rc = mrec_decode(&ctx, line, n, &a, err, sizeof(err));

	if (rc == -2 || ctx.fast == fast)
		return;
	if (rc != 0 || mrec_decode_json(&ctx2, line, n, &b, err, sizeof(err)) != 0)
		abort();
	if (a.ev != b.ev || a.ts_us != b.ts_us || a.conn != b.conn || a.pid != b.pid ||
	    a.bytes != b.bytes || !str_eq(a.peer, b.peer) || !str_eq(a.via, b.via) ||
	    !str_eq(a.data, b.data) || !str_eq(a.reason, b.reason))
		abort();
}

static void
check_roundtrip(const uint8_t *data, size_t size)
{
	static char line[REC_JSON_MAX];
	char err[MREC_ERRLEN];
	struct rec in = { .type = REC_DATA, .conn = 1 + size, .ts_us = 1795255200123456 };
	struct mrec r;
	unsigned long fast = ctx.fast;
	size_t n;

	in.len = size < REC_PAYLOAD_MAX ? size : REC_PAYLOAD_MAX;
	in.data = data;
	n = rec_format_json(line, &in) - 1;
	if (mrec_decode(&ctx, line, n, &r, err, sizeof(err)) != 0 || ctx.fast != fast + 1 ||
	    r.conn != in.conn || r.data.len != in.len || memcmp(r.data.p, data, in.len) != 0)
		abort();
}

static void
check_args(const uint8_t *data, size_t size)
{
	char s[128], back[REC_TS_LEN + 1];
	struct cidr net;
	char cerr[256];
	struct mfilt_conn conn;
	int64_t us;

	if (size >= sizeof(s))
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	if (cidr_parse(s, &net, cerr, sizeof(cerr)) == 0)
		(void)mfilt_net_matches(&net, s);
	(void)mfilt_parse_conn(s, &conn);
	(void)mfilt_parse_duration(s, &us);
	(void)mfilt_parse_time(s, 0, &us);
	if (size == REC_TS_LEN && s[10] == 'T' && s[19] == '.' && s[26] == 'Z' && s[17] != '6' &&
	    mrec_parse_ts(s, size, &us) == 0 && us >= 0 && us < 253402300800000000LL) {
		rec_format_ts(back, us);
		if (memcmp(back, s, REC_TS_LEN) != 0)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);

	check_line((const char *)data, nl ? (size_t)(nl - data) : size);
	check_roundtrip(data, size);
	check_args(data, size);
	return 0;
}
