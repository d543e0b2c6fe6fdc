/*
 * master_figures.c - the master's side of the live figures: its shared memory made a named
 * object for mpecho-top (arena.h), the stats line (USR1, STATUS=) from the one snapshot that
 * /metrics and mpecho-top read too (scoreboard.h), and the metrics process (--metrics),
 * started, restarted and reaped like the datagram process.
 */
#define _GNU_SOURCE
#include "master.h"
#include "sig.h"
#include "arena.h"
#include "metrics.h"
#include "num.h"
#include "scoreboard.h"

/* Moves struct master (mapped before the options said whether this is a daemon) into the
 * named object, which every later master_shared() then grows.  Without /dev/shm the server
 * runs as before; only mpecho-top cannot see it. */
void
master_arena(void)
{
	struct master *m;

	/* A file size limit (RLIMIT_FSIZE, ulimit -f) must not end the master here: growing the
	 * object past it fails with EFBIG instead of SIGXFSZ, and the memory is then anonymous
	 * (the store ignores SIGXFSZ for its file the same way). */
	sig_ignore(SIGXFSZ);
	if (arena_create(getpid(), (uint32_t)sizeof(struct master)) < 0 ||
	    (m = arena_alloc(sizeof(*m))) == NULL) {
		log_warn("cannot create %s/%s%ld for mpecho-top", ARENA_DIR, ARENA_PREFIX,
		    (long)getpid());
		figures_live = &master->figures;
		return;
	}
	memcpy(m, master, sizeof(*m));
	munmap(master, sizeof(*master));
	master = m;
	arena_set_master(master);
	atexit(arena_unlink);
	figures_live = &master->figures;
}

void
master_scoreboard(struct sb_src *s)
{
	*s = (struct sb_src){ .m = master, .kids = master->kids, .board = master->board,
	    .pslots = master->pslots, .idle = master->pool_idle.bits,
	    .starting = master->pool_starting.bits, .words = master->pool_idle.words };
}

void
master_figures_line(char *line, size_t len)
{
	struct fig_snap snap;
	struct sb_src src;

	master_scoreboard(&src);
	scoreboard_snap(&src, &snap);
	figures_line(&snap, line, len);
}

/* --metrics ADDR:PORT (or PORT alone, on 127.0.0.1): bound before privileges are dropped, like
 * the service's own port. */
void
master_metrics_listen(void)
{
	static const char *const loopback[] = { "127.0.0.0/8", "::1" };
	char host[NET_ADDRLEN], err[NET_ERRLEN], addr[NET_ADDRLEN];
	const char *spec = master->set.metrics, *colon;
	long lport;
	int port, n;

	if (spec == NULL)
		return;
	colon = strrchr(spec, ':');
	snprintf(host, sizeof(host), "%.*s", colon ? (int)(colon - spec) : 0, spec);
	if (num_parse(colon ? colon + 1 : spec, 0, 65535, &lport) < 0)
		usage_error("--metrics %s: not ADDR:PORT", spec);
	port = (int)lport;
	/* After an upgrade in place the listeners are the binary before's. */
	n = master->nmetrics_fd > 0 ? master->nmetrics_fd :
	    net_listen(host[0] ? net_strip_brackets(host, addr, sizeof(addr)) : "127.0.0.1",
	    SOCK_STREAM, &port, master->metrics_fd, MASTER_MAX_LISTEN, err, sizeof(err));
	if (n < 0)
		usage_error("--metrics: %s", err);
	master->nmetrics_fd = n;
	if (master->set.nmetrics_allow == 0)
		master_rules("--metrics-allow", loopback, 2, &master->metrics_allow);
	else
		master_rules("--metrics-allow", master->set.metrics_allow,
		    master->set.nmetrics_allow, &master->metrics_allow);
	for (int i = 0; i < n; i++) {
		net_local_addr(master->metrics_fd[i], addr, sizeof(addr));
		log_info("metrics on http://%s/metrics", addr);
	}
}

void
master_start_metrics(void)
{
	int fds[MASTER_MAX_LISTEN], pipe_rd = master->pipe_rd;
	struct metrics_args a = {
		.fds = fds, .nfds = master->nmetrics_fd, .allow = &master->metrics_allow,
		.pipe_rd = -1, .master = getpid(),
	};
	int *keep[1 + MASTER_MAX_LISTEN] = { &pipe_rd };
	pid_t pid;

	if (master->nmetrics_fd == 0 || master->stopping)
		return;
	for (int i = 0; i < master->nmetrics_fd; i++) {
		fds[i] = master->metrics_fd[i];
		keep[1 + i] = &fds[i];
	}
	master->metrics_started_ms = io_now_ms();
	pid = proc_fork(keep, 1 + master->nmetrics_fd);
	if (pid < 0) {
		log_warn("cannot fork the metrics process");
		return;
	}
	if (pid == 0) {
		a.pipe_rd = pipe_rd;
		metrics_run(&a);
	}
	master->metrics.pid = pid;
}

void
master_restart_metrics(void)
{
	if (master->metrics.pid > 0 || master->nmetrics_fd == 0 || master->stopping ||
	    io_now_ms() - master->metrics_started_ms < 1000)
		return;
	master_start_metrics();
	if (master->metrics.pid > 0)
		log_warnx("restarted the metrics process as %d", (int)master->metrics.pid);
}

/* The shutdown: no more scrapes. */
void
master_stop_metrics(void)
{
	for (int i = 0; i < master->nmetrics_fd; i++)
		close(master->metrics_fd[i]);
	master->nmetrics_fd = 0;
	if (master->metrics.pid > 0)
		kill(master->metrics.pid, SIGTERM);
}
