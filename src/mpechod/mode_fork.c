/*
 * mode_fork.c - the master's fork mode: one fork per accepted connection.  The master accepts,
 * asks gate.c the questions of every connection (is it already over, may its address connect,
 * does admission control let it in), and forks a session for each one served; a connection
 * whose client sent everything and half-closed is put aside until the listen queue has been
 * worked through.  A session that ends is reaped here: session_ended() logs it, gives back its
 * counts and has its missing records written.  Behind struct master_mode (master.h), beside the
 * pool (mode_pool.c).
 *
 * With the sandbox on, the sessions are forked by the spawner (spawner.h), which entered the
 * sandbox once: the master hands it each connection and puts the session in its child table
 * with pid 0 until the spawner names it.  A session that ends before its name is read is
 * held here until then (master_fork_named).  While no spawner runs, or too many
 * connections wait for their answer, the master forks the session itself, as without it.
 */
#define _GNU_SOURCE
#include "master.h"
#include "sandbox.h"
#include "spawner.h"

/* Connections handed to a spawner and not yet answered, at most: past it the master forks. */
#define SPAWN_INFLIGHT 64
/* Spawners: the one in use, and those retiring after a reload (their end shut for writing:
 * they serve what they have and leave). */
#define SPAWN_MAX 4
/* A spawner that died (or could not start) is started again this long after, doubled for
 * each one in a row that lived less than SPAWN_SHORT_MS, up to 64 times. */
#define SPAWN_RESTART_MS 1000
#define SPAWN_SHORT_MS 5000
/* Sessions reaped before their spawner named them, held until it does (master_fork_named):
 * at most one per connection in flight. */
#define SPAWN_UNNAMED_MAX (SPAWN_MAX * SPAWN_INFLIGHT)
/* A connection handed over and not answered within this long means a spawner that is stuck
 * (stopped, or starved for minutes): it is killed, and its connections are closed. */
#define SPAWN_ANSWER_MS 10000

static struct spawner_side {
	pid_t pid;        /* 0: none */
	int fd;           /* the master's end; -1 once the spawner closed its end */
	uint32_t gen;     /* written into each of its children's table entries while pending */
	int inflight;     /* handed over, not answered */
	int64_t started_ms;
} sp[SPAWN_MAX] = { { .fd = -1 }, { .fd = -1 }, { .fd = -1 }, { .fd = -1 } };
static int sp_cur = -1;         /* the spawner in use; -1: none */
static uint32_t sp_gen;
static int sp_fails;            /* spawners in a row that died within SPAWN_SHORT_MS */
static int64_t sp_restart_ms;   /* when the next one may start; 0: at once */
static struct {
	pid_t pid;
	int status;
} unnamed[SPAWN_UNNAMED_MAX];
static int nunnamed;

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
	int slot;

	/* Never without a slot (every session holds one; a bug otherwise). */
	if (master->nfree <= 0) {
		log_ratelimit(&master->log_fork, io_now_ms(), 1, "no scoreboard slot left; closed "
		    "the connection");
		gate_release(&master->gate, claim);
		close(cfd);
		return;
	}
	slot = master->free_slots[--master->nfree];
	struct session_args a = {
		.fd = cfd, .conn = master->next_conn, .peer = *peer, .pipe_wr = master->pipe_wr,
		.idle_timeout = master->set.idle_timeout,
		.gate = master->set.proxy ? &master->gate : NULL, .grace = master->set.grace,
		.master = getpid(), .slot = &master->board[slot], .receipt = slot,
	};
	int *const keep[] = { &a.fd, &a.pipe_wr };
	pid_t pid;

	master->board[slot] = (struct session_slot){ .start_ms = io_now_ms() };
	if (sp_cur >= 0 && sp[sp_cur].fd >= 0 && sp[sp_cur].inflight < SPAWN_INFLIGHT &&
	    !master->quiesce && spawner_send(sp[sp_cur].fd, &a) == 0) {
		close(cfd);
		sp[sp_cur].inflight++;
		master->kids[master->nkids++] = (struct child){ .pid = 0, .role = PROC_SESSION,
		    .slot = slot, .conn = master->next_conn++, .claim = *claim,
		    .port = master_peer_port(peer), .spawn_gen = sp[sp_cur].gen };
		master->accepted++;
		return;
	}
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

/* Sessions handed over and not yet named. */
static int
master_fork_awaited(void)
{
	int n = 0;

	for (int i = 0; i < SPAWN_MAX; i++)
		n += sp[i].pid > 0 ? sp[i].inflight : 0;
	return n;
}

/* A pending entry no session will answer to: out of the table, its slot and claim given
 * back. */
static void
master_spawn_lost(struct child *kid)
{
	struct child c = *kid;

	*kid = master->kids[--master->nkids];
	master->free_slots[master->nfree++] = c.slot;
	gate_release(&master->gate, &c.claim);
}

/* A pending entry gets its session's pid.  During a shutdown it gets the signal the sessions
 * already had (the master's loop signalled only the ones it knew). */
static void
master_spawn_named(struct child *kid, pid_t pid)
{
	kid->pid = pid;
	kid->spawn_gen = 0;
	for (int i = 0; i < nunnamed; i++)
		if (unnamed[i].pid == pid)
			return; /* reaped already: no signal to a pid that may be reused */
	if (master->stopping >= 2)
		kill(pid, master->stopping == 2 ? SIGTERM : SIGKILL);
}

/* The spawner's answers waiting on s's end: each names a pending session, or fails it. */
static void
master_spawn_answers(struct spawner_side *s)
{
	struct spawn_reply r;
	int got;

	while (s->fd >= 0 && (got = spawner_reply(s->fd, &r)) != 0) {
		struct child *kid = NULL;

		if (got < 0) {
			close(s->fd);
			s->fd = -1;
			break;
		}
		if (r.pid == 0 && r.err == SPAWN_READY)
			continue; /* its first answer, when spawner_start did not wait long enough */
		s->inflight--; /* one answer for each connection handed over, in order */
		for (int i = 0; i < master->nkids; i++)
			if (master->kids[i].pid == 0 && master->kids[i].spawn_gen == s->gen &&
			    master->kids[i].conn == r.conn) {
				kid = &master->kids[i];
				break;
			}
		if (kid == NULL)
			continue;
		if (r.pid > 0) {
			master_spawn_named(kid, r.pid);
			continue;
		}
		errno = r.err;
		log_ratelimit(&master->log_fork, io_now_ms(), 1, "the spawner's fork failed (%s); "
		    "closed the connection, pausing accepts for 100 ms", strerror(r.err));
		master_spawn_lost(kid);
		master->accept_resume_ms = io_now_ms() + 100;
	}
}

static void
master_spawn_start(void)
{
	int64_t now = io_now_ms();
	int fd = -1, i;
	pid_t pid;

	for (i = 0; i < SPAWN_MAX && sp[i].pid > 0; i++)
		;
	if (i == SPAWN_MAX) { /* every place taken by spawners that have not left yet */
		sp_restart_ms = now + SPAWN_RESTART_MS;
		return;
	}
	pid = spawner_start(&fd, master->pipe_wr);
	if (pid < 0) {
		log_warn("cannot start the spawner; sessions are forked by the master");
		sp_restart_ms = now + SPAWN_RESTART_MS;
		return;
	}
	sp[i] = (struct spawner_side){ .pid = pid, .fd = fd, .gen = ++sp_gen, .started_ms = now };
	sp_cur = i;
	master->spawner_started_ms = now;
	master->spawner = pid;
}

/* The spawner in use stops taking connections: it answers those it has and leaves. */
static void
master_spawn_retire(void)
{
	if (sp_cur < 0)
		return;
	if (sp[sp_cur].fd >= 0)
		shutdown(sp[sp_cur].fd, SHUT_WR);
	sp_cur = -1;
	master->spawner = 0;
}

/* Whether pid is a session the master may take as named: a child of its own (alive, or dead
 * and either not reaped yet or held here) that is not in its table already and is none of its
 * helpers.  The slot it was read from is memory every session can write.  (Not checked: a
 * process of the binary before an upgrade, which the upgrade's bookkeeping holds.) */
static int
master_spawn_ours(pid_t pid)
{
	siginfo_t si;

	if (pid <= 0 || pid == master->store.pid || pid == master->dgram.pid ||
	    pid == master->metrics.pid)
		return 0;
	for (int i = 0; i < SPAWN_MAX; i++)
		if (sp[i].pid == pid)
			return 0;
	for (int i = 0; i < master->nkids; i++)
		if (master->kids[i].pid == pid)
			return 0;
	for (int i = 0; i < nunnamed; i++)
		if (unnamed[i].pid == pid)
			return 1;
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

/* A spawner ended.  Its answers sent before are read; every connection it had and did not
 * answer is either a session it cloned (the kernel wrote the pid in the slot before the clone
 * returned: the session is named from there) or one it never cloned (its descriptor was closed
 * with the spawner: the entry goes, with its slot). */
static void
master_spawner_died(struct spawner_side *s, pid_t pid, int status)
{
	int64_t now = io_now_ms();
	int lost = 0, named = 0;

	master_spawn_answers(s);
	for (int i = master->nkids - 1; i >= 0; i--) {
		struct child *kid = &master->kids[i];
		pid_t p;

		if (kid->pid != 0 || kid->spawn_gen != s->gen)
			continue;
		p = __atomic_load_n(&master->board[kid->slot].spawned, __ATOMIC_ACQUIRE);
		if (master_spawn_ours(p)) {
			master_spawn_named(kid, p);
			named++;
		} else {
			master_spawn_lost(kid);
			lost++;
		}
	}
	if (s->fd >= 0)
		close(s->fd);
	if (sp_cur >= 0 && s == &sp[sp_cur]) {
		sp_cur = -1;
		master->spawner = 0;
		sp_fails = now - s->started_ms < SPAWN_SHORT_MS ? sp_fails + 1 : 0;
		sp_restart_ms = now + ((int64_t)SPAWN_RESTART_MS << (sp_fails < 6 ? sp_fails : 6));
		if (!master->stopping)
			log_warnx("the spawner %d %s %d%s; sessions are forked by the master until "
			    "another starts in %lld ms", (int)pid, WIFSIGNALED(status) ?
			    "was killed by signal" : "exited", WIFSIGNALED(status) ? WTERMSIG(status) :
			    WEXITSTATUS(status), WIFSIGNALED(status) ?
			    sandbox_signal_note(WTERMSIG(status)) : "",
			    (long long)(sp_restart_ms - now));
	}
	if (lost > 0 || named > 0)
		log_warnx("the spawner had not answered for %d connections: %d sessions named from "
		    "their slots, %d connections never served (closed)", lost + named, named, lost);
	*s = (struct spawner_side){ .fd = -1 };
}

/* A reaped pid not in the child table: a spawner, or a session it has not named yet (held
 * until it does, while any answer is awaited).  1: one of those. */
static int
master_fork_reaped(pid_t pid, int status)
{
	for (int i = 0; i < SPAWN_MAX; i++)
		if (sp[i].pid > 0 && sp[i].pid == pid) {
			master_spawner_died(&sp[i], pid, status);
			return 1;
		}
	if (master_fork_awaited() == 0 || nunnamed == SPAWN_UNNAMED_MAX)
		return 0;
	unnamed[nunnamed].pid = pid;
	unnamed[nunnamed++].status = status;
	return 1;
}

/* The next held session that is in the table now; what is held once no answer is awaited was
 * no session of ours (said, and dropped). */
static int
master_fork_named(pid_t *pid, int *status)
{
	for (int i = 0; i < nunnamed; i++)
		for (int k = 0; k < master->nkids; k++)
			if (master->kids[k].pid == unnamed[i].pid) {
				*pid = unnamed[i].pid;
				*status = unnamed[i].status;
				unnamed[i] = unnamed[--nunnamed];
				return 1;
			}
	if (nunnamed > 0 && master_fork_awaited() == 0) {
		log_warnx("reaped %d processes that no spawner named (the first %d)", nunnamed,
		    (int)unnamed[0].pid);
		nunnamed = 0;
	}
	return 0;
}

static int
master_fork_fds(struct pollfd *pfd)
{
	int n = 0;

	for (int i = 0; i < SPAWN_MAX; i++)
		if (sp[i].pid > 0 && sp[i].fd >= 0)
			pfd[n++] = (struct pollfd){ .fd = sp[i].fd, .events = POLLIN };
	return n;
}

static int
master_fork_ready(int fd)
{
	for (int i = 0; i < SPAWN_MAX; i++)
		if (sp[i].pid > 0 && sp[i].fd >= 0 && sp[i].fd == fd) {
			master_spawn_answers(&sp[i]);
			return 1;
		}
	return 0;
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

static void
master_fork_start(void)
{
	if (master->set.sandbox)
		master_spawn_start();
}

/* A spawner that died is started again, once its pause is over; one that has left a
 * connection unanswered for SPAWN_ANSWER_MS is killed (looked at once a second). */
static void
master_fork_tick(void)
{
	static int64_t looked_ms;
	int64_t now = io_now_ms();

	if (master->set.sandbox && sp_cur < 0 && !master->stopping && now >= sp_restart_ms)
		master_spawn_start();
	if (master_fork_awaited() == 0 || now - looked_ms < 1000)
		return;
	looked_ms = now;
	for (int i = 0; i < master->nkids; i++) {
		const struct child *c = &master->kids[i];

		if (c->pid != 0 || now - master->board[c->slot].start_ms < SPAWN_ANSWER_MS)
			continue;
		for (int j = 0; j < SPAWN_MAX; j++)
			if (sp[j].pid > 0 && sp[j].gen == c->spawn_gen) {
				log_warnx("the spawner %d left conn %llu unanswered for %d s; killing it",
				    (int)sp[j].pid, (unsigned long long)c->conn, SPAWN_ANSWER_MS / 1000);
				kill(sp[j].pid, SIGKILL);
				return;
			}
	}
}

/* A reload: a new spawner, forked from the master as it is now, takes the connections from
 * now on, as the master's own forks would have (what a reload changes in the shared memory,
 * the gate's rules, every session sees anyway). */
static void
master_fork_reload(void)
{
	if (sp_cur < 0)
		return;
	master_spawn_retire();
	master_spawn_start();
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
	if (master->ndefer > 0 && master->nkids < master->set.max_clients)
		return 0;
	if (master->set.sandbox && sp_cur < 0 && !master->stopping)
		return sp_restart_ms > now ? sp_restart_ms - now : 0;
	if (master_fork_awaited() > 0)
		return 1000;
	return -1;
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
	return master->ndefer + master_fork_awaited();
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
	.alloc = master_fork_alloc, .start = master_fork_start, .watch = master_fork_watch,
	.timeout = master_fork_timeout, .readable = master_accept, .served = master_fork_served,
	.woken = master_fork_nothing, .tick = master_fork_tick, .died = master_session_died,
	.stop = master_spawn_retire, .busy = master_fork_busy, .pending = master_fork_pending,
	.bytes = master_fork_bytes, .stats = master_fork_stats, .claims = master_fork_claims,
	.reload = master_fork_reload, .fds = master_fork_fds, .ready = master_fork_ready,
	.reaped = master_fork_reaped, .named = master_fork_named, .awaited = master_fork_awaited,
};
