/*
 * metrics_text.c - the figures as Prometheus text (see metrics_text.h).
 */
#include "metrics_text.h"

#include <stdarg.h>
#include <stdio.h>

struct mt {
	char *p;
	size_t len, cap;
	int full;
};

__attribute__((format(printf, 2, 3)))
static void
mt_put(struct mt *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= t->cap - t->len)
		t->full = 1;
	else
		t->len += (size_t)n;
}

static void
mt_head(struct mt *t, const char *name, const char *type, const char *help)
{
	mt_put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
mt_one(struct mt *t, const char *name, const char *type, const char *help, uint64_t v)
{
	mt_head(t, name, type, help);
	mt_put(t, "%s %llu\n", name, (unsigned long long)v);
}

static void
mt_labelled(struct mt *t, const char *name, const char *label, const char *value, uint64_t v)
{
	mt_put(t, "%s{%s=\"%s\"} %llu\n", name, label, value, (unsigned long long)v);
}

/* A histogram from per-bucket counts (the last +Inf): cumulative buckets, _sum, _count. */
static void
mt_histogram(struct mt *t, const char *name, const char *help, const double *bounds,
    const uint64_t *b, int n, double sum)
{
	uint64_t acc = 0;

	mt_head(t, name, "histogram", help);
	for (int i = 0; i < n; i++) {
		acc += b[i];
		if (i < n - 1)
			mt_put(t, "%s_bucket{le=\"%.15g\"} %llu\n", name, bounds[i],
			    (unsigned long long)acc);
		else
			mt_put(t, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)acc);
	}
	mt_put(t, "%s_sum %.6f\n%s_count %llu\n", name, sum, name, (unsigned long long)acc);
}

static void
mt_connections(struct mt *t, const struct fig_snap *s)
{
	static const char *const refused = "mpecho_connections_refused_total";

	mt_one(t, "mpecho_connections_accepted_total", "counter",
	    "Connections accepted and served by a session.", s->accepted);
	mt_head(t, refused, "counter", "Connections closed at once, by reason: over "
	    "--max-per-source, over --max-rate, or refused by --allow/--deny.");
	mt_labelled(t, refused, "reason", "per-source", s->refused_source);
	mt_labelled(t, refused, "reason", "rate", s->refused_rate);
	mt_labelled(t, refused, "reason", "denied", s->denied);
	mt_one(t, "mpecho_connections_culled_total", "counter",
	    "Connections already over when accepted (reset, or closed with nothing sent).",
	    s->culled);
	mt_one(t, "mpecho_proxy_errors_total", "counter",
	    "Connections without a valid PROXY header in time (--proxy-protocol).",
	    s->proxy_errors);
	mt_one(t, "mpecho_sessions_active", "gauge", "Sessions in progress.", (uint64_t)s->active);
	mt_head(t, "mpecho_sessions_closed_total", "counter",
	    "Sessions ended, by reason (the store's close reasons; signal: killed).");
	for (int i = 0; i < FIG_NCLOSE; i++)
		mt_labelled(t, "mpecho_sessions_closed_total", "reason", figures_close_name(i),
		    s->f.closed[i]);
	mt_one(t, "mpecho_received_bytes_total", "counter",
	    "Bytes received from clients, recorded and echoed.", s->bytes);
	mt_one(t, "mpecho_sent_bytes_total", "counter", "Bytes echoed to clients.", s->bytes);
	mt_head(t, "mpecho_processes_reaped_total", "counter",
	    "Children of the master reaped, by how they ended.");
	mt_labelled(t, "mpecho_processes_reaped_total", "how", "exit", s->reaped_exit);
	mt_labelled(t, "mpecho_processes_reaped_total", "how", "signal", s->reaped_signal);
	mt_histogram(t, "mpecho_session_duration_seconds", "How long sessions lasted.",
	    fig_dur_bounds, s->f.dur, FIG_NDUR, (double)s->f.dur_sum_us / 1e6);
	mt_histogram(t, "mpecho_session_size_bytes", "Bytes echoed per session.",
	    fig_size_bounds, s->f.size, FIG_NSIZE, (double)s->f.size_sum);
}

static void
mt_store(struct mt *t, const struct fig_snap *s)
{
	mt_one(t, "mpecho_store_records_total", "counter",
	    "Records the store took from its pipe.", s->f.store_records);
	mt_one(t, "mpecho_store_written_bytes_total", "counter",
	    "Bytes the store wrote to its file.", s->f.store_bytes);
	mt_one(t, "mpecho_store_fsyncs_total", "counter", "fdatasync calls on the store file.",
	    s->f.store_fsyncs);
	mt_head(t, "mpecho_store_fsync_seconds_total", "counter",
	    "Time spent in fdatasync on the store file.");
	mt_put(t, "mpecho_store_fsync_seconds_total %.6f\n", (double)s->f.store_fsync_us / 1e6);
	mt_one(t, "mpecho_store_gaps_total", "counter",
	    "Gap records written after records were dropped.", s->f.store_gaps);
	mt_one(t, "mpecho_store_dropped_bytes_total", "counter",
	    "Data bytes dropped while the store file could not be written.",
	    s->f.store_dropped_bytes);
	mt_one(t, "mpecho_store_dropped_records_total", "counter",
	    "Records dropped while the store file could not be written.",
	    s->f.store_dropped_records);
	mt_one(t, "mpecho_store_restarts_total", "counter", "Times the store process was restarted.",
	    s->f.store_restarts);
	mt_one(t, "mpecho_store_pipe_bytes", "gauge", "Bytes waiting in the store pipe.",
	    s->store_pipe);
}

static void
mt_pool(struct mt *t, const struct fig_snap *s)
{
	mt_one(t, "mpecho_pool_processes", "gauge", "Pool processes alive (--prefork).",
	    (uint64_t)s->procs);
	mt_one(t, "mpecho_pool_idle_processes", "gauge", "Pool processes waiting for a connection.",
	    (uint64_t)s->idle);
	mt_one(t, "mpecho_pool_starting_processes", "gauge", "Pool processes forked, not yet idle.",
	    (uint64_t)s->starting);
	mt_one(t, "mpecho_pool_spawned_total", "counter", "Pool processes started.",
	    s->f.pool_spawned);
	mt_one(t, "mpecho_pool_retired_total", "counter", "Idle pool processes asked to leave.",
	    s->f.pool_retired);
}

static void
mt_udp(struct mt *t, const struct fig_snap *s)
{
	mt_one(t, "mpecho_udp_echoed_datagrams_total", "counter", "Datagrams echoed (--udp).",
	    s->udp_echoed);
	mt_one(t, "mpecho_udp_echoed_bytes_total", "counter", "Bytes of the datagrams echoed.",
	    s->udp_bytes);
	mt_head(t, "mpecho_udp_dropped_datagrams_total", "counter",
	    "Datagrams not echoed, by reason.");
	for (int i = 0; i < FIG_NUDP_DROP; i++)
		mt_labelled(t, "mpecho_udp_dropped_datagrams_total", "reason",
		    figures_udp_drop_name(i), s->udp_dropped[i]);
}

size_t
metrics_text(const struct fig_snap *s, char *out, size_t outlen)
{
	struct mt t = { .p = out, .cap = outlen };

	if (outlen == 0)
		return 0;
	mt_connections(&t, s);
	if (s->store)
		mt_store(&t, s);
	if (s->prefork)
		mt_pool(&t, s);
	if (s->udp)
		mt_udp(&t, s);
	return t.full ? 0 : t.len;
}
