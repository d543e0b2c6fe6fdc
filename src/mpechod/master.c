/*
 * master.c - mpechod's main process: the accept loop, one fork per connection (or the pool's
 * upkeep, master_pool.c), reaping, and shutdown.  What it sets up first is in master_setup.c;
 * its helper processes, the store and the datagram process, in master_store.c.
 *
 * The master talks to its sessions only through fork (their connection and scoreboard slot),
 * their exit status (how they ended) and signals (SIGTERM at the end of the shutdown grace).
 * The master never blocks on the store pipe: the only frames it writes there are close
 * records for sessions that could not write their own (killed by a signal, or stuck on a full
 * pipe at shutdown), queued in memory while the pipe is full.
 *
 * Signals are blocked at all times except inside ppoll(2), so a handler never interrupts the
 * master's own code (djb's tcpserver blocks SIGCHLD the same way): handlers only set flags, and
 * the loop does the work, reaping with waitpid(-1, WNOHANG) until no dead child is left.
 *
 * Before it forks, the master asks gate.c the questions of every accepted connection: is it
 * already over (reset, or closed with nothing sent: nothing to echo, so no fork is spent on
 * it), may its address connect, does admission control let it in.
 */
#define _GNU_SOURCE
#include "master.h"

struct master *master;

static volatile sig_atomic_t got_chld, got_term, got_hup, got_usr1;

/* A warning that a flood could repeat thousands of times a second, at most once a second. */
void
master_ratelog(struct admit_ratelog *rl, int with_errno, const char *what)
{
	char held[64] = "";
	uint64_t n;

	if (!admit_ratelog(rl, io_now_ms(), 1000, &n))
		return;
	if (n > 0)
		snprintf(held, sizeof(held), " (and %llu more in the last second)",
		    (unsigned long long)n);
	if (with_errno)
		log_warn("%s%s", what, held);
	else
		log_warnx("%s%s", what, held);
}

/* Signals do not queue: one SIGCHLD may stand for many dead children.  The handler only notes
 * that some died; master_reap collects them all. */
static void
master_sigchld(int signo)
{
	(void)signo;
	got_chld = 1;
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

static void
master_alloc(void)
{
	size_t n = (size_t)master->set.max_clients;

	master->kids = master_shared(n * sizeof(*master->kids));
	master->free_slots = master_shared(n * sizeof(*master->free_slots));
	master->board = master_shared(n * sizeof(*master->board));
	master->admit = master_shared(admit_size(master->set.max_clients, master->set.max_per_source));
	admit_init(master->admit, master->set.max_clients, master->set.max_per_source,
	    master->set.max_rate);
	if (shared_init(&master->shared) < 0)
		fatal(EX_OSERR, "shared lock");
	master_gate();
	for (int i = 0; i < master->set.max_clients; i++)
		master->free_slots[master->nfree++] = master->set.max_clients - 1 - i;
	master->next_conn = 1;
	master->wake_rd = master->wake_wr = -1;
	master->notify_fd = -1;
	if (master->set.prefork)
		master_alloc_pool(n);
}

static void
master_signals(void)
{
	static const int blocked[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, 0 };

	sig_ignore(SIGPIPE);
	if (sig_block(blocked, &master->waitmask) < 0)
		fatal(EX_OSERR, "sigprocmask");
	sig_handle(SIGCHLD, master_sigchld, SA_NOCLDSTOP);
	sig_handle(SIGTERM, master_sigterm, 0);
	sig_handle(SIGINT, master_sigterm, 0);
	sig_handle(SIGHUP, master_sighup, 0);
	sig_handle(SIGUSR1, master_sigusr1, 0);
}

/* Gives back what a child that died had counted for --max-per-source: at accept, and for the
 * client a PROXY header named (a session that ended normally gave that back itself). */
void
master_release(int admitted, const struct admit_key *src, struct session_slot *slot)
{
	if (admitted)
		gate_release(&master->gate, src);
	if (slot->admitted) {
		gate_release(&master->gate, &slot->src);
		slot->admitted = 0;
	}
}

static void
master_session_died(const struct child *c, int status)
{
	uint64_t bytes = __atomic_load_n(&master->board[c->slot].bytes, __ATOMIC_RELAXED);
	char reason[32], peer[NET_ADDRLEN];

	master_release(c->admitted, &c->src, &master->board[c->slot]);
	master->bytes_done += bytes;
	master_end_reason(status, reason, sizeof(reason));
	if (WIFSIGNALED(status))
		log_info("session %d conn %llu killed by signal %d after %llu bytes", (int)c->pid,
		    (unsigned long long)c->conn, WTERMSIG(status), (unsigned long long)bytes);
	else
		log_info("session %d conn %llu exited %d (%s) after %llu bytes", (int)c->pid,
		    (unsigned long long)c->conn, WEXITSTATUS(status), reason,
		    (unsigned long long)bytes);
	master_peer_str(c, peer, sizeof(peer));
	master_owe_close(c->conn, c->pid, &master->board[c->slot], peer, reason);
}

static void
master_child_died(pid_t pid, int status)
{
	int i;

	if (pid == master->store_pid) {
		master_store_died(status);
		return;
	}
	if (pid == master->dgram_pid) {
		master_dgram_died(status);
		return;
	}
	for (i = 0; i < master->nkids && master->kids[i].pid != pid; i++)
		;
	if (i == master->nkids)
		return;
	struct child c = master->kids[i];

	master->kids[i] = master->kids[--master->nkids];
	master->free_slots[master->nfree++] = c.slot;
	if (WIFSIGNALED(status))
		master->reaped_signal++;
	else
		master->reaped_exit++;
	if (master->set.prefork)
		master_pool_died(&c, status);
	else
		master_session_died(&c, status);
}

/* One SIGCHLD for any number of dead children: collect until none is left (sshd's
 * child_reap_all_exited).  Bounded: each round reaps a child, and only children that exist. */
static void
master_reap(void)
{
	int status;
	pid_t pid;

	got_chld = 0;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		master_child_died(pid, status);
}

/* The stats line's part for --udp, appended to buf. */
static void
master_stats_udp(char *buf, size_t len)
{
	const struct datagram_stats *d = &master->dgstats;
	uint64_t drop[DG_NVERDICTS + 1], all = 0;
	size_t n = strlen(buf);

	for (int v = 0; v < DG_NVERDICTS; v++)
		all += drop[v] = __atomic_load_n(&d->dropped[v], __ATOMIC_RELAXED);
	all += drop[DG_NVERDICTS] = __atomic_load_n(&d->dropped_store, __ATOMIC_RELAXED);
	snprintf(buf + n, len - n, ", udp echoed %llu, udp bytes %llu, udp dropped %llu, "
	    "udp dropped for source port %llu, for address %llu, over source rate %llu, over "
	    "global rate %llu, for store %llu",
	    (unsigned long long)__atomic_load_n(&d->echoed, __ATOMIC_RELAXED),
	    (unsigned long long)__atomic_load_n(&d->bytes, __ATOMIC_RELAXED),
	    (unsigned long long)all, (unsigned long long)drop[DG_BAD_PORT],
	    (unsigned long long)drop[DG_BAD_ADDR], (unsigned long long)drop[DG_RATE_SOURCE],
	    (unsigned long long)drop[DG_RATE_ALL], (unsigned long long)drop[DG_NVERDICTS]);
}

/* The stats figures as one line (the USR1 line, and systemd's STATUS=). */
void
master_stats_line(char *line, size_t len)
{
	struct shared *sh = &master->shared;
	uint64_t bytes = master->bytes_done, v[4];
	int active = master->nkids;

	v[0] = master->accepted + __atomic_load_n(&sh->accepted, __ATOMIC_RELAXED);
	v[1] = __atomic_load_n(&sh->refused_source, __ATOMIC_RELAXED);
	v[2] = __atomic_load_n(&sh->refused_rate, __ATOMIC_RELAXED);
	v[3] = __atomic_load_n(&sh->culled, __ATOMIC_RELAXED);
	bytes += __atomic_load_n(&sh->bytes_done, __ATOMIC_RELAXED);
	if (master->set.prefork) {
		active = master_active();
		for (int i = 0; i < master->nkids; i++) {
			struct pool_slot *p = &master->pslots[master->kids[i].slot];
			if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) == POOL_BUSY)
				bytes += __atomic_load_n(&p->s.bytes, __ATOMIC_RELAXED);
		}
	} else {
		for (int i = 0; i < master->nkids; i++)
			bytes += __atomic_load_n(&master->board[master->kids[i].slot].bytes,
			    __ATOMIC_RELAXED);
	}
	snprintf(line, len, "active %d, accepted %llu, bytes echoed %llu, reaped %llu by "
	    "exit, %llu by signal, refused %llu per source, %llu over rate, culled %llu dead, "
	    "denied %llu, proxy errors %llu",
	    active, (unsigned long long)v[0], (unsigned long long)bytes,
	    (unsigned long long)master->reaped_exit, (unsigned long long)master->reaped_signal,
	    (unsigned long long)v[1], (unsigned long long)v[2], (unsigned long long)v[3],
	    (unsigned long long)__atomic_load_n(&sh->denied, __ATOMIC_RELAXED),
	    (unsigned long long)__atomic_load_n(&sh->proxy_errors, __ATOMIC_RELAXED));
	if (master->set.prefork)
		snprintf(line + strlen(line), len - strlen(line),
		    ", pool %d processes, %d idle, %d starting", master->nkids,
		    __atomic_load_n(&sh->idle, __ATOMIC_RELAXED),
		    __atomic_load_n(&sh->starting, __ATOMIC_RELAXED));
	if (master->set.udp)
		master_stats_udp(line, len);
}

static void
master_stats(void)
{
	char line[768];

	got_usr1 = 0;
	master_stats_line(line, sizeof(line));
	log_info("stats: %s", line);
}

static uint16_t
master_peer_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static void
master_fork_session(int cfd, const struct sockaddr_storage *peer, const struct admit_key *src,
    int admitted)
{
	struct session_args a;
	pid_t pid;
	int slot = master->free_slots[--master->nfree];
	struct master_fds c;

	master->board[slot] = (struct session_slot){ 0 };
	master_fds_to_close(&c, master->pipe_wr, KEEP_NONE);
	a.fd = cfd;
	a.conn = master->next_conn;
	a.peer = *peer;
	a.pipe_wr = master->pipe_wr;
	a.idle_timeout = master->set.idle_timeout;
	a.gate = master->set.proxy ? &master->gate : NULL;
	a.grace = master->set.grace;
	a.master = getpid();
	a.slot = &master->board[slot];
	/* _Fork is fork without the atfork work: the master has one thread and holds no lock at
	 * this point, and fork()'s reset of malloc's and stdio's locks in the child would dirty
	 * three pages of libc data in every session, 12 KiB per held connection. */
	pid = _Fork();
	if (pid == 0) {
		master_close_inherited(&c);
		session_run(&a);
	}
	close(cfd);
	if (pid < 0) {
		master_ratelog(&master->log_fork, 1, "fork failed; closed the connection, pausing accepts "
		    "for 100 ms");
		master->free_slots[master->nfree++] = slot;
		if (admitted)
			gate_release(&master->gate, src);
		master->accept_resume_ms = io_now_ms() + 100;
		return;
	}
	master->kids[master->nkids++] = (struct child){ .pid = pid, .slot = slot,
	    .conn = master->next_conn++, .src = *src, .admitted = admitted,
	    .port = master_peer_port(peer) };
	master->accepted++;
}

/* Forks a session for the connection, or closes it at once when it is already over or refused
 * (gate.c): a connection that is not served costs no fork. */
static void
master_admit(int cfd, const struct sockaddr_storage *ss)
{
	enum net_peer_state st;
	struct admit_key key;
	int admitted;

	if (gate_accept(&master->gate, cfd, ss, &key, &admitted, &st) != GATE_SERVE) {
		close(cfd);
		return;
	}
	/* A peer that sent everything and half-closed is not waiting to type: under a flood its
	 * fork waits until the listen queue has been worked through, so that a live client
	 * behind it in the queue is not held up by forks (bounded: MASTER_DEFER_AGE_MS). */
	if (st == NET_PEER_HALF && master->ndefer < MASTER_DEFER_MAX) {
		struct deferred *d = &master->defer[(master->defer_head + master->ndefer++) %
		    MASTER_DEFER_MAX];

		*d = (struct deferred){ .fd = cfd, .admitted = admitted, .since_ms = io_now_ms(),
		    .ss = *ss, .key = key };
		return;
	}
	master_fork_session(cfd, ss, &key, admitted);
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
		master_fork_session(d.fd, &d.ss, &d.key, d.admitted);
	}
}

/* Accepts what is waiting on one listener, up to a burst and never past --max-clients (the
 * connections put aside count).  Returns 1 when the listen queue is empty. */
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
			master_ratelog(&master->log_accept, 1, "accept failed; pausing accepts for 100 ms");
			master->accept_resume_ms = io_now_ms() + 100;
			return 1;
		}
		master_admit(cfd, &ss);
	}
	return 0;
}

static void
master_begin_shutdown(void)
{
	if (master->stopping == 0) {
		for (int i = 0; i < master->nlfd; i++)
			close(master->lfd[i]);
		master->nlfd = 0;
		for (int i = 0; i < master->nufd; i++)
			close(master->ufd[i]);
		master->nufd = 0;
		if (master->dgram_pid > 0)
			kill(master->dgram_pid, SIGTERM);
		if (master->set.prefork) {
			/* Idle pool processes leave at once; busy ones after their connection. */
			__atomic_store_n(&master->shared.stopping, 1, __ATOMIC_RELEASE);
			for (int i = 0; i < master->nkids; i++)
				kill(master->kids[i].pid, SIGUSR1);
		}
		log_info("shutting down: %d sessions get %d s to finish", master_active(),
		    master->set.grace);
		master_notify("STOPPING=1");
		master->stopping = 1;
		master->phase_deadline_ms = io_now_ms() + (int64_t)master->set.grace * 1000;
	} else if (master->stopping == 1) {
		/* A second TERM or INT cuts the grace short. */
		master->phase_deadline_ms = io_now_ms();
	}
}

/* Moves the shutdown on when its deadline passes: grace, then SIGTERM, then SIGKILL. */
static void
master_shutdown_step(void)
{
	int sig;

	if (master->stopping == 0 || (master->nkids == 0 && master->dgram_pid == 0) ||
	    io_now_ms() < master->phase_deadline_ms)
		return;
	if (master->stopping >= 3)
		return;
	sig = (master->stopping == 1) ? SIGTERM : SIGKILL;
	if (master->nkids > 0)
		log_info("sending signal %d to %d sessions", sig, master->nkids);
	for (int i = 0; i < master->nkids; i++)
		kill(master->kids[i].pid, sig);
	/* The datagram process had its SIGTERM at the start: one that has not left (stopped,
	 * stuck) must not hold the shutdown for ever. */
	if (sig == SIGKILL && master->dgram_pid > 0)
		kill(master->dgram_pid, SIGKILL);
	master->stopping++;
	master->phase_deadline_ms = io_now_ms() + MASTER_KILL_WAIT_MS;
}

static int
master_poll_timeout(int64_t now)
{
	int64_t t = -1;

	if (master->accept_resume_ms > now)
		t = master->accept_resume_ms - now;
	/* Connections put aside are forked as soon as there is room for them. */
	if (master->ndefer > 0 && master->nkids < master->set.max_clients)
		t = 0;
	if (master->set.prefork && !master->stopping) {
		int64_t d = master->next_tick_ms > now ? master->next_tick_ms - now : 0;
		t = (t < 0 || d < t) ? d : t;
	}
	if (master->notify_fd >= 0 && !master->stopping) {
		int64_t d = master->next_status_ms > now ? master->next_status_ms - now : 0;
		t = (t < 0 || d < t) ? d : t;
	}
	if (master->stopping && master->stopping < 3 &&
	    (master->nkids > 0 || master->dgram_pid > 0)) {
		int64_t d = master->phase_deadline_ms > now ? master->phase_deadline_ms - now : 0;
		t = (t < 0 || d < t) ? d : t;
	}
	if (((master->store_pid == 0 && master->pipe_wr >= 0) ||
	    (master->dgram_pid == 0 && master->nufd > 0)) && (t < 0 || t > 1000))
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

	master->npfd = 0;
	if (master->set.prefork)
		accepting = master_pool_watch();
	else
		accepting = !master->stopping && master->nkids < master->set.max_clients &&
		    now >= master->accept_resume_ms;
	if (master->wake_rd >= 0)
		master->pfd[master->npfd++] = (struct pollfd){ .fd = master->wake_rd, .events = POLLIN };
	for (int i = 0; accepting && i < master->nlfd; i++)
		master->pfd[master->npfd++] = (struct pollfd){ .fd = master->lfd[i], .events = POLLIN };
	if (master->nowed > 0)
		master->pfd[master->npfd++] = (struct pollfd){ .fd = master->pipe_wr, .events = POLLOUT };
	t = master_poll_timeout(now);
	ts.tv_sec = t / 1000;
	ts.tv_nsec = (long)(t % 1000) * 1000000;
	if (ppoll(master->pfd, (nfds_t)master->npfd, t < 0 ? NULL : &ts, &master->waitmask) < 0) {
		if (errno != EINTR)
			fatal(EX_OSERR, "ppoll");
		master->npfd = 0;
	} else {
		sig_deliver_pending(&master->waitmask);
	}
}

/* Runs after the signals of the same wakeup are handled: a pid reaped there is out of the
 * table before a fork here can be given the same pid, and nothing is accepted after SIGTERM. */
static void
master_serve(void)
{
	int empty = 1;

	for (int i = 0; i < master->npfd; i++) {
		if (master->pfd[i].fd == master->pipe_wr && (master->pfd[i].revents & (POLLOUT | POLLERR)))
			master_pay_owed();
		else if (master->pfd[i].fd == master->wake_rd)
			master_pool_woken();
		else if ((master->pfd[i].revents & POLLIN) && !master->stopping && master->set.prefork)
			master_spawn_pool(master_pool_burst());
		else if ((master->pfd[i].revents & POLLIN) && !master->stopping)
			empty &= master_accept(master->pfd[i].fd);
	}
	if (master->ndefer > 0)
		master_fork_deferred(empty);
}

static void
master_finish(void)
{
	int64_t giveup = io_now_ms() + MASTER_STORE_GIVEUP_MS;
	int64_t deadline = io_now_ms() + MASTER_STORE_WAIT_MS;
	pid_t told = 0;
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 100L * 1000000L };
	struct pollfd pfd = { .fd = master->pipe_wr, .events = POLLOUT };
	int restarts = 0;

	while ((master->nowed > 0 || master->store_pid == 0) && io_now_ms() < deadline) {
		/* A store must run to drain the pipe: the restart throttle does not apply now. */
		if (master->store_pid == 0 && master->pipe_rd >= 0 && restarts++ < 3)
			master_start_store(-1);
		if (master->store_pid == 0 || master->nowed == 0)
			break;
		if (ppoll(&pfd, 1, &ts, &master->waitmask) > 0)
			master_pay_owed();
		master_reap();
		master_store_giveup(giveup, &told);
	}
	if (master->pipe_wr >= 0)
		close(master->pipe_wr);
	master->pipe_wr = -1;
	while (master->store_pid > 0 && io_now_ms() < deadline) {
		ppoll(NULL, 0, &ts, &master->waitmask);
		master_reap();
		master_store_giveup(giveup, &told);
		if (master->store_pid == 0 && master_pipe_unread() > 0 && restarts++ < 3)
			master_start_store(-1);
	}
	if (master->store_pid > 0) {
		log_warnx("store %d did not finish in time; killing it", (int)master->store_pid);
		kill(master->store_pid, SIGKILL);
		waitpid(master->store_pid, NULL, 0);
		master->store_lost = 1;
	}
	if (master_pipe_unread() > 0 || master->nowed > 0) {
		log_warnx("%zu bytes of records and %d close records were never stored",
		    master_pipe_unread(), master->nowed);
		master->store_lost = 1;
	}
	log_info("stopped after %llu connections", (unsigned long long)master->accepted +
	    (unsigned long long)__atomic_load_n(&master->shared.accepted, __ATOMIC_RELAXED));
	free(master->owed);
	/* The store could not write everything (it said what in the log): so does the status. */
	exit(master->store_lost ? EX_IOERR : 0);
}

/* Rotation: the store reopens its path; the master's lock follows the path to the new file. */
static void
master_hup(void)
{
	int fd;

	got_hup = 0;
	master_notify("RELOADING=1\nMONOTONIC_USEC=%lld", (long long)io_now_ms() * 1000);
	/* The master's lock first: once the store has reopened, a second mpechod on the path
	 * must find a live master there. */
	if (master->lock_fd >= 0) {
		fd = store_master_lock(master->set.store, master->lock_fd);
		if (fd < 0)
			log_warn("cannot lock the new %s", master->set.store);
		else
			master->lock_fd = fd;
	}
	if (master->store_pid > 0)
		kill(master->store_pid, SIGHUP);
	master_notify("READY=1");
}

static void
master_loop(void)
{
	log_guard(1);
	for (;;) {
		master_wait();
		if (got_chld)
			master_reap();
		if (got_term) {
			got_term = 0;
			master_begin_shutdown();
		}
		if (got_hup)
			master_hup();
		if (got_usr1)
			master_stats();
		master_serve();
		master_restart_store();
		master_restart_dgram();
		master_pool_tick();
		master_status();
		master_shutdown_step();
		if (master->stopping && master->nkids == 0 && master->ndefer == 0 &&
		    master->dgram_pid == 0)
			master_finish();
	}
}

/* Everything after the sockets and the store file are open: drop privileges, start the store,
 * the datagram process and the pool, say so, and tell systemd. */
static void
master_start(int store_fd)
{
	master_drop_user(store_fd);
	if (store_fd >= 0) {
		master_start_store(store_fd);
		close(store_fd);
	}
	master_notify_open();
	master_start_dgram();
	master_announce();
	if (master->set.prefork) {
		/* Apache's StartServers: the spares at once. */
		master_spawn_pool(master->set.min_spare);
		master->next_tick_ms = io_now_ms() + 1000;
	}
	master_notify("READY=1\nMAINPID=%ld", (long)getpid());
}

int
main(int argc, char **argv)
{
	const struct user_ids *user;
	char err[OPTS_ERRLEN];

	master_std_fds();
	log_init("mpechod", NULL);
	master = master_shared(sizeof(*master));
	switch (opts_parse(argc, argv, &master->set, err, sizeof(err))) {
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
	user = master_resolve_user();
	if (master->set.inetd)
		inetd_run(&master->set, user);
	master_alloc();
	rec_new_key();
	master_signals();
	master_sockets();
	master_start(master_open_store());
	master_loop();
}
