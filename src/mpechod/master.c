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
#include "proc.h"
#include "receipt.h"
#include "sandbox.h"

struct master *master;

/* How connections reach sessions (fork or pool), chosen once in main. */
static const struct master_mode *mode;

static volatile sig_atomic_t got_chld, got_term, got_hup, got_usr1, got_usr2;

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

/* An upgrade in place (master_upgrade.c), from the loop. */
static void
master_sigusr2(int signo)
{
	(void)signo;
	got_usr2 = 1;
}

static void
master_alloc(void)
{
	size_t n = (size_t)master->set.max_clients;

	master->kids = master_shared(n * sizeof(*master->kids));
	master->free_slots = master_shared(n * sizeof(*master->free_slots));
	master->board = master_shared(n * sizeof(*master->board));
	if (master->set.store != NULL &&
	    receipt_setup((enum receipt_mode)master->set.echo_after, (uint32_t)n) < 0)
		fatal(EX_OSERR, "receipt board");
	master->admit = master_shared(admit_size(master->set.max_clients, master->set.max_per_source));
	admit_init(master->admit, master->set.max_clients, master->set.max_per_source,
	    master->set.max_rate);
	if (shared_init(&master->shared) < 0)
		fatal(EX_OSERR, "shared lock");
	shared_settings(&master->shared, master->set.idle_timeout, master->set.grace);
	master_gate();
	for (int i = 0; i < master->set.max_clients; i++)
		master->free_slots[master->nfree++] = master->set.max_clients - 1 - i;
	master->next_conn = 1;
	master->store.role = PROC_STORE;
	master->dgram.role = PROC_DGRAM;
	master->metrics.role = PROC_METRICS;
	master->wake_rd = master->wake_wr = -1;
	master->notify_fd = -1;
	master->agent_fd = -1;
	mode->alloc(n);
}

static void
master_signals(void)
{
	static const int blocked[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, 0 };

	sig_ignore(SIGPIPE);
	if (sig_block(blocked, &master->waitmask) < 0)
		fatal(EX_OSERR, "sigprocmask");
	sig_handle(SIGCHLD, master_sigchld, SA_NOCLDSTOP);
	sig_handle(SIGTERM, master_sigterm, 0);
	sig_handle(SIGINT, master_sigterm, 0);
	sig_handle(SIGHUP, master_sighup, 0);
	sig_handle(SIGUSR1, master_sigusr1, 0);
	sig_handle(SIGUSR2, master_sigusr2, 0);
}

/* The child of that pid, whatever its role: a helper, or one of the child table. */
static struct child *
master_child(pid_t pid)
{
	struct child *helper[] = { &master->store, &master->dgram, &master->metrics };

	for (size_t i = 0; i < sizeof(helper) / sizeof(helper[0]); i++)
		if (helper[i]->pid == pid)
			return helper[i];
	for (int i = 0; i < master->nkids; i++)
		if (master->kids[i].pid == pid)
			return &master->kids[i];
	return NULL;
}

/* A session or pool process ended: out of the table, then the mode puts right what it left. */
static void
master_kid_died(struct child *kid, int status)
{
	struct child c = *kid;

	*kid = master->kids[--master->nkids];
	master->free_slots[master->nfree++] = c.slot;
	if (WIFSIGNALED(status))
		master->reaped_signal++;
	else
		master->reaped_exit++;
	mode->died(&c, status);
}

static void master_child_end(struct child *c, int status);
static void master_readmit_if_torn(void);

/* Sessions that ended before fork mode's spawner named them are held by the mode (mode_fork.c)
 * until it does: each one named since ends now. */
static void
master_named(void)
{
	int status, killed = 0;
	pid_t pid;

	while (mode->named != NULL && mode->named(&pid, &status)) {
		struct child *c = master_child(pid);

		if (c == NULL)
			continue;
		master_child_end(c, status);
		killed |= WIFSIGNALED(status);
	}
	if (killed)
		master_readmit_if_torn();
}

/* Every child's end goes through here, by its role (sshd's child_reap, httpd's proc table). */
static void
master_child_died(pid_t pid, int status)
{
	struct child *c = pid > 0 ? master_child(pid) : NULL;

	if (c == NULL) {
		/* A process of the binary before an upgrade, or the mode's: a spawner, or a
		 * session not named yet (master_reap ends it once it is, master_named). */
		if (!master_upgrade_reaped(pid, status) && mode->reaped != NULL)
			(void)mode->reaped(pid, status);
		return;
	}
	master_child_end(c, status);
}

static void
master_child_end(struct child *c, int status)
{
	switch (c->role) {
	case PROC_STORE:
		master_store_died(status);
		break;
	case PROC_DGRAM:
		master_helper_died("datagram", c, status);
		break;
	case PROC_METRICS:
		master_helper_died("metrics", c, status);
		break;
	case PROC_SESSION:
	case PROC_POOL:
	case PROC_NROLES:
		master_kid_died(c, status);
		break;
	}
}

static int
master_readmit_claim(const struct admit_claim *cl)
{
	if (!cl->held)
		return 0;
	admit_add(master->admit, &cl->key);
	return 1;
}

/* A child killed by a signal may have died holding the shared lock, in the middle of a change
 * to the admission table (a removal moves entries).  Whoever takes the lock next marks it torn;
 * the master, having reaped every dead child and given back what their claims held, takes it
 * too, and rebuilds the table from the claims of the live ones: the table is then what it would
 * be had nobody died. */
static void
master_readmit_if_torn(void)
{
	struct shared *sh = &master->shared;
	int n;

	shared_lock(sh);
	if (sh->torn) {
		sh->torn = 0;
		admit_clear(master->admit);
		n = mode->claims(master_readmit_claim);
		log_warnx("a process died holding the admission lock; per-source counts rebuilt "
		    "from the %d admissions held", n);
	}
	shared_unlock(sh);
}

/* One SIGCHLD for any number of dead children: collect until none is left (sshd's
 * child_reap_all_exited).  Bounded: each round reaps a child, and only children that exist. */
static void
master_reap(void)
{
	int status, killed = 0;
	pid_t pid;

	got_chld = 0;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		master_child_died(pid, status);
		killed |= WIFSIGNALED(status);
	}
	if (killed)
		master_readmit_if_torn();
	master_named();
}

static void
master_stats(void)
{
	char line[768];

	got_usr1 = 0;
	master_figures_line(line, sizeof(line));
	log_info("stats: %s", line);
}

static void
master_begin_shutdown(void)
{
	master->draining = 0;
	if (master->stopping == 0) {
		for (int i = 0; i < master->nlfd; i++)
			close(master->lfd[i]);
		master->nlfd = 0;
		for (int i = 0; i < master->nufd; i++)
			close(master->ufd[i]);
		master->nufd = 0;
		master_agent_close();
		if (master->dgram.pid > 0)
			kill(master->dgram.pid, SIGTERM);
		master_stop_metrics();
		mode->stop();
		/* The binary before's pool processes stop accepting too (its sessions ignore it). */
		master_upgrade_signal_old(SIGUSR1);
		log_info("shutting down: %d sessions get %d s to finish", mode->busy(),
		    master->set.grace);
		master_notify("STOPPING=1");
		master->stopping = 1;
		master->phase_deadline_ms = io_now_ms() + (int64_t)master->set.grace * 1000;
	} else if (master->stopping == 1) {
		/* A second TERM or INT cuts the grace short. */
		master->phase_deadline_ms = io_now_ms();
	}
}

/* TERM or INT: with --drain, serve on for its seconds while the agent says drain (a balancer
 * moves new traffic elsewhere), then shut down; a second one shuts down at once. */
static void
master_term(void)
{
	if (master->set.drain > 0 && !master->draining && master->stopping == 0) {
		master->draining = 1;
		master->drain_deadline_ms = io_now_ms() + (int64_t)master->set.drain * 1000;
		log_info("draining: serving %d s more before the shutdown", master->set.drain);
		master_notify("STATUS=draining for %d s", master->set.drain);
		return;
	}
	master_begin_shutdown();
}

/* Once shutting down: says when no process of ours holds a listening socket any more, the
 * moment a new server can bind the same ports (a rolling restart).  The master closed its own at
 * "shutting down"; a pool process closes its copies when its SIGUSR1 is delivered, which under
 * load can come later; the datagram and metrics processes hold theirs until they exit, and so
 * do those of the binary before an in-place upgrade, with its pool processes (told to close
 * theirs at the upgrade, in slots this binary cannot look into).  Sockets systemd passed stay
 * open in systemd. */
static void
master_ports_step(void)
{
	if (master->stopping == 0 || master->ports_free ||
	    (mode->listening != NULL && mode->listening() > 0) || master->dgram.pid > 0 ||
	    master->metrics.pid > 0 || master_upgrade_old_listening() > 0)
		return;
	master->ports_free = 1;
	if (master->sd_sockets)
		log_info("listeners closed in every process (systemd keeps the sockets it passed)");
	else
		log_info("listeners closed in every process: the ports are free");
}

/* Moves the shutdown on when its deadline passes: grace, then SIGTERM, then SIGKILL. */
static void
master_shutdown_step(void)
{
	int sig;

	if (master->stopping == 0 || (master->nkids == 0 && master->dgram.pid == 0 &&
	    master->metrics.pid == 0 && master_upgrade_old() == 0) ||
	    io_now_ms() < master->phase_deadline_ms)
		return;
	if (master->stopping >= 3)
		return;
	sig = (master->stopping == 1) ? SIGTERM : SIGKILL;
	if (master->nkids > 0)
		log_info("sending signal %d to %d sessions", sig, master->nkids);
	for (int i = 0; i < master->nkids; i++)
		if (master->kids[i].pid > 0) /* 0: not named yet by the spawner */
			kill(master->kids[i].pid, sig);
	master_upgrade_signal_old(sig);
	/* The datagram process had its SIGTERM at the start: one that has not left (stopped,
	 * stuck) must not hold the shutdown for ever. */
	if (sig == SIGKILL && master->dgram.pid > 0)
		kill(master->dgram.pid, SIGKILL);
	if (sig == SIGKILL && master->metrics.pid > 0)
		kill(master->metrics.pid, SIGKILL);
	master->stopping++;
	master->phase_deadline_ms = io_now_ms() + MASTER_KILL_WAIT_MS;
}

static int
master_poll_timeout(int64_t now)
{
	int64_t t = -1;

	if (master->accept_resume_ms > now)
		t = master->accept_resume_ms - now;
	if (mode->timeout(now) >= 0) {
		int64_t d = mode->timeout(now);
		t = (t < 0 || d < t) ? d : t;
	}
	if (master->notify_fd >= 0 && !master->stopping) {
		int64_t d = master->next_status_ms > now ? master->next_status_ms - now : 0;
		t = (t < 0 || d < t) ? d : t;
	}
	if (master->stopping && master->stopping < 3 && (master->nkids > 0 ||
	    master->dgram.pid > 0 || master->metrics.pid > 0 || master_upgrade_old() > 0)) {
		int64_t d = master->phase_deadline_ms > now ? master->phase_deadline_ms - now : 0;
		t = (t < 0 || d < t) ? d : t;
	}
	if (master_upgrade_timeout(now) >= 0) {
		int64_t d = master_upgrade_timeout(now);
		t = (t < 0 || d < t) ? d : t;
	}
	if (master->draining) {
		int64_t d = master->drain_deadline_ms > now ? master->drain_deadline_ms - now : 0;
		t = (t < 0 || d < t) ? d : t;
	}
	/* A pool process's closing its listeners wakes nothing here (the exits of the others are
	 * SIGCHLDs): look again soon. */
	if (master->stopping && !master->ports_free && mode->listening != NULL &&
	    mode->listening() > 0 && (t < 0 || t > MASTER_PORTS_POLL_MS))
		t = MASTER_PORTS_POLL_MS;
	if (((master->store.pid == 0 && master->pipe_wr >= 0) ||
	    (master->dgram.pid == 0 && master->nufd > 0) ||
	    (master->metrics.pid == 0 && master->nmetrics_fd > 0)) && (t < 0 || t > 1000))
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
	accepting = mode->watch(now);
	if (master->wake_rd >= 0)
		master->pfd[master->npfd++] = (struct pollfd){ .fd = master->wake_rd, .events = POLLIN };
	for (int i = 0; accepting && i < master->nlfd; i++)
		master->pfd[master->npfd++] = (struct pollfd){ .fd = master->lfd[i], .events = POLLIN };
	if (master->nowed > 0)
		master->pfd[master->npfd++] = (struct pollfd){ .fd = master->pipe_wr, .events = POLLOUT };
	if (master->agent_fd >= 0)
		master->pfd[master->npfd++] = (struct pollfd){ .fd = master->agent_fd, .events = POLLIN };
	master->mode_pfd = master->npfd;
	if (mode->fds != NULL)
		master->npfd += mode->fds(&master->pfd[master->npfd]);
	master->mode_pfd_end = master->npfd;
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
			mode->woken();
		else if (master->pfd[i].fd == master->agent_fd)
			master_agent_serve(mode->busy());
		else if (i >= master->mode_pfd && i < master->mode_pfd_end) {
			/* The mode's own (a spawner's end): never a listener, even when the
			 * reaping of this wakeup closed it. */
			if (master->pfd[i].revents != 0 && mode->ready(master->pfd[i].fd))
				master_named();
		} else if ((master->pfd[i].revents & POLLIN) && !master->stopping)
			empty &= mode->readable(master->pfd[i].fd);
	}
	mode->served(empty);
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

	while ((master->nowed > 0 || master->store.pid == 0) && io_now_ms() < deadline) {
		/* A store must run to drain the pipe: the restart throttle does not apply now. */
		if (master->store.pid == 0 && master->pipe_rd >= 0 && restarts++ < 3)
			master_start_store(-1);
		if (master->store.pid == 0 || master->nowed == 0)
			break;
		if (ppoll(&pfd, 1, &ts, &master->waitmask) > 0)
			master_pay_owed();
		master_reap();
		master_store_giveup(giveup, &told);
	}
	if (master->pipe_wr >= 0)
		close(master->pipe_wr);
	master->pipe_wr = -1;
	while (master->store.pid > 0 && io_now_ms() < deadline) {
		ppoll(NULL, 0, &ts, &master->waitmask);
		master_reap();
		master_store_giveup(giveup, &told);
		if (master->store.pid == 0 && master_pipe_unread() > 0 && restarts++ < 3)
			master_start_store(-1);
	}
	if (master->store.pid > 0) {
		log_warnx("store %d did not finish in time; killing it", (int)master->store.pid);
		proc_kill_wait(master->store.pid);
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

/* systemd's status line, at most every MASTER_STATUS_MS. */
static void
master_status(void)
{
	char line[768];

	if (master->notify_fd < 0 || io_now_ms() < master->next_status_ms)
		return;
	master->next_status_ms = io_now_ms() + MASTER_STATUS_MS;
	master_figures_line(line, sizeof(line));
	master_notify("STATUS=%s", line);
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
	if (master->store.pid > 0)
		kill(master->store.pid, SIGHUP);
	if (master->set.config != NULL)
		master_reload(mode->reload);
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
			master_term();
		}
		if (master->draining && io_now_ms() >= master->drain_deadline_ms)
			master_begin_shutdown();
		if (got_hup)
			master_hup();
		if (got_usr1)
			master_stats();
		if (got_usr2) {
			got_usr2 = 0;
			master_upgrade_request();
		}
		master_serve();
		master_restart_store();
		master_restart_dgram();
		master_restart_metrics();
		mode->tick();
		master_upgrade_tick(mode->pending());
		master_status();
		master_ports_step();
		master_shutdown_step();
		if (master->stopping && master->nkids == 0 && mode->pending() == 0 &&
		    master->dgram.pid == 0 && master->metrics.pid == 0 && master_upgrade_old() == 0)
			master_finish();
	}
}

/* Everything after the sockets and the store file are open: drop privileges, start the store,
 * the datagram process and the pool, say so, and tell systemd. */
static void
master_start(int store_fd)
{
	master_drop_user();
	if (store_fd >= 0) {
		master_start_store(store_fd);
		close(store_fd);
	}
	master_notify_open();
	master_start_dgram();
	master_start_metrics();
	/* Before the line that says it listens: fork mode's spawner runs by then. */
	mode->start();
	master_announce();
	master_upgrade_started();
	master_notify("READY=1\nMAINPID=%ld", (long)getpid());
}

/* Builds the children's filters once (sandbox.c).  A filter over mpechod that refuses seccomp
 * itself ends it here, at its start, rather than every child at its own; no Landlock is said
 * once. */
static void
master_sandbox(void)
{
	const char *call = NULL, *note;

	if (sandbox_configure(master->set.sandbox, !master->set.inetd) < 0)
		fatal(EX_SOFTWARE, "cannot build the sandbox's filters");
	if (sandbox_check(&call) < 0)
		fatal(EX_OSERR, "cannot confine its children: %s(2) is refused here (a system call "
		    "filter over mpechod, such as systemd's SystemCallFilter=, must allow it; "
		    "--sandbox off runs them unconfined)", call);
	proc_keep_always(sandbox_ruleset_fd());
	if ((note = sandbox_landlock_note()) != NULL && !master->set.inetd)
		log_warnx("%s: children are confined by seccomp only", note);
}

int
main(int argc, char **argv)
{
	const struct user_ids *user;
	char err[OPTS_ERRLEN], *text;
	int adopted;

	master_std_fds();
	master_upgrade_init(argc, argv);
	log_init("mpechod", NULL);
	master = master_shared(sizeof(*master));
	switch (conf_settings(argc, argv, &master->set, &text, err, sizeof(err))) {
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
	log_sink_setup("mpechod", master->set.log_json ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT);
	user = master_resolve_user();
	if (master->set.check_config) {
		if (master_upgrade_check(err, sizeof(err)) < 0)
			fatalx(EX_USAGE, "%s", err);
		printf("mpechod: configuration ok%s%s\n", master->set.config ? " in " : "",
		    master->set.config ? master->set.config : "");
		free(text);
		return 0;
	}
	master_conf_keep(argc, argv, text);
	master_sandbox();
	if (master->set.inetd)
		inetd_run(&master->set, user);
	mode = master->set.prefork ? &master_mode_pool : &master_mode_fork;
	master_arena();
	master_alloc();
	rec_new_key();
	master_signals();
	/* An upgrade in place: what the binary before handed over (its listeners, its store
	 * pipe) is taken, and only the rest is opened. */
	adopted = master_upgrade_adopt();
	master_sockets();
	master_metrics_listen();
	master_agent_open();
	master_start(adopted ? master_upgrade_store() : master_open_store(user));
	master_loop();
}
