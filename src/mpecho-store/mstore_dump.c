/*
 * mstore_dump.c - mpecho-store dump: the bytes echoed on the connections asked for, exactly,
 * one connection after the other; with --both, between open and close markers and with
 * unprintable bytes escaped, for a person to read.
 *
 * A connection is read in one pass that stops at its close, with nothing but the current line
 * in memory; several connections are several passes, so each comes out whole even when they
 * overlapped in time (standard input, which cannot be read twice, takes one).  A CONN without
 * a life is conn N of the first life, as list shows it ("N"), even when another life's conn N
 * comes first in the file (--inetd lives writing at once each have a conn 1); when the first
 * life has none, the first connection that matches in any life (a second pass).  Standard
 * input, read once, takes the first that matches.  list shows the longer ids (L.N, I:L.N)
 * that tell them apart.
 */
#define _GNU_SOURCE
#include "mstore.h"

#include <ctype.h>
#include <string.h>
#include <sysexits.h>

struct mdump {
	const struct mopts *o;
	struct mscan s;
	const struct mfilt_conn *want;
	unsigned inst, life; /* the connection found; inst 0 until then */
	int at_bol;          /* --both: the last thing printed ended a line */
};

static void
mdump_marker(struct mdump *d, const struct mscan_item *it, const char *what)
{
	char id[64], ts[32];

	if (!d->at_bol)
		putchar('\n');
	mout_conn_id(id, sizeof(id), &d->s, it->inst, it->life, it->rec.conn);
	mout_ts(ts, it->rec.ts_us);
	printf("=== conn %s %s %s", id, what, ts);
	if (it->rec.ev == MREC_OPEN)
		printf(" peer %.*s%s%.*s pid %ld\n", (int)it->rec.peer.len, it->rec.peer.p,
		    it->rec.via.p ? " via " : "", (int)it->rec.via.len,
		    it->rec.via.p ? it->rec.via.p : "", it->rec.pid);
	else
		printf(" reason %.*s bytes %llu\n", (int)it->rec.reason.len, it->rec.reason.p,
		    (unsigned long long)it->rec.bytes);
	d->at_bol = 1;
}

static void
mdump_escaped(struct mdump *d, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\\')
			fputs("\\\\", stdout);
		else if (isprint(c) || c == '\n' || c == '\t')
			putchar(c);
		else
			printf("\\x%02x", c);
	}
	if (n > 0)
		d->at_bol = p[n - 1] == '\n';
}

/* One record of the connection; returns 1 at its close. */
static int
mdump_record(struct mdump *d, const struct mscan_item *it)
{
	const struct mrec *r = &it->rec;

	if (r->conn == 0 || !mfilt_conn_matches(d->want, it->inst, it->life, r->conn))
		return 0;
	if (d->inst == 0) {
		d->inst = it->inst;
		d->life = it->life;
	} else if (it->inst != d->inst || it->life != d->life) {
		return 0;
	}
	if (r->ev == MREC_DATA && d->o->both)
		mdump_escaped(d, r->data.p, r->data.len);
	else if (r->ev == MREC_DATA)
		fwrite(r->data.p, 1, r->data.len, stdout);
	else if (d->o->both)
		mdump_marker(d, it, r->ev == MREC_OPEN ? "open" : "close");
	return r->ev == MREC_CLOSE;
}

/* Dumps one connection; returns 0, 1 when it is not in the store, or an exit status. */
static int
mdump_one(struct mdump *d)
{
	struct mscan_item it;
	int status = 0;

	d->inst = d->life = 0;
	d->at_bol = 1;
	for (mscan_next(&d->s, &it); it.kind != MSCAN_EOF; mscan_next(&d->s, &it)) {
		if (it.kind == MSCAN_REC) {
			if (mdump_record(d, &it))
				break;
		} else if (it.kind == MSCAN_LIFE_END) {
			if (it.inst == d->inst && it.life == d->life)
				break;
		} else if ((status = mout_not_record(d->o, &it)) != 0) {
			return status;
		}
	}
	if (d->o->both && !d->at_bol)
		putchar('\n');
	return d->inst == 0;
}

/* The id as it was given. */
static void
mdump_id(char *dst, size_t len, const struct mfilt_conn *c)
{
	char in[16] = "", li[16] = "";

	if (c->inst > 0)
		snprintf(in, sizeof(in), "%u:", c->inst);
	if (c->life > 0)
		snprintf(li, sizeof(li), "%u.", c->life);
	snprintf(dst, len, "%s%s%llu", in, li, (unsigned long long)c->conn);
}

/* A CONN without a life in the first life (see above); 0, 1 when it is not there, or an exit
 * status. */
static int
mdump_in_first_life(struct mdump *d, int stdin_read)
{
	const struct mfilt_conn *want = d->want;
	struct mfilt_conn first = *want;
	int rc;

	if (want->life != 0 || stdin_read)
		return mdump_one(d);
	first.life = 1;
	d->want = &first;
	rc = mdump_one(d);
	d->want = want;
	return rc;
}

int
mdump_run(const struct mopts *o)
{
	static char obuf[1 << 20];
	struct mdump d = { .o = o };
	char id[64];
	int status, rc, stdin_read = 0;

	for (size_t f = 0; f < o->nfiles; f++)
		stdin_read |= strcmp(o->files[f], "-") == 0;

	setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
	if ((status = mout_open(o, &d.s)) != 0)
		return status;
	for (size_t i = 0; i < o->filt.nconns && status <= 1; i++) {
		d.want = &o->filt.conns[i];
		if (i > 0 && mscan_rewind(&d.s) < 0) {
			fprintf(stderr, "%s: standard input can be read once: one connection only\n",
			    MSTORE_PROG);
			status = EX_USAGE;
			break;
		}
		rc = mdump_in_first_life(&d, stdin_read);
		if (rc == 1 && d.want->life == 0 && !stdin_read &&
		    mscan_rewind(&d.s) == 0)
			rc = mdump_one(&d);
		if (rc == 1) {
			mdump_id(id, sizeof(id), d.want);
			fprintf(stderr, "%s: no connection %s in the store\n", MSTORE_PROG, id);
		}
		status = rc > status ? rc : status;
	}
	mscan_close(&d.s);
	return mout_finish(status);
}
