/*
 * bench.c - mpecho-bench, a load generator for TCP echo servers that checks every byte.
 *
 * The parent parses the options, resolves the address (numerically: it never looks up a name),
 * and forks the workers.  Each worker drives its share of the connections from one epoll loop,
 * and keeps its counters and latency histogram in a page shared with the parent, which reads
 * them for the progress line and, once the workers have exited, merges them into the report.
 * The parent and the workers talk through two pipes besides: a worker writes one byte on
 * "ready" when its connections are set up, and the parent closes "go" to start them all at
 * once.  The workers hold "ready"'s write end until they exit, so its EOF tells the parent they
 * are all done; a worker whose parent dies is killed (PR_SET_PDEATHSIG).
 *
 * The payload is a slice of one pseudo-random pattern, at an offset of its own for every
 * connection, so a byte that is wrong, missing, repeated, reordered or from another connection
 * shows up as a mismatch against the slice the connection sent.
 */
#define _GNU_SOURCE
#include "log.h"
#include "net.h"
#include "opts.h"
#include "sig.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EX_USAGE_ 64
#define EX_OSERR_ 71
#define BENCH_PATTERN 1048573u          /* a prime, so no write or read size lines up with it */
#define BENCH_RBUF ((size_t)256 * 1024) /* one recv(2) */
/* Stream: the most bytes in flight on one connection (at least one write).  A few writes' worth
 * keeps the echo loop in the caches: a window of megabytes measured 30-40% slower here against
 * both mpechod and tcpserver's cat, and the kernel's buffers bound it anyway. */
#define BENCH_WINDOW ((uint64_t)256 * 1024)
#define BENCH_MAX_SIZE (16L * 1024 * 1024)
#define BENCH_MAX_CONNS 100000
#define BENCH_MAX_WORKERS 256
#define BENCH_MAX_PROCS 65536           /* server processes looked at in /proc */
#define BENCH_TICK_NS 10000000LL        /* timeouts are checked every 10 ms */
#define BENCH_PROGRESS_MS 250
#define BENCH_EVENTS 256
/* Sends one connection makes before the others get their turn (tiny stream writes would
 * otherwise fill a whole window before anything is read back). */
#define BENCH_WRITE_BURST 64
/* Connections a worker sets up at once: a burst of a thousand SYNs would overflow the listen
 * backlog of most servers (ncat's is 10, xinetd's 64) and measure SYN retransmission instead. */
#define BENCH_SETUP_INFLIGHT 8
#define NS 1000000000LL

/* Latency histogram over nanoseconds: exact below 128 ns, then 64 buckets per power of two
 * (HdrHistogram's layout), so a percentile is within 1.6% of the true value. */
#define HIST_SUB_BITS 6
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_LINEAR (2 * HIST_SUB)
#define HIST_BUCKETS (HIST_LINEAR + (64 - HIST_SUB_BITS - 1) * HIST_SUB)

enum mode { MODE_CONNECT, MODE_RR, MODE_STREAM, MODE_HOLD, MODE_MAX };
static const char *const mode_names[MODE_MAX] = { "connect", "rr", "stream", "hold" };

enum err_kind { E_CONNECT, E_RESET, E_EOF, E_MISMATCH, E_EXTRA, E_TIMEOUT, E_LOCAL, E_MAX };
static const char *const err_names[E_MAX] = {
	"connect", "reset", "eof", "mismatch", "extra", "timeout", "local"
};

/* One worker's results, in memory shared with the parent.  Only that worker writes it; the
 * counters the progress line reads are stored with relaxed atomics. */
struct stats {
	uint64_t done;           /* connect: cycles, rr: requests, completed in the window */
	uint64_t bytes;          /* echoed bytes verified in the window */
	uint64_t held;           /* hold: connections that echoed at setup */
	uint64_t err[E_MAX];
	uint64_t lat_max, lat_sum;
	uint64_t hist[HIST_BUCKETS];
	int finished;            /* the worker got to the end */
	char first_error[192];
} __attribute__((aligned(64)));

struct shared {
	int64_t start_ns;        /* CLOCK_MONOTONIC start of the window, set before "go" */
	struct stats w[];
};

enum opt_ids { OPT_PID = 256, OPT_JSON, OPT_RST, OPT_TEXT };

/* The settings, filled by bench_parse and read-only afterwards (the workers inherit them). */
static struct {
	enum mode mode;
	int conns;               /* -c: concurrent connections */
	double duration;         /* -d: seconds measured */
	size_t size;             /* -s: bytes per message (stream: per write) */
	int workers;             /* -w: worker processes; 0: one per CPU, at most conns */
	int timeout_ms;          /* -t: a connect, an echo or a stalled stream fails after this */
	pid_t pid;               /* --pid: the server; 0: the process listening on the port */
	int json, rst, text;
	const char *host, *port;
	int portnum;
	struct sockaddr_storage addr;
	socklen_t addrlen;
} B;

static unsigned char *pattern;   /* BENCH_PATTERN bytes, then its start again (pattern_ext) */
static size_t pattern_ext;

/* ---- worker: the connections and the event loop ---- */

enum cstate { C_DEAD, C_BACKOFF, C_CONNECTING, C_BUSY, C_IDLE };
enum phase { P_SETUP, P_RUN, P_STOP };

struct conn {
	int fd;
	enum cstate state;
	uint32_t id, gen;        /* id is unique in the run; gen counts its sockets */
	uint64_t base;           /* pattern offset of the stream's byte 0 */
	uint64_t sent, rcvd;     /* stream offsets */
	uint64_t target;         /* send, and expect back, up to here */
	int64_t t0;              /* the request (connect: the socket) began */
	int64_t deadline;        /* fails unless it progresses by then; 0: not waiting */
	int queued;              /* in the ready queue: more to write after its burst */
};

static struct {
	int ep;
	struct conn *c;
	int nc;
	int live;                /* connections not dead */
	int pending;             /* setup: connections that have not echoed yet */
	int next;                /* setup: the next connection to open */
	int *ready;              /* connections (indices) that stopped at their burst */
	int nready;
	enum phase phase;
	int64_t end_ns;          /* end of the measured window */
	int64_t stop_ns;         /* nothing waits past this */
	int64_t timeout_ns;
	struct stats *st;
} W;

static unsigned char rbuf[BENCH_RBUF];

static void conn_open(struct conn *c, int64_t now);

static int64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

/* The single writer of a shared counter stores it whole, so the parent never reads half. */
static void
stat_add(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, *p + v, __ATOMIC_RELAXED);
}

static uint64_t
stat_get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static int
hist_index(uint64_t v)
{
	int e;

	if (v < (uint64_t)HIST_LINEAR)
		return (int)v;
	e = 63 - __builtin_clzll(v);
	return HIST_LINEAR + (e - HIST_SUB_BITS - 1) * HIST_SUB +
	    (int)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* The middle of bucket i. */
static double
hist_value(int i)
{
	int e, sub;

	if (i < HIST_LINEAR)
		return i;
	e = (i - HIST_LINEAR) / HIST_SUB + HIST_SUB_BITS + 1;
	sub = (i - HIST_LINEAR) % HIST_SUB;
	return (double)((uint64_t)(HIST_SUB + sub) << (e - HIST_SUB_BITS)) +
	    (double)(1ULL << (e - HIST_SUB_BITS)) / 2;
}

static void
hist_add(struct stats *st, uint64_t ns)
{
	st->hist[hist_index(ns)]++;
	st->lat_sum += ns;
	if (ns > st->lat_max)
		st->lat_max = ns;
}

/* splitmix64's finalizer: spreads connection ids over the pattern. */
static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static const unsigned char *
pattern_at(const struct conn *c, uint64_t off)
{
	return pattern + (c->base + off) % BENCH_PATTERN;
}

static void
conn_close(struct conn *c, int rst)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (c->fd < 0)
		return;
	/* A reset leaves no TIME_WAIT behind, so the client does not run out of ports. */
	if (rst)
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c->fd);
	c->fd = -1;
	c->deadline = 0;
}

static void
conn_retire(struct conn *c)
{
	conn_close(c, B.rst);
	c->state = C_DEAD;
	W.live--;
}

/* Counts an error and ends the connection.  In connect mode the slot opens a new one at the
 * next tick, never from here, so a server that refuses everything cannot recurse. */
static void PRINTFLIKE(3, 4)
conn_fail(struct conn *c, enum err_kind kind, const char *fmt, ...)
{
	struct stats *st = W.st;
	va_list ap;
	int n;

	stat_add(&st->err[kind], 1);
	if (st->first_error[0] == '\0') {
		n = snprintf(st->first_error, sizeof(st->first_error), "%s, conn %u: ",
		    err_names[kind], c->id);
		va_start(ap, fmt);
		vsnprintf(st->first_error + n, sizeof(st->first_error) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	if (W.phase == P_SETUP && c->state != C_IDLE)
		W.pending--;
	conn_close(c, B.rst);
	if (B.mode == MODE_CONNECT && W.phase == P_RUN) {
		c->state = C_BACKOFF;
	} else {
		c->state = C_DEAD;
		W.live--;
	}
}

static void
conn_write(struct conn *c, int64_t now)
{
	size_t n;
	ssize_t k;

	for (int burst = 0; c->sent < c->target; burst++) {
		/* Edge-triggered: stopping short of EAGAIN brings no new event, so the loop
		 * comes back to this connection through the ready queue. */
		if (burst == BENCH_WRITE_BURST) {
			if (!c->queued) {
				c->queued = 1;
				W.ready[W.nready++] = (int)(c - W.c);
			}
			return;
		}
		n = B.size;
		if (c->target - c->sent < n)
			n = (size_t)(c->target - c->sent);
		if (B.mode == MODE_STREAM) {
			uint64_t window = B.size > BENCH_WINDOW ? B.size : BENCH_WINDOW;
			uint64_t room = window - (c->sent - c->rcvd);
			if (room == 0)
				return;
			if (room < n)
				n = (size_t)room;
			if (c->sent == c->rcvd)
				c->deadline = now + W.timeout_ns;
		}
		k = send(c->fd, pattern_at(c, c->sent), n, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			conn_fail(c, c->state == C_CONNECTING ? E_CONNECT : E_RESET, "send: %s",
			    strerror(errno));
			return;
		}
		if (c->state == C_CONNECTING)
			c->state = C_BUSY;
		c->sent += (uint64_t)k;
	}
}

/* Starts the next request: SIZE bytes to send and get back (stream, while the window lasts:
 * everything it can). */
static void
conn_request(struct conn *c, int64_t now)
{
	if (B.mode == MODE_STREAM && W.phase == P_RUN)
		c->target = UINT64_MAX;
	else
		c->target = c->rcvd + B.size;
	c->t0 = now;
	c->deadline = now + W.timeout_ns;
	if (c->state == C_IDLE)
		c->state = C_BUSY;
	conn_write(c, now);
}

/* A request came back whole. */
static void
conn_done(struct conn *c, int64_t now)
{
	uint64_t lat = (uint64_t)(now - c->t0);

	c->deadline = 0;
	c->state = C_IDLE;
	if (W.phase == P_SETUP) {
		W.pending--;
		if (B.mode == MODE_HOLD)
			stat_add(&W.st->held, 1);
		return;
	}
	if (W.phase == P_STOP) {
		conn_retire(c);
		return;
	}
	if (now <= W.end_ns) {
		stat_add(&W.st->done, 1);
		hist_add(W.st, lat);
	}
	if (B.mode == MODE_CONNECT) {
		conn_close(c, B.rst);
		conn_open(c, now);
	} else if (B.mode == MODE_RR) {
		conn_request(c, now);
	}
}

static int
conn_verify(struct conn *c, size_t n)
{
	const unsigned char *want = pattern_at(c, c->rcvd);
	size_t i = 0;

	if (memcmp(rbuf, want, n) == 0)
		return 0;
	while (rbuf[i] == want[i])
		i++;
	conn_fail(c, E_MISMATCH, "wrong byte at offset %llu: got 0x%02x, sent 0x%02x",
	    (unsigned long long)c->rcvd + i, rbuf[i], want[i]);
	return -1;
}

static void
conn_eof(struct conn *c)
{
	if (c->state == C_IDLE)
		conn_fail(c, E_EOF, "the server closed an idle connection");
	else
		conn_fail(c, E_EOF, "the server closed after echoing %llu of %llu bytes",
		    (unsigned long long)c->rcvd, (unsigned long long)c->sent);
}

static void
conn_read(struct conn *c, int64_t now)
{
	ssize_t k;

	for (;;) {
		k = recv(c->fd, rbuf, sizeof(rbuf), 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			conn_fail(c, c->state == C_CONNECTING ? E_CONNECT : E_RESET, "%s",
			    strerror(errno));
			return;
		}
		if (k == 0) {
			conn_eof(c);
			return;
		}
		if ((uint64_t)k > c->sent - c->rcvd) {
			conn_fail(c, E_EXTRA, "%zd bytes back with %llu sent and not yet echoed", k,
			    (unsigned long long)(c->sent - c->rcvd));
			return;
		}
		if (conn_verify(c, (size_t)k) < 0)
			return;
		c->rcvd += (uint64_t)k;
		if (W.phase == P_RUN && now <= W.end_ns)
			stat_add(&W.st->bytes, (uint64_t)k);
		if (B.mode == MODE_STREAM)
			c->deadline = c->sent > c->rcvd ? now + W.timeout_ns : 0;
		if (c->rcvd == c->target) {
			conn_done(c, now);
			return;
		}
	}
}

/* A nonblocking connect; the request is sent as soon as the handshake is done (a send before
 * that fails with EAGAIN, and the EPOLLOUT edge comes when it is). */
static void
conn_open(struct conn *c, int64_t now)
{
	struct epoll_event ev;
	int one = 1;

	c->fd = socket(B.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c->gen++;
	c->base = mix64(((uint64_t)c->id << 32) | c->gen) % BENCH_PATTERN;
	c->sent = c->rcvd = 0;
	c->state = C_CONNECTING;
	c->t0 = now;
	if (c->fd < 0) {
		conn_fail(c, E_LOCAL, "socket: %s", strerror(errno));
		return;
	}
	if (B.mode == MODE_RR || B.mode == MODE_HOLD)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&B.addr, B.addrlen) < 0 && errno != EINPROGRESS) {
		conn_fail(c, E_CONNECT, "connect: %s", strerror(errno));
		return;
	}
	ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
	ev.data.ptr = c;
	if (epoll_ctl(W.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		conn_fail(c, E_LOCAL, "epoll_ctl: %s", strerror(errno));
		return;
	}
	conn_request(c, now);
}

/* The syscalls tell what happened, never the event flags alone: an event may be stale. */
static void
worker_event(const struct epoll_event *ev)
{
	struct conn *c = ev->data.ptr;
	uint32_t gen = c->gen;
	int64_t now = bench_now_ns();

	if (c->state == C_DEAD || c->state == C_BACKOFF)
		return;
	if (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		conn_read(c, now);
		if (c->gen != gen || c->state == C_DEAD || c->state == C_BACKOFF)
			return;
	}
	if (c->state == C_CONNECTING && (ev->events & EPOLLOUT))
		c->state = C_BUSY;
	if (c->sent < c->target)
		conn_write(c, now);
}

/* Gives the connections that stopped at their burst their next turn. */
static void
worker_run_ready(void)
{
	int n = W.nready;

	for (int i = 0; i < n; i++)
		W.c[W.ready[i]].queued = 0;
	W.nready = 0;
	for (int i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT };

		ev.data.ptr = &W.c[W.ready[i]];
		worker_event(&ev);
	}
}

static void
worker_tick(int64_t now)
{
	for (int i = 0; i < W.nc; i++) {
		struct conn *c = &W.c[i];

		if (c->state == C_BACKOFF) {
			conn_open(c, now);
		} else if (c->deadline != 0 && now > c->deadline) {
			if (c->state == C_CONNECTING)
				conn_fail(c, E_TIMEOUT, "not connected after %d ms", B.timeout_ms);
			else
				conn_fail(c, E_TIMEOUT,
				    "no echo for %d ms (%llu of %llu bytes back)", B.timeout_ms,
				    (unsigned long long)c->rcvd, (unsigned long long)c->sent);
		}
	}
}

static int
worker_more(int64_t now)
{
	switch (W.phase) {
	case P_SETUP:
		return W.pending > 0;
	case P_RUN:
		return W.live > 0 && now < W.end_ns;
	case P_STOP:
		return W.live > 0 && now < W.stop_ns;
	}
	return 0;
}

static void
worker_loop(void)
{
	struct epoll_event ev[BENCH_EVENTS];
	int64_t now = bench_now_ns(), next_tick = now + BENCH_TICK_NS, wake;
	int n, ms;

	while (worker_more(now)) {
		while (W.phase == P_SETUP && W.next < W.nc &&
		    W.next - (W.nc - W.pending) < BENCH_SETUP_INFLIGHT)
			conn_open(&W.c[W.next++], now);
		wake = next_tick;
		if (W.phase == P_RUN && W.end_ns < wake)
			wake = W.end_ns;
		ms = wake > now && W.nready == 0 ? (int)((wake - now + 999999) / 1000000) : 0;
		n = epoll_wait(W.ep, ev, BENCH_EVENTS, ms);
		if (n < 0 && errno != EINTR)
			fatal(EX_OSERR_, "epoll_wait");
		for (int i = 0; i < n; i++)
			worker_event(&ev[i]);
		worker_run_ready();
		now = bench_now_ns();
		if (now >= next_tick) {
			worker_tick(now);
			next_tick = now + BENCH_TICK_NS;
		}
	}
}

static void
worker_start_run(int64_t now)
{
	for (int i = 0; i < W.nc; i++) {
		struct conn *c = &W.c[i];

		if (B.mode == MODE_CONNECT)
			conn_open(c, now);
		else if (c->state == C_IDLE && B.mode != MODE_HOLD)
			conn_request(c, now);
	}
}

/* The window is over: connect abandons what is in flight; rr lets the requests in flight come
 * back; stream stops writing and waits for everything sent; hold checks every connection once
 * more.  Nothing after the window is counted, but every byte is still verified. */
static void
worker_start_stop(int64_t now)
{
	for (int i = 0; i < W.nc; i++) {
		struct conn *c = &W.c[i];

		if (c->state == C_DEAD)
			continue;
		if (B.mode == MODE_HOLD && c->state == C_IDLE) {
			conn_request(c, now);
		} else if (B.mode == MODE_CONNECT || c->state == C_IDLE) {
			conn_retire(c);
		} else if (B.mode == MODE_STREAM) {
			c->target = c->sent;
			if (c->rcvd == c->sent)
				conn_done(c, now);
		}
	}
}

static void
worker_abandon(void)
{
	for (int i = 0; i < W.nc; i++)
		if (W.c[i].state != C_DEAD)
			conn_fail(&W.c[i], E_TIMEOUT, "still waiting when the run ended");
}

static void
worker_init(int index, int nconns, int nworkers, struct shared *sh)
{
	W.st = &sh->w[index];
	W.nc = nconns;
	W.live = nconns;
	W.timeout_ns = (int64_t)B.timeout_ms * 1000000;
	W.c = calloc((size_t)nconns, sizeof(*W.c));
	W.ready = calloc((size_t)nconns, sizeof(*W.ready));
	W.ep = epoll_create1(EPOLL_CLOEXEC);
	if (W.c == NULL || W.ready == NULL || W.ep < 0)
		fatal(EX_OSERR_, "worker %d", index);
	for (int i = 0; i < nconns; i++) {
		W.c[i].fd = -1;
		W.c[i].id = (uint32_t)(index + i * nworkers);
		W.c[i].state = C_IDLE;
	}
}

/* One worker: set up its connections, report ready, wait for go, run the window, wind down. */
static _Noreturn void
worker_main(int index, int nconns, int nworkers, struct shared *sh, int ready_wr, int go_rd,
    pid_t parent)
{
	char b;
	ssize_t r;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(EX_OSERR_);
	log_init(NULL, "worker");
	worker_init(index, nconns, nworkers, sh);
	W.phase = P_SETUP;
	if (B.mode != MODE_CONNECT) {
		W.pending = nconns;
		worker_loop();
	}
	if (write(ready_wr, "r", 1) != 1)
		_exit(EX_OSERR_);
	do
		r = read(go_rd, &b, 1);
	while (r < 0 && errno == EINTR);
	W.end_ns = sh->start_ns + (int64_t)(B.duration * NS);
	W.stop_ns = W.end_ns + W.timeout_ns + NS;
	W.phase = P_RUN;
	worker_start_run(bench_now_ns());
	worker_loop();
	W.phase = P_STOP;
	worker_start_stop(bench_now_ns());
	worker_loop();
	worker_abandon();
	W.st->finished = 1;
	_exit(0);
}

/* ---- the server's process tree, from /proc ---- */

/* pid and all its descendants, breadth first, through every thread's children list. */
static int
proc_tree(pid_t root, pid_t *out, int max)
{
	char path[320];
	struct dirent *e;
	DIR *d;
	FILE *f;
	long k;
	int n = 0;

	out[n++] = root;
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/proc/%d/task", (int)out[i]);
		if ((d = opendir(path)) == NULL)
			continue;
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/task/%.32s/children", (int)out[i],
			    e->d_name);
			if ((f = fopen(path, "r")) == NULL)
				continue;
			while (n < max && fscanf(f, "%ld", &k) == 1)
				out[n++] = (pid_t)k;
			fclose(f);
		}
		closedir(d);
	}
	return n;
}

/* Proportional set size in KiB, or -1 (the process is gone). */
static long
proc_pss(pid_t pid)
{
	char path[64], line[256];
	long kib = -1, v;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Pss: %ld kB", &v) == 1) {
			kib = v;
			break;
		}
	fclose(f);
	return kib;
}

/* The size of pid's page tables in KiB (VmPTE): kernel memory per process that PSS leaves out.
 * 0 when the process is gone. */
static long
proc_pte(pid_t pid)
{
	char path[64], line[256];
	long kib = 0, v;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmPTE: %ld kB", &v) == 1) {
			kib = v;
			break;
		}
	fclose(f);
	return kib;
}

/* Reads /proc/PID/stat into buf and returns the text after the command's closing parenthesis
 * (the command may hold spaces and parentheses), or NULL. */
static const char *
proc_stat(pid_t pid, char *buf, size_t len)
{
	char path[64];
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p ? p + 1 : NULL;
}

/* CPU ticks used by pid and by the children it has reaped (which include theirs). */
static long long
proc_cpu(pid_t pid)
{
	char buf[1024];
	unsigned long long ut, st;
	long long cut, cst;
	const char *p = proc_stat(pid, buf, sizeof(buf));

	if (p == NULL ||
	    sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld", &ut,
	    &st, &cut, &cst) != 4)
		return 0;
	return (long long)(ut + st) + cut + cst;
}

static pid_t proc_pids[BENCH_MAX_PROCS];

struct tree_usage {
	long long pss_kib;
	long long pte_kib;
	int nprocs;
	long long cpu_ticks;
};

/* Sums a process tree.  Children the tree reaped are in their parent's cutime, so the CPU sum
 * covers processes that came and went too. */
static struct tree_usage
tree_usage(pid_t root, int with_pss)
{
	struct tree_usage u = { 0, 0, 0, 0 };
	long kib;

	u.nprocs = proc_tree(root, proc_pids, BENCH_MAX_PROCS);
	for (int i = 0; i < u.nprocs; i++) {
		u.cpu_ticks += proc_cpu(proc_pids[i]);
		if (!with_pss)
			continue;
		if ((kib = proc_pss(proc_pids[i])) > 0)
			u.pss_kib += kib;
		u.pte_kib += proc_pte(proc_pids[i]);
	}
	return u;
}

/* CPU ticks every CPU together has spent idle (idle and iowait in /proc/stat).  With a tickless
 * kernel these are measured at each entry to and exit from idle, where the busy fields are
 * sampled at ticks that short bursts of work miss; the machine's busy time is the window's
 * length on every CPU less this. */
static long long
machine_idle_ticks(void)
{
	unsigned long long idle = 0, iowait = 0;
	char line[256];
	FILE *f = fopen("/proc/stat", "r");

	if (f == NULL)
		return 0;
	if (fgets(line, sizeof(line), f) == NULL ||
	    sscanf(line, "cpu %*u %*u %*u %llu %llu", &idle, &iowait) != 2)
		idle = iowait = 0;
	fclose(f);
	return (long long)(idle + iowait);
}

/* The inodes of the TCP sockets listening on port, from /proc/net/tcp and tcp6. */
static int
listener_inodes(int port, unsigned long *ino, int max)
{
	static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	char line[512], local[128];
	unsigned int lport, state;
	unsigned long inode;
	int n = 0;

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		FILE *f = fopen(files[i], "r");
		if (f == NULL)
			continue;
		while (n < max && fgets(line, sizeof(line), f) != NULL) {
			char *colon;
			if (sscanf(line, " %*d: %127s %*s %x %*s %*s %*s %*d %*d %lu", local,
			    &state, &inode) != 3 || state != 0x0A ||
			    (colon = strrchr(local, ':')) == NULL)
				continue;
			if (sscanf(colon + 1, "%x", &lport) == 1 && (int)lport == port &&
			    inode != 0)
				ino[n++] = inode;
		}
		fclose(f);
	}
	return n;
}

static int
pid_holds_inode(const char *pid, const unsigned long *ino, int n)
{
	char path[320], link[64];
	struct dirent *e;
	unsigned long v;
	ssize_t len;
	int found = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%.32s/fd", pid);
	if ((d = opendir(path)) == NULL)
		return 0;
	while (!found && (e = readdir(d)) != NULL) {
		snprintf(path, sizeof(path), "/proc/%.32s/fd/%.32s", pid, e->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (sscanf(link, "socket:[%lu]", &v) == 1)
			for (int i = 0; i < n; i++)
				found |= (v == ino[i]);
	}
	closedir(d);
	return found;
}

static pid_t
proc_ppid(pid_t pid)
{
	char buf[512];
	const char *p = proc_stat(pid, buf, sizeof(buf));
	int ppid = 0;

	if (p == NULL || sscanf(p, " %*c %d", &ppid) != 1)
		return 0;
	return (pid_t)ppid;
}

/* The server: of the processes that hold a socket listening on the port, the one whose parent
 * does not (forking servers' children often inherit the listener).  0 when there is none. */
static pid_t
bench_find_server(int port)
{
	unsigned long ino[16];
	pid_t cand[64];
	struct dirent *e;
	int n, nc = 0;
	DIR *d;

	if ((n = listener_inodes(port, ino, 16)) == 0 || (d = opendir("/proc")) == NULL)
		return 0;
	while (nc < 64 && (e = readdir(d)) != NULL)
		if (e->d_name[0] >= '1' && e->d_name[0] <= '9' &&
		    pid_holds_inode(e->d_name, ino, n))
			cand[nc++] = (pid_t)strtol(e->d_name, NULL, 10);
	closedir(d);
	for (int i = 0; i < nc; i++) {
		pid_t pp = proc_ppid(cand[i]);
		int parent_holds = 0;
		for (int j = 0; j < nc; j++)
			parent_holds |= (cand[j] == pp);
		if (!parent_holds)
			return cand[i];
	}
	return 0;
}

/* ---- the parent: options, workers, the report ---- */

static const char bench_usage_text[] =
"usage: mpecho-bench [options] MODE [HOST [PORT]]\n"
"Drives a TCP echo server and checks every byte it echoes.  HOST is an IP\n"
"address, or localhost for 127.0.0.1 (no name is ever looked up); the default\n"
"is localhost 7007.\n"
"\n"
"Modes:\n"
"  connect   each connection: connect, send SIZE bytes, read them back, close;\n"
"            reports connections/s and the latency of the whole cycle\n"
"  rr        N persistent connections ping-pong SIZE-byte messages; reports\n"
"            requests/s and latency percentiles (p50 p90 p99 p99.9 max)\n"
"  stream    N connections write SIZE-byte chunks while reading the echo back\n"
"            concurrently; reports MiB/s echoed\n"
"  hold      opens N connections, checks that each echoes, holds them for the\n"
"            duration, checks them again; reports the server's memory per\n"
"            connection: the PSS summed over its process tree (/proc smaps_rollup)\n"
"            less the sum before, divided by the connections held\n"
"\n"
"Options:\n"
"  -c, --connections N  concurrent connections, 1-100000 (default 1)\n"
"  -d, --duration SEC   seconds measured, e.g. 2 or 0.5 (default 5)\n"
"  -s, --size BYTES     message size, 1-16777216 (default 64; stream: 65536,\n"
"                       the size of each write)\n"
"  -w, --workers N      worker processes, each with an epoll loop over its share\n"
"                       of the connections (default: one per CPU, at most N)\n"
"  -t, --timeout MS     a connect, an echo or a stalled stream counts as an\n"
"                       error after MS milliseconds (default 5000)\n"
"      --pid PID        the server's pid, for its memory and CPU figures\n"
"                       (default: the process listening on PORT, from /proc)\n"
"      --rst            close with a reset (SO_LINGER 0): no TIME_WAIT is left,\n"
"                       which otherwise caps a loopback client near 14,000 conn/s\n"
"      --text           printable payload bytes instead of binary ones\n"
"      --json           print one JSON object instead of the text report\n"
"  -h, --help           show this help and exit\n"
"  -V, --version        show the version and exit\n"
"\n"
"Every byte that comes back is compared with the byte sent (a pseudo-random\n"
"pattern at an offset of each connection's own): wrong bytes, short echoes,\n"
"extra bytes, resets and timeouts are errors; they are reported and the exit\n"
"status is 1.  A fast result from a broken server is a failure.  Exit status 64\n"
"for bad usage, 71 for a local failure.\n"
"\n"
"On one machine the client and the server share the CPUs: the report gives\n"
"both sides' CPU use, so a saturated client shows.  A progress line is drawn\n"
"while stderr is a terminal.\n";

static long
bench_number(const char *name, const char *arg, long min, long max)
{
	long v;

	if (opts_number(arg, min, max, &v) < 0)
		usage_error("%s: '%.64s' is not a whole number from %ld to %ld", name, arg, min,
		    max);
	return v;
}

static double
bench_seconds(const char *arg)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (arg[0] < '0' || arg[0] > '9' || errno != 0 || *end != '\0' || !(v >= 0.05) ||
	    v > 86400)
		usage_error("duration: '%.64s' is not a number of seconds from 0.05 to 86400",
		    arg);
	return v;
}

static void
bench_option(int ch, const char *arg, char **argv)
{
	switch (ch) {
	case 'c': B.conns = (int)bench_number("connections", arg, 1, BENCH_MAX_CONNS); break;
	case 'd': B.duration = bench_seconds(arg); break;
	case 's': B.size = (size_t)bench_number("size", arg, 1, BENCH_MAX_SIZE); break;
	case 'w': B.workers = (int)bench_number("workers", arg, 1, BENCH_MAX_WORKERS); break;
	case 't': B.timeout_ms = (int)bench_number("timeout", arg, 1, 3600000); break;
	case OPT_PID: B.pid = (pid_t)bench_number("pid", arg, 1, INT_MAX); break;
	case OPT_JSON: B.json = 1; break;
	case OPT_RST: B.rst = 1; break;
	case OPT_TEXT: B.text = 1; break;
	case 'h':
		fputs(bench_usage_text, stdout);
		exit(0);
	case 'V':
		printf("mpecho-bench %s\n", MPECHO_VERSION);
		exit(0);
	default:
		if (optopt != 0 && optopt < 256)
			usage_error("unknown option or missing argument: -%c", optopt);
		usage_error("unknown option or missing argument: %.64s", argv[optind - 1]);
	}
}

static void
bench_parse(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "connections", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 's' },
		{ "workers", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "pid", required_argument, NULL, OPT_PID },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "rst", no_argument, NULL, OPT_RST },
		{ "text", no_argument, NULL, OPT_TEXT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int ch, m;

	B.conns = 1;
	B.duration = 5;
	B.timeout_ms = 5000;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "c:d:s:w:t:hV", longopts, NULL)) != -1)
		bench_option(ch, optarg, argv);
	if (optind >= argc)
		usage_error("no MODE given: connect, rr, stream or hold");
	for (m = 0; m < MODE_MAX && strcmp(argv[optind], mode_names[m]) != 0; m++)
		;
	if (m == MODE_MAX)
		usage_error("unknown mode '%.64s': connect, rr, stream or hold",
		    argv[optind]);
	B.mode = (enum mode)m;
	B.host = optind + 1 < argc ? argv[optind + 1] : "localhost";
	B.port = optind + 2 < argc ? argv[optind + 2] : "7007";
	if (optind + 3 < argc)
		usage_error("unexpected argument '%.64s'", argv[optind + 3]);
	B.portnum = (int)bench_number("port", B.port, 1, 65535);
	if (B.size == 0)
		B.size = B.mode == MODE_STREAM ? 65536 : 64;
}

static void
bench_resolve(void)
{
	struct addrinfo hints, *res;
	char hbuf[NET_ADDRLEN];
	const char *host = B.host;
	size_t n = strlen(host);
	int rc;

	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (host[0] == '[' && n > 2 && n - 2 < sizeof(hbuf) && host[n - 1] == ']') {
		memcpy(hbuf, host + 1, n - 2);
		hbuf[n - 2] = '\0';
		host = hbuf;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(host, B.port, &hints, &res);
	if (rc != 0)
		usage_error("HOST '%.64s' is not an IP address or localhost (names are not "
		    "looked up)", B.host);
	memcpy(&B.addr, res->ai_addr, res->ai_addrlen);
	B.addrlen = res->ai_addrlen;
	freeaddrinfo(res);
}

/* Each worker needs a descriptor per connection; ask for what the hard limit allows, and as
 * root raise the hard limit too. */
static void
bench_raise_nofile(int per_worker)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)per_worker + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max < want) {
		struct rlimit up = { want, want };
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < want)
		fatalx(EX_OSERR_, "each worker needs %llu descriptors and the limit is %llu; use "
		    "more workers (-w) or raise ulimit -n", (unsigned long long)want,
		    (unsigned long long)rl.rlim_cur);
}

static void
pattern_make(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	pattern_ext = B.size > BENCH_RBUF ? B.size : BENCH_RBUF;
	pattern = malloc(BENCH_PATTERN + pattern_ext);
	if (pattern == NULL)
		fatal(EX_OSERR_, "pattern");
	for (size_t i = 0; i < BENCH_PATTERN; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		unsigned b = (unsigned)((x * 0x2545f4914f6cdd1dULL) >> 56);
		pattern[i] = (unsigned char)(B.text ? ' ' + b % 95 : b);
	}
	for (size_t i = 0; i < pattern_ext; i++)
		pattern[BENCH_PATTERN + i] = pattern[i % BENCH_PATTERN];
}

/* The run as the parent sees it. */
static struct {
	int nworkers;
	pid_t wpid[BENCH_MAX_WORKERS];
	struct shared *sh;
	int ready_rd, go_wr;
	pid_t server;            /* 0: unknown */
	int server_found;        /* found through the listener, not given */
	struct tree_usage srv0, srv1, held;
	long long client0, client1;
	long long machine0, machine1;    /* idle ticks of all CPUs */
	int64_t start_ns;
	double window_s;         /* wall time between the two CPU samples */
	int tty;
	int worker_failures;
	const char *failure;     /* why, when the run itself failed */
} R;

static long long
clients_cpu(void)
{
	long long t = 0;

	for (int i = 0; i < R.nworkers; i++)
		t += proc_cpu(R.wpid[i]);
	return t;
}

static void
bench_fork_workers(void)
{
	size_t shsize = sizeof(struct shared) + (size_t)R.nworkers * sizeof(struct stats);
	int ready[2], go[2];
	pid_t parent = getpid();

	R.sh = mmap(NULL, shsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (R.sh == MAP_FAILED)
		fatal(EX_OSERR_, "mmap");
	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
		fatal(EX_OSERR_, "pipe");
	for (int i = 0; i < R.nworkers; i++) {
		int share = B.conns / R.nworkers + (i < B.conns % R.nworkers);
		pid_t pid = fork();

		if (pid < 0)
			fatal(EX_OSERR_, "fork");
		if (pid == 0) {
			close(ready[0]);
			close(go[1]);
			worker_main(i, share, R.nworkers, R.sh, ready[1], go[0], parent);
		}
		R.wpid[i] = pid;
	}
	close(ready[1]);
	close(go[0]);
	R.ready_rd = ready[0];
	R.go_wr = go[1];
}

static void
bench_kill_workers(void)
{
	for (int i = 0; i < R.nworkers; i++)
		if (R.wpid[i] > 0)
			kill(R.wpid[i], SIGKILL);
}

static uint64_t
bench_sum(size_t offset)
{
	uint64_t t = 0;

	for (int i = 0; i < R.nworkers; i++)
		t += stat_get((const uint64_t *)(const void *)((const char *)&R.sh->w[i] + offset));
	return t;
}

static uint64_t
bench_errors(void)
{
	uint64_t t = 0;

	for (int k = 0; k < E_MAX; k++)
		t += bench_sum(offsetof(struct stats, err) + (size_t)k * sizeof(uint64_t));
	return t;
}

static void
bench_progress(const char *what, int64_t now)
{
	double t = R.start_ns ? (double)(now - R.start_ns) / NS : 0;
	uint64_t done = bench_sum(offsetof(struct stats, done));
	uint64_t bytes = bench_sum(offsetof(struct stats, bytes));
	char line[160];

	if (!R.tty)
		return;
	if (B.mode == MODE_STREAM)
		snprintf(line, sizeof(line), "%s %.1f/%.1f s  %.1f MiB  %.0f MiB/s", what, t,
		    B.duration, (double)bytes / 1048576.0,
		    t > 0 ? (double)bytes / 1048576.0 / t : 0);
	else if (B.mode == MODE_HOLD)
		snprintf(line, sizeof(line), "%s %.1f/%.1f s  %llu held", what, t, B.duration,
		    (unsigned long long)bench_sum(offsetof(struct stats, held)));
	else
		snprintf(line, sizeof(line), "%s %.1f/%.1f s  %llu done  %.0f/s", what, t,
		    B.duration, (unsigned long long)done, t > 0 ? (double)done / t : 0);
	fprintf(stderr, "\r%s  %llu errors\033[K", line, (unsigned long long)bench_errors());
}

/* Waits until every worker has written its ready byte; 0, or -1 when one died or the setup
 * outlived every connection's timeout. */
static int
bench_wait_ready(void)
{
	int64_t deadline = bench_now_ns() + (int64_t)B.timeout_ms * 1000000 + 5 * NS;
	struct pollfd pfd = { .fd = R.ready_rd, .events = POLLIN };
	int got = 0;
	char buf[BENCH_MAX_WORKERS];
	ssize_t n;

	while (got < R.nworkers) {
		int64_t now = bench_now_ns();
		if (now >= deadline)
			return -1;
		bench_progress("connecting", now);
		if (poll(&pfd, 1, BENCH_PROGRESS_MS) <= 0)
			continue;
		n = read(R.ready_rd, buf, sizeof(buf));
		if (n <= 0)
			return -1;
		got += (int)n;
	}
	return 0;
}

static void
bench_sample_end(int64_t now)
{
	R.window_s = (double)(now - R.start_ns) / NS;
	R.client1 = clients_cpu();
	R.machine1 = machine_idle_ticks();
	if (R.server)
		R.srv1 = tree_usage(R.server, 0);
}

/* From go to the last worker's exit: progress, the samples at the middle (hold) and the end of
 * the window, and a hard deadline after which the workers are killed. */
static void
bench_watch(void)
{
	struct pollfd pfd = { .fd = R.ready_rd, .events = POLLIN };
	int64_t end = R.start_ns + (int64_t)(B.duration * NS);
	int64_t mid = R.start_ns + (int64_t)(B.duration * NS / 2);
	int64_t hard = end + 2 * (int64_t)B.timeout_ms * 1000000 + 5 * NS;
	int sampled = 0, measured = B.mode != MODE_HOLD || R.server == 0;
	char buf[64];

	for (;;) {
		int64_t now = bench_now_ns(), wake = now + BENCH_PROGRESS_MS * 1000000LL;
		if (!measured && now >= mid) {
			R.held = tree_usage(R.server, 1);
			measured = 1;
		}
		if (!sampled && now >= end) {
			bench_sample_end(now);
			sampled = 1;
		}
		if (now >= hard) {
			R.worker_failures++;
			R.failure = "the workers did not finish in time "
			    "(duration + 2 timeouts + 5 s)";
			bench_kill_workers();
			return;
		}
		bench_progress(sampled ? "finishing" : mode_names[B.mode], now);
		if (!measured && mid < wake)
			wake = mid;
		if (!sampled && end < wake)
			wake = end;
		if (poll(&pfd, 1, (int)((wake - now + 999999) / 1000000)) > 0 &&
		    read(R.ready_rd, buf, sizeof(buf)) == 0) {
			if (!sampled)
				bench_sample_end(bench_now_ns());
			return;
		}
	}
}

static void
bench_reap(void)
{
	int status;

	for (int i = 0; i < R.nworkers; i++) {
		while (waitpid(R.wpid[i], &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !R.sh->w[i].finished)
			R.worker_failures++;
	}
	if (R.tty)
		fputs("\r\033[K", stderr);
}

/* ---- the report ---- */

struct totals {
	uint64_t done, bytes, held, errors;
	uint64_t err[E_MAX];
	uint64_t lat_max, lat_sum;
	uint64_t hist[HIST_BUCKETS];
	const char *first_error;
};

static void
bench_merge(struct totals *t)
{
	memset(t, 0, sizeof(*t));
	t->first_error = "";
	for (int i = 0; i < R.nworkers; i++) {
		const struct stats *s = &R.sh->w[i];
		t->done += s->done;
		t->bytes += s->bytes;
		t->held += s->held;
		for (int k = 0; k < E_MAX; k++)
			t->err[k] += s->err[k];
		t->lat_sum += s->lat_sum;
		if (s->lat_max > t->lat_max)
			t->lat_max = s->lat_max;
		for (int b = 0; b < HIST_BUCKETS; b++)
			t->hist[b] += s->hist[b];
		if (t->first_error[0] == '\0')
			t->first_error = s->first_error;
	}
	for (int k = 0; k < E_MAX; k++)
		t->errors += t->err[k];
	t->errors += (uint64_t)R.worker_failures;
}

/* The q-quantile in microseconds, from the histogram (never above the exact maximum). */
static double
bench_quantile(const struct totals *t, double q)
{
	uint64_t n = 0, rank, seen = 0;
	double v;

	for (int b = 0; b < HIST_BUCKETS; b++)
		n += t->hist[b];
	if (n == 0)
		return 0;
	rank = (uint64_t)(q * (double)n);
	if ((double)rank < q * (double)n || rank < 1)
		rank++;
	for (int b = 0; b < HIST_BUCKETS; b++) {
		seen += t->hist[b];
		if (seen >= rank) {
			v = hist_value(b);
			return (v > (double)t->lat_max ? (double)t->lat_max : v) / 1000;
		}
	}
	return (double)t->lat_max / 1000;
}

static double
bench_rate(const struct totals *t)
{
	if (B.mode == MODE_STREAM)
		return (double)t->bytes / 1048576.0 / B.duration;
	return (double)t->done / B.duration;
}

static const char *
bench_rate_key(void)
{
	static const char *const keys[MODE_MAX] = {
		"conn_per_sec", "req_per_sec", "mib_per_sec", NULL
	};
	return keys[B.mode];
}

static double
bench_cpu_pct(long long ticks)
{
	return R.window_s > 0 ? 100.0 * (double)ticks / (double)sysconf(_SC_CLK_TCK) / R.window_s
	    : 0;
}

/* What the whole machine used in the window, in % of one CPU. */
static double
bench_machine_pct(void)
{
	double pct = 100.0 * (double)sysconf(_SC_NPROCESSORS_ONLN) -
	    bench_cpu_pct(R.machine1 - R.machine0);

	return pct > 0 ? pct : 0;
}

/* PSS per held connection in KiB; negative when unknown. */
static double
bench_pss_per_conn(const struct totals *t)
{
	if (!R.server || t->held == 0 || R.held.nprocs == 0)
		return -1;
	return (double)(R.held.pss_kib - R.srv0.pss_kib) / (double)t->held;
}

static void
json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void
json_report_common(const struct totals *t)
{
	printf("{\"mode\":\"%s\",\"host\":", mode_names[B.mode]);
	json_string(B.host);
	printf(",\"port\":%d,\"connections\":%d,\"duration_s\":%g,\"size\":%zu,\"workers\":%d,"
	    "\"timeout_ms\":%d,\"rst\":%s,\"payload\":\"%s\"", B.portnum, B.conns, B.duration,
	    B.size,
	    R.nworkers, B.timeout_ms, B.rst ? "true" : "false", B.text ? "text" : "binary");
	printf(",\"errors\":%llu,\"error_kinds\":{", (unsigned long long)t->errors);
	for (int k = 0; k < E_MAX; k++)
		printf("%s\"%s\":%llu", k ? "," : "", err_names[k], (unsigned long long)t->err[k]);
	printf(",\"worker\":%d},\"first_error\":", R.worker_failures);
	if (t->first_error[0])
		json_string(t->first_error);
	else if (R.worker_failures)
		json_string(R.failure ? R.failure : "a worker failed");
	else
		fputs("null", stdout);
	printf(",\"window_s\":%.3f", R.window_s);
	if (R.server)
		printf(",\"server_pid\":%d,\"server_cpu_pct\":%.1f", (int)R.server,
		    bench_cpu_pct(R.srv1.cpu_ticks - R.srv0.cpu_ticks));
	printf(",\"client_cpu_pct\":%.1f,\"machine_cpu_pct\":%.1f", bench_cpu_pct(R.client1 -
	    R.client0), bench_machine_pct());
}

static void
json_report(const struct totals *t)
{
	double pss = bench_pss_per_conn(t);

	json_report_common(t);
	if (B.mode == MODE_CONNECT || B.mode == MODE_RR) {
		printf(",\"%s\":%llu,\"%s\":%.1f", B.mode == MODE_RR ? "requests" : "connects",
		    (unsigned long long)t->done, bench_rate_key(), bench_rate(t));
		printf(",\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
		    "\"max\":%.1f,\"mean\":%.1f}", bench_quantile(t, 0.5), bench_quantile(t, 0.9),
		    bench_quantile(t, 0.99), bench_quantile(t, 0.999), (double)t->lat_max / 1000,
		    t->done ? (double)t->lat_sum / (double)t->done / 1000 : 0);
	} else if (B.mode == MODE_STREAM) {
		printf(",\"bytes\":%llu,\"mib_per_sec\":%.1f", (unsigned long long)t->bytes,
		    bench_rate(t));
	} else {
		printf(",\"held\":%llu", (unsigned long long)t->held);
		if (pss >= 0)
			printf(",\"server_procs_baseline\":%d,\"server_procs\":%d,"
			    "\"pss_kib_baseline\":%lld,\"pss_kib_loaded\":%lld,"
			    "\"pss_kib_total\":%lld,"
			    "\"pss_kib_per_conn\":%.1f,\"pte_kib_per_conn\":%.1f", R.srv0.nprocs,
			    R.held.nprocs, R.srv0.pss_kib, R.held.pss_kib,
			    R.held.pss_kib - R.srv0.pss_kib, pss,
			    (double)(R.held.pte_kib - R.srv0.pte_kib) / (double)t->held);
		else
			fputs(",\"pss_kib_per_conn\":null", stdout);
	}
	puts("}");
}

/* The mode's own lines of the text report. */
static void
text_report_mode(const struct totals *t)
{
	double pss = bench_pss_per_conn(t);

	if (B.mode == MODE_CONNECT || B.mode == MODE_RR) {
		printf("  %-12s %llu (%.1f/s)\n", B.mode == MODE_RR ? "requests" : "connections",
		    (unsigned long long)t->done, bench_rate(t));
		printf("  latency us   p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
		    bench_quantile(t, 0.5), bench_quantile(t, 0.9), bench_quantile(t, 0.99),
		    bench_quantile(t, 0.999), (double)t->lat_max / 1000);
	} else if (B.mode == MODE_STREAM) {
		printf("  echoed       %.1f MiB (%.1f MiB/s)\n", (double)t->bytes / 1048576.0,
		    bench_rate(t));
	} else {
		printf("  held         %llu\n", (unsigned long long)t->held);
		if (pss >= 0)
			printf("  server PSS   %lld KiB in %d processes, %lld KiB before: "
			    "%.1f KiB per connection (page tables: %.1f KiB more)\n",
			    R.held.pss_kib, R.held.nprocs, R.srv0.pss_kib, pss,
			    (double)(R.held.pte_kib - R.srv0.pte_kib) / (double)t->held);
		else
			printf("  server PSS   unknown (no server pid; use --pid)\n");
	}
}

static void
text_report_errors(const struct totals *t)
{
	printf("  errors       %llu", (unsigned long long)t->errors);
	for (int k = 0; k < E_MAX; k++)
		if (t->err[k])
			printf(" %s=%llu", err_names[k], (unsigned long long)t->err[k]);
	if (R.worker_failures)
		printf(" worker=%d", R.worker_failures);
	putchar('\n');
	if (t->first_error[0])
		printf("  first error  %s\n", t->first_error);
	else if (R.worker_failures)
		printf("  first error  %s\n", R.failure ? R.failure : "a worker failed");
}

static void
text_report(const struct totals *t)
{
	char addr[NET_ADDRLEN];

	net_addr_str((const struct sockaddr *)&B.addr, addr, sizeof(addr));
	printf("mpecho-bench %s %s: %d connection%s, %zu-byte %s, %g s, %d worker%s%s\n",
	    mode_names[B.mode], addr, B.conns, B.conns == 1 ? "" : "s", B.size,
	    B.mode == MODE_STREAM ? "writes" : "messages", B.duration, R.nworkers,
	    R.nworkers == 1 ? "" : "s", B.rst ? ", reset on close" : "");
	text_report_mode(t);
	if (R.server)
		printf("  cpu          server %.0f%% (pid %d%s), ",
		    bench_cpu_pct(R.srv1.cpu_ticks - R.srv0.cpu_ticks), (int)R.server,
		    R.server_found ? ", found by its listener" : "");
	else
		printf("  cpu          ");
	printf("client %.0f%%, whole machine %.0f%% of %ld00%%\n",
	    bench_cpu_pct(R.client1 - R.client0), bench_machine_pct(),
	    sysconf(_SC_NPROCESSORS_ONLN));
	text_report_errors(t);
}

static void
bench_locate_server(void)
{
	R.server = B.pid;
	if (R.server == 0) {
		R.server = bench_find_server(B.portnum);
		R.server_found = R.server != 0;
	}
	if (R.server && kill(R.server, 0) < 0 && errno == ESRCH)
		fatalx(EX_USAGE_, "no process %d", (int)R.server);
	if (B.mode == MODE_HOLD && R.server) {
		R.srv0 = tree_usage(R.server, 1);
	}
}

static int
bench_run(void)
{
	static struct totals t;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	R.nworkers = B.workers ? B.workers : (int)(ncpu > 0 ? ncpu : 1);
	if (R.nworkers > B.conns)
		R.nworkers = B.conns;
	bench_raise_nofile((B.conns + R.nworkers - 1) / R.nworkers);
	R.tty = isatty(STDERR_FILENO);
	bench_locate_server();
	bench_fork_workers();
	if (bench_wait_ready() < 0) {
		bench_kill_workers();
		R.worker_failures++;
		R.failure = "the connections were not all set up in time (timeout + 5 s)";
	} else {
		R.client0 = clients_cpu();
		R.machine0 = machine_idle_ticks();
		if (R.server)
			R.srv0.cpu_ticks = tree_usage(R.server, 0).cpu_ticks;
		R.start_ns = R.sh->start_ns = bench_now_ns();
		close(R.go_wr);
		bench_watch();
	}
	bench_reap();
	bench_merge(&t);
	if (B.json)
		json_report(&t);
	else
		text_report(&t);
	fflush(stdout);
	return t.errors ? 1 : 0;
}

int
main(int argc, char **argv)
{
	log_init("mpecho-bench", NULL);
	bench_parse(argc, argv);
	bench_resolve();
	sig_ignore(SIGPIPE);
	pattern_make();
	return bench_run();
}
