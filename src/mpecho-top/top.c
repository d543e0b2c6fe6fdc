/*
 * top.c - mpecho-top: a running mpechod's processes and figures, refreshed each second, as
 * Apache's server-status scoreboard or top(1) shows them.
 *
 * It reads the server's shared memory, the object /dev/shm/mpechod.PID that the master creates
 * (arena.h), mapped read-only: no signal, no ptrace, nothing the server does differently while
 * it looks.  The figures are the very snapshot the server's stats line and /metrics give
 * (scoreboard.c, linked from the server's own sources, whose layout the object's header must
 * match).  Plain ANSI: the screen is cleared and redrawn each second on a terminal; with -n
 * or --once, or when standard output is not a terminal, screens are printed one after another.
 */
#define _GNU_SOURCE
#include "arena.h"
#include "log.h"
#include "num.h"
#include "scoreboard.h"
#include "version.h"

#include <dirent.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define TOP_MAX_PROCS 4096
/* A pointer of the master's, as the address arena_at translates. */
#define TOP_ADDR(p) ((uint64_t)(uintptr_t)(p))

static const char top_usage[] =
    "usage: mpecho-top [-n COUNT | --once] [PORT | PID]\n"
    "Shows a running mpechod's processes (role, pid, state, connection, peer, bytes,\n"
    "age) and its figures, refreshed each second, from its shared memory\n"
    "(/dev/shm/mpechod.PID).  Without an argument: the only server running.\n"
    "\n"
    "  -n, --count COUNT  print COUNT screens, one a second, then exit\n"
    "      --once         the same as -n 1\n"
    "  -h, --help         show this help and exit\n"
    "  -V, --version      show the version and exit\n"
    "Exit status: 0, 64 for bad usage, 69 when no such server runs.\n";

static volatile sig_atomic_t top_stop;

static void
top_sigint(int signo)
{
	(void)signo;
	top_stop = 1;
}

/* Whether the object of that name (mpechod.PID) belongs to a live process. */
static int
top_live(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/proc/%.60s", name + strlen(ARENA_PREFIX));
	return access(path, F_OK) == 0;
}

/* Maps /dev/shm/NAME; 0 or -1. */
static int
top_map(const char *name, struct arena_view *v)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%.60s", ARENA_DIR, name);
	return arena_map(path, (uint32_t)sizeof(struct master), v);
}

static const struct master *
top_master(const struct arena_view *v)
{
	return arena_at(v, v->h->master, sizeof(struct master));
}

/* Finds the server: want is a pid, a port, or NULL (the only one).  Fills name. */
static int
top_find(const char *want, char *name, size_t len)
{
	DIR *d = opendir(ARENA_DIR);
	struct dirent *e;
	int found = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		struct arena_view v;
		const struct master *m;
		int match;

		if (strncmp(e->d_name, ARENA_PREFIX, strlen(ARENA_PREFIX)) != 0 ||
		    !top_live(e->d_name) || top_map(e->d_name, &v) < 0)
			continue;
		m = top_master(&v);
		match = m != NULL && (want == NULL ||
		    strcmp(e->d_name + strlen(ARENA_PREFIX), want) == 0 ||
		    (unsigned)atoi(want) == m->port);
		arena_unmap(&v);
		if (!match)
			continue;
		if (found++ == 0 || (want != NULL && strcmp(e->d_name + strlen(ARENA_PREFIX),
		    want) == 0))
			snprintf(name, len, "%.60s", e->d_name);
	}
	closedir(d);
	if (found > 1 && want == NULL)
		fatalx(EX_USAGE, "several servers run: name one by its port or pid");
	return found > 0 ? 0 : -1;
}

/* The reader's view of the master's shared state; -1 when a piece is not there (yet). */
static int
top_src(const struct arena_view *v, struct sb_src *s)
{
	const struct master *m = top_master(v);
	size_t n;

	if (m == NULL)
		return -1;
	n = (size_t)m->set.max_clients;
	*s = (struct sb_src){ .m = m, .kids = arena_at(v, TOP_ADDR(m->kids), n * sizeof(*s->kids)) };
	if (m->set.prefork) {
		s->pslots = arena_at(v, TOP_ADDR(m->pslots), n * sizeof(*s->pslots));
		s->words = m->pool_idle.words;
		s->idle = arena_at(v, TOP_ADDR(m->pool_idle.bits), (size_t)s->words * 8);
		s->starting = arena_at(v, TOP_ADDR(m->pool_starting.bits), (size_t)s->words * 8);
		if (s->pslots == NULL || s->idle == NULL || s->starting == NULL)
			return -1;
	} else {
		s->board = arena_at(v, TOP_ADDR(m->board), n * sizeof(*s->board));
		if (s->board == NULL)
			return -1;
	}
	return s->kids == NULL ? -1 : 0;
}

static void
top_age(int64_t since, int64_t now, char *buf, size_t len)
{
	int64_t s = since > 0 && now >= since ? (now - since) / 1000 : -1;

	if (s < 0)
		snprintf(buf, len, "-");
	else if (s < 3600)
		snprintf(buf, len, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
	else
		snprintf(buf, len, "%lldh%02lld", (long long)(s / 3600), (long long)(s / 60 % 60));
}

static void
top_screen(const struct sb_src *s, pid_t pid, int clear)
{
	static struct sb_proc procs[TOP_MAX_PROCS];
	struct fig_snap snap;
	char line[1024], age[32];
	int64_t now = io_now_ms();
	int n;

	scoreboard_snap(s, &snap);
	n = scoreboard_procs(s, procs, TOP_MAX_PROCS);
	figures_line(&snap, line, sizeof(line));
	if (clear)
		fputs("\033[H\033[2J", stdout);
	printf("mpechod %d, port %u, %s mode, %d processes\n%s\n\n", (int)pid,
	    (unsigned)s->m->port, s->m->set.prefork ? "prefork" : "fork", n + 1, line);
	printf("%-9s %8s %-8s %8s %-24s %12s %7s\n", "ROLE", "PID", "STATE", "CONN", "PEER",
	    "BYTES", "AGE");
	for (int i = 0; i < n && i < TOP_MAX_PROCS; i++) {
		char conn[24] = "-";

		if (procs[i].conn > 0)
			snprintf(conn, sizeof(conn), "%llu", (unsigned long long)procs[i].conn);
		top_age(procs[i].since_ms, now, age, sizeof(age));
		printf("%-9s %8d %-8s %8s %-24s %12llu %7s\n", procs[i].role, (int)procs[i].pid,
		    procs[i].state, conn, procs[i].peer[0] ? procs[i].peer : "-",
		    (unsigned long long)procs[i].bytes, age);
	}
	fflush(stdout);
}

/* One screen from a fresh mapping (the object grows while the server starts); -1 when the
 * server is gone. */
static int
top_once(const char *name, int clear)
{
	struct arena_view v;
	struct sb_src s;

	if (!top_live(name) || top_map(name, &v) < 0)
		return -1;
	if (top_src(&v, &s) == 0)
		top_screen(&s, (pid_t)v.h->pid, clear);
	arena_unmap(&v);
	return 0;
}

static const struct option top_opts[] = {
	{ "count", required_argument, NULL, 'n' },
	{ "once", no_argument, NULL, '1' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

int
main(int argc, char **argv)
{
	char name[64];
	long count = 0;
	int c, clear;

	log_init("mpecho-top", NULL);
	while ((c = getopt_long(argc, argv, "n:hV", top_opts, NULL)) != -1) {
		if (c == 'n' && num_parse(optarg, 1, 1000000000, &count) < 0)
			usage_error("-n %s: not a count from 1", optarg);
		else if (c == '1')
			count = 1;
		else if (c == 'h')
			return fputs(top_usage, stdout) == EOF;
		else if (c == 'V')
			return printf("mpecho-top %s\n", MPECHO_VERSION) < 0;
		else if (c != 'n')
			usage_error("unknown option");
	}
	if (argc - optind > 1)
		usage_error("one server at most: PORT or PID");
	if (top_find(optind < argc ? argv[optind] : NULL, name, sizeof(name)) < 0)
		fatalx(EX_UNAVAILABLE, "no running mpechod%s%s found in %s", optind < argc ? " " : "",
		    optind < argc ? argv[optind] : "", ARENA_DIR);
	clear = count == 0 && isatty(STDOUT_FILENO);
	signal(SIGINT, top_sigint);
	signal(SIGTERM, top_sigint);
	for (long i = 0; !top_stop && (count == 0 || i < count); i++) {
		if (i > 0) {
			struct timespec ts = { .tv_sec = 1 };

			nanosleep(&ts, NULL);
			if (!clear && !top_stop)
				putchar('\n');
		}
		if (top_stop)
			break;
		if (top_once(name, clear) < 0) {
			printf("mpechod %s has exited\n", name + strlen(ARENA_PREFIX));
			return 0;
		}
	}
	return 0;
}
