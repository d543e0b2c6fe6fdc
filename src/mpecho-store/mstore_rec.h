/*
 * mstore_rec.h - mpecho-store's reading of one store line (the JSON Lines form of record.h)
 * back into a record.  Pure code: no I/O, nothing printed.
 *
 * Two decoders give the same result.  A strict one reads exactly what mpechod writes (keys in
 * its order, its escapes) at several hundred MB/s; any line it does not recognise (keys
 * reordered or re-serialised by another tool, a gap record, a field it does not know, an error)
 * goes to Jansson, which reads any JSON and gives the reason when the line is not valid.
 */
#ifndef MPECHO_MSTORE_REC_H
#define MPECHO_MSTORE_REC_H

#include <stddef.h>
#include <stdint.h>

/* A gap says what the store could not write; a datagram is one UDP datagram echoed, with its
 * peer and data (mpechod's UDP echo); start and stop begin and end a server life (format 2).
 * None belongs to a connection: their conn is 0. */
enum mrec_ev { MREC_OPEN = 1, MREC_DATA, MREC_CLOSE, MREC_GAP, MREC_DGRAM, MREC_START, MREC_STOP };

/* Text decoded from a JSON string; for data, the bytes.  Format 1 (a line without "life"):
 * code point N is byte N.  Format 2: the string's UTF-8, or the bytes of "b64". */
struct mrec_str {
	const char *p; /* NULL: absent */
	size_t len;
};

struct mrec {
	enum mrec_ev ev;
	int64_t ts_us;             /* microseconds since the epoch, UTC */
	int format;                /* 2: the line has a "life"; 1: it has not */
	struct mrec_str life;      /* format 2: the server life's id */
	uint64_t conn;             /* 0 for a gap or a datagram */
	long pid;                  /* open; -1 when absent */
	struct mrec_str peer, via; /* open, datagram; via only behind a proxy */
	struct mrec_str data;      /* data, datagram: the echoed bytes */
	unsigned part, parts;      /* datagram: part I of N (from 1); 0, 0 when it is whole */
	struct mrec_str reason;    /* close */
	uint64_t bytes;            /* close */
	uint64_t dropped_bytes, dropped_records; /* gap */
	const uint64_t *conns;     /* gap: the connections whose records were dropped */
	size_t nconns;
	int conns_truncated;       /* gap: more connections lost records than conns lists */
};

/* Buffers the decoded strings live in; reused line after line, grown to the longest. */
struct mrec_ctx {
	char *buf;
	size_t cap;
	uint64_t *conns;
	size_t conncap;
	unsigned long fast, slow; /* lines each decoder took, for the curious */
};

#define MREC_ERRLEN 160

/* Decodes line (len bytes, no '\n') into r; the strings in r stay valid until the next call
 * with ctx.  Returns 0, or -1 with a one-line reason in err.  -2: out of memory. */
int mrec_decode(struct mrec_ctx *ctx, const char *line, size_t len, struct mrec *r, char *err,
    size_t errlen);
/* Jansson's decoding alone, which mrec_decode falls back on (for the fuzzer, which checks that
 * the two agree). */
int mrec_decode_json(struct mrec_ctx *ctx, const char *line, size_t len, struct mrec *r,
    char *err, size_t errlen);
void mrec_free(struct mrec_ctx *ctx);
/* Parses an RFC 3339 time ("2026-11-21T10:00:00.123456Z", any fraction, Z or +hh:mm, or a
 * date alone) into microseconds since the epoch.  Returns 0 or -1. */
int mrec_parse_ts(const char *s, size_t len, int64_t *us);

#endif
