/*
 * bench_udp.c - mpecho-bench's udp mode: request and response over UDP (RFC 862's datagram
 * echo), every datagram checked.  Each worker drives its share of the -c clients, one connected
 * UDP socket each, from one epoll loop: a client sends a SIZE-byte datagram, waits for its echo,
 * then sends the next.  A datagram is a 12-byte header (the request's sequence number and the
 * client's id) and a slice of the shared pattern at an offset that both give, so every echo is
 * checked whole, whichever request it answers.
 *
 * UDP may drop: a request whose echo does not come within the timeout is lost, not an error,
 * and the client goes on with the next one.  Its echo may still come: an intact echo of one of
 * the client's last 64 lost requests is counted as late (the loss stands).  Anything else is an
 * error: wrong bytes or size, a datagram the client never sent, a second echo of a request, or
 * an ICMP port unreachable (nothing serves the port).  The worker writes into its slot of the
 * page shared with the parent (bench.c), as the TCP modes' workers do (bench_worker.c).
 */
#define _GNU_SOURCE
#include "bench.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#define UDP_TICK_NS 10000000LL          /* timeouts and retries are checked every 10 ms */
#define UDP_EVENTS 256
#define UDP_LATE_WINDOW 64              /* lost requests whose late echo is recognised */

enum ustate { U_WAITING, U_RETRY, U_DONE };

struct uclient {
	int fd;
	enum ustate state;
	uint32_t id;             /* unique in the run */
	uint64_t seq;            /* the request in flight, or the last one sent */
	uint64_t lost_mask;      /* bit k: request seq - 1 - k was lost; its echo may still come */
	int64_t t0;              /* the request was sent */
	int64_t deadline;        /* lost unless answered by then */
};

static struct {
	struct worker_base w;
	struct uclient *c;
	int waiting;             /* clients with a request in flight */
	int running;             /* in the window: a client sends its next request */
} udp_ctx;

static unsigned char udp_rbuf[65536];

/* Where in the pattern request seq of client id takes its payload from (not const: writev's
 * iovec takes it). */
static unsigned char *
udp_payload(uint32_t id, uint64_t seq)
{
	return bench_pattern + ((uint64_t)id * 65537u + seq * 7919u) % BENCH_PATTERN;
}

/* The request in flight is over, answered or not: the client is free for the next. */
static void
udp_settle(struct uclient *c, enum ustate next)
{
	if (c->state == U_WAITING)
		udp_ctx.waiting--;
	c->state = next;
	c->deadline = 0;
}

/* Sends the client's request seq, the next one or the same again (after a refusal, or when
 * the socket had no room for it).  Outside the window nothing more is sent. */
static void
udp_send(struct uclient *c)
{
	unsigned char hdr[BENCH_UDP_HDR];
	struct iovec iov[2];
	ssize_t k;

	c->t0 = bench_now_ns();
	if (!udp_ctx.running || c->t0 >= udp_ctx.w.end_ns) {
		c->state = U_DONE;
		return;
	}
	memcpy(hdr, &c->seq, 8);
	memcpy(hdr + 8, &c->id, 4);
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ udp_payload(c->id, c->seq), bench_cfg.size - sizeof(hdr) };
	do
		k = writev(c->fd, iov, 2);
	while (k < 0 && errno == EINTR);
	if (k < 0) {
		/* A full socket buffer is not the server's doing: the tick sends it again. */
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
			stat_error(udp_ctx.w.st, errno == ECONNREFUSED ? E_CONNECT : E_LOCAL, "client",
			    c->id, "send: %s", strerror(errno));
		c->state = U_RETRY;
		return;
	}
	c->state = U_WAITING;
	c->deadline = c->t0 + udp_ctx.w.timeout_ns;
	udp_ctx.waiting++;
}

/* The next request, after one answered (lost 0) or lost (1). */
static void
udp_next(struct uclient *c, int lost)
{
	c->lost_mask = c->lost_mask << 1 | (uint64_t)lost;
	c->seq++;
	udp_send(c);
}

/* A late echo of a lost request is taken once; 0 when seq was not lost, or was taken. */
static int
udp_late(struct uclient *c, uint64_t seq)
{
	uint64_t k = c->seq - 1 - seq, bit;

	if (seq >= c->seq || k >= UDP_LATE_WINDOW)
		return 0;
	bit = (uint64_t)1 << k;
	if (!(c->lost_mask & bit))
		return 0;
	c->lost_mask &= ~bit;
	return 1;
}

/* Checks a datagram of n bytes back.  0 when it is an intact echo of one of this client's
 * requests, -1 (counted) when not; *seq is the request it echoes when its header says so, or 0
 * (no request has that number). */
static int
udp_check(struct uclient *c, size_t n, uint64_t *seq)
{
	const unsigned char *want;
	uint32_t id;
	size_t i;

	*seq = 0;
	if (n < BENCH_UDP_HDR) {
		stat_error(udp_ctx.w.st, E_MISMATCH, "client", c->id,
		    "a %zu-byte datagram back for %zu sent", n, bench_cfg.size);
		return -1;
	}
	memcpy(seq, udp_rbuf, 8);
	memcpy(&id, udp_rbuf + 8, 4);
	if (id != c->id || *seq > c->seq || *seq == 0) {
		stat_error(udp_ctx.w.st, E_MISMATCH, "client", c->id, "a datagram this client never "
		    "sent (header: client %u, request %llu; it is at request %llu)", id, (unsigned long long)*seq,
		    (unsigned long long)c->seq);
		*seq = 0;
		return -1;
	}
	if (n != bench_cfg.size) {
		stat_error(udp_ctx.w.st, E_MISMATCH, "client", c->id,
		    "a %zu-byte echo of request %llu for %zu sent", n, (unsigned long long)*seq,
		    bench_cfg.size);
		return -1;
	}
	want = udp_payload(c->id, *seq);
	if (memcmp(udp_rbuf + BENCH_UDP_HDR, want, n - BENCH_UDP_HDR) == 0)
		return 0;
	for (i = 0; udp_rbuf[BENCH_UDP_HDR + i] == want[i]; i++)
		;
	stat_error(udp_ctx.w.st, E_MISMATCH, "client", c->id, "wrong byte at offset %zu of the echo "
	    "of request %llu: got 0x%02x, sent 0x%02x", BENCH_UDP_HDR + i, (unsigned long long)*seq,
	    udp_rbuf[BENCH_UDP_HDR + i], want[i]);
	return -1;
}

/* One datagram back: the echo awaited (counted if it came in the window; a wrong one ends the
 * request all the same), a late one, or an error. */
static void
udp_reply(struct uclient *c, size_t n, int64_t now)
{
	uint64_t seq;
	int bad = udp_check(c, n, &seq);

	if (c->state == U_WAITING && seq == c->seq) {
		udp_settle(c, U_RETRY);
		if (!bad && now <= udp_ctx.w.end_ns) {
			stat_add(&udp_ctx.w.st->done, 1);
			stat_add(&udp_ctx.w.st->bytes, n);
			hist_add(&udp_ctx.w.st->lat, (uint64_t)(now - c->t0));
		}
		udp_next(c, 0);
	} else if (bad) {
		return;
	} else if (udp_late(c, seq)) {
		stat_add(&udp_ctx.w.st->late, 1);
	} else {
		stat_error(udp_ctx.w.st, E_EXTRA, "client", c->id, "a second echo of request %llu",
		    (unsigned long long)seq);
	}
}

/* Reads every datagram waiting on the client's socket, each timed as it is read (an echo of
 * the request sent after the one before may be there already). */
static void
udp_event(struct uclient *c)
{
	ssize_t k;

	for (;;) {
		k = recv(c->fd, udp_rbuf, sizeof(udp_rbuf), MSG_TRUNC);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (k < 0) {
			/* ICMP port unreachable, most likely: nothing serves the port.  The
			 * request is over; the same goes again at the tick, so this cannot spin. */
			stat_error(udp_ctx.w.st, errno == ECONNREFUSED ? E_CONNECT : E_LOCAL, "client",
			    c->id, "%s", errno == ECONNREFUSED ? "refused (ICMP port unreachable): nothing "
			    "serves the UDP port" : strerror(errno));
			if (c->state == U_WAITING)
				udp_settle(c, U_RETRY);
			continue;
		}
		udp_reply(c, (size_t)k, bench_now_ns());
	}
}

/* Requests past their timeout are lost; clients the socket or the server held back send. */
static void
udp_tick(int64_t now)
{
	for (int i = 0; i < udp_ctx.w.nc; i++) {
		struct uclient *c = &udp_ctx.c[i];

		if (c->state == U_WAITING && now > c->deadline) {
			udp_settle(c, U_RETRY);
			stat_add(&udp_ctx.w.st->lost, 1);
			udp_next(c, 1);
		} else if (c->state == U_RETRY) {
			udp_send(c);
		}
	}
}

/* Until the window ends; then, sending nothing more, until every request in flight is
 * answered or lost. */
static void
udp_loop(void)
{
	struct epoll_event ev[UDP_EVENTS];
	int64_t now = bench_now_ns(), next_tick = now + UDP_TICK_NS, wake;
	int n;

	while (udp_ctx.running || udp_ctx.waiting > 0) {
		wake = next_tick;
		if (udp_ctx.running && udp_ctx.w.end_ns < wake)
			wake = udp_ctx.w.end_ns;
		n = worker_wait(udp_ctx.w.ep, ev, UDP_EVENTS, now, wake, 0);
		for (int i = 0; i < n; i++)
			udp_event(ev[i].data.ptr);
		now = bench_now_ns();
		if (now >= udp_ctx.w.end_ns)
			udp_ctx.running = 0;
		if (now >= next_tick) {
			udp_tick(now);
			next_tick = now + UDP_TICK_NS;
		}
	}
}

/* A connected socket per client: the kernel passes only the server's datagrams, and reports
 * its ICMP port unreachable as ECONNREFUSED. */
static void
udp_open(struct uclient *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

	c->fd = socket(bench_cfg.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		fatal(EX_OSERR, "socket");
	if (connect(c->fd, (struct sockaddr *)&bench_cfg.addr, bench_cfg.addrlen) < 0)
		fatal(EX_OSERR, "connect to the UDP port");
	if (epoll_ctl(udp_ctx.w.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		fatal(EX_OSERR, "epoll_ctl");
}

static void
udp_init(int index, int nclients, int nworkers, struct bench_shared *sh)
{
	udp_ctx.c = worker_setup(&udp_ctx.w, sh, index, nclients, sizeof(*udp_ctx.c));
	for (int i = 0; i < nclients; i++) {
		udp_ctx.c[i].id = (uint32_t)(index + i * nworkers);
		udp_ctx.c[i].state = U_DONE;
		udp_open(&udp_ctx.c[i]);
	}
}

_Noreturn void
udp_worker_main(int index, int nclients, int nworkers, struct bench_shared *sh, int ready_wr,
    int go_rd, pid_t parent)
{
	worker_attach(parent, "udp");
	udp_init(index, nclients, nworkers, sh);
	worker_go(&udp_ctx.w, ready_wr, go_rd, sh);
	udp_ctx.running = 1;
	for (int i = 0; i < nclients; i++)
		udp_next(&udp_ctx.c[i], 0);
	udp_loop();
	worker_finish(udp_ctx.w.st);
}
