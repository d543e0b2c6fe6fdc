/*
 * bench_flood.c - mpecho-bench's flood mode: how a server copes with a flood of dead
 * connections.  Each flood worker keeps its share of the -c connections in flight: it connects,
 * and as soon as the handshake is done closes again, with a reset (or a FIN with --flood-close
 * fin) and without sending anything, except that one connection in ten first sends a chunk of
 * -s bytes.  Nothing is read: the server's echo, if any, is not the point.  Meanwhile one probe
 * process connects a fresh client every 200 ms, sends a few bytes and times them back (from the
 * connect to the last byte of the echo, which it checks); a probe that fails, comes back wrong
 * or takes over the timeout is a probe error.  Both write into their slot of the page shared
 * with the parent, and both stop by themselves at the end of the window.
 */
#define _GNU_SOURCE
#include "bench.h"
#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define FLOOD_TICK_NS 10000000LL        /* timeouts and retries are checked every 10 ms */
#define FLOOD_EVENTS 256
#define PROBE_SIZE 32

enum fstate { F_IDLE, F_CONNECTING, F_SENDING };

struct fconn {
	int fd;
	enum fstate state;
	uint32_t id;             /* unique in the run */
	uint64_t n;              /* connections this slot has made */
	size_t sent;             /* of the chunk */
	int64_t deadline;        /* fails unless connected (or the chunk sent) by then */
};

static struct {
	struct worker_base w;
	struct fconn *c;
} flood_ctx;

/* Closes the connection as the flood closes them all: a reset unless --flood-close fin. */
static void
flood_close(struct fconn *c)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (c->fd < 0)
		return;
	if (bench_cfg.rst)
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c->fd);
	c->fd = -1;
	c->state = F_IDLE;
}

/* A failed connection waits for the next tick before the slot opens another, so a server that
 * refuses everything does not make the flood spin. */
static void
flood_open(struct fconn *c, int64_t now)
{
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLET, .data.ptr = c };

	c->fd = socket(bench_cfg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		stat_error(flood_ctx.w.st, E_LOCAL, "conn", c->id, "socket: %s", strerror(errno));
		return;
	}
	c->state = F_CONNECTING;
	c->sent = 0;
	c->deadline = now + flood_ctx.w.timeout_ns;
	if (connect(c->fd, (struct sockaddr *)&bench_cfg.addr, bench_cfg.addrlen) < 0 &&
	    errno != EINPROGRESS) {
		stat_error(flood_ctx.w.st, errno == EADDRNOTAVAIL ? E_LOCAL : E_CONNECT, "conn", c->id,
		    "connect: %s", strerror(errno));
		flood_close(c);
		return;
	}
	if (epoll_ctl(flood_ctx.w.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		stat_error(flood_ctx.w.st, E_LOCAL, "conn", c->id, "epoll_ctl: %s", strerror(errno));
		flood_close(c);
	}
}

/* One connection done: counted if it ended in the window, and the slot's next one begins. */
static void
flood_done(struct fconn *c, int64_t now)
{
	flood_close(c);
	c->n++;
	if (now <= flood_ctx.w.end_ns)
		stat_add(&flood_ctx.w.st->done, 1);
	if (now < flood_ctx.w.end_ns)
		flood_open(c, now);
}

/* Sends what is left of the chunk; 1 when it is all sent, 0 to wait for room, -1 on error. */
static int
flood_send_chunk(struct fconn *c)
{
	ssize_t k;

	while (c->sent < bench_cfg.size) {
		k = send(c->fd, bench_pattern + (c->id + c->n) % BENCH_PATTERN + c->sent,
		    bench_cfg.size - c->sent, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (k < 0) {
			stat_error(flood_ctx.w.st, E_RESET, "conn", c->id, "send: %s", strerror(errno));
			return -1;
		}
		c->sent += (size_t)k;
	}
	return 1;
}

/* The socket became writable: the handshake is over (or failed), or the chunk has room. */
static void
flood_event(struct fconn *c, int64_t now)
{
	int soerr = 0, rc;
	socklen_t len = sizeof(soerr);

	if (c->fd < 0)
		return;         /* closed since: a timeout, or the end of the window */
	if (c->state == F_CONNECTING) {
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		if (soerr != 0) {
			stat_error(flood_ctx.w.st, E_CONNECT, "conn", c->id, "connect: %s", strerror(soerr));
			flood_close(c);
			return;
		}
		c->state = c->n % BENCH_FLOOD_EVERY == 0 ? F_SENDING : F_IDLE;
	}
	if (c->state == F_SENDING) {
		if ((rc = flood_send_chunk(c)) == 0)
			return;
		if (rc < 0) {
			flood_close(c);
			return;
		}
	}
	flood_done(c, now);
}

/* Times out what is stuck and reopens the slots that failed. */
static void
flood_tick(int64_t now)
{
	for (int i = 0; i < flood_ctx.w.nc; i++) {
		struct fconn *c = &flood_ctx.c[i];

		if (c->fd < 0) {
			flood_open(c, now);
		} else if (now > c->deadline) {
			stat_error(flood_ctx.w.st, E_TIMEOUT, "conn", c->id, c->state == F_CONNECTING ?
			    "not connected after %d ms" : "chunk not sent after %d ms",
			    bench_cfg.timeout_ms);
			flood_close(c);
		}
	}
}

static void
flood_loop(void)
{
	struct epoll_event ev[FLOOD_EVENTS];
	int64_t now = bench_now_ns(), next_tick = now;
	int64_t wake;
	int n;

	while (now < flood_ctx.w.end_ns) {
		if (now >= next_tick) {
			flood_tick(now);
			next_tick = now + FLOOD_TICK_NS;
		}
		wake = next_tick < flood_ctx.w.end_ns ? next_tick : flood_ctx.w.end_ns;
		n = worker_wait(flood_ctx.w.ep, ev, FLOOD_EVENTS, now, wake, 0);
		now = bench_now_ns();
		for (int i = 0; i < n; i++)
			flood_event(ev[i].data.ptr, now);
	}
}

static void
flood_init(int index, int nconns, int nworkers, struct bench_shared *sh)
{
	flood_ctx.c = worker_setup(&flood_ctx.w, sh, index, nconns, sizeof(*flood_ctx.c));
	for (int i = 0; i < nconns; i++) {
		flood_ctx.c[i].fd = -1;
		flood_ctx.c[i].id = (uint32_t)(index + i * nworkers);
		/* Slots start at different counts, so the chunks do not all go at once. */
		flood_ctx.c[i].n = (uint64_t)i;
	}
}

_Noreturn void
flood_worker_main(int index, int nconns, int nworkers, struct bench_shared *sh, int ready_wr,
    int go_rd, pid_t parent)
{
	worker_attach(parent, "flood");
	flood_init(index, nconns, nworkers, sh);
	worker_go(&flood_ctx.w, ready_wr, go_rd, sh);
	flood_loop();
	/* What is in flight when the window ends is closed uncounted, as it would be anyway. */
	for (int i = 0; i < nconns; i++)
		flood_close(&flood_ctx.c[i]);
	worker_finish(flood_ctx.w.st);
}

/* ---- the probe ---- */

/* Waits until fd is ready for events or the deadline passes; 1 ready, 0 timed out. */
static int
probe_wait(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t now;
	int n;

	while ((now = bench_now_ns()) < deadline) {
		n = poll(&pfd, 1, (int)((deadline - now + 999999) / 1000000));
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return 1;       /* the syscall that follows says why */
	}
	return 0;
}

/* Connects, or returns the error kind (with the reason in err). */
static int
probe_connect(int fd, int64_t deadline, char *err, size_t errlen)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (connect(fd, (struct sockaddr *)&bench_cfg.addr, bench_cfg.addrlen) < 0 &&
	    errno != EINPROGRESS) {
		snprintf(err, errlen, "connect: %s", strerror(errno));
		return E_CONNECT;
	}
	if (!probe_wait(fd, POLLOUT, deadline)) {
		snprintf(err, errlen, "not connected after %d ms", bench_cfg.timeout_ms);
		return E_TIMEOUT;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
		snprintf(err, errlen, "connect: %s", strerror(soerr ? soerr : errno));
		return E_CONNECT;
	}
	return -1;
}

/* Reads the echo of the PROBE_SIZE bytes at want; -1 when it came back whole and right, or
 * the error kind. */
static int
probe_echo(int fd, const unsigned char *want, int64_t deadline, char *err, size_t errlen)
{
	unsigned char buf[2 * PROBE_SIZE];
	size_t got = 0;
	ssize_t k;

	while (got < PROBE_SIZE) {
		if (!probe_wait(fd, POLLIN, deadline)) {
			snprintf(err, errlen, "%zu of %d bytes back after %d ms", got, PROBE_SIZE,
			    bench_cfg.timeout_ms);
			return E_TIMEOUT;
		}
		k = recv(fd, buf + got, sizeof(buf) - got, 0);
		if (k < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (k <= 0) {
			snprintf(err, errlen, "%s after %zu of %d bytes back",
			    k == 0 ? "closed" : strerror(errno), got, PROBE_SIZE);
			return k == 0 ? E_EOF : E_RESET;
		}
		got += (size_t)k;
	}
	if (got > PROBE_SIZE) {
		snprintf(err, errlen, "%zu bytes back for %d sent", got, PROBE_SIZE);
		return E_EXTRA;
	}
	if (memcmp(buf, want, PROBE_SIZE) != 0) {
		snprintf(err, errlen, "the echo differs from the %d bytes sent", PROBE_SIZE);
		return E_MISMATCH;
	}
	return -1;
}

/* One probe: a fresh connection, PROBE_SIZE bytes there and back within the timeout.  Returns
 * -1 and its latency in *ns, or the error kind. */
static int
probe_once(uint32_t seq, int64_t *ns, char *err, size_t errlen)
{
	const unsigned char *msg = bench_pattern + (seq * 7919u) % BENCH_PATTERN;
	int64_t t0 = bench_now_ns(), deadline = t0 + (int64_t)bench_cfg.timeout_ms * 1000000;
	int one = 1, kind;
	int fd = socket(bench_cfg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return E_LOCAL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	kind = probe_connect(fd, deadline, err, errlen);
	if (kind < 0 && send(fd, msg, PROBE_SIZE, MSG_NOSIGNAL) != PROBE_SIZE) {
		snprintf(err, errlen, "send: %s", strerror(errno));
		kind = E_RESET;
	}
	if (kind < 0)
		kind = probe_echo(fd, msg, deadline, err, errlen);
	*ns = bench_now_ns() - t0;
	close(fd);
	return kind;
}

/* A probe every BENCH_PROBE_MS from the start of the window to its end; a probe that runs
 * late makes the next one start at once, never two at a time. */
_Noreturn void
flood_probe_main(int index, struct bench_shared *sh, int ready_wr, int go_rd, pid_t parent)
{
	struct bench_stats *st = &sh->w[index];
	const int64_t period = (int64_t)BENCH_PROBE_MS * 1000000;
	char err[160];
	int64_t end, next, ns;
	uint32_t seq = 0;
	int kind;

	worker_attach(parent, "probe");
	worker_sync(ready_wr, go_rd);
	next = sh->start_ns;
	end = sh->start_ns + (int64_t)(bench_cfg.duration * NS);
	while (next < end) {
		struct timespec ts = { (time_t)(next / NS), (long)(next % NS) };

		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		kind = probe_once(seq, &ns, err, sizeof(err));
		if (kind < 0) {
			hist_add(&st->lat, (uint64_t)ns);
			stat_add(&st->done, 1);
		} else {
			stat_error(st, (enum err_kind)kind, "probe", seq, "%s", err);
		}
		seq++;
		next += period;
		if (next < bench_now_ns())
			next = bench_now_ns();
	}
	worker_finish(st);
}
