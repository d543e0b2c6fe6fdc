/*
 * mode_fork.c - the master's fork mode: one fork per accepted connection.  The master accepts,
 * asks gate.c the questions of every connection (is it already over, may its address connect,
 * does admission control let it in), and forks a session for each one served; a connection
 * whose client sent everything and half-closed is put aside until the listen queue has been
 * worked through.  A session that ends is reaped here: session_ended() logs it, gives back its
 * counts and has its missing records written.  Behind struct master_mode (master.h), beside the
 * pool (mode_pool.c).
 */
#define _GNU_SOURCE
#include "master.h"

/* The records a session that was killed (or gave up on a stuck store) could not write. */
static void
master_owe_session(const struct session_ending *e, const char *reason)
{
	char peer[NET_ADDRLEN];

	master_peer_str(e->who, peer, sizeof(peer));
	master_owe_close(e->conn, e->pid, e->slot, peer, reason);
}

static void
master_session_died(const struct child *c, int status)
{
	struct admit_claim own = c->claim;
	char peer[NET_ADDRLEN];
	struct session_ending e = {
		.pid = c->pid, .conn = c->conn, .status = status,
		.bytes = __atomic_load_n(&master->board[c->slot].bytes, __ATOMIC_RELAXED),
		.gate = &master->gate, .claim = &own,
		.slot = &master->board[c->slot], .total = &master->bytes_done,
		.owe = master_owe_session, .who = c, .peer = peer,
	};

	master_peer_str(c, peer, sizeof(peer));
	session_ended(&e);
}

/* The peer's port, in host order.  accept4 filled ss, which clang's analyzer cannot see. */
/* NOLINTBEGIN(clang-analyzer-core.UndefinedBinaryOperatorResult,clang-analyzer-core.CallAndMessage) */
static uint16_t
master_peer_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}
/* NOLINTEND(clang-analyzer-core.UndefinedBinaryOperatorResult,clang-analyzer-core.CallAndMessage) */

static void
master_fork_session(int cfd, const struct sockaddr_storage *peer, struct admit_claim *claim)
{
	int slot = master->free_slots[--master->nfree];
	struct session_args a = {
		.fd = cfd, .conn = master->next_conn, .peer = *peer, .pipe_wr = master->pipe_wr,
		.idle_timeout = master->set.idle_timeout,
		.gate = master->set.proxy ? &master->gate : NULL, .grace = master->set.grace,
		.master = getpid(), .slot = &master->board[slot], .receipt = slot,
	};
	int *const keep[] = { &a.fd, &a.pipe_wr };
	pid_t pid;

	master->board[slot] = (struct session_slot){ .start_ms = io_now_ms() };
	pid = proc_fork(keep, 2);
	if (pid == 0)
		session_run(&a);
	close(cfd);
	if (pid < 0) {
		log_ratelimit(&master->log_fork, io_now_ms(), 1, "fork failed; closed the connection, "
		    "pausing accepts for 100 ms");
		master->free_slots[master->nfree++] = slot;
		gate_release(&master->gate, claim);
		master->accept_resume_ms = io_now_ms() + 100;
		return;
	}
	master->kids[master->nkids++] = (struct child){ .pid = pid, .role = PROC_SESSION,
	    .slot = slot, .conn = master->next_conn++, .claim = *claim,
	    .port = master_peer_port(peer) };
	master->accepted++;
}

/* Forks a session for the connection, or closes it at once when it is already over or refused
 * (gate.c): a connection that is not served costs no fork. */
static void
master_admit(int cfd, const struct sockaddr_storage *ss)
{
	enum net_peer_state st;
	struct admit_claim cl;

	/* The master's claims are its own memory (kids, the put-aside ring): it does not die
	 * without its children. */
	if (gate_accept(&master->gate, cfd, ss, &cl, &st) != GATE_SERVE) {
		close(cfd);
		return;
	}
	/* A peer that sent everything and half-closed is not waiting to type: under a flood its
	 * fork waits until the listen queue has been worked through, so that a live client
	 * behind it in the queue is not held up by forks (bounded: MASTER_DEFER_AGE_MS). */
	if (st == NET_PEER_HALF && master->ndefer < MASTER_DEFER_MAX) {
		struct deferred *d = &master->defer[(master->defer_head + master->ndefer++) %
		    MASTER_DEFER_MAX];

		*d = (struct deferred){ .fd = cfd, .since_ms = io_now_ms(), .ss = *ss, .claim = cl };
		return;
	}
	master_fork_session(cfd, ss, &cl);
}

/* Forks put-aside connections: a batch once the listen queue is empty, and any that waited
 * MASTER_DEFER_AGE_MS whatever the queue. */
static void
master_fork_deferred(int queue_empty)
{
	int64_t now = io_now_ms();

	for (int n = 0; n < MASTER_DEFER_BATCH && master->ndefer > 0 &&
	    master->nkids < master->set.max_clients; n++) {
		struct deferred d = master->defer[master->defer_head];

		if (!queue_empty && now - d.since_ms < MASTER_DEFER_AGE_MS)
			return;
		master->defer_head = (master->defer_head + 1) % MASTER_DEFER_MAX;
		master->ndefer--;
		master_fork_session(d.fd, &d.ss, &d.claim);
	}
}

/* Accepts what is waiting on one listener, up to a burst and never past --max-clients (the
 * connections put aside count).  Returns 1 when no more can be accepted now: the listen queue
 * is empty, or the limit is reached (then the connections put aside are forked at once: waiting
 * for them to age would be a busy loop on a listener that stays readable). */
static int
master_accept(int lfd)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int cfd;

	for (int n = 0; n < MASTER_ACCEPT_BURST &&
	    master->nkids + master->ndefer < master->set.max_clients; n++) {
		len = sizeof(ss);
		cfd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 1;
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM: the backlog keeps the connection;
			 * pause instead of spinning on a listener that stays readable, and try
			 * again by ourselves (nginx and sshd back off the same way). */
			log_ratelimit(&master->log_accept, io_now_ms(), 1, "accept failed; pausing "
			    "accepts for 100 ms");
			master->accept_resume_ms = io_now_ms() + 100;
			return 1;
		}
		master_admit(cfd, &ss);
	}
	return master->nkids + master->ndefer >= master->set.max_clients;
}

/* The master takes twenty nice steps over its children where it may (root, CAP_SYS_NICE or
 * RLIMIT_NICE; before the privileges are dropped), and puts each child back at its own nice
 * value: it does the accept and the fork of every connection, serially, and at the even share
 * of one process among a thousand busy sessions and clients on two cores it got 12-17% of a
 * CPU while runnable 85% of the time, and new connections waited in the listen queue for over
 * 10 s (bench/soak.sh).  Side by side under the same load, at -10 it accepted five times as
 * many as at 0 and was still waiting for a CPU 80% of the time; at -20 it accepted 1.8 times as
 * many again and was idle a third of the time, no longer the bottleneck.  Its loop never spins
 * (bounded bursts, a pause on accept errors).  Where it may not, it runs as before. */
#define MASTER_FORK_BOOST 20

static void
master_fork_alloc(size_t n)
{
	(void)n;
	(void)proc_favour_self(MASTER_FORK_BOOST);
}

static void
master_fork_nothing(void)
{
}

/* The listeners are watched while there is room for a session. */
static int
master_fork_watch(int64_t now)
{
	return !master->stopping && master->nkids < master->set.max_clients &&
	    now >= master->accept_resume_ms;
}

/* Connections put aside are forked as soon as there is room for them. */
static int64_t
master_fork_timeout(int64_t now)
{
	(void)now;
	return master->ndefer > 0 && master->nkids < master->set.max_clients ? 0 : -1;
}

static void
master_fork_served(int queue_done)
{
	if (master->ndefer > 0)
		master_fork_deferred(queue_done);
}

static int
master_fork_busy(void)
{
	return master->nkids;
}

static int
master_fork_pending(void)
{
	return master->ndefer;
}

/* Bytes echoed by the sessions in progress, from their scoreboard slots. */
static uint64_t
master_fork_bytes(void)
{
	uint64_t bytes = 0;

	for (int i = 0; i < master->nkids; i++)
		bytes += __atomic_load_n(&master->board[master->kids[i].slot].bytes,
		    __ATOMIC_RELAXED);
	return bytes;
}

static void
master_fork_stats(char *line, size_t len)
{
	(void)line;
	(void)len;
}

/* The master's own claims (at accept: the sessions it forked, the connections it put aside) and
 * the sessions' (a PROXY header's client, in their scoreboard slots). */
static int
master_fork_claims(int (*each)(const struct admit_claim *))
{
	int n = 0;

	for (int i = 0; i < master->nkids; i++)
		n += each(&master->kids[i].claim) + each(&master->board[master->kids[i].slot].claim);
	for (int i = 0; i < master->ndefer; i++)
		n += each(&master->defer[(master->defer_head + i) % MASTER_DEFER_MAX].claim);
	return n;
}

const struct master_mode master_mode_fork = {
	.alloc = master_fork_alloc, .start = master_fork_nothing, .watch = master_fork_watch,
	.timeout = master_fork_timeout, .readable = master_accept, .served = master_fork_served,
	.woken = master_fork_nothing, .tick = master_fork_nothing, .died = master_session_died, .stop = master_fork_nothing,
	.busy = master_fork_busy, .pending = master_fork_pending, .bytes = master_fork_bytes,
	.stats = master_fork_stats, .claims = master_fork_claims, .reload = master_fork_nothing,
};
