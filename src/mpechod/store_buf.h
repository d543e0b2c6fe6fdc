/*
 * store_buf.h - the store's output buffer and its policy for a file that cannot be written,
 * without I/O: the lines formatted from records, the bytes counted per connection, and what
 * happens to them when a write fails (--store-full drop: data dropped and counted in a gap
 * record, open and close records held, a connection dropped whole past a bound; block: the
 * buffer kept and the caller told to stop reading).
 *
 * It writes only through the caller's writer and reads the time only from its arguments, so
 * every failure (disk full, short writes, EIO) and every recovery is unit-tested
 * (tests/unit/test_store_buf.c).  Nothing here prints or exits: what the store should log comes
 * back as an event from store_buf_flush.  store.c owns the pipe, the file, its locks and fsync.
 */
#ifndef MPECHO_STORE_BUF_H
#define MPECHO_STORE_BUF_H

#include "opts.h"
#include "record.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Appends len bytes to the file, whole or not at all (on failure it cuts off what got in, so
 * the file ends with a whole line); returns 0, or -1 with errno. */
typedef int (*store_buf_writer)(void *ctx, const char *buf, size_t len);

/* The file as the writer sees it: write like write(2) (a short count or -1 with errno), and cut
 * off the last len bytes. */
struct store_buf_io {
	ssize_t (*write)(void *ctx, const char *buf, size_t len);
	int (*cut)(void *ctx, size_t len);
	void *ctx;
};
/* A writer over io: writes all of buf, looping over short counts and EINTR; when a write fails
 * (or writes nothing) it cuts off what got in, so the file still ends with a whole line, and
 * returns -1 with errno (ENOSPC for a write that took nothing).  0 when all of it got in. */
int store_buf_write_whole(const struct store_buf_io *io, const char *buf, size_t len);

/* Every limit, so that the tests can make them small; store_buf_defaults fills the store's. */
struct store_buf_cfg {
	enum store_format format;
	int block;              /* --store-full block */
	store_buf_writer write;
	void *ctx;              /* the writer's */
	size_t outcap;          /* bytes of lines buffered before a write */
	size_t maxrecs;         /* records buffered before a write */
	size_t held_max;        /* bytes of open and close lines held while the file fails */
	int retry_ms;           /* how often a failing file is tried again */
	int log_every_ms;       /* how often a failure in drop mode is reported again */
};

/* The two clocks: monotonic milliseconds for the policy's timing, wall-clock microseconds for
 * the records it writes itself (gap and lost close). */
struct store_buf_now {
	int64_t ms;
	int64_t us;
};

/* What store_buf_flush asks the caller to log. */
enum store_buf_event {
	STORE_BUF_OK,
	STORE_BUF_DROPPING,   /* a write failed (errno set): dropping records until one works */
	STORE_BUF_HOLDING,    /* block: a write failed (errno set); the caller stops reading */
	STORE_BUF_RECOVERED,  /* drop: the file took the gap record and the held lines */
	STORE_BUF_WRITABLE,   /* block: the file took the buffer again */
};

/* The largest record store_buf_add takes: a whole datagram's line. */
#define STORE_BUF_REC_MAX REC_DGRAM_JSON_LEN(REC_DGRAM_MAX)

struct store_buf;

void store_buf_defaults(struct store_buf_cfg *cfg, enum store_format format, int block,
    store_buf_writer write, void *ctx);
/* NULL when memory is short. */
struct store_buf *store_buf_new(const struct store_buf_cfg *cfg);
void store_buf_free(struct store_buf *b);

/* Takes one record: an open, a data, a close (a close the master wrote on the session's
 * behalf gets the bytes counted here), or a whole datagram (REC_DGRAM with all its data).
 * Writes the buffer first when it is full (returning what store_buf_flush would).  A close whose
 * open was dropped is dropped too. */
enum store_buf_event store_buf_add(struct store_buf *b, struct rec *r, struct store_buf_now now);
/* Takes a line the store formats itself (a life's start or stop record), kept like a close
 * record while the file fails; nothing in raw format. */
enum store_buf_event store_buf_add_line(struct store_buf *b, const char *line, size_t len,
    struct store_buf_now now);
/* Writes the buffer (or, while the file fails, tries again once every retry_ms). */
enum store_buf_event store_buf_flush(struct store_buf *b, struct store_buf_now now);
/* Block: whether the buffer lacks room for the largest record and must be written before more
 * is taken (while it cannot be, the caller stops reading).  Drop: never (store_buf_add writes a
 * full buffer itself, and what the file refuses is sorted). */
int store_buf_wants_flush(const struct store_buf *b);
/* Whether the file is failing; and whether, with --store-full block, sessions are held back. */
int store_buf_failing(const struct store_buf *b);
int store_buf_blocked(const struct store_buf *b);
/* --store-full block at the end of a shutdown: drop what cannot be written from now on.
 * Returns 1 when the file was failing (the caller says so). */
int store_buf_give_up(struct store_buf *b);
/* Records dropped before they reached the store (the master's queue of owed records was full):
 * counted and named in the next gap record, which the next flush writes; a named connection
 * still open here lost its close, and is closed as "lost" now. */
void store_buf_note_dropped(struct store_buf *b, uint64_t records, const uint64_t *conns,
    size_t nconns, int truncated, struct store_buf_now now);
/* The connections opened and not yet closed. */
size_t store_buf_live(const struct store_buf *b);
/* At exit: closes every connection still open, as "lost". */
void store_buf_close_lost(struct store_buf *b, struct store_buf_now now);
/* Writes out, as data lines of their own, the bytes of an incomplete UTF-8 character each open
 * connection holds for its next record: before the file is handed to another store, which
 * does not know them. */
void store_buf_carry_out(struct store_buf *b, struct store_buf_now now);
/* At exit, with the file failing: one last try, now rather than after retry_ms.  Then
 * store_buf_failing says whether the file never took what store_buf_gap counts. */
enum store_buf_event store_buf_finish(struct store_buf *b, struct store_buf_now now);
/* What has been dropped since the file last took a write. */
const struct rec_gap *store_buf_gap(const struct store_buf *b);
/* The figures of the last gap record written (for RECOVERED's log line). */
const struct rec_gap *store_buf_said(const struct store_buf *b);
/* Bytes of open and close lines held now. */
size_t store_buf_held(const struct store_buf *b);
/* --echo-after: the batch the buffer holds now (*gen) and the last batch the file took whole
 * (*wrote_gen, if not NULL; 0: none); returns the bytes buffered.  A data record with
 * REC_F_WHOLE leaves no UTF-8 carry behind. */
size_t store_buf_batch(const struct store_buf *b, uint32_t *gen, uint32_t *wrote_gen);

#endif
