/*
 * session.c - one connection: read a chunk, record it in the store pipe, echo it, repeat.
 *
 * The echo loop costs one read(2), one write(2) to the socket and, with the store on, one
 * write(2) to the pipe per PIPE_BUF-sized frame.  Timeouts cost nothing per chunk: they are
 * SO_RCVTIMEO and SO_SNDTIMEO, set once.  A blocking read that times out fails with EAGAIN
 * (idle peer); a blocking write that makes no progress for the timeout fails with EAGAIN too
 * (a peer that sends but never reads).  poll(2) before every read would double the syscalls,
 * and alarm(2) would have to be re-armed per chunk.  With --echo-after, the echo waits for the
 * store's receipt of the chunk's frames (receipt.h): one futex(2) wait, when it is not there yet;
 * a stream is read ahead meanwhile, a few chunks at most (session_echo_ahead).
 */
#define _GNU_SOURCE
#include "session.h"
#include "figures.h"
#include "io.h"
#include "log.h"
#include "net.h"
#include "proxy.h"
#include "receipt.h"
#include "record.h"
#include "sig.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <unistd.h>

/* A read's worth is 16 whole frames' payloads (63.4 KiB): a 64 KiB read took a 17th frame of 640
 * bytes, one more pipe write and one more pipe page (a frame does not share a page with the
 * next whole one) per read of a stream. */
#define SESSION_BUF (16 * REC_PAYLOAD_MAX)
/* The splice pipe's size (--no-store streams). */
#define SESSION_SPLICE_PIPE 262144

/* Everything a session writes outside its stack, in one page-aligned block: its few variables
 * share the buffer's first page, which the first read dirties anyway.  The master never touches
 * it, so a fork shares nothing here, and a held connection costs as few private pages as
 * possible. */
static struct {
	int fd;
	int64_t stop_deadline_ms; /* set at the first wait for the store after SIGTERM */
	int grace;
	int idle_ms;              /* --idle-timeout: also bounds a wait for the store */
	volatile sig_atomic_t stopping;
	struct receipt_ticket rc;  /* --echo-after; rc.slot NULL: off */
	unsigned char buf[SESSION_BUF];
} session __attribute__((aligned(4096)));

/* --echo-after: chunks in flight at once (session_echo_ahead: about the 256 KiB a client such as
 * mpecho-bench keeps in flight), and the buffers of all but the first (session.buf): touched
 * only when a stream is read ahead, so a held connection costs no page more. */
#define SESSION_AHEAD 4
static unsigned char session_ahead[SESSION_AHEAD - 1][SESSION_BUF] __attribute__((aligned(4096)));

static const char *const session_reasons[] = {
	[SESSION_EOF] = "eof",
	[SESSION_ERROR] = "error",
	[SESSION_IDLE] = "idle",
	[SESSION_WTIMEOUT] = "write-timeout",
	[SESSION_RESET] = "reset",
	[SESSION_SHUTDOWN] = "shutdown",
	[SESSION_STORE] = "store-gone",
	[SESSION_STORE_WAIT] = "store-timeout",
	[SESSION_REFUSED] = "refused",
	[SESSION_PROXY_ERROR] = "proxy-error",
	[SESSION_RECEIPT_WAIT] = "receipt-timeout",
};

const char *
session_reason(int status)
{
	if (status < 0 || status > SESSION_END_MAX)
		return "unknown";
	return session_reasons[status];
}

/* SIGTERM from the master at the end of the shutdown grace.  shutdown(2) is async-signal-safe,
 * and it wakes a read or write blocked on the socket whether or not the signal arrived just
 * before the call: there is no window in which the session sleeps through it. */
static void
session_sigterm(int signo)
{
	int saved = errno;

	(void)signo;
	session.stopping = 1;
	shutdown(session.fd, SHUT_RDWR);
	errno = saved;
}

/* The master died (PR_SET_PDEATHSIG): finish as at a shutdown, with the grace the master would
 * have given, then end as at its SIGTERM.  alarm(2) is async-signal-safe. */
static void
session_orphaned(int signo)
{
	(void)signo;
	if (session.grace > 0)
		alarm((unsigned)session.grace);
	else
		session_sigterm(SIGALRM);
}

/* Writes one frame of n payload bytes to the store pipe, waiting while the pipe is full
 * (back-pressure).  Returns 0, or -1 with errno (EPIPE when no store reads the pipe, ETIMEDOUT
 * when shutting down and the store did not make room in time).  The payload is not changed; it
 * is not const only because struct iovec's base is not. */
static int
session_record(int pipe_wr, int type, unsigned flags, uint64_t conn, int pid, void *payload,
    size_t n)
{
	struct rec_hdr h;
	struct iovec iov[2];
	struct pollfd pfd = { .fd = pipe_wr, .events = POLLOUT };
	int64_t since = 0;

	rec_header(&h, (enum rec_type)type, flags & ~REC_F_RECEIPT, conn, pid, n);
	if (flags & REC_F_RECEIPT)
		receipt_stamp(&session.rc, &h, (flags & REC_F_WHOLE) != 0);
	iov[0].iov_base = &h;
	iov[0].iov_len = sizeof(h);
	iov[1].iov_base = payload;
	iov[1].iov_len = n;
	/* At most PIPE_BUF bytes: the kernel writes all of it at once or, the pipe being
	 * nonblocking and full, none of it. */
	while (writev(pipe_wr, iov, 2) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -1;
		if (session.stopping) {
			if (session.stop_deadline_ms == 0)
				session.stop_deadline_ms = io_now_ms() + SESSION_STOP_WAIT_MS;
			if (io_now_ms() >= session.stop_deadline_ms) {
				/* Shutting down with the store stuck: give up; the master writes
				 * the close record on this session's behalf. */
				errno = ETIMEDOUT;
				return -1;
			}
		} else if (session.idle_ms > 0) {
			/* A store that takes nothing for the idle timeout (a full disk under
			 * --store-full block) ends the session, as a peer would that took
			 * nothing; the master writes its close record. */
			if (since == 0)
				since = io_now_ms();
			if (io_now_ms() - since >= session.idle_ms) {
				errno = ENOSPC;
				return -1;
			}
		}
		if (poll(&pfd, 1, session.stopping ? 100 : 1000) < 0 && errno != EINTR)
			return -1;
	}
	return 0;
}

/* Counts n more bytes echoed (or about to be): once recorded and before the echo, so the close
 * record's count is the sum of the data records, and the master's stats already include
 * whatever a client has received. */
static void
session_count(const struct session_args *a, uint64_t *bytes, size_t n)
{
	*bytes += (uint64_t)n;
	__atomic_store_n(&a->slot->bytes, *bytes, __ATOMIC_RELAXED);
}

/* Records n bytes as data frames of at most REC_PAYLOAD_MAX, counting each frame once it is in
 * the pipe: a session that gives up part way (shutdown with the store stuck) has counted exactly
 * what the store will hold, so the close record the master writes for it agrees with the file. */
static int
session_record_data(const struct session_args *a, int pid, unsigned char *p, size_t n,
    uint64_t *bytes)
{
	unsigned flags;
	size_t k;

	for (; n > 0; p += k, n -= k) {
		k = n < REC_PAYLOAD_MAX ? n : REC_PAYLOAD_MAX;
		flags = session.rc.slot == NULL ? 0 : REC_F_RECEIPT | (k == n ? REC_F_WHOLE : 0);
		if (session_record(a->pipe_wr, REC_DATA, flags, a->conn, pid, p, k) < 0)
			return -1;
		session_count(a, bytes, k);
	}
	return 0;
}

/* --echo-after: waits for the store's receipt of the first want frames recorded (gen_after:
 * receipt_wait_upto), bounded by the idle timeout and by the end of the session (SIGTERM, the
 * grace after the master's death). */
static enum session_end
session_receipt(uint32_t want, uint32_t gen_after)
{
	int64_t deadline = session.idle_ms > 0 ? io_now_ms() + session.idle_ms : 0;

	if (receipt_wait_upto(&session.rc, want, gen_after, deadline, &session.stopping) == 0)
		return SESSION_EOF;
	return session.stopping ? SESSION_SHUTDOWN : SESSION_RECEIPT_WAIT;
}

void
session_init(const struct session_args *a)
{
	static const int none[] = { 0 };

	session.fd = -1;
	session.grace = a->grace;
	session.idle_ms = a->idle_timeout * 1000;
	sig_default(SIGCHLD);
	sig_handle(SIGTERM, session_sigterm, 0);
	sig_handle(SIGALRM, session_sigterm, 0);
	sig_handle(SIGUSR2, session_orphaned, 0);
	/* Still blocked: a death before this call is caught by the getppid check, one after it
	 * by the signal, delivered once the mask is set below. */
	prctl(PR_SET_PDEATHSIG, SIGUSR2);
	if (getppid() != a->master)
		raise(SIGUSR2);
	/* The master alone decides when sessions end: a Ctrl-C or a HUP sent to the whole process
	 * group must not cut connections short. */
	sig_ignore(SIGINT);
	sig_ignore(SIGHUP);
	sig_ignore(SIGUSR1);
	sig_setmask(none);
}

int
session_stopping(void)
{
	return session.stopping;
}

/* Maps a failed write to the store pipe to how the session ends. */
static enum session_end
session_store_end(int err)
{
	if (session.stopping)
		return SESSION_SHUTDOWN;
	return err == ENOSPC ? SESSION_STORE_WAIT : SESSION_STORE;
}

/* Maps a failed read or write on the socket to how the session ends. */
static enum session_end
session_sock_error(int err, enum session_end on_timeout)
{
	if (session.stopping)
		return SESSION_SHUTDOWN;
	if (err == EAGAIN || err == EWOULDBLOCK)
		return on_timeout;
	if (err == ECONNRESET || err == EPIPE || err == ETIMEDOUT)
		return SESSION_RESET;
	log_warn("session %d: connection", (int)getpid());
	return SESSION_ERROR;
}

/* Moves the n bytes in the pipe p to the socket.  A blocking socket's SO_SNDTIMEO bounds
 * splice(2) as it bounds write(2): EAGAIN when nothing moved for the timeout. */
static int
session_splice_out(int p, int fd, size_t n)
{
	ssize_t m;

	while (n > 0) {
		m = splice(p, NULL, fd, NULL, n, SPLICE_F_MOVE);
		if (m < 0 && errno == EINTR)
			continue;
		if (m <= 0)
			return -1;
		n -= (size_t)m;
	}
	return 0;
}

/* --no-store, once the connection streams: socket -> pipe -> socket with splice(2), so the bytes
 * are never copied through user space (a read and a write copy each byte twice).  The pipe is
 * the session's own, made here and closed before it returns, so a pool process that serves many
 * connections keeps no descriptor.  Both splices block on the socket with its timeouts, as read
 * and write do: SO_RCVTIMEO bounds the one from the socket (EAGAIN: idle), SO_SNDTIMEO the one
 * to it (EAGAIN: write-timeout), and SIGTERM's shutdown(2) wakes either.  TCP's splice may also
 * return 0 with the connection open (data it cannot splice), so a 0 is handed to read(2), which
 * tells a half-close from data exactly as the read path does.  Returns -1 with nothing read when
 * no pipe could be made: the caller goes on with read and write. */
static int
session_splice(const struct session_args *a, uint64_t *bytes, enum session_end *end)
{
	int p[2];
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	/* Larger than the default 64 KiB (16 slots, and a slot may hold a small piece of an skb):
	 * fewer calls per byte.  Past the user's pipe limits the kernel refuses: the default size
	 * works too. */
	(void)fcntl(p[1], F_SETPIPE_SZ, SESSION_SPLICE_PIPE);
	for (;;) {
		n = splice(a->fd, NULL, p[1], NULL, SESSION_SPLICE_PIPE, SPLICE_F_MOVE);
		if (n < 0 && errno == EINTR && !session.stopping)
			continue;
		if (n > 0) {
			session_count(a, bytes, (size_t)n);
			if (session_splice_out(p[0], a->fd, (size_t)n) < 0) {
				*end = session_sock_error(errno, SESSION_WTIMEOUT);
				break;
			}
			continue;
		}
		if (n == 0)
			n = read(a->fd, session.buf, sizeof(session.buf));
		if (n < 0 && errno == EINTR && !session.stopping)
			continue;
		if (n <= 0) {
			if (n < 0)
				*end = session_sock_error(errno, SESSION_IDLE);
			else
				*end = session.stopping ? SESSION_SHUTDOWN : SESSION_EOF;
			break;
		}
		session_count(a, bytes, (size_t)n);
		if (io_write_all(a->fd, session.buf, (size_t)n) < 0) {
			*end = session_sock_error(errno, SESSION_WTIMEOUT);
			break;
		}
	}
	close(p[0]);
	close(p[1]);
	return 0;
}

/* A chunk read, recorded and waiting for its receipt (session_echo_ahead). */
struct session_chunk {
	unsigned char *p;
	size_t n;
	uint32_t want; /* the frames stamped through this chunk's last */
	uint32_t gen;  /* receipt_gen before its first frame was stamped */
};

/* Reads the next chunk into c and records it: waiting for it when block, otherwise only what the
 * socket has now.  1: a chunk; 0: none yet (not block); -1: the session ends with *end
 * (SESSION_EOF: the peer has sent everything). */
static int
session_read_chunk(const struct session_args *a, int pid, uint64_t *bytes,
    struct session_chunk *c, int block, enum session_end *end)
{
	ssize_t n;

	do
		n = recv(a->fd, c->p, SESSION_BUF, block ? 0 : MSG_DONTWAIT);
	while (n < 0 && errno == EINTR && block && !session.stopping);
	if (n < 0 && !block && !session.stopping &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n < 0) {
		*end = session_sock_error(errno, SESSION_IDLE);
		return -1;
	}
	sandbox_poke(c->p, (size_t)n);
	if (n == 0) {
		*end = session.stopping ? SESSION_SHUTDOWN : SESSION_EOF;
		return -1;
	}
	c->n = (size_t)n;
	c->gen = receipt_gen();
	if (session_record_data(a, pid, c->p, c->n, bytes) < 0) {
		*end = session_store_end(errno);
		return -1;
	}
	c->want = session.rc.sent;
	return 1;
}

/* --echo-after: the echo loop, read ahead.  While the oldest chunk waits for its receipt, the
 * next ones (SESSION_AHEAD in all, each in a buffer of its own) are read from the socket and
 * recorded, so that the store writes one while the session reads and echoes another.  A chunk
 * is echoed, in order, once the store's count covers its last frame (counts only grow, so a
 * chunk's receipt is also every earlier one's).  The socket is read ahead only while it streams
 * (the last read filled its buffer, or the last one ahead found data): a request and its answer
 * cost no more system calls than without reading ahead.  At the peer's end (EOF) what waits is
 * echoed first; every wait is bounded as session_receipt says. */
static enum session_end
session_echo_ahead(const struct session_args *a, int pid, uint64_t *bytes)
{
	struct session_chunk q[SESSION_AHEAD] = { { 0 } };
	enum session_end end = SESSION_EOF;
	unsigned head = 0, len = 0, i;
	int more = 0, eof = 0, r;

	q[0].p = session.buf;
	for (i = 1; i < SESSION_AHEAD; i++)
		q[i].p = session_ahead[i - 1];
	for (;;) {
		struct session_chunk *c = &q[head];

		if (len == 0 || (!eof && more && len < SESSION_AHEAD &&
		    !receipt_has(&session.rc, c->want))) {
			if (len == 0 && eof)
				return SESSION_EOF;
			r = session_read_chunk(a, pid, bytes, &q[(head + len) % SESSION_AHEAD],
			    len == 0, &end);
			if (r < 0 && end != SESSION_EOF)
				return end;
			eof = r < 0;
			more = r > 0 && (len > 0 || q[head].n == SESSION_BUF);
			len += r > 0;
			if (r > 0)
				continue;
			if (len == 0)
				return SESSION_EOF;
		}
		if ((end = session_receipt(c->want, q[(head + 1) % SESSION_AHEAD].gen)) !=
		    SESSION_EOF)
			return end;
		if (io_write_all(a->fd, c->p, c->n) < 0)
			return session_sock_error(errno, SESSION_WTIMEOUT);
		head = (head + 1) % SESSION_AHEAD;
		len--;
	}
}

static enum session_end
session_echo(const struct session_args *a, int pid, uint64_t *bytes)
{
	enum session_end end;
	ssize_t n;

	if (session.rc.slot != NULL)
		return session_echo_ahead(a, pid, bytes);
	for (;;) {
		n = read(a->fd, session.buf, sizeof(session.buf));
		if (n < 0 && errno == EINTR && !session.stopping)
			continue;
		if (n < 0)
			return session_sock_error(errno, SESSION_IDLE);
		sandbox_poke(session.buf, (size_t)n);
		if (n == 0)
			return session.stopping ? SESSION_SHUTDOWN : SESSION_EOF;
		if (a->pipe_wr < 0)
			session_count(a, bytes, (size_t)n);
		else if (session_record_data(a, pid, session.buf, (size_t)n, bytes) < 0)
			return session_store_end(errno);
		if (io_write_all(a->fd, session.buf, (size_t)n) < 0)
			return session_sock_error(errno, SESSION_WTIMEOUT);
		/* A read that fills the buffer means a stream: with nothing to record, splice the
		 * rest.  Requests smaller than the buffer stay with read and write, which cost two
		 * calls a request where splice costs two and a pipe. */
		if (a->pipe_wr < 0 && (size_t)n == sizeof(session.buf) &&
		    session_splice(a, bytes, &end) == 0)
			return end;
	}
}

/* Reads the PROXY header, never a byte past it: each read asks for no more than proxy_parse
 * says the shortest valid header could still need.  0 with *res filled, or -1 with *why: an
 * invalid header (*invalid set), none in time, or the peer gone first. */
static int
session_proxy_read(int fd, int timeout_ms, struct proxy_result *res, const char **why,
    int *invalid)
{
	unsigned char buf[PROXY_HDR_MAX];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int64_t deadline = io_now_ms() + timeout_ms, left;
	size_t have = 0;
	ssize_t n;

	for (;;) {
		enum proxy_status st = proxy_parse(buf, have, res);

		if (st == PROXY_OK)
			return 0;
		*invalid = st == PROXY_INVALID;
		if (st == PROXY_INVALID) {
			*why = res->reason;
			return -1;
		}
		left = deadline - io_now_ms();
		*why = "no header in time";
		if (left <= 0 || session.stopping || res->need <= have || res->need > sizeof(buf))
			return -1;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		n = read(fd, buf + have, res->need - have);
		if (n == 0) {
			*why = have == 0 ? "closed with nothing sent" : "closed before the end of the header";
			return -1;
		}
		if (n < 0 && errno != EINTR && errno != EAGAIN) {
			*why = "reset before the end of the header";
			return -1;
		}
		if (n > 0)
			have += (size_t)n;
	}
}

/* --proxy-protocol: the header, then the rules and --max-per-source on the client it names.
 * Fills peer with the open record's text ("client balancer", or the real peer for LOCAL and
 * for a proxy error); SESSION_EOF means go on. */
static enum session_end
session_gate(const struct session_args *a, char *peer, size_t len)
{
	const struct gate *g = a->gate;
	char real[NET_ADDRLEN], client[NET_ADDRLEN], msg[NET_ADDRLEN + 128];
	struct proxy_result res;
	const char *why;
	int invalid = 0;

	net_addr_str((const struct sockaddr *)&a->peer, real, sizeof(real));
	snprintf(peer, len, "%s", real);
	if (session_proxy_read(a->fd,
	    __atomic_load_n(&g->proxy_timeout_ms, __ATOMIC_RELAXED), &res, &why, &invalid) < 0) {
		__atomic_add_fetch(&g->sh->proxy_errors, 1, __ATOMIC_RELAXED);
		/* --source-penalty counts only bytes that are not a PROXY header: a balancer (the
		 * peer here) whose header came late under load, or whose health check closed or
		 * reset without one, must not get itself, and so every client, refused. */
		if (invalid)
			gate_strike(g, &a->peer);
		snprintf(msg, sizeof(msg), "no valid PROXY header from %s: %s", real, why);
		shared_log(g->sh, &g->sh->log_proxy, msg);
		return SESSION_PROXY_ERROR;
	}
	/* LOCAL (the balancer's health check), UNKNOWN, UNSPEC: the real addresses, and what
	 * --proxy-no-client says. */
	if (res.src.ss_family == AF_UNSPEC)
		return gate_no_client(g, &a->peer, &a->slot->claim) == GATE_SERVE ? SESSION_EOF :
		    SESSION_REFUSED;
	/* The count is claimed in this process's slot: the master gives it back if this process
	 * dies before session_release. */
	if (gate_client(g, &res.src, &a->slot->claim) != GATE_SERVE)
		return SESSION_REFUSED;
	net_addr_str((const struct sockaddr *)&res.src, client, sizeof(client));
	snprintf(peer, len, "%s %s", client, real);
	return SESSION_EOF;
}

/* Gives back the client's count taken by session_gate. */
static void
session_release(const struct session_args *a)
{
	if (a->gate != NULL)
		gate_release(a->gate, &a->slot->claim);
}

enum session_end
session_serve(const struct session_args *a)
{
	struct timeval tv = { .tv_sec = a->idle_timeout, .tv_usec = 0 };
	unsigned char close_rec[8 + REC_REASON_MAX];
	char peer[2 * NET_ADDRLEN];
	enum session_end end;
	uint64_t bytes = 0;
	int pid = (int)getpid();

	session.fd = a->fd;
	session.stop_deadline_ms = 0;
	/* Per connection: a pool process's may differ from its first (a reload). */
	session.grace = a->grace;
	session.idle_ms = a->idle_timeout * 1000;
	session.rc.slot = NULL;
	if (a->pipe_wr >= 0 && a->receipt >= 0 && receipt_mode() != RECEIPT_OFF)
		receipt_begin(&session.rc, (uint32_t)a->receipt, a->conn);
	/* SIGTERM may have come before the descriptor was known: it is shut down now. */
	if (session.stopping)
		shutdown(a->fd, SHUT_RDWR);
	if (a->idle_timeout > 0) {
		setsockopt(a->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(a->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	end = SESSION_EOF;
	if (a->gate != NULL)
		end = session_gate(a, peer, sizeof(peer));
	else
		net_addr_str((const struct sockaddr *)&a->peer, peer, sizeof(peer));
	if (end == SESSION_REFUSED) {
		/* Not served, so not in the store: nothing is owed for it either. */
		__atomic_store_n(&a->slot->closed, 1, __ATOMIC_RELEASE);
		session.fd = -1;
		close(a->fd);
		return end;
	}
	if (a->pipe_wr >= 0) {
		if (session_record(a->pipe_wr, REC_OPEN, 0, a->conn, pid, peer, strlen(peer)) < 0)
			end = session_store_end(errno);
		else
			__atomic_store_n(&a->slot->opened, 1, __ATOMIC_RELEASE);
	}
	if (end == SESSION_EOF && (a->pipe_wr < 0 || a->slot->opened))
		end = session_echo(a, pid, &bytes);
	if (a->pipe_wr >= 0 && a->slot->opened && end != SESSION_STORE &&
	    end != SESSION_STORE_WAIT) {
		size_t n = rec_close_payload(close_rec, bytes, session_reason((int)end));
		if (session_record(a->pipe_wr, REC_CLOSE, 0, a->conn, pid, close_rec, n) == 0)
			__atomic_store_n(&a->slot->closed, 1, __ATOMIC_RELEASE);
	}
	session_release(a);
	session.fd = -1;
	close(a->fd);
	return end;
}

const char *
session_status_reason(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "signal %d%s", WTERMSIG(status),
		    sandbox_signal_note(WTERMSIG(status)));
	else
		snprintf(buf, len, "%s", session_reason(WEXITSTATUS(status)));
	return buf;
}

static void
session_give_back(const struct session_ending *e)
{
	if (e->gate == NULL)
		return;
	/* Exactly what the claims say: each changes with its count, in one step under the lock. */
	if (e->claim != NULL)
		gate_release(e->gate, e->claim);
	gate_release(e->gate, &e->slot->claim);
}

void
session_ended(const struct session_ending *e)
{
	char reason[32];
	int64_t dur_ms = e->slot->start_ms > 0 ?
	    io_now_ms() - e->slot->start_ms : -1;
	struct log_fields f = { .event = "session-end", .conn = e->conn, .pid = (long)e->pid,
	    .peer = e->peer, .reason = reason, .bytes = (long long)e->bytes,
	    .duration_ms = dur_ms };

	session_give_back(e);
	session_status_reason(e->status, reason, sizeof(reason));
	if (!e->logged && WIFSIGNALED(e->status))
		log_event(&f, "session %d conn %llu killed by signal %d%s after %llu bytes",
		    (int)e->pid, (unsigned long long)e->conn, WTERMSIG(e->status),
		    sandbox_signal_note(WTERMSIG(e->status)), (unsigned long long)e->bytes);
	else if (!e->logged)
		log_event(&f, "session %d conn %llu exited %d (%s) after %llu bytes", (int)e->pid,
		    (unsigned long long)e->conn, WEXITSTATUS(e->status), reason,
		    (unsigned long long)e->bytes);
	if (!e->logged && e->total != NULL)
		__atomic_add_fetch(e->total, e->bytes, __ATOMIC_RELAXED);
	if (!e->logged)
		figures_session(figures_live, WIFSIGNALED(e->status) ? FIG_CLOSE_SIGNAL :
		    WEXITSTATUS(e->status), dur_ms > 0 ? dur_ms * 1000 : 0, e->bytes);
	if (e->owe != NULL && !e->slot->closed)
		e->owe(e, reason);
}

void
session_run(const struct session_args *a)
{
	session_init(a);
	sandbox_child(SANDBOX_SESSION, NULL);
	_exit((int)session_serve(a));
}

void
session_run_spawned(const struct session_args *a)
{
	session_init(a);
	_exit((int)session_serve(a));
}
