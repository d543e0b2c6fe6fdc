/*
 * record.h - the store's record format, on the pipe and in the file.  Pure code but for the
 * clock and the random key: no I/O.
 *
 * On the pipe, a record is one binary frame of at most PIPE_BUF bytes, written with one
 * write(2) so that frames from different sessions never interleave (PostgreSQL's syslogger
 * frames its pipe the same way).  The store turns frames into JSON Lines:
 *   {"ts":"2026-11-21T10:00:00.123456Z","conn":17,"pid":4242,"ev":"open","peer":"127.0.0.1:50312"}
 *   (behind a load balancer: ..."peer":"203.0.113.7:50312","via":"127.0.0.1:41000"})
 *   {"ts":"...","conn":17,"ev":"data","data":"hello\n"}
 *   {"ts":"...","conn":17,"ev":"close","reason":"eof","bytes":6}
 *   {"ts":"...","ev":"datagram","peer":"127.0.0.1:40000","data":"hello\n"}
 * Data bytes map to the code points of the same value (latin-1), JSON-escaped, so
 * json.loads(line)["data"].encode("latin-1") gives back the exact bytes.
 */
#ifndef MPECHO_RECORD_H
#define MPECHO_RECORD_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rec_text.h"

#define REC_MAGIC 0x4d45u /* "ME" */
/* The store file's format, said in each start record. */
#define REC_FORMAT 2
/* A server life's id: 128 random bits in hex. */
#define REC_LIFE_LEN 32

enum rec_type { REC_OPEN = 1, REC_DATA = 2, REC_CLOSE = 3, REC_DGRAM = 4, REC_DGRAM_MORE = 5,
	REC_GAP = 6 };

/* A UDP datagram is one REC_DGRAM frame, then as many REC_DGRAM_MORE frames as its size needs,
 * all with the same conn (the datagram's number, unique for the server's life).  The first
 * payload is the datagram's total size (4 bytes), the peer text's length (1 byte), the peer
 * text, then the first bytes of the data; the others carry the rest of the data. */
#define REC_DGRAM_HDR 5
/* The largest UDP payload. */
#define REC_DGRAM_MAX 65535

/* The close record was written by the master for a session that could not (it died by a
 * signal); the store then counts the bytes itself. */
#define REC_F_BEHALF 0x01u

/* A REC_GAP frame says that the master dropped records it owed the store (its queue for a full
 * pipe has a bound): the payload is the number of records (8 bytes), then the numbers of the
 * connections they belonged to (8 bytes each; the header's conn is the first), at most
 * REC_GAP_CONNS; REC_F_TRUNC says there were more.  The store says it in a gap record and closes
 * those connections as lost. */
#define REC_F_TRUNC 0x02u
#define REC_GAP_CONNS 256

/* --echo-after: the writer waits for the store's receipt of this frame; the header's reserved
 * field is then its slot on the receipt board (receipt.h).  REC_F_WHOLE marks a chunk's last
 * frame: the store leaves none of its bytes in a UTF-8 carry, so that the receipt covers them. */
#define REC_F_RECEIPT 0x04u
#define REC_F_WHOLE 0x08u
/* Decoded only, never in a frame: the frame carries the key of the life before an upgrade in
 * place (rec_set_prev), and its lines name that life. */
#define REC_F_PREV 0x100u

struct rec_hdr {
	uint16_t magic;   /* REC_MAGIC, so a corrupt stream is detected, not misread */
	uint8_t type;     /* enum rec_type */
	uint8_t flags;    /* REC_F_* */
	uint32_t len;     /* payload bytes that follow the header */
	uint64_t key;     /* the server's random key (rec_set_key): no client can forge a frame */
	uint64_t conn;    /* connection number, unique for the server's life; never 0 */
	int64_t ts_us;    /* CLOCK_REALTIME in microseconds */
	uint32_t pid;     /* the session's pid */
	uint32_t reserved; /* REC_F_RECEIPT: the writer's receipt slot; else 0 */
};

#define REC_FRAME_MAX PIPE_BUF
#define REC_PAYLOAD_MAX (REC_FRAME_MAX - sizeof(struct rec_hdr))
/* A close payload: the byte count, then the reason text. */
#define REC_REASON_MAX 64
/* The bytes of an incomplete UTF-8 character a connection may carry to its next record. */
#define REC_CARRY_MAX 3
/* The longest data line for n bytes (base64 at worst, and the fields around it): 5,540 bytes for
 * a whole frame with PIPE_BUF 4096 (4,056 payload bytes and 3 carried), within rsyslog's 8 KB
 * default line.  A datagram's lines (REC_LINE_MAX at most each) take at most REC_DGRAM_JSON_LEN
 * of its size together. */
#define REC_DATA_LINE_MAX(n) (REC_B64_LEN(n) + 128)
/* Room rec_format_line needs for one frame's lines (an open line escapes its peer text 6x). */
#define REC_JSON_MAX (6 * REC_PAYLOAD_MAX + 1024)
/* "2026-11-21T10:00:00.123456Z" */
#define REC_TS_LEN 27

/* A decoded frame; data points into the buffer the frame was read from. */
struct rec {
	enum rec_type type;
	unsigned flags;
	uint64_t conn;
	int64_t ts_us;
	pid_t pid;
	const unsigned char *data; /* open: the peer text; data: the bytes; close: the reason */
	size_t len;
	uint64_t bytes;            /* close only */
	const unsigned char *peer; /* datagram (first frame) only: the peer text */
	size_t peerlen;
	size_t total;              /* datagram (first frame) only: its whole size */
	uint32_t receipt;          /* REC_F_RECEIPT: the writer's receipt slot */
};

/* Sets the key every frame carries and rec_decode requires.  The master draws it at random
 * before it forks anything.  A store restarted after a crash may find the pipe starting inside
 * a frame its predecessor half read, and resynchronises on the next valid header: client data
 * cannot pass for one without the key. */
void rec_set_key(uint64_t key);
/* Draws a random key (getrandom; the clock and pid if that fails) and sets it, and a new life id
 * (rec_set_life): each master, and each --inetd process, is one server life. */
void rec_new_key(void);
/* Sets the life id every line carries (32 hex digits of id); rec_life_id returns it. */
void rec_set_life(const uint64_t id[2]);
const char *rec_life_id(void);
uint64_t rec_get_key(void);
/* An upgrade in place: frames of the life before (its sessions, still running) carry key, and
 * their lines name life (REC_LIFE_LEN hex digits); rec_decode takes both lives' frames. */
void rec_set_prev(uint64_t key, const char *life);
int64_t rec_now_us(void);
/* Fills a header for a payload of len bytes (at most REC_PAYLOAD_MAX). */
void rec_header(struct rec_hdr *h, enum rec_type type, unsigned flags, uint64_t conn, pid_t pid,
    size_t len);
/* Writes a close payload into dst (at least 8 + REC_REASON_MAX bytes) and returns its length. */
size_t rec_close_payload(unsigned char *dst, uint64_t bytes, const char *reason);
/* Decodes the frame at buf: returns its length, 0 if avail does not hold all of it yet, or -1
 * if the bytes are not a valid frame. */
ssize_t rec_decode(const unsigned char *buf, size_t avail, struct rec *out);
/* Formats ts_us as REC_TS_LEN characters (no NUL). */
void rec_format_ts(char *dst, int64_t ts_us);
/* JSON-escapes n bytes read as latin-1 into dst (room for 6 * n + 2: it writes 8 bytes at a
 * time); returns the length. */
size_t rec_json_escape(char *dst, const unsigned char *src, size_t n);
/* The bytes a connection's last data record left of an incomplete UTF-8 character. */
struct rec_carry {
	unsigned char b[REC_CARRY_MAX];
	unsigned char n;
};
/* Formats r as JSON lines ending in '\n' into dst (room for REC_JSON_MAX); returns their
 * length.  A REC_DGRAM is formatted whole: r->data and r->len are then the whole datagram
 * (room for REC_DGRAM_JSON_LEN(r->len)), in parts of REC_DGRAM_PART bytes at most.  With carry
 * (the connection's, zeroed at its open), a data record's bytes are the carry's and then its own, less the incomplete character they end
 * in, which becomes the carry (no line at all when nothing else is left); a close record writes
 * a carry left as a data line of its own first.  Without carry, the record's bytes are
 * written as they are. */
size_t rec_format_line(char *dst, const struct rec *r, struct rec_carry *carry);
size_t rec_format_json(char *dst, const struct rec *r);
/* A datagram's line holds at most REC_DGRAM_PART of its bytes: a larger one is written as
 * several lines, its parts, one after the other (rec_format_line).  Every line of the store is
 * then at most REC_LINE_MAX bytes, its newline included (a part's base64 is 5,464 bytes; the
 * peer text, escaped, at most 1,530; the other fields fewer than 200). */
#define REC_LINE_MAX 8192
#define REC_DGRAM_PART 4096
#define REC_DGRAM_PARTS_MAX (REC_DGRAM_MAX / (REC_DGRAM_PART - REC_CARRY_MAX) + 1)
#define REC_DGRAM_JSON_LEN(n) (REC_B64_LEN(n) + 2048 * ((size_t)(n) / (REC_DGRAM_PART - 3) + 1))

/* What a start record says about the server life and the options that shape the file. */
struct rec_start {
	int64_t ts_us;
	const char *version, *host;
	pid_t pid;
	const char *fsync, *full; /* --fsync, --store-full */
	int inetd;
};
/* Room for a start or stop line. */
#define REC_START_LEN 2048
size_t rec_format_start(char *dst, const struct rec_start *s);
size_t rec_format_stop(char *dst, int64_t ts_us);

/* Fills the first frame's payload prefix for a datagram of total bytes from peer; returns its
 * length (REC_DGRAM_HDR + the peer's, at most 255 bytes of it). */
size_t rec_dgram_prefix(unsigned char *dst, size_t total, const char *peer);

/* What the store could not write, said in the file when it can write again:
 *   {"ts":"...","life":"...","ev":"gap","dropped_bytes":N,"dropped_records":N,"conns":[3,17]}
 * dropped_bytes counts the data bytes lost, dropped_records every record lost (data, and the
 * open and close of a connection dropped whole), conns the connections they belonged to
 * ("conns_truncated":true follows when there were more than the store keeps a list of).  A
 * store that found the file ending inside a line (its predecessor was killed mid-write) cut
 * that torn line off and says so: "torn_bytes":N, the bytes cut. */
struct rec_gap {
	int64_t ts_us;
	uint64_t dropped_bytes, dropped_records;
	uint64_t torn_bytes;
	const uint64_t *conns;
	size_t nconns;
	int truncated;
	const char *life; /* the life the lost records belonged to (REC_LIFE_LEN hex digits); NULL:
	                   * this one */
};
/* Room rec_format_gap needs for n conns. */
#define REC_GAP_LEN(n) (200 + REC_TS_LEN + 21 * (size_t)(n))
/* Formats g as one JSON line ending in '\n' into dst (room for REC_GAP_LEN(g->nconns));
 * returns its length. */
size_t rec_format_gap(char *dst, const struct rec_gap *g);

#endif
