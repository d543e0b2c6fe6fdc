/*
 * figures.c - the shared counters' adds and the stats line (see figures.h).  Pure apart from
 * the atomic adds: no clock, no I/O.
 */
#include "figures.h"

#include <stdio.h>

struct figures *figures_live;

/* Sessions from a refused probe (well under a millisecond) to a held connection (an hour). */
const double fig_dur_bounds[FIG_NDUR - 1] = {
	0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300, 3600,
};

/* From nothing echoed to a bulk stream. */
const double fig_size_bounds[FIG_NSIZE - 1] = {
	0, 64, 1024, 16384, 65536, 1048576, 16777216, 268435456, 1073741824,
};

static const char *const fig_close_names[FIG_NCLOSE] = {
	"eof", "error", "idle", "write-timeout", "reset", "shutdown", "store-gone",
	"store-timeout", "refused", "proxy-error", "signal",
};

static const char *const fig_udp_names[FIG_NUDP_DROP] = {
	"source-port", "source-address", "source-rate", "global-rate", "store",
};

int
figures_bucket(const double *bounds, int n, double v)
{
	int i = 0;

	while (i < n && v > bounds[i])
		i++;
	return i;
}

void
figures_add(uint64_t *w, uint64_t v)
{
	__atomic_add_fetch(w, v, __ATOMIC_RELAXED);
}

void
figures_session(struct figures *f, int reason, int64_t dur_us, uint64_t bytes)
{
	double secs = dur_us > 0 ? (double)dur_us / 1e6 : 0;

	if (f == NULL)
		return;
	if (reason < 0 || reason >= FIG_NCLOSE)
		reason = 1; /* "error": an exit status no session gives */
	figures_add(&f->closed[reason], 1);
	figures_add(&f->dur[figures_bucket(fig_dur_bounds, FIG_NDUR - 1, secs)], 1);
	figures_add(&f->dur_sum_us, dur_us > 0 ? (uint64_t)dur_us : 0);
	figures_add(&f->size[figures_bucket(fig_size_bounds, FIG_NSIZE - 1, (double)bytes)], 1);
	figures_add(&f->size_sum, bytes);
}

const char *
figures_close_name(int reason)
{
	return reason >= 0 && reason < FIG_NCLOSE ? fig_close_names[reason] : "unknown";
}

const char *
figures_udp_drop_name(int i)
{
	return i >= 0 && i < FIG_NUDP_DROP ? fig_udp_names[i] : "unknown";
}

void
figures_line(const struct fig_snap *s, char *line, size_t len)
{
	int n;
	uint64_t all = 0;

	n = snprintf(line, len, "active %d, accepted %llu, bytes echoed %llu, reaped %llu by "
	    "exit, %llu by signal, refused %llu per source, %llu over rate, culled %llu dead, "
	    "denied %llu, proxy errors %llu",
	    s->active, (unsigned long long)s->accepted, (unsigned long long)s->bytes,
	    (unsigned long long)s->reaped_exit, (unsigned long long)s->reaped_signal,
	    (unsigned long long)s->refused_source, (unsigned long long)s->refused_rate,
	    (unsigned long long)s->culled, (unsigned long long)s->denied,
	    (unsigned long long)s->proxy_errors);
	if (n < 0 || (size_t)n >= len)
		return;
	if (s->prefork)
		n += snprintf(line + n, len - (size_t)n, ", pool %d processes, %d idle, %d starting",
		    s->procs, s->idle, s->starting);
	if (!s->udp || n < 0 || (size_t)n >= len)
		return;
	for (int i = 0; i < FIG_NUDP_DROP; i++)
		all += s->udp_dropped[i];
	snprintf(line + n, len - (size_t)n, ", udp echoed %llu, udp bytes %llu, udp dropped %llu, "
	    "udp dropped for source port %llu, for address %llu, over source rate %llu, over "
	    "global rate %llu, for store %llu",
	    (unsigned long long)s->udp_echoed, (unsigned long long)s->udp_bytes,
	    (unsigned long long)all, (unsigned long long)s->udp_dropped[0],
	    (unsigned long long)s->udp_dropped[1], (unsigned long long)s->udp_dropped[2],
	    (unsigned long long)s->udp_dropped[3], (unsigned long long)s->udp_dropped[4]);
}
