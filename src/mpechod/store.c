/*
 * store.c - drain the store pipe into the store file.
 *
 * Frames arrive whole (each was one write of at most PIPE_BUF bytes) but a read may end in the
 * middle of one, so the tail is kept for the next read.  Output is batched in store_buf.c, the
 * policy without I/O: one write(2) per pipe drain or per 512 KiB, and fdatasync as --fsync says
 * (Redis's appendfsync: always after every write, everysec at most once a second, no never but
 * at exit).  What happens when a write fails (disk full, file too large: --store-full drop or
 * block) is decided there; this file owns the pipe, the file, its locks, signals and the loop.
 * A write that fails is cut back to the last whole line, and a file found ending inside a line
 * (a store killed mid-write) is cut back too, and the cut said in the file (store_repair).
 * With --echo-after it answers back: the receipts of a batch are published once its write has
 * returned (and, synced, once one fdatasync for all of them has), receipt.h and receipt_q.h.
 */
#define _GNU_SOURCE
#include "store.h"
#include "store_buf.h"
#include "store_wb.h"
#include "figures.h"
#include "io.h"
#include "log.h"
#include "receipt.h"
#include "receipt_q.h"
#include "record.h"
#include "sig.h"
#include "sandbox.h"
#include "version.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define STORE_INBUF (256 * 1024)
#define STORE_DRAIN_MAX ((size_t)1024 * 1024)
#define STORE_LOCK_WAIT_MS 120000
#define STORE_SHARED_WAIT_MS 5000
#define STORE_RETRY_MS 200

/* While the pipe is quiet, the store sleeps this long after it becomes readable before it reads,
 * so that a burst of small frames costs one wakeup, not one each (on 2 cores, a context switch
 * per request).  Quiet: less than STORE_BUSY_BYTES read in the current or the last window of
 * STORE_WINDOW_MS (50 MB/s), so a sleep lets in at most about 100 KB, a tenth of the pipe.  A
 * stream is faster: it gets the shorter sleep below (the 2 ms one after each small drain cost
 * streams 10-50%). */
#define STORE_COALESCE_NS 2000000L
/* A stream's pipe: a shorter sleep (a third of the pipe at 1 GB/s), so that each wakeup reads
 * hundreds of KB, not the frame or two a session has just written (a system call costs ~1 us on
 * the benchmark machine's VM, and the store chasing a session frame by frame took 10 reads and a
 * write per 80 KB). */
#define STORE_BUSY_COALESCE_NS 300000L
#define STORE_WINDOW_MS 10LL
#define STORE_BUSY_BYTES ((size_t)512 * 1024)

static struct {
	const struct store_args *args;
	int fd;
	struct store_buf *buf;        /* the output buffer and its policy (store_buf.c) */
	unsigned char in[STORE_INBUF];
	size_t inlen;
	int dirty;
	int64_t last_sync_ms;
	int corrupt_logged, dg_lost_logged;
	int64_t win_ms;               /* the current rate window's start */
	size_t win_bytes;             /* bytes read from the pipe in it */
	int busy;                     /* the last window had STORE_BUSY_BYTES */
	struct store_wb wb;           /* write-behind (store_wb.h), with --fsync everysec/always */
} store;

/* --echo-after: the receipts of records in the output buffer, and of records written but not
 * yet fdatasynced (synced mode).  One list each, whatever the number of writers: group commit
 * is a batch's receipts published at once, after its one write (and its one fdatasync). */
static struct {
	enum receipt_mode mode;
	struct receipt_q inbuf, written;
	uint32_t gen;  /* the output buffer's batch when inbuf was last sorted */
} store_rc;

/* The time for store_buf, read once per batch of records. */
static struct store_buf_now
store_now(void)
{
	return (struct store_buf_now){ .ms = io_now_ms(), .us = rec_now_us() };
}

/* The datagram being put together from its frames (store_dgram). */
static struct {
	uint64_t seq; /* its number; 0: none */
	unsigned flags;
	uint32_t receipt;
	int64_t ts_us;
	size_t total, got, peerlen;
	unsigned char peer[255];
	unsigned char data[REC_DGRAM_MAX];
} store_dg;

static volatile sig_atomic_t store_hup, store_orphaned, store_giveup, store_handover;

/* SIGWINCH: the master was upgraded in place and starts a store of its new binary on the same
 * pipe (master_upgrade.c): this one writes every whole frame it has read and leaves. */
static void
store_sigwinch(int signo)
{
	(void)signo;
	store_handover = 1;
}

/* --store-full block, at the end of a shutdown: stop holding sessions back for the disk. */
static void
store_sigusr1(int signo)
{
	(void)signo;
	store_giveup = 1;
}

/* The master died (PR_SET_PDEATHSIG); said once in the loop. */
static void
store_sigusr2(int signo)
{
	(void)signo;
	store_orphaned = 1;
}

static void
store_sighup(int signo)
{
	(void)signo;
	store_hup = 1;
}

int
store_open(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

/* One writer per file: a second mpechod on the same store, or a new master while the old one's
 * store still drains, would interleave its lines with ours. */
int
store_lock(int fd)
{
	return flock(fd, LOCK_EX | LOCK_NB);
}

static int
store_same_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	    sa.st_ino == sb.st_ino;
}

int
store_master_lock(const char *path, int oldfd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	int fd = store_open(path), err;

	if (fd < 0)
		return -1;
	/* An OFD lock conflicts with another description's, even in this process: keep the one
	 * that holds it when the path was not rotated. */
	if (oldfd >= 0 && store_same_file(fd, oldfd)) {
		close(fd);
		return oldfd;
	}
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		err = errno == EACCES ? EAGAIN : errno;
		close(fd);
		errno = err;
		return -1;
	}
	if (oldfd >= 0)
		close(oldfd);
	return fd;
}


/* The conn number a torn JSON line begins with ({"ts":"...","life":"...","conn":N,...), or 0;
 * and its life into life (REC_LIFE_LEN hex digits and a NUL), or "" when it names none (format
 * 1): the gap record that says what was lost names the life it was lost from. */
static uint64_t
store_torn_conn(int fd, off_t at, char *life)
{
	char buf[160];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, at);
	char *p;

	life[0] = '\0';
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strstr(buf, "\"life\":\"");
	if (p != NULL && strspn(p + 8, "0123456789abcdef") >= REC_LIFE_LEN) {
		memcpy(life, p + 8, REC_LIFE_LEN);
		life[REC_LIFE_LEN] = '\0';
	}
	p = strstr(buf, "\"conn\":");
	return p == NULL ? 0 : strtoull(p + 7, NULL, 10);
}

/* Where the last line of a file of size bytes begins: after its last newline, or 0. */
static off_t
store_line_start(int fd, off_t size)
{
	char buf[4096];
	off_t at = size;

	while (at > 0) {
		size_t want = at < (off_t)sizeof(buf) ? (size_t)at : sizeof(buf);
		ssize_t n = pread(fd, buf, want, at - (off_t)want);

		if (n != (ssize_t)want)
			return -1;
		for (size_t i = want; i > 0; i--)
			if (buf[i - 1] == '\n')
				return at - (off_t)want + (off_t)i;
		at -= (off_t)want;
	}
	return 0;
}

/* A store (or --inetd writer) killed in the middle of a write leaves the file ending inside a
 * line; appending after it would make two records one line that is not JSON.  So before it
 * writes, a writer that holds the file's lock cuts such a torn line back to the last newline and
 * says so in the file: a gap record with "torn_bytes" (what was cut), naming the connection the
 * line began.  The raw format has no lines: its bytes are appended as they are.  Returns 0, or
 * -1 with errno when the file cannot be read or cut. */
static int
store_repair_fd(int fd, int rd, const char *path)
{
	char line[REC_GAP_LEN(1)], life[REC_LIFE_LEN + 1];
	struct stat st;
	struct rec_gap g = { .dropped_records = 1 };
	uint64_t conn;
	off_t start;
	char last = '\n';

	if (fstat(rd, &st) < 0 || (st.st_size > 0 && pread(rd, &last, 1, st.st_size - 1) != 1))
		return -1;
	if (st.st_size == 0 || last == '\n')
		return 0;
	if ((start = store_line_start(rd, st.st_size)) < 0)
		return -1;
	conn = store_torn_conn(rd, start, life);
	g.life = life[0] != '\0' ? life : NULL;
	if (ftruncate(fd, start) < 0)
		return -1;
	g.ts_us = rec_now_us();
	g.torn_bytes = (uint64_t)(st.st_size - start);
	g.conns = &conn;
	g.nconns = conn != 0;
	log_warnx("%s ended inside a line (a writer was killed mid-write): cut %llu bytes back to "
	    "the last whole line", path, (unsigned long long)g.torn_bytes);
	return io_write_all(fd, line, rec_format_gap(line, &g)) < 0 ? -1 : 0;
}

/* The store's descriptor is write-only; the tail is read through a read-only one of the same
 * file, opened for the check. */
static int
store_repair(int fd, const char *path, enum store_format format)
{
	char self[32];
	int rd, r, err;

	if (format != STORE_JSONL)
		return 0;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	if ((rd = open(self, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	r = store_repair_fd(fd, rd, path);
	err = errno;
	close(rd);
	errno = err;
	return r;
}

/* --inetd: each process of many holds the file's lock only while it writes, so their lines
 * never interleave.  Waits at most STORE_SHARED_WAIT_MS for it (a daemon's store holds it for
 * its whole life); then the write fails and the records count as dropped. */
static int
store_shared_lock(void)
{
	int64_t deadline = io_now_ms() + STORE_SHARED_WAIT_MS;

	while (store_lock(store.fd) < 0) {
		if (errno != EWOULDBLOCK || io_now_ms() >= deadline)
			return -1;
		poll(NULL, 0, 10);
	}
	return 0;
}

/* Write-behind (store_wb.h): the writeback of each whole chunk started at once, and the pages
 * of the chunk before last dropped.  Neither call waits for the writes to finish or reads their
 * errors (the waiting forms of sync_file_range would take an I/O error that fdatasync must
 * report); SYNC_FILE_RANGE_WRITE can wait for room in the device's queue, and DONTNEED skips
 * (after draining the per-CPU page lists) the pages still dirty or being written.  Advice only:
 * a failure changes nothing. */
static void
store_write_behind(void)
{
	struct store_wb_step s;
	off_t end;

	if (store.args->fsync == FSYNC_NO || (end = lseek(store.fd, 0, SEEK_CUR)) < 0)
		return;
	s = store_wb_next(&store.wb, end);
	if (s.kick_len > 0)
		(void)sync_file_range(store.fd, s.kick_off, s.kick_len, SYNC_FILE_RANGE_WRITE);
	if (s.drop_len > 0)
		(void)posix_fadvise(store.fd, s.drop_off, s.drop_len, POSIX_FADV_DONTNEED);
}

static ssize_t
store_file_write(void *ctx, const char *buf, size_t len)
{
	ssize_t n = write(store.fd, buf, len);

	(void)ctx;
	if (n > 0)
		store.dirty = 1;
	if (n > 0 && figures_live != NULL)
		figures_add(&figures_live->store_bytes, (uint64_t)n);
	if (n > 0)
		store_write_behind();
	return n;
}

/* Cuts off the last len bytes: what got in of a write that failed. */
static int
store_file_cut(void *ctx, size_t len)
{
	off_t end = lseek(store.fd, 0, SEEK_END);

	(void)ctx;
	if (end >= (off_t)len && ftruncate(store.fd, end - (off_t)len) == 0)
		return 0;
	log_warn("cannot cut the partial line off %s", store.args->path);
	return -1;
}

static int
store_write_locked(const char *buf, size_t len)
{
	static const struct store_buf_io io = { store_file_write, store_file_cut, NULL };

	return store_buf_write_whole(&io, buf, len);
}

/* store_buf's writer: writes len bytes at the end of the file; on failure cuts off what got
 * in, so the file always ends with a whole line.  Returns 0, or -1 with errno.  With --inetd the
 * file's lock is taken for the write, and a line torn by a writer killed before is cut first. */
static int
store_write(void *ctx, const char *buf, size_t len)
{
	int r, err;

	(void)ctx;
	if (!store.args->shared || len == 0)
		return store_write_locked(buf, len);
	if (store_shared_lock() < 0) {
		err = errno;
		log_warn("cannot lock %s", store.args->path);
		errno = err;
		return -1;
	}
	r = store_repair(store.fd, store.args->path, store.args->format);
	if (r == 0)
		r = store_write_locked(buf, len);
	err = errno;
	flock(store.fd, LOCK_UN);
	errno = err;
	return r;
}

/* Acknowledges every receipt of the written list, then wakes the writers that sleep: one
 * system call for them all. */
static void
store_receipts_publish(void)
{
	for (size_t i = 0; i < store_rc.written.len; i++)
		receipt_publish(store_rc.written.e[i].idx, store_rc.written.e[i].tag,
		    store_rc.written.e[i].ord, store_rc.written.e[i].n);
	receipt_q_clear(&store_rc.written);
	receipt_wake();
}

/* After store_buf may have ended a batch: the receipts of a batch the file took are published
 * (written) or wait for the next fdatasync (synced); those of a batch it dropped are forgotten,
 * and their writers never echo those bytes. */
static void
store_receipts_settle(void)
{
	uint32_t gen, wrote;

	store_buf_batch(store.buf, &gen, &wrote);
	/* Only when a batch has ended: once per batch, not once per record. */
	if (store_rc.inbuf.len == 0 || gen == store_rc.gen)
		return;
	store_rc.gen = gen;
	if (receipt_q_settle(&store_rc.inbuf, gen, wrote, &store_rc.written) < 0)
		log_warn("receipts");
	if (store_rc.mode == RECEIPT_WRITTEN)
		store_receipts_publish();
}

/* A tagged record went into the buffer (unless store_buf refused it: then it is not noted). */
static void
store_receipt_note(const struct rec *r, uint32_t gen, size_t outlen)
{
	uint32_t now;
	size_t len = store_buf_batch(store.buf, &now, NULL);

	if ((now != gen ? len > 0 : len > outlen) &&
	    receipt_q_note(&store_rc.inbuf, RECEIPT_STAMP_SLOT(r->receipt),
	    RECEIPT_STAMP_ORD(r->receipt), receipt_tag(r->conn), 1, now) < 0)
		log_warn("receipts");
	store_receipts_settle();
}

/* fdatasync, counted and timed in the shared figures.  0, or -1 with errno (EINVAL, a file that
 * cannot be synced, is not a failure). */
static int
store_fdatasync(void)
{
	struct timespec a, b;
	int r = 0, err = 0;

	clock_gettime(CLOCK_MONOTONIC, &a);
	if (fdatasync(store.fd) < 0 && errno != EINVAL) {
		err = errno;
		r = -1;
		log_warn("fdatasync %s", store.args->path);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (figures_live != NULL) {
		figures_add(&figures_live->store_fsyncs, 1);
		figures_add(&figures_live->store_fsync_us, (uint64_t)((b.tv_sec - a.tv_sec) *
		    1000000 + (b.tv_nsec - a.tv_nsec) / 1000));
	}
	errno = err;
	return r;
}

static void
store_sync(int force)
{
	int64_t now;
	int err = 0;

	if (!store.dirty)
		return;
	now = io_now_ms();
	/* Synced receipts waiting: at once (group commit: one fdatasync for all of them). */
	if (store_rc.written.len > 0)
		force = 1;
	if (!force && store.args->fsync != FSYNC_ALWAYS &&
	    (store.args->fsync == FSYNC_NO || now - store.last_sync_ms < 1000))
		return;
	if (store_fdatasync() < 0)
		err = errno;
	store.dirty = 0;
	store.last_sync_ms = now;
	/* Not durable: those writers never hear back (they end at their timeout). */
	if (err != 0)
		receipt_q_clear(&store_rc.written);
	store_receipts_publish();
}

/* Says what store_buf_flush reports. */
static void
store_say(enum store_buf_event ev)
{
	const struct rec_gap *g = store_buf_said(store.buf);
	const char *path = store.args->path;

	switch (ev) {
	case STORE_BUF_OK:
		break;
	case STORE_BUF_DROPPING:
		/* Said at most once a minute (store_buf): a nearly full disk takes some writes
		 * and refuses others, and must not flood the log. */
		log_warn("cannot write %s; dropping records until it works again", path);
		break;
	case STORE_BUF_HOLDING:
		log_warn("cannot write %s; holding sessions back until it works again", path);
		break;
	case STORE_BUF_RECOVERED:
		if (figures_live != NULL) {
			figures_add(&figures_live->store_gaps, 1);
			figures_add(&figures_live->store_dropped_bytes, g->dropped_bytes);
			figures_add(&figures_live->store_dropped_records, g->dropped_records);
		}
		log_warnx("%s is writable again; a gap record says what was lost: %llu data bytes "
		    "in %llu records of %zu%s connections", path,
		    (unsigned long long)g->dropped_bytes, (unsigned long long)g->dropped_records,
		    g->nconns, g->truncated ? "+" : "");
		break;
	case STORE_BUF_WRITABLE:
		log_warnx("%s is writable again; sessions go on", path);
		break;
	}
}

/* Writes the output buffer (store_buf decides what happens when the file cannot take it). */
static void
store_flush(void)
{
	store_say(store_buf_flush(store.buf, store_now()));
	store_receipts_settle();
	if (store.args->fsync == FSYNC_ALWAYS)
		store_sync(1);
}

/* The master's word at the end of a shutdown (SIGUSR1): with --store-full block, a disk that is
 * still full is not waited for any longer; from now on what cannot be written is dropped and
 * said, as in the drop policy, so that the store can drain the pipe and exit. */
static void
store_give_up(void)
{
	store_giveup = 0;
	if (store_buf_give_up(store.buf))
		log_warnx("shutting down with %s still not writable: dropping what cannot be "
		    "written", store.args->path);
}

/* Formats a whole datagram, which may need more room than one frame's record. */
static void store_add(struct rec *r, struct store_buf_now now);

static void
store_emit_dgram(const struct rec *r)
{
	struct rec d = *r;

	store_add(&d, store_now());
}

static void
store_dgram_lost(void)
{
	if (!store.dg_lost_logged)
		log_warnx("a datagram's frames did not all arrive (its writer died mid-way); "
		    "dropped it");
	store.dg_lost_logged = 1;
	store_dg.seq = 0;
}

/* A datagram larger than one frame comes in several, from the datagram process alone and in
 * order: they are put together here and formatted as one record. */
static void
store_dgram(const struct rec *r)
{
	if (r->type == REC_DGRAM) {
		if (store_dg.seq != 0)
			store_dgram_lost();
		if (r->len == r->total) {
			store_emit_dgram(r);
			return;
		}
		store_dg.seq = r->conn;
		store_dg.flags = r->flags;
		store_dg.receipt = r->receipt;
		store_dg.ts_us = r->ts_us;
		store_dg.total = r->total;
		store_dg.peerlen = r->peerlen;
		memcpy(store_dg.peer, r->peer, r->peerlen);
		memcpy(store_dg.data, r->data, r->len);
		store_dg.got = r->len;
		return;
	}
	if (store_dg.seq == 0 || r->conn != store_dg.seq ||
	    store_dg.got + r->len > store_dg.total) {
		store_dgram_lost();
		return;
	}
	memcpy(store_dg.data + store_dg.got, r->data, r->len);
	store_dg.got += r->len;
	if (store_dg.got == store_dg.total) {
		struct rec d = { .type = REC_DGRAM, .ts_us = store_dg.ts_us, .peer = store_dg.peer,
		    .peerlen = store_dg.peerlen, .data = store_dg.data, .len = store_dg.total,
		    .conn = store_dg.seq, .flags = store_dg.flags, .receipt = store_dg.receipt };

		store_dg.seq = 0;
		store_emit_dgram(&d);
	}
}

/* Adds a record to the output buffer, which writes itself when full. */
static void
store_add(struct rec *r, struct store_buf_now now)
{
	uint32_t gen;
	size_t outlen = store_buf_batch(store.buf, &gen, NULL);
	enum store_buf_event ev = store_buf_add(store.buf, r, now);

	if (figures_live != NULL)
		figures_add(&figures_live->store_records, 1);
	if (store_rc.mode != RECEIPT_OFF && (r->flags & REC_F_RECEIPT))
		store_receipt_note(r, gen, outlen);
	if (ev != STORE_BUF_OK)
		store_say(ev);
	if (store.dirty && store.args->fsync == FSYNC_ALWAYS)
		store_sync(1);
}

/* The master dropped records it owed while the pipe was full (its queue is bounded): said in
 * the log here and in the file by the next gap record. */
static void
store_master_gap(const struct rec *r, struct store_buf_now now)
{
	uint64_t records, conns[REC_GAP_CONNS];
	size_t n = r->len / sizeof(uint64_t) - 1;

	memcpy(&records, r->data, sizeof(records));
	memcpy(conns, r->data + sizeof(records), n * sizeof(uint64_t));
	log_warnx("the master dropped %llu records of %zu%s connections while the store pipe was "
	    "full; a gap record says which", (unsigned long long)records, n,
	    (r->flags & REC_F_TRUNC) ? "+" : "");
	store_buf_note_dropped(store.buf, records, conns, n, (r->flags & REC_F_TRUNC) != 0, now);
}

static void
store_emit(struct rec *r, struct store_buf_now now)
{
	if (r->type == REC_DGRAM || r->type == REC_DGRAM_MORE)
		store_dgram(r);
	else if (r->type == REC_GAP)
		store_master_gap(r, now);
	else
		store_add(r, now);
}

/* Formats every whole frame in the input buffer and keeps the incomplete tail. */
static void
store_consume(void)
{
	struct store_buf_now now = store_now();
	size_t off = 0;
	struct rec r;
	ssize_t n;

	while (off < store.inlen) {
		/* Blocking: a full output buffer must be written before anything more is taken. */
		if (store_buf_wants_flush(store.buf)) {
			store_flush();
			if (store_buf_blocked(store.buf))
				break;
		}
		n = rec_decode(store.in + off, store.inlen - off, &r);
		if (n == 0)
			break;
		if (n < 0) {
			/* Cannot happen with atomic writes; resynchronise byte by byte. */
			if (!store.corrupt_logged)
				log_warnx("frames in the store pipe do not decode; skipping to the "
				    "next valid one");
			store.corrupt_logged = 1;
			off++;
			continue;
		}
		store_emit(&r, now);
		off += (size_t)n;
	}
	memmove(store.in, store.in + off, store.inlen - off);
	store.inlen -= off;
}

/* Reads exactly the bytes that are in the pipe now (whole frames: each was one atomic write)
 * and formats them, so that they go to the file that is open now.  Bounded by the pipe's size,
 * however fast sessions keep writing. */
static void
store_drain_present(int pipe_rd)
{
	int avail = 0;
	size_t want, room;
	ssize_t n;

	if (store_buf_blocked(store.buf) || ioctl(pipe_rd, FIONREAD, &avail) < 0 || avail <= 0)
		return;
	for (want = (size_t)avail; want > 0 && !store_buf_blocked(store.buf); want -= (size_t)n) {
		room = sizeof(store.in) - store.inlen;
		if (room == 0)
			return;
		n = io_read(pipe_rd, store.in + store.inlen, want < room ? want : room);
		if (n <= 0)
			return;
		store.inlen += (size_t)n;
		store_consume();
	}
}

/* SIGHUP (after a rotation by mv): every record a session wrote before the signal belongs to the
 * old file, since its client may already have had the echo; so the pipe as it is now is drained
 * there first, then the path is opened anew. */
static void
store_reopen(int pipe_rd)
{
	int fd;

	store_hup = 0;
	store_drain_present(pipe_rd);
	store_flush();
	store_sync(1);
	fd = store_open(store.args->path);
	if (fd < 0) {
		log_warn("cannot reopen %s; still writing to the old file", store.args->path);
		return;
	}
	/* The same file (not rotated): keep the descriptor that holds the lock.  flock(2) would
	 * see that lock as someone else's on a second descriptor. */
	if (store_same_file(store.fd, fd)) {
		close(fd);
		log_info("reopened %s (the same file)", store.args->path);
		return;
	}
	if (store_lock(fd) < 0) {
		log_warn("cannot lock the new %s; still writing to the old file", store.args->path);
		close(fd);
		return;
	}
	close(store.fd);
	store.fd = fd;
	store_wb_reset(&store.wb, lseek(fd, 0, SEEK_END));
	log_info("reopened %s", store.args->path);
}

enum drain { DRAIN_EMPTY, DRAIN_MORE, DRAIN_EOF, DRAIN_BLOCKED };

/* Reads until the pipe is empty, every writer has closed it, or STORE_DRAIN_MAX bytes have come:
 * under a load that never lets the pipe empty, the loop still gets to fsync and to SIGHUP. */
static enum drain
store_drain(int pipe_rd)
{
	size_t got = 0, want;
	ssize_t n;

	while (got < STORE_DRAIN_MAX) {
		if (store_buf_blocked(store.buf))
			return DRAIN_BLOCKED;
		want = sizeof(store.in) - store.inlen;
		n = io_read(pipe_rd, store.in + store.inlen, want);
		if (n == 0)
			return DRAIN_EOF;
		if (n < 0) {
			if (errno != EAGAIN)
				log_warn("read from the store pipe");
			return DRAIN_EMPTY;
		}
		sandbox_poke(store.in + store.inlen, (size_t)n);
		store.inlen += (size_t)n;
		got += (size_t)n;
		store.win_bytes += (size_t)n;
		store_consume();
		/* Sessions wait for their receipts: a short read emptied the pipe, so write now
		 * rather than after one more read that would only say so. */
		if (store_rc.mode != RECEIPT_OFF && (size_t)n < want)
			return DRAIN_EMPTY;
	}
	return DRAIN_MORE;
}

/* Reads the rest of a frame the input buffer ends inside of: it is in the pipe already, since
 * every frame was one atomic write.  Bounded: a frame is at most REC_FRAME_MAX bytes. */
static void
store_complete_frame(int pipe_rd)
{
	struct rec_hdr h;
	size_t want;
	ssize_t n;

	for (int tries = 0; tries < 2 && store.inlen > 0; tries++) {
		want = sizeof(h);
		if (store.inlen >= sizeof(h)) {
			memcpy(&h, store.in, sizeof(h));
			want = sizeof(h) + (h.len < REC_PAYLOAD_MAX ? h.len : REC_PAYLOAD_MAX);
		}
		if (store.inlen >= want)
			return;
		n = io_read(pipe_rd, store.in + store.inlen, want - store.inlen);
		if (n <= 0)
			return;
		store.inlen += (size_t)n;
	}
}

/* SIGWINCH: hands the pipe over at a frame boundary.  What was read is written and fsynced,
 * and the store leaves without a stop record (its life goes on in the next store's file
 * lines); its lock goes with it, so the next store then takes the file.  A store that cannot
 * write now (a full disk) keeps going: the master's bounded wait then ends it. */
static void
store_hand_over(int pipe_rd)
{
	store_handover = 0;
	store_complete_frame(pipe_rd);
	store_consume();
	/* The next store does not know what a connection held back (an incomplete character). */
	store_buf_carry_out(store.buf, store_now());
	store_flush();
	if (store_buf_blocked(store.buf) || store_buf_failing(store.buf) || store.inlen > 0) {
		log_warnx("cannot hand the store over now: the file does not take writes");
		return;
	}
	store_sync(1);
	close(store.fd);
	log_info("handed the store over to the upgraded master's");
	_exit(0);
}

/* The first line of a server life: who writes, and the options that shape the file. */
static void
store_start_record(const struct store_args *a)
{
	static const char *const fsyncs[] = { "always", "everysec", "no" };
	char host[256] = "", line[REC_START_LEN];
	struct rec_start st = { .ts_us = rec_now_us(), .version = MPECHO_VERSION, .host = host,
	    .pid = a->master > 0 ? a->master : getppid(), .fsync = fsyncs[a->fsync],
	    .full = a->full == STORE_FULL_BLOCK ? "block" : "drop", .inetd = a->shared };

	gethostname(host, sizeof(host) - 1);
	store_say(store_buf_add_line(store.buf, line, rec_format_start(line, &st), store_now()));
}

static void
store_finish(void)
{
	const struct rec_gap *g;

	if (store_buf_live(store.buf) > 0) {
		log_warnx("%zu connections had no close record; closing them as lost",
		    store_buf_live(store.buf));
		store_buf_close_lost(store.buf, store_now());
	}
	/* A clean end: every writer closed the pipe while the master lived (or --inetd's session
	 * ended).  A store whose master died writes no stop: that life did not end cleanly. */
	if (store.args->shared || store_orphaned == 0) {
		char line[REC_START_LEN];

		store_say(store_buf_add_line(store.buf, line, rec_format_stop(line, rec_now_us()),
		    store_now()));
	}
	store_flush();
	if (store_buf_failing(store.buf))
		store_say(store_buf_finish(store.buf, store_now()));
	store_sync(1);
	close(store.fd);
	if (store_buf_failing(store.buf)) {
		/* The file never took them: the gap is said here, and in the exit status. */
		g = store_buf_gap(store.buf);
		log_warnx("%s could not be written: lost %llu data bytes in %llu records of "
		    "%zu%s connections, and %zu bytes of open and close records",
		    store.args->path, (unsigned long long)g->dropped_bytes,
		    (unsigned long long)g->dropped_records, g->nconns,
		    g->truncated ? "+" : "", store_buf_held(store.buf));
		_exit(EX_IOERR);
	}
	_exit(0);
}

/* Takes the store's lock, waiting (bounded) while the store of a master that died still
 * drains its sessions into the file: two stores never write it at once.  Meanwhile the pipe
 * fills and then holds this server's sessions back; nothing is lost.  Past the bound the store
 * exits and the master starts another, which waits again. */
static void
store_take_lock(int fd, const char *path)
{
	int64_t start = io_now_ms();

	if (store_lock(fd) == 0)
		return;
	if (errno != EWOULDBLOCK)
		fatal(EX_CANTCREAT, "cannot lock %s", path);
	log_warnx("%s is still written by the store of an mpechod that ended; waiting for it "
	    "(at most %d s)", path, STORE_LOCK_WAIT_MS / 1000);
	while (store_lock(fd) < 0) {
		if (errno != EWOULDBLOCK)
			fatal(EX_CANTCREAT, "cannot lock %s", path);
		if (io_now_ms() - start >= STORE_LOCK_WAIT_MS)
			fatalx(EX_TEMPFAIL, "%s is still locked after %d s", path,
			    STORE_LOCK_WAIT_MS / 1000);
		poll(NULL, 0, 50);
	}
	log_info("took over %s after %lld ms", path, (long long)(io_now_ms() - start));
}

static void
store_setup(const struct store_args *a)
{
	static const int blocked[] = { SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, 0 };
	struct store_buf_cfg cfg;

	store.args = a;
	store_rc.mode = receipt_mode();
	store.fd = a->filefd >= 0 ? a->filefd : store_open(a->path);
	if (store.fd < 0)
		fatal(EX_CANTCREAT, "cannot open %s", a->path);
	store_wb_reset(&store.wb, lseek(store.fd, 0, SEEK_END));
	if (!a->shared) {
		store_take_lock(store.fd, a->path);
		if (store_repair(store.fd, a->path, a->format) < 0)
			log_warn("cannot cut the torn last line off %s", a->path);
	}
	store_buf_defaults(&cfg, a->format, a->full == STORE_FULL_BLOCK, store_write, NULL);
	store.buf = store_buf_new(&cfg);
	if (store.buf == NULL)
		fatal(EX_OSERR, "store buffer");
	/* The master's first store starts the life; one restarted after a crash (filefd -1)
	 * goes on with it. */
	if (a->filefd >= 0)
		store_start_record(a);
	store.last_sync_ms = io_now_ms();
	sig_default(SIGCHLD);
	/* The store outlives a TERM or INT sent to the whole process group: it ends when the
	 * pipe's last writer closes, so nothing in flight is lost. */
	sig_ignore(SIGTERM);
	sig_ignore(SIGINT);
	sig_handle(SIGUSR1, store_sigusr1, 0);
	/* Past a file size limit, write(2) should fail with EFBIG and be handled like a full
	 * disk, not kill the store. */
	sig_ignore(SIGXFSZ);
	sig_handle(SIGHUP, store_sighup, 0);
	sig_handle(SIGUSR2, store_sigusr2, 0);
	sig_handle(SIGWINCH, store_sigwinch, 0);
	/* SIGHUP and SIGUSR2 stay blocked but inside ppoll, like the master's signals. */
	sig_setmask(blocked);
	/* After its master's death the store goes on until the last session has closed the pipe,
	 * as at a shutdown; it only says so. */
	prctl(PR_SET_PDEATHSIG, SIGUSR2);
	if (getppid() != a->master)
		store_orphaned = 1;
	io_set_nonblock(a->pipe_rd, 1);
}

/* Whether the pipe carries STORE_BUSY_BYTES per STORE_WINDOW_MS, now or in the last window. */
static int
store_pipe_busy(void)
{
	int64_t now = io_now_ms();

	if (now - store.win_ms >= STORE_WINDOW_MS) {
		store.busy = store.win_bytes >= STORE_BUSY_BYTES &&
		    now - store.win_ms < STORE_WINDOW_MS + STORE_WINDOW_MS;
		store.win_ms = now;
		store.win_bytes = 0;
	}
	return store.busy || store.win_bytes >= STORE_BUSY_BYTES;
}

/* The pipe is readable: unless every writer has gone (shutdown), a signal is waiting (a HUP's
 * rotation) or each write is fsynced, sleep STORE_COALESCE_NS first (STORE_BUSY_COALESCE_NS when
 * the pipe is busy, store_pipe_busy), so that what sessions write meanwhile is read in the same
 * drain.  Also after a drain that stopped at its STORE_DRAIN_MAX with more in the pipe
 * (DRAIN_MORE): the pipe (MASTER_PIPE_SIZE) then holds only what came during that drain, far
 * from full at the rates the store keeps up with, and 0.3 ms more fill it by a third at most.
 * A signal ends the sleep at once: ppoll lets it in. */
static void
store_coalesce(const struct pollfd *pfd, const sigset_t *waitmask)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = STORE_COALESCE_NS };

	if (!(pfd->revents & POLLIN) || (pfd->revents & (POLLHUP | POLLERR)) ||
	    store.args->fsync == FSYNC_ALWAYS || store_rc.mode != RECEIPT_OFF ||
	    store_hup || store_giveup || store_buf_blocked(store.buf))
		return;
	if (store_pipe_busy())
		ts.tv_nsec = STORE_BUSY_COALESCE_NS;
	if (ppoll(NULL, 0, &ts, waitmask) == 0)
		return;
	if (errno != EINTR)
		fatal(EX_OSERR, "ppoll");
}

/* With --echo-after a session waits for this wake-up's write: a signal that came with the
 * pipe's data (ppoll says the data first and leaves the signal pending) is looked for at most
 * once a millisecond, not with a system call before every read. */
static int
store_signals_due(void)
{
	static int64_t last_ms;
	int64_t now = io_now_ms();

	if (now == last_ms)
		return 0;
	last_ms = now;
	return 1;
}

void
store_run(const struct store_args *a)
{
	struct pollfd pfd = { .fd = a->pipe_rd, .events = POLLIN };
	struct timespec ts, *tmo;
	sigset_t waitmask;
	enum drain drained;
	int64_t left;

	log_init(NULL, "store");
	/* Like the master, never stall on a stderr nobody reads: a blocked store stops draining
	 * the pipe, and then every session waits. */
	log_guard(1);
	store_setup(a);
	sandbox_child(SANDBOX_STORE, a->path);
	sigprocmask(SIG_SETMASK, NULL, &waitmask);
	sigdelset(&waitmask, SIGHUP);
	sigdelset(&waitmask, SIGUSR2);
	sigdelset(&waitmask, SIGUSR1);
	sigdelset(&waitmask, SIGWINCH);
	for (;;) {
		if (store_giveup)
			store_give_up();
		/* What a blocked store left unread in its input, once it can write again. */
		if (!store_buf_blocked(store.buf) && store.inlen > 0)
			store_consume();
		if (store_orphaned == 1) {
			log_warnx("the master died; writing what its sessions send until the last "
			    "one ends");
			store_orphaned = 2;
		}
		if (store_hup)
			store_reopen(a->pipe_rd);
		if (store_handover)
			store_hand_over(a->pipe_rd);
		drained = store_drain(a->pipe_rd);
		if (drained == DRAIN_EOF)
			store_finish();
		store_flush();
		store_sync(0);
		tmo = NULL;
		if (drained == DRAIN_MORE) {
			/* Only to let a pending SIGHUP in: there is more to read now. */
			ts.tv_sec = 0;
			ts.tv_nsec = 0;
			tmo = &ts;
		} else if (store_buf_failing(store.buf)) {
			/* Try the file again even when nothing comes. */
			ts.tv_sec = 0;
			ts.tv_nsec = STORE_RETRY_MS * 1000000L;
			tmo = &ts;
		} else if (store.dirty && a->fsync == FSYNC_EVERYSEC) {
			left = 1000 - (io_now_ms() - store.last_sync_ms);
			ts.tv_sec = left > 0 ? left / 1000 : 0;
			ts.tv_nsec = left > 0 ? (left % 1000) * 1000000 : 0;
			tmo = &ts;
		}
		/* Blocked, the pipe is not read, so it must not wake the loop either. */
		if (ppoll(&pfd, store_buf_blocked(store.buf) ? 0 : 1, tmo, &waitmask) < 0) {
			if (errno != EINTR)
				fatal(EX_OSERR, "ppoll");
		} else {
			if (store_rc.mode == RECEIPT_OFF || store_signals_due())
				sig_deliver_pending(&waitmask);
			store_coalesce(&pfd, &waitmask);
		}
	}
}
