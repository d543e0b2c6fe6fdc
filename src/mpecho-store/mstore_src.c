/*
 * mstore_src.c - reading store files line by line, instances, server lives, and the merge by
 * time (see mstore_src.h).
 */
#define _GNU_SOURCE
#include "mstore_src.h"
#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include <zlib.h>

#define MSRC_CHUNK (1u << 20)

struct msrc_inst {
	const char **paths;    /* this instance's files, oldest first */
	size_t npaths, cur;    /* cur: the file being read, or npaths when done */
	gzFile gz;
	unsigned long line;    /* of the last line returned */
	char *buf;
	size_t cap, start, end;
	int eof, skipping, done, life_ended;
	int cut_said;          /* the file's gzip data was said to end early */
	struct mrec_ctx ctx;
	unsigned life;
	uint64_t top;          /* the highest conn seen in this life; 0: none yet */
	int seen_one, joined;  /* conn 1 seen; the life's first record read was not an open */
	struct mtab open;      /* the connections opened in this life and not closed */
	struct mscan_item next; /* read ahead for the merge; kind MSCAN_EOF when none */
	int have;
	unsigned nextnum;      /* the next life number to give */
	unsigned pending;      /* the life of the record that waits behind a life's end */
	unsigned end_after;    /* a life that ends after the record handed out (its stop) */
	int at_end;            /* every file read: the lives still open end, one by one */
	int f1_any;            /* the format 1 life (number life) has had a record */
	struct mlife2 *lives;  /* format 2: the lives open, by id */
	size_t nlives, lifecap;
};

/* A format 2 life: its id (from its lines) and its number here. */
struct mlife2 {
	char id[REC_LIFE_LEN];
	unsigned num;
};

long
msrc_rotation(const char *path, size_t *stemlen)
{
	size_t n = strlen(path), i;
	long num = -1;

	if (n > 3 && strcmp(path + n - 3, ".gz") == 0)
		n -= 3;
	for (i = n; i > 0 && path[i - 1] >= '0' && path[i - 1] <= '9'; i--)
		;
	if (i < n && i > 1 && path[i - 1] == '.' && n - i < 9) {
		num = strtol(path + i, NULL, 10);
		n = i - 1;
	}
	*stemlen = n;
	return num;
}

static int
msrc_same_stem(const char *a, const char *b)
{
	size_t na, nb;

	msrc_rotation(a, &na);
	msrc_rotation(b, &nb);
	return strcmp(a, "-") != 0 && strcmp(b, "-") != 0 && na == nb && memcmp(a, b, na) == 0;
}

/* Oldest first: the highest rotation number first, the live file (no number) last. */
static int
msrc_older(const void *a, const void *b)
{
	size_t n;
	long ra = msrc_rotation(*(const char *const *)a, &n);
	long rb = msrc_rotation(*(const char *const *)b, &n);

	ra = ra < 0 ? -1 : ra;
	rb = rb < 0 ? -1 : rb;
	return (rb > ra) - (rb < ra);
}

static void
msrc_inst_init(struct msrc_inst *in, const char **paths, size_t n)
{
	memset(in, 0, sizeof(*in));
	in->paths = paths;
	in->npaths = n;
	in->life = 1;
	in->nextnum = 2;
	in->cur = (size_t)-1; /* msrc_open_next moves to the first */
}

static int
msrc_add_inst(struct mscan *s, const char **paths, size_t n)
{
	struct msrc_inst *ni = realloc(s->inst, (s->ninst + 1) * sizeof(*ni));

	if (ni == NULL)
		return -1;
	s->inst = ni;
	msrc_inst_init(&ni[s->ninst++], paths, n);
	return 0;
}

int
mscan_open(struct mscan *s, char *const *paths, size_t npaths, int one_instance)
{
	const char **all = malloc((npaths + 1) * sizeof(*all));
	char *taken = calloc(npaths + 1, 1);
	size_t k = 0;

	memset(s, 0, sizeof(*s));
	s->order = all;
	if (all == NULL || taken == NULL) {
		free(taken);
		return -1;
	}
	for (size_t i = 0; i < npaths; i++) {
		size_t first = k;

		if (taken[i])
			continue;
		for (size_t j = i; j < npaths; j++)
			if (j == i || (!taken[j] && (one_instance || msrc_same_stem(paths[i], paths[j])))) {
				taken[j] = 1;
				all[k++] = paths[j];
			}
		if (!one_instance)
			qsort(all + first, k - first, sizeof(*all), msrc_older);
		if (msrc_add_inst(s, all + first, k - first) < 0)
			break;
	}
	free(taken);
	return s->ninst == 0 && npaths > 0 ? -1 : 0;
}

/* Fills the buffer; returns bytes read, 0 at the end, -1 on error. */
static int
msrc_fill(struct msrc_inst *in)
{
	int n;

	if (in->start > 0 && in->start == in->end) {
		in->start = in->end = 0;
	} else if (in->start > 0 && in->cap - in->end < MSRC_CHUNK / 2) {
		memmove(in->buf, in->buf + in->start, in->end - in->start);
		in->end -= in->start;
		in->start = 0;
	}
	if (in->cap - in->end < MSRC_CHUNK / 2 && in->cap < MSRC_LINE_MAX + MSRC_CHUNK) {
		size_t cap = in->cap == 0 ? MSRC_CHUNK : in->cap * 2;
		char *b = realloc(in->buf, cap);
		if (b == NULL)
			return -1;
		in->buf = b;
		in->cap = cap;
	}
	n = gzread(in->gz, in->buf + in->end, (unsigned)(in->cap - in->end));
	if (n > 0)
		in->end += (size_t)n;
	return n;
}

static void
msrc_error(struct msrc_inst *in, struct mscan_item *it, int status, const char *what)
{
	it->kind = MSCAN_ERR;
	it->status = status;
	it->path = in->paths[in->cur];
	snprintf(it->err, sizeof(it->err), "%s", what);
}

static void
msrc_read_error(struct msrc_inst *in, struct mscan_item *it)
{
	int zerr;
	const char *msg = gzerror(in->gz, &zerr);

	msrc_error(in, it, EX_IOERR, zerr == Z_ERRNO ? strerror(errno) : msg);
}

/* Whether the file's first line looks like a store record, which a raw store's bytes do not. */
static int
msrc_is_jsonl(struct msrc_inst *in)
{
	char err[MREC_ERRLEN];
	struct mrec r;
	const char *b = in->buf + in->start, *nl;
	size_t n = in->end - in->start;

	if (n == 0)
		return 1;
	if (b[0] != '{')
		return 0;
	nl = memchr(b, '\n', n);
	if (nl == NULL)
		return n < MSRC_CHUNK && n > 1 && b[1] == '"';
	if (mrec_decode(&in->ctx, b, (size_t)(nl - b), &r, err, sizeof(err)) == 0)
		return 1;
	/* A first line cut short: the second decides. */
	b = nl + 1;
	n = in->end - (size_t)(b - in->buf);
	nl = memchr(b, '\n', n);
	return nl != NULL && mrec_decode(&in->ctx, b, (size_t)(nl - b), &r, err, sizeof(err)) == 0;
}

static int
msrc_open_next(struct msrc_inst *in, struct mscan_item *it)
{
	const char *path;
	int fd;

	if (in->gz != NULL)
		gzclose(in->gz);
	in->gz = NULL;
	in->start = in->end = 0;
	in->line = 0;
	in->eof = in->skipping = in->cut_said = 0;
	if (++in->cur >= in->npaths)
		return 0;
	path = in->paths[in->cur];
	fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (in->gz = gzdopen(fd, "rb")) == NULL) {
		msrc_error(in, it, errno == ENOENT ? EX_NOINPUT : EX_IOERR, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	gzbuffer(in->gz, 256 * 1024);
	if (msrc_fill(in) < 0) {
		msrc_read_error(in, it);
		return -1;
	}
	if (!msrc_is_jsonl(in)) {
		msrc_error(in, it, EX_DATAERR, "a raw store (--store-format raw: the echoed bytes "
		    "only, no records); read it as it is, with cat");
		return -1;
	}
	return 1;
}

/* The next line of the instance's current file: 1, 0 at its end, -1 on a read error.  A last
 * line without its newline comes back with *cut set. */
static int
msrc_line(struct msrc_inst *in, const char **line, size_t *len, int *cut)
{
	for (;;) {
		char *b = in->buf + in->start;
		char *nl = in->end > in->start ? memchr(b, '\n', in->end - in->start) : NULL;

		*cut = 0;
		if (nl != NULL) {
			*line = b;
			*len = (size_t)(nl - b);
			in->start += *len + 1;
			in->line++;
			return 1;
		}
		if (in->eof || in->end - in->start > MSRC_LINE_MAX) {
			if (in->end == in->start)
				return 0;
			*line = b;
			*len = in->end - in->start;
			*cut = 1 + !in->eof;
			in->start = in->end;
			in->line++;
			return 1;
		}
		int n = msrc_fill(in);
		if (n < 0)
			return -1;
		in->eof = n == 0;
	}
}

/* Whether r starts a new life (see mstore_src.h); keeps the life's open connections. */
static int
msrc_new_life(struct msrc_inst *in, const struct mrec *r)
{
	struct mconn *c;
	int fresh = 0;

	if (r->ev == MREC_GAP) {
		for (size_t i = 0; i < r->nconns; i++)
			if ((c = mtab_find(&in->open, 1, 1, r->conns[i])) != NULL)
				mtab_del(&in->open, c);
		return 0;
	}
	if (r->conn == 0) /* a datagram */
		return 0;
	if (r->ev == MREC_OPEN && r->conn == 1 && in->top > 0 && (in->seen_one || in->joined ||
	    (in->open.live == 0 && in->top > 64))) {
		mtab_free(&in->open);
		in->top = 0;
		in->seen_one = 0;
		fresh = 1;
	}
	if (in->top == 0)
		in->joined = r->ev != MREC_OPEN;
	in->top = r->conn > in->top ? r->conn : in->top;
	in->seen_one |= r->conn == 1;
	if (r->ev == MREC_OPEN && mtab_add(&in->open, 1, 1, r->conn) == NULL)
		return -1;
	if (r->ev == MREC_CLOSE && (c = mtab_find(&in->open, 1, 1, r->conn)) != NULL)
		mtab_del(&in->open, c);
	return fresh;
}

/* Format 2: a record's life is the one its id names, numbered when first seen; a first record
 * of a new life ends the format 1 life in progress (a rotation's older files).  Returns 1 when
 * the format 1 life ends first, 0, or -1 when out of memory; *num is the record's life. */
static int
msrc_life2(struct msrc_inst *in, const struct mrec *r, unsigned *num)
{
	size_t i;
	int ended = 0;

	for (i = in->nlives; i > 0; i--)
		if (memcmp(in->lives[i - 1].id, r->life.p, REC_LIFE_LEN) == 0)
			break;
	if (i == 0) {
		if (in->nlives == in->lifecap) {
			size_t cap = in->lifecap ? in->lifecap * 2 : 8;
			struct mlife2 *l = realloc(in->lives, cap * sizeof(*l));
			if (l == NULL)
				return -1;
			in->lives = l;
			in->lifecap = cap;
		}
		memcpy(in->lives[in->nlives].id, r->life.p, REC_LIFE_LEN);
		if (in->f1_any) {
			ended = 1;
			mtab_free(&in->open);
			in->top = 0;
			in->seen_one = 0;
			in->f1_any = 0;
			in->lives[in->nlives].num = in->nextnum++;
		} else {
			/* The format 1 life is empty: this one takes its number. */
			in->lives[in->nlives].num = in->life;
			in->life = in->nextnum++;
		}
		i = ++in->nlives;
	}
	*num = in->lives[i - 1].num;
	if (r->ev == MREC_STOP) {
		in->end_after = *num;
		in->lives[i - 1] = in->lives[--in->nlives];
	}
	return ended;
}

static void
msrc_decode(struct msrc_inst *in, struct mscan_item *it, int cut)
{
	char err[MREC_ERRLEN];
	int rc;

	if (cut == 2) {
		it->kind = MSCAN_BAD;
		snprintf(it->err, sizeof(it->err), "line longer than %u bytes", MSRC_LINE_MAX);
		in->skipping = 1;
		return;
	}
	rc = mrec_decode(&in->ctx, it->text, it->len, &it->rec, err, sizeof(err));
	if (rc == -2) {
		msrc_error(in, it, EX_OSERR, "out of memory");
		return;
	}
	if (rc < 0 || cut) {
		it->kind = MSCAN_BAD;
		snprintf(it->err, sizeof(it->err), "%s%s", cut ? "last line cut short: " : "",
		    rc < 0 ? err : "no newline at the end");
		return;
	}
	it->kind = MSCAN_REC;
}

/* At the end of a file: a gzip stream that ends early (a file cut short, or still being
 * compressed) is one more bad line, said once. */
static int
msrc_cut_gzip(struct msrc_inst *in, struct mscan_item *it)
{
	int zerr;

	gzerror(in->gz, &zerr);
	if (zerr != Z_BUF_ERROR || in->cut_said)
		return 0;
	in->cut_said = 1;
	it->kind = MSCAN_BAD;
	it->path = in->paths[in->cur];
	it->line = in->line + 1;
	it->text = "";
	it->len = 0;
	it->life = in->life;
	snprintf(it->err, sizeof(it->err), "the gzip data ends early: the file is cut short");
	return 1;
}

/* Reads the instance's next item into in->next. */
static void
msrc_advance(struct msrc_inst *in)
{
	struct mscan_item *it = &in->next;
	unsigned num;
	int cut, rc;

	in->have = 1;
	for (;;) {
		if (in->done) {
			it->kind = MSCAN_EOF;
			return;
		}
		if (in->gz == NULL) {
			rc = msrc_open_next(in, it);
			if (rc < 0)
				return;
			if (rc == 0)
				in->at_end = 1;
		}
		if (in->at_end) {
			/* Every life still open ends: format 2's (no stop read), then format 1's
			 * if it had a record (or if nothing had one at all). */
			it->kind = MSCAN_LIFE_END;
			if (in->nlives > 0) {
				it->life = in->lives[--in->nlives].num;
				return;
			}
			in->done = 1;
			it->life = in->life;
			if (!in->f1_any && in->nextnum > 2)
				it->kind = MSCAN_EOF;
			return;
		}
		rc = msrc_line(in, &it->text, &it->len, &cut);
		if (rc < 0) {
			msrc_read_error(in, it);
			return;
		}
		if (rc == 0 && msrc_cut_gzip(in, it))
			return;
		if (rc == 0) {
			gzclose(in->gz);
			in->gz = NULL;
			continue;
		}
		if (in->skipping) {
			/* The rest of an overlong line. */
			in->skipping = cut == 2;
			continue;
		}
		it->path = in->paths[in->cur];
		it->line = in->line;
		msrc_decode(in, it, cut);
		num = 0;
		if (it->kind == MSCAN_REC && it->rec.format == 2)
			rc = msrc_life2(in, &it->rec, &num);
		else if (it->kind == MSCAN_REC)
			rc = msrc_new_life(in, &it->rec);
		else
			rc = 0;
		if (rc < 0) {
			msrc_error(in, it, EX_OSERR, "out of memory");
		} else if (rc > 0) {
			/* Hand out the end of the format 1 life first, then this record
			 * (life_ended). */
			it->kind = MSCAN_LIFE_END;
			it->life = in->life;
			in->life = in->nextnum++;
			in->pending = num != 0 ? num : in->life;
			in->life_ended = 1;
		} else {
			it->life = num != 0 ? num : in->life;
		}
		if (rc >= 0 && num == 0)
			in->f1_any |= it->kind == MSCAN_REC || rc > 0;
		return;
	}
}

/* The instance whose next item goes first: anything but a record at once, else the lowest ts
 * (the first instance on a tie). */
static struct msrc_inst *
msrc_pick(struct mscan *s)
{
	struct msrc_inst *best = NULL;

	for (unsigned i = 0; i < s->ninst; i++) {
		struct msrc_inst *in = &s->inst[i];

		if (!in->have)
			msrc_advance(in);
		if (in->next.kind == MSCAN_EOF)
			continue;
		if (in->next.kind != MSCAN_REC)
			return in;
		if (best == NULL || in->next.rec.ts_us < best->next.rec.ts_us)
			best = in;
	}
	return best;
}

void
mscan_next(struct mscan *s, struct mscan_item *it)
{
	struct msrc_inst *in = msrc_pick(s);

	if (in == NULL) {
		it->kind = MSCAN_EOF;
		return;
	}
	*it = in->next;
	it->inst = (unsigned)(in - s->inst) + 1;
	if (in->life_ended && it->kind == MSCAN_LIFE_END) {
		/* The record that started the new life is still to come. */
		in->life_ended = 0;
		in->next.kind = MSCAN_REC;
		in->next.life = in->pending;
		return;
	}
	if (it->kind == MSCAN_ERR)
		in->done = 1;
	in->have = 0;
	if (it->kind == MSCAN_REC && in->end_after != 0) {
		/* A stop record: its life ends right after it. */
		in->next.kind = MSCAN_LIFE_END;
		in->next.life = in->end_after;
		in->end_after = 0;
		in->have = 1;
	}
	if (it->kind == MSCAN_REC)
		s->cursor = it->rec.ts_us;
}

static void
msrc_close_inst(struct msrc_inst *in)
{
	if (in->gz != NULL)
		gzclose(in->gz);
	free(in->buf);
	mrec_free(&in->ctx);
	mtab_free(&in->open);
	free(in->lives);
}

int
mscan_rewind(struct mscan *s)
{
	for (unsigned i = 0; i < s->ninst; i++) {
		struct msrc_inst *in = &s->inst[i];
		const char **paths = in->paths;
		size_t n = in->npaths;

		for (size_t j = 0; j < n; j++)
			if (strcmp(paths[j], "-") == 0)
				return -1;
		msrc_close_inst(in);
		msrc_inst_init(in, paths, n);
	}
	return 0;
}

void
mscan_close(struct mscan *s)
{
	for (unsigned i = 0; i < s->ninst; i++)
		msrc_close_inst(&s->inst[i]);
	free((void *)s->order);
	free(s->inst);
	memset(s, 0, sizeof(*s));
}
