/*
 * bench_worker.c - one mpecho-bench worker of the connect, rr, stream and hold modes: its share
 * of the connections, driven from one edge-triggered epoll loop.  The worker sets its
 * connections up, writes one byte on the ready pipe, waits for the parent to close "go", runs
 * the measured window and winds down; its counters and latency histogram live in a page shared
 * with the parent, which reads them for the progress line and the report.  It holds the ready
 * pipe's write end until it exits, so the parent sees every worker's end as that pipe's EOF,
 * and dies with its parent (PR_SET_PDEATHSIG).
 *
 * Every connection sends a slice of one pseudo-random pattern, at an offset of its own, so a
 * byte that is wrong, missing, repeated, reordered or from another connection shows up as a
 * mismatch against the slice the connection sent.
 */
#define _GNU_SOURCE
#include "bench.h"
#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

/* Stream: the most bytes in flight on one connection (at least one write).  A few writes' worth
 * keeps the echo loop in the caches: a window of megabytes measured 30-40% slower here against
 * both mpechod and tcpserver's cat, and the kernel's buffers bound it anyway. */
#define BENCH_WINDOW ((uint64_t)256 * 1024)
#define BENCH_TICK_NS 10000000LL        /* timeouts are checked every 10 ms */
#define BENCH_EVENTS 256
/* Sends one connection makes before the others get their turn (tiny stream writes would
 * otherwise fill a whole window before anything is read back). */
#define BENCH_WRITE_BURST 64
/* Connections a worker sets up at once: a burst of a thousand SYNs would overflow the listen
 * backlog of most servers (ncat's is 10, xinetd's 64) and measure SYN retransmission instead. */
#define BENCH_SETUP_INFLIGHT 8

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
	struct worker_base w;
	struct conn *c;
	int live;                /* connections not dead */
	int pending;             /* setup: connections that have not echoed yet */
	int next;                /* setup: the next connection to open */
	int *ready;              /* connections (indices) that stopped at their burst */
	int nready;
	enum phase phase;
	int64_t stop_ns;         /* nothing waits past this */
} worker_ctx;

static unsigned char rbuf[BENCH_RBUF];

static void conn_open(struct conn *c, int64_t now);

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
	return bench_pattern + (c->base + off) % BENCH_PATTERN;
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
	conn_close(c, bench_cfg.rst);
	c->state = C_DEAD;
	worker_ctx.live--;
}

void
stat_verror(struct bench_stats *st, enum err_kind kind, const char *what, uint32_t id,
    const char *fmt, va_list ap)
{
	int n;

	stat_add(&st->err[kind], 1);
	if (st->first_error[0] != '\0')
		return;
	n = snprintf(st->first_error, sizeof(st->first_error), "%s, %s %u: ",
	    bench_err_names[kind], what, id);
	if (n > 0 && (size_t)n < sizeof(st->first_error))
		vsnprintf(st->first_error + n, sizeof(st->first_error) - (size_t)n, fmt, ap);
}

void
stat_error(struct bench_stats *st, enum err_kind kind, const char *what, uint32_t id,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	stat_verror(st, kind, what, id, fmt, ap);
	va_end(ap);
}

int
worker_wait(int ep, struct epoll_event *ev, int max, int64_t now, int64_t wake, int busy)
{
	int ms = wake > now && !busy ? (int)((wake - now + 999999) / 1000000) : 0;
	int n = epoll_wait(ep, ev, max, ms);

	if (n < 0 && errno != EINTR)
		fatal(EX_OSERR, "epoll_wait");
	return n < 0 ? 0 : n;
}

void *
worker_setup(struct worker_base *w, struct bench_shared *sh, int index, int n, size_t size)
{
	void *p = calloc((size_t)n, size);

	w->st = &sh->w[index];
	w->nc = n;
	w->timeout_ns = (int64_t)bench_cfg.timeout_ms * 1000000;
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	if (p == NULL || w->ep < 0)
		fatal(EX_OSERR, "worker %d", index);
	return p;
}

void
worker_go(struct worker_base *w, int ready_wr, int go_rd, const struct bench_shared *sh)
{
	worker_sync(ready_wr, go_rd);
	w->end_ns = sh->start_ns + (int64_t)(bench_cfg.duration * NS);
}

void
worker_finish(struct bench_stats *st)
{
	st->finished = 1;
	_exit(0);
}

/* Counts an error and ends the connection.  In connect mode the slot opens a new one at the
 * next tick, never from here, so a server that refuses everything cannot recurse. */
static void PRINTFLIKE(3, 4)
conn_fail(struct conn *c, enum err_kind kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	stat_verror(worker_ctx.w.st, kind, "conn", c->id, fmt, ap);
	va_end(ap);
	if (worker_ctx.phase == P_SETUP && c->state != C_IDLE)
		worker_ctx.pending--;
	conn_close(c, bench_cfg.rst);
	if (bench_cfg.mode == MODE_CONNECT && worker_ctx.phase == P_RUN) {
		c->state = C_BACKOFF;
	} else {
		c->state = C_DEAD;
		worker_ctx.live--;
	}
}

/* After a send or recv that failed: 1 to try again (EINTR); 0 when the socket would block, or
 * when the connection failed (counted and closed; what names the call in the error). */
static int
conn_io_again(struct conn *c, const char *what)
{
	if (errno == EINTR)
		return 1;
	if (errno != EAGAIN && errno != EWOULDBLOCK)
		conn_fail(c, c->state == C_CONNECTING ? E_CONNECT : E_RESET, "%s%s", what,
		    strerror(errno));
	return 0;
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
				worker_ctx.ready[worker_ctx.nready++] = (int)(c - worker_ctx.c);
			}
			return;
		}
		n = bench_cfg.size;
		if (c->target - c->sent < n)
			n = (size_t)(c->target - c->sent);
		if (bench_cfg.mode == MODE_STREAM) {
			uint64_t window = bench_cfg.size > BENCH_WINDOW ? bench_cfg.size : BENCH_WINDOW;
			uint64_t room = window - (c->sent - c->rcvd);
			if (room == 0)
				return;
			if (room < n)
				n = (size_t)room;
			if (c->sent == c->rcvd)
				c->deadline = now + worker_ctx.w.timeout_ns;
		}
		k = send(c->fd, pattern_at(c, c->sent), n, MSG_NOSIGNAL);
		if (k < 0) {
			if (conn_io_again(c, "send: "))
				continue;
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
	if (bench_cfg.mode == MODE_STREAM && worker_ctx.phase == P_RUN)
		c->target = UINT64_MAX;
	else
		c->target = c->rcvd + bench_cfg.size;
	c->t0 = now;
	c->deadline = now + worker_ctx.w.timeout_ns;
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
	if (worker_ctx.phase == P_SETUP) {
		worker_ctx.pending--;
		if (bench_cfg.mode == MODE_HOLD)
			stat_add(&worker_ctx.w.st->held, 1);
		return;
	}
	if (worker_ctx.phase == P_STOP) {
		conn_retire(c);
		return;
	}
	if (now <= worker_ctx.w.end_ns) {
		stat_add(&worker_ctx.w.st->done, 1);
		hist_add(&worker_ctx.w.st->lat, lat);
	}
	if (bench_cfg.mode == MODE_CONNECT) {
		conn_close(c, bench_cfg.rst);
		conn_open(c, now);
	} else if (bench_cfg.mode == MODE_RR) {
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
			if (conn_io_again(c, ""))
				continue;
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
		if (worker_ctx.phase == P_RUN && now <= worker_ctx.w.end_ns)
			stat_add(&worker_ctx.w.st->bytes, (uint64_t)k);
		if (bench_cfg.mode == MODE_STREAM)
			c->deadline = c->sent > c->rcvd ? now + worker_ctx.w.timeout_ns : 0;
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

	c->fd = socket(bench_cfg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c->gen++;
	c->base = bench_pattern_start(mix64(((uint64_t)c->id << 32) | c->gen));
	c->sent = c->rcvd = 0;
	c->state = C_CONNECTING;
	c->t0 = now;
	if (c->fd < 0) {
		conn_fail(c, E_LOCAL, "socket: %s", strerror(errno));
		return;
	}
	if (bench_cfg.mode == MODE_RR || bench_cfg.mode == MODE_HOLD)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&bench_cfg.addr, bench_cfg.addrlen) < 0 &&
	    errno != EINPROGRESS) {
		conn_fail(c, E_CONNECT, "connect: %s", strerror(errno));
		return;
	}
	ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
	ev.data.ptr = c;
	if (epoll_ctl(worker_ctx.w.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
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
	int n = worker_ctx.nready;

	for (int i = 0; i < n; i++)
		worker_ctx.c[worker_ctx.ready[i]].queued = 0;
	worker_ctx.nready = 0;
	for (int i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT };

		ev.data.ptr = &worker_ctx.c[worker_ctx.ready[i]];
		worker_event(&ev);
	}
}

static void
worker_tick(int64_t now)
{
	for (int i = 0; i < worker_ctx.w.nc; i++) {
		struct conn *c = &worker_ctx.c[i];

		if (c->state == C_BACKOFF) {
			conn_open(c, now);
		} else if (c->deadline != 0 && now > c->deadline) {
			if (c->state == C_CONNECTING)
				conn_fail(c, E_TIMEOUT, "not connected after %d ms", bench_cfg.timeout_ms);
			else
				conn_fail(c, E_TIMEOUT,
				    "no echo for %d ms (%llu of %llu bytes back)", bench_cfg.timeout_ms,
				    (unsigned long long)c->rcvd, (unsigned long long)c->sent);
		}
	}
}

static int
worker_more(int64_t now)
{
	switch (worker_ctx.phase) {
	case P_SETUP:
		return worker_ctx.pending > 0;
	case P_RUN:
		return worker_ctx.live > 0 && now < worker_ctx.w.end_ns;
	case P_STOP:
		return worker_ctx.live > 0 && now < worker_ctx.stop_ns;
	}
	return 0;
}

static void
worker_loop(void)
{
	struct epoll_event ev[BENCH_EVENTS];
	int64_t now = bench_now_ns(), next_tick = now + BENCH_TICK_NS, wake;
	int n;

	while (worker_more(now)) {
		while (worker_ctx.phase == P_SETUP && worker_ctx.next < worker_ctx.w.nc &&
		    worker_ctx.next - (worker_ctx.w.nc - worker_ctx.pending) < BENCH_SETUP_INFLIGHT)
			conn_open(&worker_ctx.c[worker_ctx.next++], now);
		wake = next_tick;
		if (worker_ctx.phase == P_RUN && worker_ctx.w.end_ns < wake)
			wake = worker_ctx.w.end_ns;
		n = worker_wait(worker_ctx.w.ep, ev, BENCH_EVENTS, now, wake, worker_ctx.nready > 0);
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
	for (int i = 0; i < worker_ctx.w.nc; i++) {
		struct conn *c = &worker_ctx.c[i];

		if (bench_cfg.mode == MODE_CONNECT)
			conn_open(c, now);
		else if (c->state == C_IDLE && bench_cfg.mode != MODE_HOLD)
			conn_request(c, now);
	}
}

/* The window is over: connect abandons what is in flight; rr lets the requests in flight come
 * back; stream stops writing and waits for everything sent; hold checks every connection once
 * more.  Nothing after the window is counted, but every byte is still verified. */
static void
worker_start_stop(int64_t now)
{
	for (int i = 0; i < worker_ctx.w.nc; i++) {
		struct conn *c = &worker_ctx.c[i];

		if (c->state == C_DEAD)
			continue;
		if (bench_cfg.mode == MODE_HOLD && c->state == C_IDLE) {
			conn_request(c, now);
		} else if (bench_cfg.mode == MODE_CONNECT || c->state == C_IDLE) {
			conn_retire(c);
		} else if (bench_cfg.mode == MODE_STREAM) {
			c->target = c->sent;
			if (c->rcvd == c->sent)
				conn_done(c, now);
		}
	}
}

static void
worker_abandon(void)
{
	for (int i = 0; i < worker_ctx.w.nc; i++)
		if (worker_ctx.c[i].state != C_DEAD)
			conn_fail(&worker_ctx.c[i], E_TIMEOUT, "still waiting when the run ended");
}

static void
worker_init(int index, int nconns, int nworkers, struct bench_shared *sh)
{
	worker_ctx.live = nconns;
	worker_ctx.c = worker_setup(&worker_ctx.w, sh, index, nconns, sizeof(*worker_ctx.c));
	worker_ctx.ready = calloc((size_t)nconns, sizeof(*worker_ctx.ready));
	if (worker_ctx.ready == NULL)
		fatal(EX_OSERR, "worker %d", index);
	for (int i = 0; i < nconns; i++) {
		worker_ctx.c[i].fd = -1;
		worker_ctx.c[i].id = (uint32_t)(index + i * nworkers);
		worker_ctx.c[i].state = C_IDLE;
	}
}

void
worker_attach(pid_t parent, const char *role)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(EX_OSERR);
	log_init(NULL, role);
}

void
worker_sync(int ready_wr, int go_rd)
{
	char b;
	ssize_t r;

	if (write(ready_wr, "r", 1) != 1)
		_exit(EX_OSERR);
	do
		r = read(go_rd, &b, 1);
	while (r < 0 && errno == EINTR);
}

/* Set up the connections, report ready, wait for go, run the window, wind down. */
_Noreturn void
worker_main(int index, int nconns, int nworkers, struct bench_shared *sh, int ready_wr,
    int go_rd, pid_t parent)
{
	worker_attach(parent, "worker");
	worker_init(index, nconns, nworkers, sh);
	worker_ctx.phase = P_SETUP;
	if (bench_cfg.mode != MODE_CONNECT) {
		worker_ctx.pending = nconns;
		worker_loop();
	}
	worker_go(&worker_ctx.w, ready_wr, go_rd, sh);
	worker_ctx.stop_ns = worker_ctx.w.end_ns + worker_ctx.w.timeout_ns + NS;
	worker_ctx.phase = P_RUN;
	worker_start_run(bench_now_ns());
	worker_loop();
	worker_ctx.phase = P_STOP;
	worker_start_stop(bench_now_ns());
	worker_loop();
	worker_abandon();
	worker_finish(worker_ctx.w.st);
}

