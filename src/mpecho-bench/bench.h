/*
 * bench.h - what mpecho-bench's processes share: the settings (filled by the parent's option
 * parsing, read-only afterwards and inherited by every worker), the results each worker keeps
 * in memory shared with the parent, the payload pattern, and the entry points of each role:
 * bench.c (options, forking, watching, main), bench_settings.c (the settings, names and
 * pattern, below every other file), bench_worker.c (the event loop of the connect,
 * rr, stream and hold modes), bench_flood.c (the flood mode's workers and its probe),
 * bench_udp.c (the udp mode's workers) and bench_report.c (the text and JSON reports).
 */
#ifndef MPECHO_BENCH_H
#define MPECHO_BENCH_H

#include "hist.h"
#include "procfs.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <sys/types.h>
#include <time.h>

#define BENCH_PATTERN 1048573u          /* a prime, so no write or read size lines up with it */
#define BENCH_RBUF ((size_t)256 * 1024) /* one recv(2) */
#define BENCH_MAX_SIZE (16L * 1024 * 1024)
#define BENCH_MAX_CONNS 100000
#define BENCH_MAX_WORKERS 256
#define BENCH_PROGRESS_MS 250
#define NS 1000000000LL

#define BENCH_PROBE_MS 200               /* flood: a probe every 200 ms */
#define BENCH_FLOOD_CONNS 16             /* flood: connections in flight unless -c says */
#define BENCH_FLOOD_CHUNK 16384          /* flood: the chunk, unless -s says */
#define BENCH_FLOOD_EVERY 10             /* flood: one connection in ten sends the chunk */

#define BENCH_UDP_HDR 12                 /* udp: the request's number and the client's id */
#define BENCH_UDP_MAX 65507              /* udp: the largest IPv4 datagram's payload */

enum bench_mode { MODE_CONNECT, MODE_RR, MODE_STREAM, MODE_HOLD, MODE_FLOOD, MODE_UDP, MODE_MAX };
extern const char *const bench_mode_names[MODE_MAX];

enum err_kind { E_CONNECT, E_RESET, E_EOF, E_MISMATCH, E_EXTRA, E_TIMEOUT, E_LOCAL, E_MAX };
extern const char *const bench_err_names[E_MAX];
/* --payload: pseudo-random bytes, printable ASCII (--text), or UTF-8 Korean text. */
enum bench_payload { PAYLOAD_BINARY, PAYLOAD_TEXT, PAYLOAD_KO, PAYLOAD_MAX };
extern const char *const bench_payload_names[PAYLOAD_MAX];

/* One worker's results, in memory shared with the parent.  Only that worker writes it; the
 * counters the progress line reads are stored with relaxed atomics. */
struct bench_stats {
	uint64_t done;           /* connect: cycles, rr: requests, completed in the window */
	uint64_t bytes;          /* echoed bytes verified in the window */
	uint64_t held;           /* hold: connections that echoed at setup */
	uint64_t lost;           /* udp: requests whose echo did not come within the timeout */
	uint64_t late;           /* udp: echoes of lost requests that came after all */
	uint64_t err[E_MAX];
	struct hist lat;         /* nanoseconds */
	int finished;            /* the worker got to the end */
	char first_error[192];
} __attribute__((aligned(64)));

struct bench_shared {
	int64_t start_ns;        /* CLOCK_MONOTONIC start of the window, set before "go" */
	struct bench_stats w[];
};

/* The settings, filled by bench_parse and read-only afterwards (the workers inherit them). */
struct bench_settings {
	enum bench_mode mode;
	int conns;               /* -c: concurrent connections */
	double duration;         /* -d: seconds measured */
	size_t size;             /* -s: bytes per message (stream: per write) */
	int workers;             /* -w: worker processes; 0: one per CPU, at most conns */
	int timeout_ms;          /* -t: a connect, an echo or a stalled stream fails after this */
	pid_t pid;               /* --pid: the server; 0: the process listening on the port */
	int json;
	enum bench_payload payload;
	int rst;                 /* close with a reset; flood: unless --flood-close fin */
	const char *host, *port;
	int portnum;
	struct sockaddr_storage addr;
	socklen_t addrlen;
};
extern struct bench_settings bench_cfg;

/* The run as the parent sees it, for the report.  The flood mode's probe is one more process
 * after the workers, with a slot of its own in the shared page. */
struct bench_run {
	int nworkers;
	int nprocs;              /* the workers, and the probe in flood mode */
	pid_t wpid[BENCH_MAX_WORKERS + 1];
	struct bench_shared *sh;
	int ready_rd, go_wr;
	pid_t server;            /* 0: unknown */
	int server_found;        /* found through the listener, not given */
	struct procfs_usage srv0, srv1, held;
	long long client0, client1;
	long long machine0, machine1;    /* idle ticks of all CPUs */
	int64_t start_ns;
	double window_s;         /* wall time between the two CPU samples */
	int tty;
	int worker_failures;
	const char *failure;     /* why, when the run itself failed */
};

/* BENCH_PATTERN pseudo-random bytes, then the pattern's start again, so that any slice of up
 * to BENCH_RBUF or the message size can be compared in one memcmp (bench_settings.c). */
extern unsigned char *bench_pattern;
/* Makes it, for bench_cfg's size and --payload, before the workers are forked.  The ko
 * pattern is whole UTF-8 characters, the last one ending at BENCH_PATTERN, so any slice from
 * a character's first byte, wrapping or not, is valid UTF-8 up to where it is cut. */
void bench_pattern_make(void);
/* Where a connection's bytes start in the pattern, from a hash: h % BENCH_PATTERN, moved on to
 * the next character's first byte for the ko payload. */
uint64_t bench_pattern_start(uint64_t h);

static inline int64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

/* The single writer of a shared counter stores it whole, so the parent never reads half. */
static inline void
stat_add(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, *p + v, __ATOMIC_RELAXED);
}

static inline uint64_t
stat_get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Counts an error of the given kind in st, and keeps the first one's text, which names the
 * connection ("conn 12", "probe 3") (bench_worker.c). */
void stat_error(struct bench_stats *st, enum err_kind kind, const char *what, uint32_t id,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void stat_verror(struct bench_stats *st, enum err_kind kind, const char *what, uint32_t id,
    const char *fmt, va_list ap);

/* The epoll loop every worker kind runs (bench_worker.c, bench_flood.c, bench_udp.c): one wait
 * until wake_ns (at once when it has passed, or when busy); the events it returns.  A failure
 * of epoll_wait itself ends the worker (EX_OSERR). */
int worker_wait(int ep, struct epoll_event *ev, int max, int64_t now, int64_t wake, int busy);
/* What every worker kind keeps: its results slot, its epoll set, how many connections or
 * clients it runs, and its window. */
struct worker_base {
	struct bench_stats *st;
	int ep;
	int nc;
	int64_t end_ns;     /* end of the measured window */
	int64_t timeout_ns; /* --timeout */
};
/* A worker's start: w filled (its results slot sh->w[index], an epoll set, n, the timeout),
 * and n zeroed elements of size bytes for its connections or clients; EX_OSERR when they
 * cannot be had. */
void *worker_setup(struct worker_base *w, struct bench_shared *sh, int index, int n,
    size_t size);
/* worker_sync, then the window's end is set from the start the parent gave. */
void worker_go(struct worker_base *w, int ready_wr, int go_rd, const struct bench_shared *sh);
/* Once its window has been run: the slot says it finished, and the worker exits 0. */
_Noreturn void worker_finish(struct bench_stats *st);

/* A forked child's first step: it dies with its parent (PR_SET_PDEATHSIG), or exits at once
 * if the parent is already gone; role names it in its log lines (bench_worker.c). */
void worker_attach(pid_t parent, const char *role);
/* Writes the ready byte, then waits for the parent to close "go" (bench_worker.c). */
void worker_sync(int ready_wr, int go_rd);
/* One worker: sets up its connections, writes a byte on ready_wr, waits for go_rd's EOF, runs
 * the window, winds down and exits (bench_worker.c). */
/* mpecho-bench fsync-probe DIR [COUNT] (bench_fsync.c): argv[0] is "fsync-probe". */
int bench_fsync_probe(int argc, char **argv);
_Noreturn void worker_main(int index, int nconns, int nworkers, struct bench_shared *sh,
    int ready_wr, int go_rd, pid_t parent);

/* The flood mode's worker: keeps nconns connections that close as soon as they are made
 * coming until the end of the window (bench_flood.c). */
_Noreturn void flood_worker_main(int index, int nconns, int nworkers, struct bench_shared *sh,
    int ready_wr, int go_rd, pid_t parent);
/* The flood mode's probe: a fresh connection every BENCH_PROBE_MS, its echo timed and checked,
 * into slot index (bench_flood.c). */
_Noreturn void flood_probe_main(int index, struct bench_shared *sh, int ready_wr, int go_rd,
    pid_t parent);

/* The udp mode's worker: nclients UDP clients, each sending a datagram, waiting for its echo
 * (or the timeout), then the next, until the end of the window (bench_udp.c). */
_Noreturn void udp_worker_main(int index, int nclients, int nworkers, struct bench_shared *sh,
    int ready_wr, int go_rd, pid_t parent);

/* Prints the report (text, or JSON with --json) from the workers' shared results; returns the
 * number of errors (bench_report.c). */
uint64_t report_print(const struct bench_run *run);

#endif
