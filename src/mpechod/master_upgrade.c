/*
 * master_upgrade.c - a binary upgrade in place on SIGUSR2 (nginx's USR2, HAProxy's master
 * re-exec).  The master runs the binary now at the path it was started from as
 * `PATH -t ARGS...` (its own arguments), as a child of its own with a bounded wait; when that
 * check exits 0 it re-executes PATH with its arguments.  The PID stays (systemd's MainPID), and
 * so do the listeners (their descriptors lose close-on-exec: never closed, no connection
 * refused), the store pipe and the master's lock on the store, and every child: they are
 * children of the same pid across execve.  What the new master must know is in one environment
 * variable (MPECHOD_UPGRADE, upgrade.c), which it reads, checks and removes.
 *
 * After the exec: the old binary's sessions finish their connections; its pool processes were
 * told to retire just before (SIGUSR1: idle ones leave, busy ones after their connection); its
 * datagram and metrics processes are told to stop once the new ones run.  The new master finds
 * those children as the processes whose parent it is (/proc), reaps them as they end, signals
 * them at its shutdown and waits for them before it finishes; they do not count against its
 * --max-clients.  The store is handed over: the old store (SIGWINCH) writes every whole frame
 * it has read and leaves, and the new master's store takes the same pipe, so nothing is lost
 * or reordered, and starts a new life (a start record with the new version); frames of the old
 * binary's sessions carry its key and are written in its life (rec_set_prev), and conn numbers
 * go on from the old master's.  One upgrade at a time: another is refused until the last child
 * of the binary before has ended.
 */
#define _GNU_SOURCE
#include "master.h"
#include "num.h"
#include "upgrade.h"

#include <dirent.h>
#include <limits.h>

/* The check's bound, and how long a passed check waits for the master to be quiet (no
 * connection put aside, no record owed). */
#define UPGRADE_CHECK_MS 10000
#define UPGRADE_QUIET_MS 10000
/* How long the new master waits for the old store to hand over. */
#define UPGRADE_HANDOVER_MS 30000

enum upgrade_state { UPGRADE_IDLE, UPGRADE_CHECKING, UPGRADE_READY };

static struct {
	char path[PATH_MAX];
	char **argv;
	int argc;
	enum upgrade_state state;
	pid_t checker;
	int timed_out;
	int64_t deadline_ms;
	pid_t *old;               /* children of the binary before, still running */
	int nold, capold;
	int lingering;            /* frames of the life before may still be in the pipe */
	struct upgrade_hand hand; /* what the binary before handed over */
	int adopted;
} up;

void
master_upgrade_init(int argc, char **argv)
{
	ssize_t n = readlink("/proc/self/exe", up.path, sizeof(up.path) - 1);

	up.argc = argc;
	up.argv = argv;
	if (n > 0) {
		up.path[n] = '\0';
		return;
	}
	if (realpath(argv[0], up.path) == NULL)
		up.path[0] = '\0';
}

/* ---- the old binary: check, then exec ---- */

void
master_upgrade_request(void)
{
	if (master->stopping || master->draining) {
		log_warnx("upgrade refused: the server is shutting down");
		return;
	}
	if (up.state != UPGRADE_IDLE) {
		log_warnx("upgrade refused: one is in progress");
		return;
	}
	if (up.nold > 0 || up.lingering) {
		log_warnx("upgrade refused: %d processes of the binary before the last upgrade are "
		    "still running (or their records are still in the store pipe)", up.nold);
		return;
	}
	if (up.path[0] == '\0') {
		log_warnx("upgrade refused: the path of the binary is not known");
		return;
	}
	up.checker = proc_fork(NULL, 0);
	if (up.checker < 0) {
		log_warn("upgrade: cannot fork the check");
		return;
	}
	if (up.checker == 0) {
		char words[UPGRADE_ENV_MAX], **args = calloc((size_t)up.argc + 2, sizeof(*args));
		sigset_t none;
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		sig_default(SIGPIPE);
		upgrade_check_words(words, sizeof(words), master->set.store, master->set.user);
		setenv(UPGRADE_CHECK_ENV, words, 1);
		if (args == NULL)
			_exit(127);
		args[0] = up.argv[0];
		args[1] = (char *)"-t";
		for (int i = 1; i < up.argc; i++)
			args[i + 1] = up.argv[i];
		args[up.argc + 1] = NULL;
		execv(up.path, args);
		_exit(127);
	}
	up.state = UPGRADE_CHECKING;
	up.timed_out = 0;
	up.deadline_ms = io_now_ms() + UPGRADE_CHECK_MS;
	log_info("upgrade: checking %s", up.path);
}

static void
upgrade_cloexec(int fd, int on)
{
	int fl = fd >= 0 ? fcntl(fd, F_GETFD) : -1;

	if (fl >= 0)
		fcntl(fd, F_SETFD, on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC));
}

/* Every descriptor handed over, close-on-exec (on: after a failed exec) or not. */
static void
upgrade_mark(const struct upgrade_hand *h, int on)
{
	for (int i = 0; i < h->nlfd; i++)
		upgrade_cloexec(h->lfd[i], on);
	for (int i = 0; i < h->nufd; i++)
		upgrade_cloexec(h->ufd[i], on);
	for (int i = 0; i < h->nmfd; i++)
		upgrade_cloexec(h->mfd[i], on);
	upgrade_cloexec(h->agent_fd, on);
	upgrade_cloexec(h->pipe_rd, on);
	upgrade_cloexec(h->pipe_wr, on);
	upgrade_cloexec(h->lock_fd, on);
}

static void
upgrade_hand_fill(struct upgrade_hand *h)
{
	uint64_t pool_next = __atomic_load_n(&master->shared.next_conn, __ATOMIC_RELAXED);
	/* A pool process told to retire may still take one connection (one it was accepting with
	 * its signals blocked), and its number, after this read: numbers are skipped for that, so
	 * that no number is used in both lives (the store counts bytes by number). */
	uint64_t margin = 2 * (uint64_t)master->nkids + 1;

	*h = (struct upgrade_hand){ .nlfd = master->nlfd, .nufd = master->nufd,
	    .nmfd = master->nmetrics_fd, .agent_fd = master->agent_fd, .pipe_rd = master->pipe_rd,
	    .pipe_wr = master->pipe_wr, .lock_fd = master->lock_fd, .store = master->store.pid,
	    .dgram = master->dgram.pid, .metrics = master->metrics.pid,
	    .next_conn = (master->next_conn > pool_next ? master->next_conn : pool_next) + margin,
	    .key = rec_get_key() };
	memcpy(h->lfd, master->lfd, sizeof(int) * (size_t)master->nlfd);
	memcpy(h->ufd, master->ufd, sizeof(int) * (size_t)master->nufd);
	memcpy(h->mfd, master->metrics_fd, sizeof(int) * (size_t)master->nmetrics_fd);
	snprintf(h->life, sizeof(h->life), "%s", rec_life_id());
}

static void
upgrade_exec(void)
{
	char env[UPGRADE_ENV_MAX];
	struct upgrade_hand h;

	up.state = UPGRADE_IDLE;
	/* The pool processes of this binary stop accepting (the new binary's serve), before the
	 * next connection number is read. */
	for (int i = 0; i < master->nkids; i++)
		if (master->kids[i].role == PROC_POOL)
			master_pool_retire(&master->kids[i]);
	upgrade_hand_fill(&h);
	if (upgrade_format(&h, env, sizeof(env)) < 0 || setenv(UPGRADE_ENV, env, 1) < 0) {
		log_warnx("upgrade: cannot write the hand-over; not upgrading");
		return;
	}
	if (master->notify_fd >= 0)
		setenv("NOTIFY_SOCKET", master->notify_addr, 1);
	master_notify("RELOADING=1\nMONOTONIC_USEC=%lld", (long long)io_now_ms() * 1000);
	log_info("upgrade: executing %s (%d sessions or pool processes go on)", up.path,
	    master->nkids);
	upgrade_mark(&h, 0);
	execv(up.path, up.argv);
	log_warn("upgrade: cannot execute %s; the old binary goes on", up.path);
	upgrade_mark(&h, 1);
	unsetenv(UPGRADE_ENV);
	unsetenv("NOTIFY_SOCKET");
	master_notify("READY=1");
}

/* Once round the loop: the check's bound, then the exec at a quiet moment (no connection put
 * aside, no record owed: neither would survive the exec). */
void
master_upgrade_tick(int pending)
{
	if (up.lingering && up.nold == 0 && master_pipe_unread() == 0)
		up.lingering = 0;
	if (up.state == UPGRADE_CHECKING && !up.timed_out && io_now_ms() >= up.deadline_ms) {
		up.timed_out = 1;
		kill(up.checker, SIGKILL);
	}
	/* A passed check waits for a quiet moment: fork mode stops handing connections to its
	 * spawner meanwhile (what it was handed would be answered to the image before). */
	master->quiesce = up.state == UPGRADE_READY;
	if (up.state != UPGRADE_READY)
		return;
	if (master->stopping || master->draining) {
		log_warnx("upgrade abandoned: the server is shutting down");
		up.state = UPGRADE_IDLE;
	} else if (pending == 0 && master->nowed == 0) {
		upgrade_exec();
	} else if (io_now_ms() >= up.deadline_ms) {
		log_warnx("upgrade abandoned: connections or records were still waiting after %d s",
		    UPGRADE_QUIET_MS / 1000);
		up.state = UPGRADE_IDLE;
	}
}

int64_t
master_upgrade_timeout(int64_t now)
{
	/* A checker killed for its time is waited for by SIGCHLD like any child: a bound of 0
	 * until it is reaped would spin the loop (a process in D state can take long to die). */
	if (up.state == UPGRADE_CHECKING)
		return up.timed_out ? -1 : up.deadline_ms > now ? up.deadline_ms - now : 0;
	/* Old children are waited for by SIGCHLD; only the pipe's last frames of theirs, and a
	 * passed check waiting for a quiet moment, are looked at this often. */
	if (up.state == UPGRADE_READY || (up.lingering && up.nold == 0))
		return 10;
	return -1;
}

static void
upgrade_checked(int status)
{
	up.checker = 0;
	if (up.timed_out)
		log_warnx("upgrade refused: %s -t did not finish in %d s", up.path,
		    UPGRADE_CHECK_MS / 1000);
	else if (WIFSIGNALED(status))
		log_warnx("upgrade refused: %s -t killed by signal %d", up.path, WTERMSIG(status));
	else if (WEXITSTATUS(status) == 127)
		log_warnx("upgrade refused: cannot execute %s", up.path);
	else if (WEXITSTATUS(status) != 0)
		log_warnx("upgrade refused: %s -t exited %d", up.path, WEXITSTATUS(status));
	else {
		up.state = UPGRADE_READY;
		up.deadline_ms = io_now_ms() + UPGRADE_QUIET_MS;
		return;
	}
	up.state = UPGRADE_IDLE;
}

int
master_upgrade_reaped(pid_t pid, int status)
{
	if (pid == up.checker && up.state == UPGRADE_CHECKING) {
		upgrade_checked(status);
		return 1;
	}
	for (int i = 0; i < up.nold; i++) {
		if (up.old[i] == pid) {
			up.old[i] = up.old[--up.nold];
			if (up.nold == 0)
				log_info("upgrade: the last process of the binary before has ended");
			return 1;
		}
	}
	return 0;
}

int
master_upgrade_old(void)
{
	return up.nold;
}

/* The processes of the binary before that may still hold a listening socket: its datagram and
 * metrics processes until they exit, and with --prefork its pool processes (each closes its
 * listeners when its retirement signal of the upgrade is delivered, in a slot this binary does
 * not map).  Fork mode's sessions and spawner never hold one. */
int
master_upgrade_old_listening(void)
{
	int n = 0;

	if (master->set.prefork)
		return up.nold;
	for (int i = 0; i < up.nold; i++)
		n += (up.hand.dgram > 0 && up.old[i] == up.hand.dgram) ||
		    (up.hand.metrics > 0 && up.old[i] == up.hand.metrics);
	return n;
}

void
master_upgrade_signal_old(int sig)
{
	for (int i = 0; i < up.nold; i++)
		kill(up.old[i], sig);
}

/* ---- the new binary: take over ---- */

/* -t run by a master about to upgrade: the hand-over must be one this binary reads. */
int
master_upgrade_check(char *err, size_t len)
{
	const char *theirs = getenv(UPGRADE_CHECK_ENV);
	char ours[UPGRADE_ENV_MAX];

	if (theirs == NULL)
		return 0;
	upgrade_check_words(ours, sizeof(ours), master->set.store, master->set.user);
	if (strcmp(theirs, ours) != 0) {
		snprintf(err, len, "cannot take over from the running binary (it has %.200s, this "
		    "one %.200s): an upgrade changes neither the store, the user nor the formats; restart",
		    theirs, ours);
		return -1;
	}
	if (master->set.echo_after != 0) {
		snprintf(err, len, "an upgrade in place is not supported with --echo-after; restart");
		return -1;
	}
	return 0;
}

static int
upgrade_fd_ok(int fd)
{
	return fd < 0 || fcntl(fd, F_GETFD) >= 0;
}

static int
upgrade_fds_ok(const struct upgrade_hand *h)
{
	int ok = upgrade_fd_ok(h->agent_fd) && upgrade_fd_ok(h->pipe_rd) &&
	    upgrade_fd_ok(h->pipe_wr) && upgrade_fd_ok(h->lock_fd);

	for (int i = 0; i < h->nlfd; i++)
		ok &= h->lfd[i] >= 0 && fcntl(h->lfd[i], F_GETFD) >= 0;
	for (int i = 0; i < h->nufd; i++)
		ok &= fcntl(h->ufd[i], F_GETFD) >= 0;
	for (int i = 0; i < h->nmfd; i++)
		ok &= fcntl(h->mfd[i], F_GETFD) >= 0;
	return ok && h->nlfd <= MASTER_MAX_LISTEN && h->nufd <= MASTER_MAX_LISTEN &&
	    h->nmfd <= MASTER_MAX_LISTEN && (h->pipe_rd >= 0) == (master->set.store != NULL);
}

/* The children this process had before the exec: every process whose parent it is. */
static void
upgrade_find_old(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	char path[64], buf[512], *p;
	pid_t self = getpid();

	if (d == NULL) {
		log_warn("upgrade: cannot list /proc; the old binary's children are not waited for");
		return;
	}
	while ((e = readdir(d)) != NULL) {
		long pid, ppid;
		ssize_t n;
		int fd;

		if (num_parse(e->d_name, 1, INT_MAX, &pid) < 0 || pid == up.hand.store)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* pid (comm) state ppid: comm may hold spaces and parentheses. */
		p = strrchr(buf, ')');
		if (p == NULL || sscanf(p + 1, " %*c %ld", &ppid) != 1 || ppid != self)
			continue;
		if (up.nold == up.capold) {
			int cap = up.capold ? up.capold * 2 : 64;
			pid_t *q = realloc(up.old, (size_t)cap * sizeof(*q));

			if (q == NULL)
				break;
			up.old = q;
			up.capold = cap;
		}
		up.old[up.nold++] = (pid_t)pid;
	}
	closedir(d);
}

int
master_upgrade_adopt(void)
{
	const char *env = getenv(UPGRADE_ENV);
	struct upgrade_hand *h = &up.hand;

	if (env == NULL)
		return 0;
	if (upgrade_parse(env, h) < 0 || !upgrade_fds_ok(h))
		usage_error("%s is malformed or names descriptors this process does not have: "
		    "refusing it", UPGRADE_ENV);
	unsetenv(UPGRADE_ENV);
	up.adopted = 1;
	upgrade_mark(h, 1);
	memcpy(master->lfd, h->lfd, sizeof(int) * (size_t)h->nlfd);
	master->nlfd = h->nlfd;
	memcpy(master->ufd, h->ufd, sizeof(int) * (size_t)h->nufd);
	master->nufd = h->nufd;
	memcpy(master->metrics_fd, h->mfd, sizeof(int) * (size_t)h->nmfd);
	master->nmetrics_fd = h->nmfd;
	master->agent_fd = h->agent_fd;
	master->pipe_rd = h->pipe_rd;
	master->pipe_wr = h->pipe_wr;
	master->lock_fd = h->lock_fd;
	master->next_conn = h->next_conn;
	__atomic_store_n(&master->shared.next_conn, h->next_conn, __ATOMIC_RELAXED);
	{
		char addr[NET_ADDRLEN];

		master->port = (uint16_t)net_local_addr(master->lfd[0], addr, sizeof(addr));
	}
	rec_set_prev(h->key, h->life);
	upgrade_find_old();
	up.lingering = 1;
	return 1;
}

/* The old store writes what it has read and leaves (SIGWINCH), bounded; then this master's
 * store opens the file and starts a new life on the same pipe.  Returns the file for it, or -1
 * without a store. */
int
master_upgrade_store(void)
{
	int64_t until = io_now_ms() + UPGRADE_HANDOVER_MS;
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 10L * 1000000L };
	pid_t old = up.hand.store;
	int status, fd;

	if (master->set.store == NULL)
		return -1;
	if (old > 0 && kill(old, SIGWINCH) == 0) {
		while (waitpid(old, &status, WNOHANG) == 0) {
			if (io_now_ms() >= until) {
				log_warnx("upgrade: the old store %d did not hand over in %d s; "
				    "killing it (what it held is lost)", (int)old,
				    UPGRADE_HANDOVER_MS / 1000);
				proc_kill_wait(old);
				master->store_lost = 1;
				break;
			}
			nanosleep(&ts, NULL);
		}
	}
	fd = store_open(master->set.store);
	if (fd < 0)
		log_warn("upgrade: cannot open %s; the store starts from its path", master->set.store);
	return fd;
}

/* After the new helpers run: the old ones go. */
void
master_upgrade_started(void)
{
	if (!up.adopted)
		return;
	if (up.hand.dgram > 0)
		kill(up.hand.dgram, SIGTERM);
	if (up.hand.metrics > 0)
		kill(up.hand.metrics, SIGTERM);
	log_info("upgraded in place to %s %s: %d processes of the binary before finish their "
	    "work", up.path, MPECHO_VERSION, up.nold);
}
