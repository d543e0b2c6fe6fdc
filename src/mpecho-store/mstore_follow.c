/*
 * mstore_follow.c - mpecho-store follow: records as they are written, like tail -F, or with a
 * CONN the bytes of that connection, ending at its close.
 *
 * The file is read to its end every --poll milliseconds.  At the end, the path is looked at
 * again: when it names another file (the store was rotated: mv, then SIGHUP, and mpechod
 * opened a new file at the path), the old file is read to its end first, and the new one is
 * read from its start.  The switch waits for the new file's first byte: the new file may be
 * there, empty, before the old one has its last lines (the master of mpechod creates it at the
 * SIGHUP, and logrotate's "create" before it; the store then drains what sessions wrote before
 * the signal into the old file), but mpechod writes nothing to the new file until the old one is
 * done.  A file that shrank was truncated and is read again from its start.  INT and TERM
 * end it, exit 0;
 * they are blocked but in the wait, so one arriving in the middle of a read is not lost.
 *
 * A CONN is followed in whatever server life it turns up in first; "L.N" asks for life L, the
 * lives numbered in the order follow sees their first record (with --from-start, list's numbers
 * for a store of one file).  Once found, only that life's records of the connection count, so
 * another life's connection with the same number (a restart, another --inetd process writing
 * to the same file) is never mixed in; the life's stop ends following too.
 */
#define _GNU_SOURCE
#include "mstore.h"
#include "record.h"
#include "sig.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

struct mfollow {
	const struct mopts *o;
	const char *path;
	int fd;
	dev_t dev;
	ino_t ino;
	off_t off;
	char *buf;
	size_t len, cap;
	unsigned long line;
	int skipping;          /* in the rest of an overlong line */
	struct mrec_ctx ctx;
	char (*lives)[REC_LIFE_LEN]; /* the life ids seen, in order: life L is lives[L - 1] */
	unsigned nlives, caplives;
	unsigned life;         /* the life of the connection followed (0: format 1), */
	int found;             /* once found */
};

static volatile sig_atomic_t mfollow_stop;

static void
mfollow_signal(int signo)
{
	(void)signo;
	mfollow_stop = 1;
}

static int
mfollow_open(struct mfollow *f, int at_end)
{
	struct stat st;

	f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0 || fstat(f->fd, &st) < 0)
		return -1;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->off = at_end ? st.st_size : 0;
	f->len = 0;
	f->line = 0;
	f->skipping = 0;
	return 0;
}

/* The number of a format 2 record's life (0 for format 1, and when out of memory). */
static unsigned
mfollow_life(struct mfollow *f, const struct mrec *r)
{
	unsigned i;

	if (r->format != 2)
		return 0;
	for (i = f->nlives; i > 0; i--)
		if (memcmp(f->lives[i - 1], r->life.p, REC_LIFE_LEN) == 0)
			return i;
	if (f->nlives == f->caplives) {
		unsigned cap = f->caplives ? f->caplives * 2 : 16;
		char (*l)[REC_LIFE_LEN] = realloc(f->lives, cap * sizeof(*l));
		if (l == NULL)
			return 0;
		f->lives = l;
		f->caplives = cap;
	}
	memcpy(f->lives[f->nlives++], r->life.p, REC_LIFE_LEN);
	return f->nlives;
}

/* One whole line: printed, or with a CONN its data written; returns 1 at that conn's close. */
static int
mfollow_line(struct mfollow *f, const char *line, size_t len)
{
	const struct mfilt_conn *want = &f->o->filt.conns[0];
	char err[MREC_ERRLEN];
	struct mrec r;
	unsigned life;
	int rc;

	f->line++;
	rc = mrec_decode(&f->ctx, line, len, &r, err, sizeof(err));
	if (rc < 0) {
		if (!f->o->quiet)
			fprintf(stderr, "%s: %s:%lu: %s (skipped)\n", MSTORE_PROG, f->path, f->line,
			    rc == -2 ? "out of memory" : err);
		return 0;
	}
	if (f->o->filt.nconns == 0) {
		fwrite(line, 1, len, stdout);
		putchar('\n');
		return 0;
	}
	life = mfollow_life(f, &r);
	if (f->found && life == f->life && r.ev == MREC_STOP)
		return 1;
	if (r.conn == 0 || r.conn != want->conn || (want->life > 0 && life != want->life) ||
	    (f->found && life != f->life))
		return 0;
	f->found = 1;
	f->life = life;
	if (r.ev == MREC_DATA)
		fwrite(r.data.p, 1, r.data.len, stdout);
	return r.ev == MREC_CLOSE;
}

/* Whole lines of the buffer; keeps the partial one.  Returns 1 when following ends. */
static int
mfollow_lines(struct mfollow *f)
{
	size_t start = 0;
	char *nl;
	int done = 0;

	while (!done && (nl = memchr(f->buf + start, '\n', f->len - start)) != NULL) {
		size_t n = (size_t)(nl - (f->buf + start));

		if (!f->skipping)
			done = mfollow_line(f, f->buf + start, n);
		f->skipping = 0;
		start += n + 1;
	}
	memmove(f->buf, f->buf + start, f->len - start);
	f->len -= start;
	if (f->len > MSRC_LINE_MAX) {
		fprintf(stderr, "%s: %s: a line longer than %u bytes (skipped)\n", MSTORE_PROG,
		    f->path, MSRC_LINE_MAX);
		f->len = 0;
		f->skipping = 1;
	}
	return done;
}

/* Reads the file to its end.  Returns 1 when following ends, 0, or -1 on a read error. */
static int
mfollow_read(struct mfollow *f)
{
	ssize_t n;

	for (;;) {
		if (f->cap - f->len < 65536) {
			size_t cap = f->cap ? f->cap * 2 : 1 << 20;
			char *b = realloc(f->buf, cap);
			if (b == NULL)
				return -1;
			f->buf = b;
			f->cap = cap;
		}
		n = pread(f->fd, f->buf + f->len, f->cap - f->len, f->off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return (int)n;
		f->off += n;
		f->len += (size_t)n;
		if (mfollow_lines(f))
			return 1;
	}
}

/* At the end of the file: a rotation or a truncation starts a new file.  Returns 1 when
 * following ends, 0, or -1 on an error. */
static int
mfollow_reopen(struct mfollow *f)
{
	struct stat st;
	int rc;

	if (stat(f->path, &st) < 0)
		return 0; /* moved away, not yet replaced */
	if (st.st_dev == f->dev && st.st_ino == f->ino) {
		if (st.st_size < f->off) {
			fprintf(stderr, "%s: %s was truncated; reading it from its start\n",
			    MSTORE_PROG, f->path);
			f->off = 0;
			f->len = 0;
		}
		return 0;
	}
	if (st.st_size == 0)
		return 0; /* not yet written: the old file may still be */
	/* The old file is read to its end again now, after the new one was seen written to: the
	 * old one was written until then, which may have been after the read that found the end
	 * and before the stat above. */
	if ((rc = mfollow_read(f)) != 0)
		return rc;
	if (f->len > 0 && !f->o->quiet)
		fprintf(stderr, "%s: %s: the last line of the rotated file was cut short "
		    "(skipped)\n", MSTORE_PROG, f->path);
	close(f->fd);
	return mfollow_open(f, 0);
}

static int
mfollow_loop(struct mfollow *f, const sigset_t *waitmask)
{
	struct timespec ts = { f->o->poll_ms / 1000, (long)(f->o->poll_ms % 1000) * 1000000 };
	int rc;

	while (!mfollow_stop) {
		rc = mfollow_read(f);
		if (rc == 0 && (rc = mfollow_reopen(f)) == 0)
			rc = mfollow_read(f);
		if (fflush(stdout) != 0)
			return mout_finish(0);
		if (rc == 1)
			return 0;
		if (rc < 0) {
			fprintf(stderr, "%s: %s: %s\n", MSTORE_PROG, f->path, strerror(errno));
			return EX_IOERR;
		}
		ppoll(NULL, 0, &ts, waitmask);
	}
	return 0;
}

int
mfollow_run(const struct mopts *o)
{
	static const int sigs[] = { SIGINT, SIGTERM, 0 };
	struct mfollow f = { .o = o, .path = o->files[0], .fd = -1 };
	sigset_t waitmask;
	int status;

	if (sig_handle(SIGINT, mfollow_signal, 0) < 0 || sig_handle(SIGTERM, mfollow_signal, 0) < 0 ||
	    sig_block(sigs, &waitmask) < 0) {
		fprintf(stderr, "%s: cannot set up signals: %s\n", MSTORE_PROG, strerror(errno));
		return EX_OSERR;
	}
	if (mfollow_open(&f, !o->from_start) < 0) {
		fprintf(stderr, "%s: %s: %s\n", MSTORE_PROG, f.path, strerror(errno));
		return errno == ENOENT ? EX_NOINPUT : EX_IOERR;
	}
	status = mfollow_loop(&f, &waitmask);
	close(f.fd);
	free(f.buf);
	free(f.lives);
	mrec_free(&f.ctx);
	return mout_finish(status);
}
