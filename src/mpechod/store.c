/*
 * store.c - drain the store pipe into the store file.
 *
 * Frames arrive whole (each was one write of at most PIPE_BUF bytes) but a read may end in the
 * middle of one, so the tail is kept for the next read.  Output is batched: one write(2) per
 * pipe drain or per STORE_OUTBUF bytes, and fdatasync as --fsync says (Redis's appendfsync:
 * always after every write, everysec at most once a second, no never but at exit).
 * A write that fails (disk full, file too large) is diagnosed once; its records are dropped and
 * counted, the file is cut back to the last whole line, and the count is logged when writing
 * works again and at exit.  Dropping keeps sessions echoing; blocking them would stall every
 * client on the disk.
 */
#define _GNU_SOURCE
#include "store.h"
#include "io.h"
#include "log.h"
#include "record.h"
#include "sig.h"
#include "version.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
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
#define STORE_OUTBUF (512 * 1024)
#define STORE_TOMB UINT64_MAX
#define STORE_DRAIN_MAX ((size_t)1024 * 1024)
#define STORE_LOCK_WAIT_MS 120000
#define STORE_SHARED_WAIT_MS 5000
#define STORE_OUTRECS 16384
#define STORE_HELD_MAX ((size_t)4 * 1024 * 1024)
#define STORE_GAP_CONNS 256
#define STORE_RETRY_MS 200
/* While the pipe is quiet, the store sleeps this long after it becomes readable before it reads,
 * so that a burst of small frames costs one wakeup, not one each (on 2 cores, a context switch
 * per request).  Quiet: less than STORE_BUSY_BYTES read in the current or the last window of
 * STORE_WINDOW_MS (50 MB/s), so a sleep lets in at most about 100 KB, a tenth of the pipe.  A
 * stream is faster: it is never slept on (a sleep after each small drain cost streams 10-50%). */
#define STORE_COALESCE_NS 2000000L
#define STORE_WINDOW_MS 10LL
#define STORE_BUSY_BYTES ((size_t)512 * 1024)

/* Bytes recorded per open connection, to count for a close the master writes on behalf of a
 * killed session, and to close at exit any connection whose close never came. */
struct store_conn {
	uint64_t conn; /* 0: empty; STORE_TOMB: deleted */
	uint64_t bytes;
	int dropped;   /* its open record was dropped: so is its close */
	struct rec_carry carry; /* an incomplete UTF-8 character, for its next data record */
};

/* Where each record lies in the output buffer, so that a write that fails can be sorted: the
 * data is dropped (and counted in the gap), the open and close records are held. */
struct store_outrec {
	uint32_t off, len; /* the line in out; the payload's bytes */
	uint8_t type;
	uint64_t conn;
};

static struct {
	const struct store_args *args;
	int fd;
	unsigned char in[STORE_INBUF];
	size_t inlen;
	char out[STORE_OUTBUF];
	size_t outlen;
	struct store_outrec recs[STORE_OUTRECS];
	size_t nrecs;
	char *held;                   /* open and close lines kept while the file cannot be written */
	size_t heldlen, heldcap;
	uint64_t gap_conns[STORE_GAP_CONNS];
	struct rec_gap gap;           /* what was dropped since the file last took a write */
	int64_t retry_ms;             /* when a failing file is tried again */
	int block;                    /* --store-full block, until given up at shutdown */
	struct store_conn *tab;
	size_t cap, used, live;
	int dirty;
	int64_t last_sync_ms;
	int failing, fail_reported;
	int64_t fail_logged_ms;
	uint64_t dropped_writes;
	int corrupt_logged, dg_lost_logged;
	int64_t win_ms;               /* the current rate window's start */
	size_t win_bytes;             /* bytes read from the pipe in it */
	int busy;                     /* the last window had STORE_BUSY_BYTES */
} store;

/* The datagram being put together from its frames (store_dgram). */
static struct {
	uint64_t seq; /* its number; 0: none */
	int64_t ts_us;
	size_t total, got, peerlen;
	unsigned char peer[255];
	unsigned char data[REC_DGRAM_MAX];
} store_dg;

static volatile sig_atomic_t store_hup, store_orphaned, store_giveup;

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
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
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

static struct store_conn *
store_slot(uint64_t conn, int for_insert)
{
	size_t i = (size_t)(conn * 0x9e3779b97f4a7c15ull) & (store.cap - 1);
	struct store_conn *tomb = NULL;

	for (;; i = (i + 1) & (store.cap - 1)) {
		struct store_conn *e = &store.tab[i];

		if (e->conn == conn)
			return e;
		if (e->conn == STORE_TOMB && tomb == NULL)
			tomb = e;
		if (e->conn == 0)
			return for_insert ? (tomb ? tomb : e) : NULL;
	}
}

/* Rebuilds the table without tombstones, larger when it is more than a quarter full. */
static void
store_rehash(void)
{
	struct store_conn *old = store.tab;
	size_t oldcap = store.cap;

	store.cap = (store.live * 4 >= oldcap) ? oldcap * 2 : oldcap;
	store.tab = calloc(store.cap, sizeof(*store.tab));
	if (store.tab == NULL)
		fatal(EX_OSERR, "store table");
	store.used = store.live;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].conn != 0 && old[i].conn != STORE_TOMB)
			*store_slot(old[i].conn, 1) = old[i];
	free(old);
}

static void
store_conn_open(uint64_t conn)
{
	struct store_conn *e;

	if ((store.used + 1) * 2 > store.cap)
		store_rehash();
	e = store_slot(conn, 1);
	if (e->conn == conn)
		return;
	if (e->conn == 0)
		store.used++;
	e->conn = conn;
	e->bytes = 0;
	e->carry.n = 0;
	store.live++;
}

static void
store_conn_close(struct store_conn *e)
{
	e->conn = STORE_TOMB;
	store.live--;
}

static void store_sync(int force);

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

static int store_write_locked(const char *buf, size_t len);

/* Writes len bytes at the end of the file; on failure cuts off what got in, so the file always
 * ends with a whole line.  Returns 0 or -1. */
static int
store_write(const char *buf, size_t len)
{
	int r;

	if (!store.args->shared || len == 0)
		return store_write_locked(buf, len);
	if (store_shared_lock() < 0) {
		log_warn("cannot lock %s", store.args->path);
		return -1;
	}
	r = store_write_locked(buf, len);
	flock(store.fd, LOCK_UN);
	return r;
}

static int
store_write_locked(const char *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = write(store.fd, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (done > 0)
		store.dirty = 1;
	if (done == len)
		return 0;
	if (done > 0) {
		off_t end = lseek(store.fd, 0, SEEK_END);
		if (end >= (off_t)done && ftruncate(store.fd, end - (off_t)done) < 0)
			log_warn("cannot cut the partial line off %s", store.args->path);
	}
	return -1;
}

static void
store_gap_add(uint64_t conn, uint64_t bytes)
{
	size_t i;

	store.gap.dropped_bytes += bytes;
	store.gap.dropped_records++;
	for (i = 0; i < store.gap.nconns && store.gap_conns[i] != conn; i++)
		;
	if (i < store.gap.nconns)
		return;
	if (store.gap.nconns == STORE_GAP_CONNS)
		store.gap.truncated = 1;
	else
		store.gap_conns[store.gap.nconns++] = conn;
}

/* Makes room for len more bytes of held lines; 0, or -1 when memory is short. */
static int
store_held_room(size_t len)
{
	size_t cap = store.heldcap ? store.heldcap : 65536;
	char *p;

	if (store.heldlen + len <= store.heldcap)
		return 0;
	while (cap < store.heldlen + len)
		cap *= 2;
	p = realloc(store.held, cap);
	if (p == NULL)
		return -1;
	store.held = p;
	store.heldcap = cap;
	return 0;
}

/* Keeps an open or close line for when the file can be written again.  Close lines are always
 * kept (every open in the file gets its close); past STORE_HELD_MAX an open line is dropped
 * with its connection's close, and the gap names the connection. */
static void
store_hold(const struct store_outrec *o, const char *line, size_t len)
{
	struct store_conn *e = store_slot(o->conn, 0);

	if (o->type == REC_OPEN && store.heldlen + len > STORE_HELD_MAX) {
		if (e != NULL)
			e->dropped = 1;
		store_gap_add(o->conn, 0);
		return;
	}
	if (store_held_room(len) < 0) {
		store_gap_add(o->conn, 0);
		return;
	}
	memcpy(store.held + store.heldlen, line, len);
	store.heldlen += len;
}

/* The output buffer could not be written: its data is counted in the gap and dropped, its
 * open and close lines are held. */
static void
store_divert(void)
{
	for (size_t i = 0; i < store.nrecs; i++) {
		const struct store_outrec *o = &store.recs[i];
		size_t end = i + 1 < store.nrecs ? store.recs[i + 1].off : store.outlen;

		if (o->type == REC_DATA) {
			store_gap_add(o->conn, o->len);
		} else if (o->type == REC_DGRAM) {
			store.gap.dropped_bytes += o->len;
			store.gap.dropped_records++;
		} else
			store_hold(o, store.out + o->off, end - o->off);
	}
}

/* With the file failing: once every STORE_RETRY_MS (or now, when forced), tries to write the
 * gap record and the held lines.  Returns 1 when the file took them. */
static int
store_recover(int force)
{
	static char line[REC_GAP_LEN(STORE_GAP_CONNS)];
	int64_t now = io_now_ms();
	size_t n = 0;

	if (!force && now < store.retry_ms)
		return 0;
	store.retry_ms = now + STORE_RETRY_MS;
	if (store.args->format == STORE_JSONL && store.gap.dropped_records > 0) {
		store.gap.ts_us = rec_now_us();
		store.gap.conns = store.gap_conns;
		n = rec_format_gap(line, &store.gap);
	}
	/* One write: the gap record and the held lines go in together or not at all (with
	 * --inetd another process may append between two writes). */
	if (store_held_room(n) < 0)
		return 0;
	memmove(store.held + n, store.held, store.heldlen);
	memcpy(store.held, line, n);
	if (store_write(store.held, store.heldlen + n) < 0) {
		memmove(store.held, store.held + n, store.heldlen);
		return 0;
	}
	if (store.fail_reported)
		log_warnx("%s is writable again; a gap record says what was lost: %llu data bytes "
		    "in %llu records of %zu%s connections", store.args->path,
		    (unsigned long long)store.gap.dropped_bytes,
		    (unsigned long long)store.gap.dropped_records, store.gap.nconns,
		    store.gap.truncated ? "+" : "");
	store.fail_reported = 0;
	store.failing = 0;
	store.heldlen = 0;
	memset(&store.gap, 0, sizeof(store.gap));
	return 1;
}

/* --store-full block: while the file cannot be written, the output buffer is kept, nothing
 * more is read from the pipe, and sessions wait for room in it; the write is tried again every
 * STORE_RETRY_MS. */
static int
store_blocked(void)
{
	return store.block && store.failing;
}

static void
store_flush_block(void)
{
	int64_t now = io_now_ms();

	if (store.failing && now < store.retry_ms)
		return;
	if (store_write(store.out, store.outlen) < 0) {
		if (!store.failing)
			log_warn("cannot write %s; holding sessions back until it works again",
			    store.args->path);
		store.failing = 1;
		store.retry_ms = now + STORE_RETRY_MS;
		return;
	}
	if (store.failing)
		log_warnx("%s is writable again; sessions go on", store.args->path);
	store.failing = 0;
	store.outlen = 0;
	store.nrecs = 0;
	if (store.args->fsync == FSYNC_ALWAYS)
		store_sync(1);
}

/* The master's word at the end of a shutdown (SIGUSR1): a disk that is still full is not
 * waited for any longer; from now on what cannot be written is dropped and said, as in the
 * drop policy, so that the store can drain the pipe and exit. */
static void
store_give_up(void)
{
	store_giveup = 0;
	if (!store.block)
		return;
	store.block = 0;
	if (store.failing) {
		log_warnx("shutting down with %s still not writable: dropping what cannot be "
		    "written", store.args->path);
		store.fail_reported = 1;
		store_divert();
		store.outlen = 0;
		store.nrecs = 0;
	}
}

/* Writes the output buffer.  When the file cannot take it (disk full, file too large, I/O
 * error), records are dropped until it can: the data counted in a gap record, the open and
 * close lines held (store_divert).  The raw format has no records to say so: its bytes are
 * dropped and counted in the log. */
static void
store_flush(void)
{
	if (store.block) {
		store_flush_block();
		return;
	}
	if (store.failing && !store_recover(0)) {
		store_divert();
	} else if (store_write(store.out, store.outlen) < 0) {
		/* Diagnosed once, and again only a minute later: a nearly full disk takes some
		 * writes and refuses others, and must not flood the log. */
		if (io_now_ms() - store.fail_logged_ms >= 60000) {
			log_warn("cannot write %s; dropping records until it works again",
			    store.args->path);
			store.fail_logged_ms = io_now_ms();
			store.fail_reported = 1;
		}
		store.failing = 1;
		store.retry_ms = io_now_ms() + STORE_RETRY_MS;
		store.dropped_writes++;
		store_divert();
	}
	store.outlen = 0;
	store.nrecs = 0;
	if (store.args->fsync == FSYNC_ALWAYS)
		store_sync(1);
}

static void
store_sync(int force)
{
	int64_t now;

	if (!store.dirty)
		return;
	now = io_now_ms();
	if (!force && store.args->fsync != FSYNC_ALWAYS &&
	    (store.args->fsync == FSYNC_NO || now - store.last_sync_ms < 1000))
		return;
	if (fdatasync(store.fd) < 0 && errno != EINVAL)
		log_warn("fdatasync %s", store.args->path);
	store.dirty = 0;
	store.last_sync_ms = now;
}

/* Keeps the per-connection count, and drops the close of a connection whose open was dropped
 * (returns 0 for a record to leave out). */
static int
store_track(struct rec *r)
{
	struct store_conn *e = store_slot(r->conn, 0);
	int keep = 1;

	if (r->type == REC_OPEN)
		store_conn_open(r->conn);
	else if (r->type == REC_DATA && e != NULL)
		e->bytes += r->len;
	else if (r->type == REC_CLOSE && e != NULL) {
		if (r->flags & REC_F_BEHALF)
			r->bytes = e->bytes;
		if (e->dropped) {
			store_gap_add(r->conn, 0);
			keep = 0;
		}
		store_conn_close(e);
	}
	return keep;
}

/* Formats a whole datagram, which may need more room than one frame's record. */
static void
store_emit_dgram(const struct rec *r)
{
	if (store.outlen + REC_DGRAM_JSON_LEN(r->len) > sizeof(store.out) ||
	    store.nrecs == STORE_OUTRECS)
		store_flush();
	store.recs[store.nrecs++] = (struct store_outrec){ .off = (uint32_t)store.outlen,
	    .len = (uint32_t)r->len, .type = REC_DGRAM };
	if (store.args->format == STORE_RAW) {
		memcpy(store.out + store.outlen, r->data, r->len);
		store.outlen += r->len;
		return;
	}
	store.outlen += rec_format_json(store.out + store.outlen, r);
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
		    .peerlen = store_dg.peerlen, .data = store_dg.data, .len = store_dg.total };

		store_dg.seq = 0;
		store_emit_dgram(&d);
	}
}

static void
store_emit(struct rec *r)
{
	struct store_outrec *o;
	struct store_conn *e = NULL;
	struct rec_carry carry = { .n = 0 };
	size_t n;

	if (r->type == REC_DGRAM || r->type == REC_DGRAM_MORE) {
		store_dgram(r);
		return;
	}
	/* Taken before store_track, which forgets a connection at its close. */
	if (r->type == REC_DATA || r->type == REC_CLOSE)
		e = store_slot(r->conn, 0);
	if (e != NULL)
		carry = e->carry;
	if (!store_track(r))
		return;
	if (store.outlen + REC_JSON_MAX > sizeof(store.out) || store.nrecs == STORE_OUTRECS)
		store_flush();
	o = &store.recs[store.nrecs++];
	*o = (struct store_outrec){ .off = (uint32_t)store.outlen, .len = (uint32_t)r->len,
	    .type = (uint8_t)r->type, .conn = r->conn };
	if (store.args->format == STORE_RAW) {
		if (r->type == REC_DATA) {
			memcpy(store.out + store.outlen, r->data, r->len);
			store.outlen += r->len;
		}
		return;
	}
	n = rec_format_line(store.out + store.outlen, r, e != NULL ? &carry : NULL);
	if (e != NULL && r->type == REC_DATA) {
		/* The line holds the bytes carried in, less those carried out. */
		o->len = (uint32_t)(r->len + e->carry.n - carry.n);
		e->carry = carry;
	}
	if (n == 0)
		store.nrecs--;
	store.outlen += n;
}

/* A start or stop line, kept like an open or close line when the file cannot take it. */
static void
store_emit_life(const char *line, size_t len)
{
	if (store.args->format == STORE_RAW)
		return;
	if (store.outlen + len > sizeof(store.out) || store.nrecs == STORE_OUTRECS)
		store_flush();
	store.recs[store.nrecs++] = (struct store_outrec){ .off = (uint32_t)store.outlen,
	    .type = REC_CLOSE };
	memcpy(store.out + store.outlen, line, len);
	store.outlen += len;
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
	store_emit_life(line, rec_format_start(line, &st));
}

/* Formats every whole frame in the input buffer and keeps the incomplete tail. */
static void
store_consume(void)
{
	size_t off = 0;
	struct rec r;
	ssize_t n;

	while (off < store.inlen) {
		/* Blocking: a full output buffer must be written before anything more is taken
		 * (room for the largest record: a whole datagram). */
		if (store.block && (store.outlen + REC_DGRAM_JSON_LEN(REC_DGRAM_MAX) >
		    sizeof(store.out) ||
		    store.nrecs == STORE_OUTRECS)) {
			store_flush();
			if (store_blocked())
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
		store_emit(&r);
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

	if (store_blocked() || ioctl(pipe_rd, FIONREAD, &avail) < 0 || avail <= 0)
		return;
	for (want = (size_t)avail; want > 0 && !store_blocked(); want -= (size_t)n) {
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
	log_info("reopened %s", store.args->path);
}

enum drain { DRAIN_EMPTY, DRAIN_MORE, DRAIN_EOF, DRAIN_BLOCKED };

/* Reads until the pipe is empty, every writer has closed it, or STORE_DRAIN_MAX bytes have come:
 * under a load that never lets the pipe empty, the loop still gets to fsync and to SIGHUP. */
static enum drain
store_drain(int pipe_rd)
{
	size_t got = 0;
	ssize_t n;

	while (got < STORE_DRAIN_MAX) {
		if (store_blocked())
			return DRAIN_BLOCKED;
		n = io_read(pipe_rd, store.in + store.inlen, sizeof(store.in) - store.inlen);
		if (n == 0)
			return DRAIN_EOF;
		if (n < 0) {
			if (errno != EAGAIN)
				log_warn("read from the store pipe");
			return DRAIN_EMPTY;
		}
		store.inlen += (size_t)n;
		got += (size_t)n;
		store.win_bytes += (size_t)n;
		store_consume();
	}
	return DRAIN_MORE;
}

/* At exit: a connection opened but never closed lost its session and its master. */
static void
store_close_lost(void)
{
	unsigned char buf[8 + REC_REASON_MAX];
	struct rec r;

	for (size_t i = 0; i < store.cap; i++) {
		if (store.tab[i].conn == 0 || store.tab[i].conn == STORE_TOMB)
			continue;
		memset(&r, 0, sizeof(r));
		r.type = REC_CLOSE;
		r.conn = store.tab[i].conn;
		r.ts_us = rec_now_us();
		r.len = rec_close_payload(buf, 0, "lost") - 8;
		r.data = buf + 8;
		r.flags = REC_F_BEHALF;
		store_emit(&r);
	}
}

static void
store_finish(void)
{
	if (store.live > 0) {
		log_warnx("%zu connections had no close record; closing them as lost", store.live);
		store_close_lost();
	}
	/* A clean end: every writer closed the pipe while the master lived (or --inetd's session
	 * ended).  A store whose master died writes no stop: that life did not end cleanly. */
	if (store.args->shared || store_orphaned == 0) {
		char line[REC_START_LEN];

		store_emit_life(line, rec_format_stop(line, rec_now_us()));
	}
	store_flush();
	if (store.failing)
		store_recover(1);
	store_sync(1);
	close(store.fd);
	if (store.failing) {
		/* The file never took them: the gap is said here, and in the exit status. */
		log_warnx("%s could not be written: lost %llu data bytes in %llu records of "
		    "%zu%s connections, and %zu bytes of open and close records",
		    store.args->path, (unsigned long long)store.gap.dropped_bytes,
		    (unsigned long long)store.gap.dropped_records, store.gap.nconns,
		    store.gap.truncated ? "+" : "", store.heldlen);
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
	static const int blocked[] = { SIGHUP, SIGUSR1, SIGUSR2, 0 };

	store.args = a;
	store.fd = a->filefd >= 0 ? a->filefd : store_open(a->path);
	if (store.fd < 0)
		fatal(EX_CANTCREAT, "cannot open %s", a->path);
	if (!a->shared)
		store_take_lock(store.fd, a->path);
	/* The master's first store starts the life; one restarted after a crash (filefd -1)
	 * goes on with it. */
	if (a->filefd >= 0)
		store_start_record(a);
	store.cap = 1024;
	store.tab = calloc(store.cap, sizeof(*store.tab));
	if (store.tab == NULL)
		fatal(EX_OSERR, "store table");
	store.last_sync_ms = io_now_ms();
	store.fail_logged_ms = store.last_sync_ms - 60000;
	sig_default(SIGCHLD);
	/* The store outlives a TERM or INT sent to the whole process group: it ends when the
	 * pipe's last writer closes, so nothing in flight is lost. */
	sig_ignore(SIGTERM);
	sig_ignore(SIGINT);
	sig_handle(SIGUSR1, store_sigusr1, 0);
	store.block = a->full == STORE_FULL_BLOCK;
	/* Past a file size limit, write(2) should fail with EFBIG and be handled like a full
	 * disk, not kill the store. */
	sig_ignore(SIGXFSZ);
	sig_handle(SIGHUP, store_sighup, 0);
	sig_handle(SIGUSR2, store_sigusr2, 0);
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

/* The pipe has just become readable after the store found it empty: unless the pipe is busy
 * (store_pipe_busy), every writer has gone (shutdown), a signal is waiting (a HUP's
 * rotation) or each write is fsynced, sleep STORE_COALESCE_NS first, so that what sessions write
 * meanwhile is read in the same drain.  A signal ends the sleep at once: ppoll lets it in. */
static void
store_coalesce(const struct pollfd *pfd, const sigset_t *waitmask)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = STORE_COALESCE_NS };

	if (!(pfd->revents & POLLIN) || (pfd->revents & (POLLHUP | POLLERR)) ||
	    store_pipe_busy() || store.args->fsync == FSYNC_ALWAYS ||
	    store_hup || store_giveup || store_blocked())
		return;
	if (ppoll(NULL, 0, &ts, waitmask) == 0)
		return;
	if (errno != EINTR)
		fatal(EX_OSERR, "ppoll");
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
	sigprocmask(SIG_SETMASK, NULL, &waitmask);
	sigdelset(&waitmask, SIGHUP);
	sigdelset(&waitmask, SIGUSR2);
	sigdelset(&waitmask, SIGUSR1);
	for (;;) {
		if (store_giveup)
			store_give_up();
		/* What a blocked store left unread in its input, once it can write again. */
		if (!store_blocked() && store.inlen > 0)
			store_consume();
		if (store_orphaned == 1) {
			log_warnx("the master died; writing what its sessions send until the last "
			    "one ends");
			store_orphaned = 2;
		}
		if (store_hup)
			store_reopen(a->pipe_rd);
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
		} else if (store.failing) {
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
		if (ppoll(&pfd, store_blocked() ? 0 : 1, tmo, &waitmask) < 0) {
			if (errno != EINTR)
				fatal(EX_OSERR, "ppoll");
		} else {
			sig_deliver_pending(&waitmask);
			store_coalesce(&pfd, &waitmask);
		}
	}
}
