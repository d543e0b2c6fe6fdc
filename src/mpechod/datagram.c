/*
 * datagram.c - the UDP echo process: receive a batch, check each source, record, echo the batch.
 *
 * Datagrams come and go in batches (recvmmsg, sendmmsg): one system call for up to DG_BATCH of
 * them each way, plus one pipe write per frame of each datagram recorded.  A datagram larger
 * than one frame is recorded only when the pipe has room for all of its frames, so a datagram
 * is either recorded whole and echoed, or dropped and counted.  Signals are blocked except
 * inside ppoll, as in the master and the store; SIGTERM (shutdown) and the master's death end
 * the process after the batch in hand.
 *
 * Each echo leaves from the address its datagram was sent to: on a wildcard socket the kernel
 * would otherwise pick the source by route (a client that sent to 127.0.0.2 would hear from
 * 127.0.0.1, and a connected client, as most are, would hear nothing).  The destination comes
 * with each datagram (IP_PKTINFO, IPV6_RECVPKTINFO, which also covers IPv4 on a dual-stack
 * socket as ::ffff:a.b.c.d) and goes back with its echo as the source.
 */
#define _GNU_SOURCE
#include "datagram.h"
#include "proc.h"
#include "io.h"
#include "log.h"
#include "net.h"
#include "receipt.h"
#include "record.h"
#include "sig.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sysexits.h>
#include <unistd.h>

#define DG_BATCH 32
#define DG_ROUNDS 8 /* batches per socket per wakeup, so that one socket cannot starve another */
#define DG_MAX_FDS 32
#define DG_FRAME_WAIT_MS 100
/* --echo-after: how long a batch's datagrams wait for their receipts before they are dropped
 * unanswered (the store blocked on a full disk, or restarting). */
#define DG_RECEIPT_WAIT_MS 5000

_Static_assert(DG_BATCH <= RECEIPT_DG_SLOTS, "a receipt slot per datagram of a batch");

static struct {
	const struct datagram_args *args;
	pid_t pid;                   /* this process's, for the frames: one getpid, not one a frame */
	struct dg_guard guard;
	int pipe_cap;
	uint64_t seq;
	struct log_ratelimit log_drop;
	int receipts;                /* --echo-after */
	struct receipt_ticket rc[DG_BATCH]; /* the receipt of each echo queued in out */
	struct mmsghdr in[DG_BATCH], out[DG_BATCH];
	struct iovec iov[DG_BATCH], oiov[DG_BATCH];
	struct sockaddr_storage from[DG_BATCH];
	/* The destination of datagram i, then its echo's source (each row stays aligned: a
	 * CMSG_SPACE is a multiple of the alignment). */
	_Alignas(struct cmsghdr) unsigned char
	    ctl[DG_BATCH][CMSG_SPACE(sizeof(struct in6_pktinfo))];
	unsigned char buf[DG_BATCH][REC_DGRAM_MAX];
} dg;

static volatile sig_atomic_t dg_stop;

static void
datagram_sigstop(int signo)
{
	(void)signo;
	dg_stop = 1;
}

/* A drop is counted always and logged at most once a second, with how many were held back. */
static void
datagram_dropped(const struct sockaddr *sa, const char *why)
{
	char addr[NET_ADDRLEN];

	net_addr_str(sa, addr, sizeof(addr));
	log_ratelimit(&dg.log_drop, io_now_ms(), 0, "dropped a datagram from %s: %s", addr, why);
}

/* One frame into the pipe, waiting (bounded) for room; with rc, stamped for a receipt.  0, or
 * -1 with errno.  The buffers are not changed (struct iovec's base is simply not const). */
static int
datagram_frame(enum rec_type type, unsigned char *pre, size_t prelen, unsigned char *data,
    size_t n, struct receipt_ticket *rc)
{
	struct rec_hdr h;
	struct iovec iov[3] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = pre, .iov_len = prelen },
		{ .iov_base = data, .iov_len = n },
	};
	struct pollfd pfd = { .fd = dg.args->pipe_wr, .events = POLLOUT };

	rec_header(&h, type, 0, dg.seq, dg.pid, prelen + n);
	/* A datagram is one record in the file, whatever its frames: its first frame is the one
	 * receipt the store gives. */
	if (rc != NULL && type == REC_DGRAM)
		receipt_stamp(rc, &h, 1);
	while (writev(dg.args->pipe_wr, iov, 3) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || poll(&pfd, 1, DG_FRAME_WAIT_MS) <= 0)
			return -1;
	}
	return 0;
}

/* Records a datagram: all its frames, or (no room in the pipe) none.  With rc, the store's
 * receipt is asked for.  0, or -1. */
static int
datagram_record(const struct sockaddr *sa, unsigned char *data, size_t n,
    struct receipt_ticket *rc)
{
	unsigned char pre[REC_DGRAM_HDR + 255];
	char peer[NET_ADDRLEN];
	size_t prelen, first, frames;
	int used = 0;

	net_addr_str(sa, peer, sizeof(peer));
	prelen = rec_dgram_prefix(pre, n, peer);
	first = n < REC_PAYLOAD_MAX - prelen ? n : REC_PAYLOAD_MAX - prelen;
	frames = 1 + (n - first + REC_PAYLOAD_MAX - 1) / REC_PAYLOAD_MAX;
	/* Several frames: only when the pipe has room for all of them now (sessions may take
	 * some of it meanwhile: the rest then waits a little, and a datagram cut short is
	 * dropped by the store as incomplete, and not echoed here).  A full pipe is waited for,
	 * DG_FRAME_WAIT_MS at most, before the datagram is dropped. */
	if (frames > 1 && (ioctl(dg.args->pipe_wr, FIONREAD, &used) < 0 ||
	    (size_t)(dg.pipe_cap - used) < frames * REC_FRAME_MAX)) {
		struct pollfd pfd = { .fd = dg.args->pipe_wr, .events = POLLOUT };

		if (poll(&pfd, 1, DG_FRAME_WAIT_MS) <= 0 ||
		    ioctl(dg.args->pipe_wr, FIONREAD, &used) < 0 ||
		    (size_t)(dg.pipe_cap - used) < frames * REC_FRAME_MAX)
			return -1;
	}
	dg.seq++;
	if (rc != NULL)
		receipt_begin(rc, rc->idx, dg.seq);
	if (datagram_frame(REC_DGRAM, pre, prelen, data, first, rc) < 0)
		return -1;
	for (size_t off = first; off < n; off += REC_PAYLOAD_MAX) {
		size_t k = n - off < REC_PAYLOAD_MAX ? n - off : REC_PAYLOAD_MAX;

		if (datagram_frame(REC_DGRAM_MORE, NULL, 0, data + off, k, NULL) < 0)
			return -1;
	}
	return 0;
}

/* The control message for datagram i's echo: its destination as the source (IPv4: as
 * ipi_spec_dst, the interface left to the route), or none when none came. */
static size_t
datagram_reply_from(int i)
{
	struct msghdr *m = &dg.in[i].msg_hdr;
	struct cmsghdr *c;

	if (m->msg_flags & MSG_CTRUNC)
		return 0;
	for (c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			pi.ipi_spec_dst = pi.ipi_addr;
			pi.ipi_ifindex = 0;
			memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		} else if (!(c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO)) {
			continue;
		}
		/* Moved to the front, alone. */
		if ((void *)c != (void *)dg.ctl[i])
			memmove(dg.ctl[i], c, c->cmsg_len);
		return CMSG_SPACE(c->cmsg_len - CMSG_LEN(0));
	}
	return 0;
}

/* Decides on datagram i of a batch: queues its echo in out, or drops it.  Returns 1 if queued. */
static int
datagram_one(int i, unsigned int len, int nout)
{
	const struct sockaddr *sa = (const struct sockaddr *)&dg.from[i];
	enum dg_verdict v = dg_check(&dg.guard, sa, io_now_ms());

	sandbox_poke(dg.buf[i], len);
	if (v != DG_OK) {
		__atomic_add_fetch(&dg.args->stats->dropped[v], 1, __ATOMIC_RELAXED);
		datagram_dropped(sa, dg_reason(v));
		return 0;
	}
	if (dg.receipts)
		dg.rc[nout].idx = receipt_dg_slot((unsigned)nout);
	if (dg.args->pipe_wr >= 0 &&
	    datagram_record(sa, dg.buf[i], len, dg.receipts ? &dg.rc[nout] : NULL) < 0) {
		__atomic_add_fetch(&dg.args->stats->dropped_store, 1, __ATOMIC_RELAXED);
		datagram_dropped(sa, "the store pipe is full");
		return 0;
	}
	dg.oiov[nout] = (struct iovec){ .iov_base = dg.buf[i], .iov_len = len };
	dg.out[nout].msg_hdr = (struct msghdr){ .msg_name = &dg.from[i],
	    .msg_namelen = dg.in[i].msg_hdr.msg_namelen, .msg_iov = &dg.oiov[nout],
	    .msg_iovlen = 1, .msg_control = dg.ctl[i] };
	dg.out[nout].msg_hdr.msg_controllen = datagram_reply_from(i);
	if (dg.out[nout].msg_hdr.msg_controllen == 0)
		dg.out[nout].msg_hdr.msg_control = NULL;
	return 1;
}

/* Sends the queued echoes; a socket that cannot take them (full send buffer) loses the rest,
 * as UDP may, and they are counted as dropped. */
static void
datagram_send(int fd, int nout)
{
	struct datagram_stats *st = dg.args->stats;
	uint64_t bytes = 0;
	int sent = 0, n;

	/* Counted before they go: a client that has its echo then never reads a count without
	 * it in the stats line.  What could not be sent is taken back below. */
	for (int i = 0; i < nout; i++)
		bytes += dg.oiov[i].iov_len;
	__atomic_add_fetch(&st->echoed, (uint64_t)nout, __ATOMIC_RELAXED);
	__atomic_add_fetch(&st->bytes, bytes, __ATOMIC_RELAXED);
	while (sent < nout) {
		n = sendmmsg(fd, dg.out + sent, (unsigned int)(nout - sent), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		sent += n;
	}
	if (sent < nout) {
		for (int i = sent; i < nout; i++)
			__atomic_sub_fetch(&st->bytes, dg.oiov[i].iov_len, __ATOMIC_RELAXED);
		__atomic_sub_fetch(&st->echoed, (uint64_t)(nout - sent), __ATOMIC_RELAXED);
		__atomic_add_fetch(&st->dropped_store, (uint64_t)(nout - sent), __ATOMIC_RELAXED);
		datagram_dropped((const struct sockaddr *)dg.out[sent].msg_hdr.msg_name,
		    "the socket's send buffer is full");
	}
}

/* --echo-after: keeps the queued echoes whose records the store has acknowledged, in order;
 * the others are dropped unanswered.  Returns how many are kept. */
static int
datagram_receipts(int nout)
{
	int64_t deadline = io_now_ms() + DG_RECEIPT_WAIT_MS;
	int kept = 0;

	for (int i = 0; i < nout; i++) {
		if (receipt_wait(&dg.rc[i], deadline, &dg_stop) < 0) {
			__atomic_add_fetch(&dg.args->stats->dropped_store, 1, __ATOMIC_RELAXED);
			datagram_dropped((const struct sockaddr *)dg.out[i].msg_hdr.msg_name,
			    "no receipt from the store in time");
			continue;
		}
		if (kept != i) {
			dg.oiov[kept] = dg.oiov[i];
			dg.out[kept] = dg.out[i];
			dg.out[kept].msg_hdr.msg_iov = &dg.oiov[kept];
		}
		kept++;
	}
	return kept;
}

static void
datagram_serve(int fd)
{
	for (int round = 0; round < DG_ROUNDS && !dg_stop; round++) {
		int n, nout = 0;

		for (int i = 0; i < DG_BATCH; i++) {
			dg.iov[i] = (struct iovec){ .iov_base = dg.buf[i], .iov_len = REC_DGRAM_MAX };
			dg.in[i].msg_hdr = (struct msghdr){ .msg_name = &dg.from[i],
			    .msg_namelen = sizeof(dg.from[i]), .msg_iov = &dg.iov[i],
			    .msg_iovlen = 1, .msg_control = dg.ctl[i],
			    .msg_controllen = sizeof(dg.ctl[i]) };
		}
		n = recvmmsg(fd, dg.in, DG_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				log_warn("recvmmsg");
			return;
		}
		for (int i = 0; i < n; i++)
			nout += datagram_one(i, dg.in[i].msg_len, nout);
		if (dg.receipts)
			nout = datagram_receipts(nout);
		datagram_send(fd, nout);
		if (n < DG_BATCH)
			return;
	}
}

static void
datagram_setup(const struct datagram_args *a, sigset_t *waitmask)
{
	dg.args = a;
	dg.pid = getpid();
	/* Unique across restarts of this process: --echo-after's tags (receipt_tag) come from it. */
	dg.seq = (uint64_t)dg.pid << 32;
	dg.receipts = a->pipe_wr >= 0 && receipt_mode() != RECEIPT_OFF;
	dg_init(&dg.guard, a->port, a->per_source, a->global);
	dg_set_prefix(&dg.guard, a->prefix4, a->prefix6);
	if (a->pipe_wr >= 0)
		dg.pipe_cap = fcntl(a->pipe_wr, F_GETPIPE_SZ);
	/* Unlike sessions, nothing is left to finish when the master dies: the process must not
	 * hold the store pipe open for ever, so it ends at once. */
	if (proc_helper_signals(datagram_sigstop, a->master, waitmask))
		dg_stop = 1;
}

/* Asks for each datagram's destination address (see the top of the file). */
static void
datagram_pktinfo(int fd)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss);
	int one = 1;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if ((ss.ss_family == AF_INET &&
	    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0) ||
	    (ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) < 0))
		log_warn("UDP: cannot learn each datagram's destination; echoes leave from the "
		    "route's address");
}

void
datagram_run(const struct datagram_args *a)
{
	struct pollfd pfd[DG_MAX_FDS];
	sigset_t waitmask;
	int n = a->nfds < DG_MAX_FDS ? a->nfds : DG_MAX_FDS;

	log_init(NULL, "datagram");
	log_guard(1);
	datagram_setup(a, &waitmask);
	for (int i = 0; i < n; i++) {
		pfd[i] = (struct pollfd){ .fd = a->fds[i], .events = POLLIN };
		datagram_pktinfo(a->fds[i]);
	}
	sandbox_child(SANDBOX_DGRAM, NULL);
	while (!dg_stop) {
		if (ppoll(pfd, (nfds_t)n, NULL, &waitmask) < 0) {
			if (errno != EINTR)
				fatal(EX_OSERR, "ppoll");
			continue;
		}
		sig_deliver_pending(&waitmask);
		for (int i = 0; i < n; i++)
			if (pfd[i].revents & POLLIN)
				datagram_serve(pfd[i].fd);
	}
	_exit(0);
}
