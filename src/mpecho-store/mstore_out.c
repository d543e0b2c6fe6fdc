/*
 * mstore_out.c - what several mpecho-store commands share: opening the sources, reporting
 * lines that are not records, and the forms of conn ids, times and JSON strings.
 */
#define _GNU_SOURCE
#include "mstore.h"
#include "record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

int
mout_open(const struct mopts *o, struct mscan *s)
{
	if (mscan_open(s, o->files, o->nfiles, o->one_instance) < 0) {
		fprintf(stderr, "%s: out of memory\n", MSTORE_PROG);
		return EX_OSERR;
	}
	return 0;
}

int
mout_not_record(const struct mopts *o, const struct mscan_item *it)
{
	if (it->kind == MSCAN_ERR) {
		fprintf(stderr, "%s: %s: %s\n", MSTORE_PROG, it->path, it->err);
		return it->status;
	}
	if (it->kind == MSCAN_BAD && !o->quiet)
		fprintf(stderr, "%s: %s:%lu: %s (skipped)\n", MSTORE_PROG, it->path, it->line,
		    it->err);
	return 0;
}

void
mout_conn_id(char *dst, size_t len, const struct mscan *s, unsigned inst, unsigned life,
    uint64_t conn)
{
	char in[16] = "", li[16] = "";

	if (s->ninst > 1)
		snprintf(in, sizeof(in), "%u:", inst);
	if (life > 1)
		snprintf(li, sizeof(li), "%u.", life);
	snprintf(dst, len, "%s%s%llu", in, li, (unsigned long long)conn);
}

void
mout_ts(char *dst, int64_t us)
{
	if (us == INT64_MIN) {
		memcpy(dst, "-", 2);
		return;
	}
	rec_format_ts(dst, us);
	dst[REC_TS_LEN] = '\0';
}

void
mout_json_str(FILE *f, const char *text, size_t len)
{
	char buf[6 * 256 + 8];

	putc('"', f);
	while (len > 0) {
		size_t n = len < 256 ? len : 256;
		size_t esc = rec_json_escape(buf, (const unsigned char *)text, n);

		fwrite(buf, 1, esc, f);
		text += n;
		len -= n;
	}
	putc('"', f);
}

int
mout_finish(int status)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: cannot write to standard output: %s\n", MSTORE_PROG,
		    strerror(errno));
		return EX_IOERR;
	}
	return status;
}

/* One record into the table; returns the connection it closed, or NULL. */
static struct mconn *
mout_track(struct mtab *tab, const struct mscan_item *it, int *oom)
{
	const struct mrec *r = &it->rec;
	struct mconn *c;

	if (r->conn == 0) /* a gap or a datagram */
		return NULL;
	if ((c = mtab_add(tab, it->inst, it->life, r->conn)) == NULL) {
		*oom = 1;
		return NULL;
	}
	if (r->ev == MREC_OPEN) {
		c->opened = r->ts_us;
		c->pid = r->pid;
		mtab_text(c->peer, r->peer.p, r->peer.len);
		if (r->via.p != NULL)
			mtab_text(c->via, r->via.p, r->via.len);
	} else if (r->ev == MREC_DATA) {
		c->sum += r->data.len;
	} else {
		c->closed = r->ts_us;
		c->bytes = r->bytes;
		mtab_text(c->reason, r->reason.p, r->reason.len);
		return c;
	}
	return NULL;
}

struct mout_left {
	unsigned inst, life;
	struct mconn **v;
	size_t n;
};

static void
mout_collect(struct mconn *c, void *arg)
{
	struct mout_left *l = arg;

	if (c->inst == l->inst && c->life == l->life)
		l->v[l->n++] = c;
}

static int
mout_by_conn(const void *a, const void *b)
{
	const struct mconn *x = *(const struct mconn *const *)a;
	const struct mconn *y = *(const struct mconn *const *)b;

	return (x->conn > y->conn) - (x->conn < y->conn);
}

/* The connections of a life that ended without their close, in conn order. */
static int
mout_ended(struct mtab *tab, unsigned inst, unsigned life,
    void (*done)(struct mconn *, void *), void *arg)
{
	struct mout_left l = { .inst = inst, .life = life };

	uint64_t *conns;
	struct mconn *c;

	l.v = malloc((tab->live + 1) * sizeof(struct mconn *));
	conns = malloc((tab->live + 1) * sizeof(*conns));
	if (l.v == NULL || conns == NULL) {
		free(l.v);
		free(conns);
		return -1;
	}
	mtab_each(tab, mout_collect, &l);
	qsort(l.v, l.n, sizeof(struct mconn *), mout_by_conn);
	for (size_t i = 0; i < l.n; i++) {
		done(l.v[i], arg);
		conns[i] = l.v[i]->conn;
	}
	/* A deletion moves other entries: by key, once every pointer is used. */
	for (size_t i = 0; i < l.n; i++)
		if ((c = mtab_find(tab, inst, life, conns[i])) != NULL)
			mtab_del(tab, c);
	free(conns);
	free(l.v);
	return 0;
}

int
mout_track_all(const struct mopts *o, struct mscan *s, struct mtab *tab,
    void (*done)(struct mconn *, void *), void *arg)
{
	struct mscan_item it;
	struct mconn *c;
	int status = 0, oom = 0;

	for (mscan_next(s, &it); it.kind != MSCAN_EOF && status == 0 && !oom; mscan_next(s, &it)) {
		if (it.kind == MSCAN_REC) {
			if ((c = mout_track(tab, &it, &oom)) != NULL) {
				done(c, arg);
				mtab_del(tab, c);
			}
		} else if (it.kind == MSCAN_LIFE_END) {
			oom = mout_ended(tab, it.inst, it.life, done, arg) < 0;
		} else {
			status = mout_not_record(o, &it);
		}
	}
	if (oom) {
		fprintf(stderr, "%s: out of memory\n", MSTORE_PROG);
		return EX_OSERR;
	}
	return status;
}
