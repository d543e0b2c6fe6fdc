/*
 * master.c - mpechod's main process: options, listen sockets, the accept loop, one fork per
 * connection, the limits, reaping, and shutdown.
 *
 * The master talks to its sessions only through fork (their connection and scoreboard slot),
 * their exit status (how they ended) and signals (SIGTERM at the end of the shutdown grace).
 * It starts the store before the accept loop, forwards SIGHUP to it, and restarts it if it
 * dies.  The master never blocks on the store pipe: the only frames it writes there are close
 * records for sessions that could not write their own (killed by a signal, or stuck on a full
 * pipe at shutdown), queued in memory while the pipe is full.
 *
 * Signals are blocked at all times except inside ppoll(2), so a handler never interrupts the
 * master's own code: the SIGCHLD handler reaps into a small array that the loop then reports
 * (djb's tcpserver blocks SIGCHLD the same way).
 */
#define _GNU_SOURCE
#include "io.h"
#include "log.h"
#include "net.h"
#include "opts.h"
#include "record.h"
#include "session.h"
#include "sig.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EX_OSERR_ 71
#define MASTER_MAX_LISTEN 32
#define MASTER_REAP_RING 64
#define MASTER_ACCEPT_BURST 32
#define MASTER_PIPE_SIZE (1024 * 1024)
#define MASTER_KILL_WAIT_MS ((int64_t)2 * SESSION_STOP_WAIT_MS)
#define MASTER_STORE_WAIT_MS 60000

/* A peer's address without its port: the family, then the IPv4 or IPv6 address. */
#define SRC_KEY_LEN 17

struct child {
	pid_t pid;
	int slot;       /* scoreboard index */
	uint64_t conn;
	unsigned char src[SRC_KEY_LEN];
	uint16_t port;  /* the peer's, in host order: with src, its open record if the master owes it */
};

/* A log line that may repeat at a flood's rate is written at most once a second, with the
 * count of the ones held back (as sshd does for its connection-limit messages). */
struct ratelog {
	int64_t next_ms;
	uint64_t held;
};

/* A record the master owes the store for a session that could not write it: a close record,
 * or an open record (the peer's address as text). */
struct owed {
	struct rec_hdr h;
	unsigned char payload[8 + REC_REASON_MAX > NET_ADDRLEN ? 8 + REC_REASON_MAX : NET_ADDRLEN];
};

/* The master's state lives in a shared anonymous mapping, not in its private memory.  A page
 * the master writes after a fork is copied for the master, and every older session keeps the
 * original as its own: with the counters, the child table and the reap ring in private memory,
 * each held connection would pay for several pages it never touches.  In a MAP_SHARED mapping
 * there is no copy; sessions only read it (right after fork) and never write it. */
struct master {
	struct settings set;
	int lfd[MASTER_MAX_LISTEN];
	int nlfd;
	int pipe_rd, pipe_wr;        /* the store pipe; -1 without a store */
	pid_t store_pid;
	int64_t store_started_ms;
	struct child *kids;          /* active sessions, unordered */
	int nkids;
	struct session_slot *board;  /* shared with the sessions */
	int *free_slots;
	int nfree;
	struct owed *owed;           /* close records not yet in the pipe */
	int nowed, capowed;
	uint64_t next_conn, accepted, reaped_exit, reaped_signal, bytes_done;
	uint64_t refused_source, refused_rate;
	int64_t rate_tokens;         /* --max-rate bucket, in thousandths of a session */
	int64_t rate_last_ms;
	struct ratelog log_refused, log_accept, log_fork;
	int64_t accept_resume_ms;    /* accepting paused until then (fork or fd failure) */
	int stopping;                /* 0 serving, 1 grace, 2 sessions told to stop, 3 killed */
	int64_t phase_deadline_ms;
	sigset_t waitmask;
	struct pollfd pfd[MASTER_MAX_LISTEN + 1]; /* what the last ppoll watched */
	int npfd;
	struct { pid_t pid; int status; } reap_ring[MASTER_REAP_RING]; /* SIGCHLD handler's */
	volatile sig_atomic_t reap_count;
};

static struct master *master_state;
#define M (*master_state)

static volatile sig_atomic_t got_term, got_hup, got_usr1;

static void
master_ratelog(struct ratelog *rl, int with_errno, const char *what)
{
	char held[64] = "";
	int64_t now = io_now_ms();

	if (now < rl->next_ms) {
		rl->held++;
		return;
	}
	if (rl->held > 0)
		snprintf(held, sizeof(held), " (and %llu more in the last second)",
		    (unsigned long long)rl->held);
	if (with_errno)
		log_warn("%s%s", what, held);
	else
		log_warnx("%s%s", what, held);
	rl->held = 0;
	rl->next_ms = now + 1000;
}

/* Signals do not queue: one SIGCHLD may stand for many dead children, so reap in a loop.  The
 * handler only runs inside ppoll (everything is blocked elsewhere), so the loop that reports
 * the ring never races with it.  When the ring is full the rest stay zombies until the loop has
 * emptied it and calls this again. */
static void
master_sigchld(int signo)
{
	int saved = errno, status;
	pid_t pid;

	(void)signo;
	while (M.reap_count < MASTER_REAP_RING && (pid = waitpid(-1, &status, WNOHANG)) > 0) {
		M.reap_ring[M.reap_count].pid = pid;
		M.reap_ring[M.reap_count].status = status;
		M.reap_count++;
	}
	errno = saved;
}

static void
master_sigterm(int signo)
{
	(void)signo;
	got_term++;
}

static void
master_sighup(int signo)
{
	(void)signo;
	got_hup = 1;
}

static void
master_sigusr1(int signo)
{
	(void)signo;
	got_usr1 = 1;
}

/* Binds every --bind address (or the wildcards) to one port; when the kernel chose the port for
 * the first socket and another address has it taken, starts over with a new port. */
static void
master_listen(void)
{
	char err[NET_ERRLEN];
	int tries, i, n = -1, port;

	for (tries = 0; tries < 16; tries++) {
		port = M.set.port;
		M.nlfd = 0;
		for (i = 0; i < (M.set.nbinds ? M.set.nbinds : 1); i++) {
			const char *host = M.set.nbinds ? M.set.binds[i] : NULL;

			n = net_listen(host, &port, M.lfd + M.nlfd, MASTER_MAX_LISTEN - M.nlfd, err,
			    sizeof(err));
			if (n < 0)
				break;
			M.nlfd += n;
		}
		if (n >= 0)
			return;
		while (M.nlfd > 0)
			close(M.lfd[--M.nlfd]);
		if (!(M.set.port == 0 && errno == EADDRINUSE))
			break;
	}
	usage_error("%s", err);
}

static void
master_announce(void)
{
	char addr[NET_ADDRLEN];
	int one = 1;

	for (int i = 0; i < M.nlfd; i++) {
		/* Accepted sockets inherit TCP_NODELAY from their listener, which saves every
		 * session a setsockopt: echoes go out at once, whatever their size. */
		setsockopt(M.lfd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		net_local_addr(M.lfd[i], addr, sizeof(addr));
		log_info("listening on %s", addr);
	}
}

/* In a new child: closes the listeners and the pipe end it does not use, as the master had
 * them at the fork (the shared state may have changed since). */
static void
master_close_inherited(const int *lfd, int nlfd, int other)
{
	for (int i = 0; i < nlfd; i++)
		close(lfd[i]);
	if (other >= 0)
		close(other);
}

static void
master_start_store(int filefd)
{
	struct store_args a = {
		.pipe_rd = M.pipe_rd, .filefd = filefd, .path = M.set.store,
		.format = M.set.format, .fsync = M.set.fsync,
	};
	int lfd[MASTER_MAX_LISTEN], nlfd = M.nlfd, pipe_wr = M.pipe_wr;
	pid_t pid;

	memcpy(lfd, M.lfd, sizeof(lfd));
	pid = fork();
	if (pid < 0) {
		log_warn("cannot fork the store");
		return;
	}
	if (pid == 0) {
		master_close_inherited(lfd, nlfd, pipe_wr);
		store_run(&a);
	}
	M.store_pid = pid;
	M.store_started_ms = io_now_ms();
}

/* The master keeps the pipe's read end, so what sessions wrote while no store ran stays in the
 * pipe for the next one.  Restarts come at most once a second, so a store that cannot open its
 * file does not spin. */
static void
master_restart_store(void)
{
	if (M.store_pid > 0 || M.pipe_rd < 0 || M.pipe_wr < 0)
		return;
	if (io_now_ms() - M.store_started_ms < 1000)
		return;
	master_start_store(-1);
	if (M.store_pid > 0)
		log_warnx("restarted the store as %d", (int)M.store_pid);
}

static void
master_open_store(void)
{
	int fd;

	if (M.set.store == NULL) {
		M.pipe_rd = M.pipe_wr = -1;
		return;
	}
	fd = store_open(M.set.store);
	if (fd < 0) {
		char msg[OPTS_ERRLEN + 64];
		snprintf(msg, sizeof(msg), "cannot open store %.200s: %s", M.set.store,
		    errno == EWOULDBLOCK ? "another mpechod is writing it" : strerror(errno));
		usage_error("%s", msg);
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		fatal(EX_OSERR_, "pipe");
	M.pipe_rd = p[0];
	M.pipe_wr = p[1];
	/* A larger pipe absorbs bursts, so sessions seldom wait for the store. */
	fcntl(M.pipe_wr, F_SETPIPE_SZ, MASTER_PIPE_SIZE);
	io_set_nonblock(M.pipe_wr, 1);
	master_start_store(fd);
	close(fd);
}

/* Zeroed memory shared with every child (see struct master). */
static void *
master_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fatal(EX_OSERR_, "cannot map %zu bytes", len);
	return p;
}

static void
master_alloc(void)
{
	size_t n = (size_t)M.set.max_clients;

	M.kids = master_shared(n * sizeof(*M.kids));
	M.free_slots = master_shared(n * sizeof(*M.free_slots));
	M.board = master_shared(n * sizeof(*M.board));
	for (int i = 0; i < M.set.max_clients; i++)
		M.free_slots[M.nfree++] = M.set.max_clients - 1 - i;
	M.next_conn = 1;
}

static void
master_key(void)
{
	uint64_t key;

	if (getrandom(&key, sizeof(key), 0) != (ssize_t)sizeof(key))
		key = (uint64_t)rec_now_us() ^ ((uint64_t)getpid() << 32);
	rec_set_key(key);
}

static void
master_signals(void)
{
	static const int blocked[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, 0 };

	sig_ignore(SIGPIPE);
	if (sig_block(blocked, &M.waitmask) < 0)
		fatal(EX_OSERR_, "sigprocmask");
	sig_handle(SIGCHLD, master_sigchld, SA_NOCLDSTOP);
	sig_handle(SIGTERM, master_sigterm, 0);
	sig_handle(SIGINT, master_sigterm, 0);
	sig_handle(SIGHUP, master_sighup, 0);
	sig_handle(SIGUSR1, master_sigusr1, 0);
}

/* Puts owed close records into the pipe, as many as fit now. */
static void
master_pay_owed(void)
{
	int i;

	for (i = 0; i < M.nowed; i++) {
		struct owed *o = &M.owed[i];
		ssize_t n;

		do
			n = write(M.pipe_wr, o, sizeof(o->h) + o->h.len);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			if (errno != EAGAIN)
				log_warn("store pipe");
			break;
		}
	}
	memmove(M.owed, M.owed + i, (size_t)(M.nowed - i) * sizeof(*M.owed));
	M.nowed -= i;
}

/* Queues one frame for the store and writes what the pipe takes now. */
static void
master_owe(enum rec_type type, const struct child *c, const void *payload, size_t len)
{
	struct owed *o;

	if (M.nowed == M.capowed) {
		int cap = M.capowed ? M.capowed * 2 : 16;
		struct owed *p = realloc(M.owed, (size_t)cap * sizeof(*p));
		if (p == NULL) {
			log_warn("cannot queue a record of conn %llu", (unsigned long long)c->conn);
			return;
		}
		M.owed = p;
		M.capowed = cap;
	}
	o = &M.owed[M.nowed++];
	memcpy(o->payload, payload, len);
	rec_header(&o->h, type, REC_F_BEHALF, c->conn, c->pid, len);
	master_pay_owed();
}

/* The peer's address as the session would have written it, from the child table. */
static void
master_peer_str(const struct child *c, char *buf, size_t len)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = c->src[0];
	if (ss.ss_family == AF_INET6) {
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, c->src + 1, 16);
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(c->port);
	} else {
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, c->src + 1, 4);
		((struct sockaddr_in *)&ss)->sin_port = htons(c->port);
	}
	net_addr_str((struct sockaddr *)&ss, buf, len);
}

/* A session that did not write its close record (killed by a signal, or gave up on a stuck
 * store at shutdown) gets it from the master, once; and its open record first if that did not
 * make it either, so that every accepted connection is in the store, opened and closed. */
static void
master_owe_close(const struct child *c, const char *reason)
{
	struct session_slot *slot = &M.board[c->slot];
	unsigned char payload[8 + REC_REASON_MAX];
	char peer[NET_ADDRLEN];

	if (M.pipe_wr < 0 || slot->closed)
		return;
	if (!slot->opened) {
		master_peer_str(c, peer, sizeof(peer));
		master_owe(REC_OPEN, c, peer, strlen(peer));
	}
	master_owe(REC_CLOSE, c, payload, rec_close_payload(payload, slot->bytes, reason));
}

static void
master_store_died(int status)
{
	if (WIFSIGNALED(status))
		log_warnx("store %d killed by signal %d", (int)M.store_pid, WTERMSIG(status));
	else if (M.pipe_wr >= 0 || WEXITSTATUS(status) != 0)
		log_warnx("store %d exited %d", (int)M.store_pid, WEXITSTATUS(status));
	else
		log_info("store %d finished", (int)M.store_pid);
	M.store_pid = 0;
	master_restart_store();
}

static void
master_child_died(pid_t pid, int status)
{
	int i;

	if (pid == M.store_pid) {
		master_store_died(status);
		return;
	}
	for (i = 0; i < M.nkids && M.kids[i].pid != pid; i++)
		;
	if (i == M.nkids)
		return;
	struct child c = M.kids[i];
	uint64_t bytes = __atomic_load_n(&M.board[c.slot].bytes, __ATOMIC_RELAXED);
	char reason[32];

	M.kids[i] = M.kids[--M.nkids];
	M.free_slots[M.nfree++] = c.slot;
	M.bytes_done += bytes;
	if (WIFSIGNALED(status)) {
		M.reaped_signal++;
		log_info("session %d conn %llu killed by signal %d after %llu bytes", (int)pid,
		    (unsigned long long)c.conn, WTERMSIG(status), (unsigned long long)bytes);
		snprintf(reason, sizeof(reason), "signal %d", WTERMSIG(status));
	} else {
		M.reaped_exit++;
		log_info("session %d conn %llu exited %d (%s) after %llu bytes", (int)pid,
		    (unsigned long long)c.conn, WEXITSTATUS(status),
		    session_reason(WEXITSTATUS(status)), (unsigned long long)bytes);
		snprintf(reason, sizeof(reason), "%s", session_reason(WEXITSTATUS(status)));
	}
	master_owe_close(&c, reason);
}

static void
master_report_reaped(void)
{
	int full;

	do {
		full = (M.reap_count == MASTER_REAP_RING);
		for (int i = 0; i < M.reap_count; i++)
			master_child_died(M.reap_ring[i].pid, M.reap_ring[i].status);
		M.reap_count = 0;
		if (full)
			master_sigchld(SIGCHLD);
	} while (full || M.reap_count > 0);
}

static void
master_stats(void)
{
	uint64_t bytes = M.bytes_done;

	got_usr1 = 0;
	for (int i = 0; i < M.nkids; i++)
		bytes += __atomic_load_n(&M.board[M.kids[i].slot].bytes, __ATOMIC_RELAXED);
	log_info("stats: active %d, accepted %llu, bytes echoed %llu, reaped %llu by exit, "
	    "%llu by signal, refused %llu per source, %llu over rate", M.nkids,
	    (unsigned long long)M.accepted, (unsigned long long)bytes,
	    (unsigned long long)M.reaped_exit, (unsigned long long)M.reaped_signal,
	    (unsigned long long)M.refused_source, (unsigned long long)M.refused_rate);
}

static uint16_t
master_peer_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static void
master_fork_session(int cfd, const struct sockaddr_storage *peer,
    const unsigned char src[SRC_KEY_LEN])
{
	struct session_args a;
	pid_t pid;
	int slot = M.free_slots[--M.nfree];
	int lfd[MASTER_MAX_LISTEN], nlfd = M.nlfd, pipe_rd = M.pipe_rd;

	M.board[slot] = (struct session_slot){ 0 };
	memcpy(lfd, M.lfd, sizeof(lfd));
	a.fd = cfd;
	a.conn = M.next_conn;
	a.peer = *peer;
	a.pipe_wr = M.pipe_wr;
	a.idle_timeout = M.set.idle_timeout;
	a.slot = &M.board[slot];
	/* _Fork is fork without the atfork work: the master has one thread and holds no lock at
	 * this point, and fork()'s reset of malloc's and stdio's locks in the child would dirty
	 * three pages of libc data in every session, 12 KiB per held connection. */
	pid = _Fork();
	if (pid == 0) {
		master_close_inherited(lfd, nlfd, pipe_rd);
		session_run(&a);
	}
	close(cfd);
	if (pid < 0) {
		master_ratelog(&M.log_fork, 1, "fork failed; closed the connection, pausing accepts "
		    "for 100 ms");
		M.free_slots[M.nfree++] = slot;
		M.accept_resume_ms = io_now_ms() + 100;
		return;
	}
	M.kids[M.nkids] = (struct child){ .pid = pid, .slot = slot, .conn = M.next_conn++,
	    .port = master_peer_port(peer) };
	memcpy(M.kids[M.nkids++].src, src, SRC_KEY_LEN);
	M.accepted++;
}

static void
master_src_key(const struct sockaddr_storage *ss, unsigned char key[SRC_KEY_LEN])
{
	memset(key, 0, SRC_KEY_LEN);
	key[0] = (unsigned char)ss->ss_family;
	if (ss->ss_family == AF_INET6)
		memcpy(key + 1, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	else if (ss->ss_family == AF_INET)
		memcpy(key + 1, &((const struct sockaddr_in *)ss)->sin_addr, 4);
}

static int
master_over_per_source(const unsigned char key[SRC_KEY_LEN])
{
	int n = 0;

	if (M.set.max_per_source == 0)
		return 0;
	for (int i = 0; i < M.nkids; i++)
		if (memcmp(M.kids[i].src, key, SRC_KEY_LEN) == 0 && ++n >= M.set.max_per_source)
			return 1;
	return 0;
}

/* A token bucket refilled at --max-rate sessions a second, holding at most a second's worth. */
static int
master_over_rate(void)
{
	int64_t now = io_now_ms(), full = (int64_t)M.set.max_rate * 1000;

	if (M.set.max_rate == 0)
		return 0;
	M.rate_tokens = M.rate_last_ms == 0 ? full :
	    M.rate_tokens + (now - M.rate_last_ms) * M.set.max_rate;
	if (M.rate_tokens > full)
		M.rate_tokens = full;
	M.rate_last_ms = now;
	if (M.rate_tokens < 1000)
		return 1;
	M.rate_tokens -= 1000;
	return 0;
}

/* Forks a session for the connection, or closes it at once when it is over a limit (xinetd's
 * per_source and cps): a refused connection costs no fork. */
static void
master_admit(int cfd, const struct sockaddr_storage *ss)
{
	unsigned char key[SRC_KEY_LEN];
	char addr[NET_ADDRLEN], msg[NET_ADDRLEN + 64];

	master_src_key(ss, key);
	if (master_over_per_source(key)) {
		M.refused_source++;
		net_addr_str((const struct sockaddr *)ss, addr, sizeof(addr));
		snprintf(msg, sizeof(msg), "refused %s: --max-per-source %d reached", addr,
		    M.set.max_per_source);
	} else if (master_over_rate()) {
		M.refused_rate++;
		net_addr_str((const struct sockaddr *)ss, addr, sizeof(addr));
		snprintf(msg, sizeof(msg), "refused %s: --max-rate %d reached", addr,
		    M.set.max_rate);
	} else {
		master_fork_session(cfd, ss, key);
		return;
	}
	close(cfd);
	master_ratelog(&M.log_refused, 0, msg);
}

/* Accepts what is waiting on one listener, up to a burst and never past --max-clients. */
static void
master_accept(int lfd)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int cfd;

	for (int n = 0; n < MASTER_ACCEPT_BURST && M.nkids < M.set.max_clients; n++) {
		len = sizeof(ss);
		cfd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM: the backlog keeps the connection;
			 * pause instead of spinning on a listener that stays readable, and try
			 * again by ourselves (nginx and sshd back off the same way). */
			master_ratelog(&M.log_accept, 1, "accept failed; pausing accepts for 100 ms");
			M.accept_resume_ms = io_now_ms() + 100;
			return;
		}
		master_admit(cfd, &ss);
	}
}

static void
master_begin_shutdown(void)
{
	if (M.stopping == 0) {
		for (int i = 0; i < M.nlfd; i++)
			close(M.lfd[i]);
		M.nlfd = 0;
		log_info("shutting down: %d sessions get %d s to finish", M.nkids, M.set.grace);
		M.stopping = 1;
		M.phase_deadline_ms = io_now_ms() + (int64_t)M.set.grace * 1000;
	} else if (M.stopping == 1) {
		/* A second TERM or INT cuts the grace short. */
		M.phase_deadline_ms = io_now_ms();
	}
}

/* Moves the shutdown on when its deadline passes: grace, then SIGTERM, then SIGKILL. */
static void
master_shutdown_step(void)
{
	int sig;

	if (M.stopping == 0 || M.nkids == 0 || io_now_ms() < M.phase_deadline_ms)
		return;
	if (M.stopping >= 3)
		return;
	sig = (M.stopping == 1) ? SIGTERM : SIGKILL;
	log_info("sending signal %d to %d sessions", sig, M.nkids);
	for (int i = 0; i < M.nkids; i++)
		kill(M.kids[i].pid, sig);
	M.stopping++;
	M.phase_deadline_ms = io_now_ms() + MASTER_KILL_WAIT_MS;
}

static int
master_poll_timeout(int64_t now)
{
	int64_t t = -1;

	if (M.accept_resume_ms > now)
		t = M.accept_resume_ms - now;
	if (M.stopping && M.stopping < 3 && M.nkids > 0) {
		int64_t d = M.phase_deadline_ms > now ? M.phase_deadline_ms - now : 0;
		t = (t < 0 || d < t) ? d : t;
	}
	if (M.store_pid == 0 && M.pipe_wr >= 0 && (t < 0 || t > 1000))
		t = 1000;
	if (t > 3600000)
		t = 3600000;
	return (int)t;
}

static void
master_wait(void)
{
	struct timespec ts;
	int64_t now = io_now_ms();
	int accepting, t;

	M.npfd = 0;
	accepting = !M.stopping && M.nkids < M.set.max_clients && now >= M.accept_resume_ms;
	for (int i = 0; accepting && i < M.nlfd; i++)
		M.pfd[M.npfd++] = (struct pollfd){ .fd = M.lfd[i], .events = POLLIN };
	if (M.nowed > 0)
		M.pfd[M.npfd++] = (struct pollfd){ .fd = M.pipe_wr, .events = POLLOUT };
	t = master_poll_timeout(now);
	ts.tv_sec = t / 1000;
	ts.tv_nsec = (long)(t % 1000) * 1000000;
	if (ppoll(M.pfd, (nfds_t)M.npfd, t < 0 ? NULL : &ts, &M.waitmask) < 0) {
		if (errno != EINTR)
			fatal(EX_OSERR_, "ppoll");
		M.npfd = 0;
	} else {
		sig_deliver_pending(&M.waitmask);
	}
}

/* Runs after the signals of the same wakeup are handled: a pid reaped there is out of the
 * table before a fork here can be given the same pid, and nothing is accepted after SIGTERM. */
static void
master_serve(void)
{
	for (int i = 0; i < M.npfd; i++) {
		if (M.pfd[i].fd == M.pipe_wr && (M.pfd[i].revents & (POLLOUT | POLLERR)))
			master_pay_owed();
		else if ((M.pfd[i].revents & POLLIN) && !M.stopping)
			master_accept(M.pfd[i].fd);
	}
}

static size_t
master_pipe_unread(void)
{
	int n = 0;

	if (M.pipe_rd < 0 || ioctl(M.pipe_rd, FIONREAD, &n) < 0)
		return 0;
	return (size_t)n;
}

/* After the last session: hand the store everything owed, close the pipe so the store reads
 * EOF, and wait for it to write, fsync and exit. */
static void
master_finish(void)
{
	int64_t deadline = io_now_ms() + MASTER_STORE_WAIT_MS;
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 100L * 1000000L };
	struct pollfd pfd = { .fd = M.pipe_wr, .events = POLLOUT };
	int restarts = 0;

	while ((M.nowed > 0 || M.store_pid == 0) && io_now_ms() < deadline) {
		/* A store must run to drain the pipe: the restart throttle does not apply now. */
		if (M.store_pid == 0 && M.pipe_rd >= 0 && restarts++ < 3)
			master_start_store(-1);
		if (M.store_pid == 0 || M.nowed == 0)
			break;
		if (ppoll(&pfd, 1, &ts, &M.waitmask) > 0)
			master_pay_owed();
		master_report_reaped();
	}
	if (M.pipe_wr >= 0)
		close(M.pipe_wr);
	M.pipe_wr = -1;
	while (M.store_pid > 0 && io_now_ms() < deadline) {
		ppoll(NULL, 0, &ts, &M.waitmask);
		master_report_reaped();
		if (M.store_pid == 0 && master_pipe_unread() > 0 && restarts++ < 3)
			master_start_store(-1);
	}
	if (M.store_pid > 0) {
		log_warnx("store %d did not finish in time; killing it", (int)M.store_pid);
		kill(M.store_pid, SIGKILL);
		waitpid(M.store_pid, NULL, 0);
	}
	if (master_pipe_unread() > 0 || M.nowed > 0)
		log_warnx("%zu bytes of records and %d close records were never stored",
		    master_pipe_unread(), M.nowed);
	log_info("stopped after %llu connections", (unsigned long long)M.accepted);
	free(M.owed);
	exit(0);
}

static void
master_loop(void)
{
	log_guard(1);
	for (;;) {
		master_wait();
		if (M.reap_count > 0)
			master_report_reaped();
		if (got_term) {
			got_term = 0;
			master_begin_shutdown();
		}
		if (got_hup) {
			got_hup = 0;
			if (M.store_pid > 0)
				kill(M.store_pid, SIGHUP);
		}
		if (got_usr1)
			master_stats();
		master_serve();
		master_restart_store();
		master_shutdown_step();
		if (M.stopping && M.nkids == 0)
			master_finish();
	}
}

/* Started with 0, 1 or 2 closed, the store pipe or the store file could become "stderr" and
 * receive log lines: hold those numbers with /dev/null first. */
static void
master_std_fds(void)
{
	int fd;

	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= STDERR_FILENO)
		;
	if (fd > STDERR_FILENO)
		close(fd);
}

int
main(int argc, char **argv)
{
	char err[OPTS_ERRLEN];

	master_std_fds();
	log_init("mpechod", NULL);
	master_state = master_shared(sizeof(*master_state));
	switch (opts_parse(argc, argv, &M.set, err, sizeof(err))) {
	case OPTS_HELP:
		fputs(opts_usage(), stdout);
		return 0;
	case OPTS_VERSION:
		printf("mpechod %s\n", MPECHO_VERSION);
		return 0;
	case OPTS_ERROR:
		usage_error("%s", err);
		break;
	case OPTS_RUN:
		break;
	}
	master_alloc();
	master_key();
	master_signals();
	master_listen();
	master_open_store();
	master_announce();
	master_loop();
}
