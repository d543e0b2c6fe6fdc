/*
 * mstore_list.c - mpecho-store list: one line (or JSON object) per connection, printed when
 * its close record is read; connections never closed come at the end of their server life,
 * with "-" for the close.  Only open connections are held in memory (mout_track_all).
 */
#define _GNU_SOURCE
#include "mstore.h"

#include <string.h>

struct mlist {
	const struct mopts *o;
	int headed;          /* the header line is out */
	struct mscan s;
	struct mtab tab;
};

static void
mlist_json(const struct mlist *l, const struct mconn *c, const char *id, const char *op,
    const char *cl)
{
	printf("{\"id\":\"%s\",\"inst\":%u,\"life\":%u,\"conn\":%llu,\"pid\":%ld,\"peer\":", id,
	    c->inst, c->life, (unsigned long long)c->conn, c->pid);
	mout_json_str(stdout, c->peer, strlen(c->peer));
	if (c->via[0] != '\0') {
		fputs(",\"via\":", stdout);
		mout_json_str(stdout, c->via, strlen(c->via));
	}
	/* Unknown times are null: the text form's "-" is not JSON. */
	if (c->opened == INT64_MIN)
		fputs(",\"opened\":null", stdout);
	else
		printf(",\"opened\":\"%s\"", op);
	if (c->closed == INT64_MIN)
		fputs(",\"closed\":null", stdout);
	else
		printf(",\"closed\":\"%s\"", cl);
	if (c->opened != INT64_MIN && c->closed != INT64_MIN)
		printf(",\"duration\":%.6f", (double)(c->closed - c->opened) / 1e6);
	printf(",\"bytes\":%llu,\"reason\":", (unsigned long long)(c->closed != INT64_MIN ?
	    c->bytes : c->sum));
	if (c->closed != INT64_MIN)
		mout_json_str(stdout, c->reason, strlen(c->reason));
	else
		fputs("null", stdout);
	fputs("}\n", stdout);
	(void)l;
}

/* Printed with the first connection, so that an error (a raw store) leaves stdout empty. */
static void
mlist_header(struct mlist *l)
{
	if (!l->o->json && !l->headed)
		printf("%-8s %-22s %-27s %-27s %12s %12s %s\n", "CONN", "PEER", "OPENED", "CLOSED",
		    "DURATION", "BYTES", "REASON");
	l->headed = 1;
}

static void
mlist_print(struct mlist *l, const struct mconn *c)
{
	char id[64], op[32], cl[32], dur[32] = "-", peer[2 * MTAB_TEXT + 8];

	if (!mfilt_match(&l->o->filt, c))
		return;
	mlist_header(l);
	mout_conn_id(id, sizeof(id), &l->s, c->inst, c->life, c->conn);
	mout_ts(op, c->opened);
	mout_ts(cl, c->closed);
	if (l->o->json) {
		mlist_json(l, c, id, op, cl);
		return;
	}
	if (c->opened != INT64_MIN && c->closed != INT64_MIN)
		snprintf(dur, sizeof(dur), "%.6f", (double)(c->closed - c->opened) / 1e6);
	snprintf(peer, sizeof(peer), "%s%s%s", c->peer[0] ? c->peer : "-",
	    c->via[0] ? " via " : "", c->via);
	printf("%-8s %-22s %-27s %-27s %12s %12llu %s\n", id, peer, op, cl, dur,
	    (unsigned long long)(c->closed != INT64_MIN ? c->bytes : c->sum),
	    c->closed != INT64_MIN ? c->reason : "-");
}

static void
mlist_each(struct mconn *c, void *arg)
{
	mlist_print(arg, c);
}

int
mlist_run(const struct mopts *o)
{
	struct mlist l = { .o = o };
	int status;

	if ((status = mout_open(o, &l.s)) != 0)
		return status;
	status = mout_track_all(o, &l.s, &l.tab, mlist_each, &l);
	if (status == 0)
		mlist_header(&l);
	mtab_free(&l.tab);
	mscan_close(&l.s);
	return mout_finish(status);
}
