/*
 * mstore_gen.c - mstore-gen, a store generator for measuring mpecho-store (not installed).
 *
 *   mstore-gen MEGABYTES [SEED] >big.jsonl
 *
 * Writes about MEGABYTES MB of JSON Lines exactly as mpechod's store does (record.c formats
 * them): 16 connections open at a time, each sending 1 to 64 chunks (half of them 1 to 200
 * bytes, half up to a full pipe frame), half of them printable text and half random bytes, and closing with the right
 * byte count.  The same SEED gives the same store.
 */
#define _GNU_SOURCE
#include "record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEN_OPEN 16

struct gen_conn {
	uint64_t conn, bytes;
	int left, text;
};

static uint64_t gen_state;

/* xorshift64*: fast, and the same everywhere for a seed. */
static uint64_t
gen_rand(void)
{
	gen_state ^= gen_state >> 12;
	gen_state ^= gen_state << 25;
	gen_state ^= gen_state >> 27;
	return gen_state * 0x2545f4914f6cdd1dull;
}

static void
gen_emit(struct rec *r, int64_t *ts)
{
	static char line[REC_JSON_MAX];

	*ts += (int64_t)(gen_rand() % 50);
	r->ts_us = *ts;
	fwrite(line, 1, rec_format_json(line, r), stdout);
}

static void
gen_start(struct gen_conn *c, uint64_t *next, int64_t *ts)
{
	char peer[32];
	struct rec r = { .type = REC_OPEN };

	c->conn = (*next)++;
	c->bytes = 0;
	c->left = 1 + (int)(gen_rand() % 64);
	c->text = (int)(gen_rand() & 1);
	r.conn = c->conn;
	r.pid = 1000 + (pid_t)(c->conn % 30000);
	r.len = (size_t)snprintf(peer, sizeof(peer), "10.%u.%u.%u:%u", (unsigned)(gen_rand() % 4),
	    (unsigned)(gen_rand() % 256), (unsigned)(gen_rand() % 256),
	    1024 + (unsigned)(gen_rand() % 60000));
	r.data = (const unsigned char *)peer;
	gen_emit(&r, ts);
}

static void
gen_step(struct gen_conn *c, int64_t *ts, uint64_t *written)
{
	static unsigned char data[REC_PAYLOAD_MAX];
	unsigned char close[8 + REC_REASON_MAX];
	struct rec r = { .conn = c->conn };

	if (c->left-- > 0) {
		r.type = REC_DATA;
		r.len = 1 + gen_rand() % (gen_rand() & 1 ? 200 : REC_PAYLOAD_MAX);
		for (size_t i = 0; i < r.len; i++)
			data[i] = c->text ? (unsigned char)(' ' + gen_rand() % 95) :
			    (unsigned char)gen_rand();
		if (c->text)
			data[r.len - 1] = '\n';
		r.data = data;
		c->bytes += r.len;
		*written += r.len;
	} else {
		r.type = REC_CLOSE;
		r.bytes = c->bytes;
		r.len = rec_close_payload(close, c->bytes, gen_rand() % 8 ? "eof" : "reset") - 8;
		r.data = close + 8;
	}
	gen_emit(&r, ts);
}

int
main(int argc, char **argv)
{
	static char obuf[1 << 20];
	struct gen_conn open[GEN_OPEN];
	uint64_t next = 1, data = 0, limit;
	int64_t ts = 1795255200000000; /* 2026-11-21T10:00:00Z */

	if (argc < 2 || argc > 3 || (limit = strtoull(argv[1], NULL, 10)) == 0) {
		fprintf(stderr, "usage: mstore-gen MEGABYTES [SEED]\n");
		return 64;
	}
	gen_state = argc == 3 ? strtoull(argv[2], NULL, 10) | 1 : 88172645463325252ull;
	/* Random bytes grow about 2.7 times into JSON, text hardly at all: about 1.8 on average. */
	limit = limit * 1000000 / 18 * 10;
	setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
	for (int i = 0; i < GEN_OPEN; i++)
		gen_start(&open[i], &next, &ts);
	while (data < limit) {
		struct gen_conn *c = &open[gen_rand() % GEN_OPEN];

		gen_step(c, &ts, &data);
		if (c->left < 0)
			gen_start(c, &next, &ts);
	}
	for (int i = 0; i < GEN_OPEN; i++) {
		open[i].left = 0;
		gen_step(&open[i], &ts, &data);
	}
	return fflush(stdout) == 0 ? 0 : 74;
}
