/*
 * master_store.c - the master's helper processes: the store (started before the accept loop,
 * restarted if it dies, given up on at the end of a shutdown with --store-full block) and the
 * datagram process (--udp); and the records the master owes the store for sessions that could
 * not write their own, queued in memory while the pipe is full, so that the master never
 * blocks on it.  The queue is bounded (MASTER_OWED_MAX): past it a connection's owed records are
 * dropped, counted, and told to the store in a REC_GAP frame once the queue has drained.
 */
#define _GNU_SOURCE
#include "master.h"
#include "receipt.h"
#include "sandbox.h"

/* The most owed records queued (about 230 KiB): the pipe itself holds about 10,000 close
 * records, so the queue fills only while the store takes nothing. */
#define MASTER_OWED_MAX 2048

void
master_start_store(int filefd)
{
	struct store_args a = {
		.pipe_rd = master->pipe_rd, .filefd = filefd, .path = master->set.store,
		.format = master->set.format, .fsync = master->set.fsync, .master = getpid(),
		.full = master->set.store_full,
	};
	pid_t pid = store_start(&a);

	if (pid < 0) {
		log_warn("cannot fork the store");
		return;
	}
	master->store.pid = pid;
	master->store_started_ms = io_now_ms();
}

/* The master keeps the pipe's read end, so what sessions wrote while no store ran stays in the
 * pipe for the next one.  Restarts come at most once a second, so a store that cannot open its
 * file does not spin. */
void
master_restart_store(void)
{
	if (master->store.pid > 0 || master->pipe_rd < 0 || master->pipe_wr < 0)
		return;
	if (io_now_ms() - master->store_started_ms < 1000)
		return;
	master_start_store(-1);
	if (master->store.pid > 0) {
		figures_add(&master->figures.store_restarts, 1);
		log_warnx("restarted the store as %d", (int)master->store.pid);
	}
}

/* The datagram process (--udp), supervised like the store: started after it, restarted at most
 * once a second if it dies, told to stop (SIGTERM) at shutdown. */
void
master_start_dgram(void)
{
	int fds[MASTER_MAX_LISTEN];
	struct datagram_args a = {
		.fds = fds, .nfds = master->nufd, .pipe_wr = master->pipe_wr,
		.port = master->port, .per_source = master->set.udp_per_source,
		.global = master->set.udp_rate, .master = getpid(), .stats = &master->dgstats,
		.prefix4 = master->set.prefix4, .prefix6 = master->set.prefix6,
	};
	int *keep[1 + MASTER_MAX_LISTEN] = { &a.pipe_wr };
	pid_t pid;

	if (master->nufd == 0 || master->stopping)
		return;
	/* The sockets are copied: the child renumbers its own, not the master's shared array. */
	for (int i = 0; i < master->nufd; i++) {
		fds[i] = master->ufd[i];
		keep[1 + i] = &fds[i];
	}
	master->dgram_started_ms = io_now_ms();
	pid = proc_fork(keep, 1 + master->nufd);
	if (pid < 0) {
		log_warn("cannot fork the datagram process");
		return;
	}
	if (pid == 0)
		datagram_run(&a);
	master->dgram.pid = pid;
}

/* A helper process (datagram, metrics) ended: said, unless it left as told at shutdown. */
void
master_helper_died(const char *what, struct child *c, int status)
{
	if (WIFSIGNALED(status))
		log_warnx("%s process %d killed by signal %d%s", what, (int)c->pid, WTERMSIG(status),
		    sandbox_signal_note(WTERMSIG(status)));
	else if (!master->stopping || WEXITSTATUS(status) != 0)
		log_warnx("%s process %d exited %d", what, (int)c->pid, WEXITSTATUS(status));
	c->pid = 0;
}

void
master_restart_dgram(void)
{
	if (master->dgram.pid > 0 || master->nufd == 0 || master->stopping ||
	    io_now_ms() - master->dgram_started_ms < 1000)
		return;
	master_start_dgram();
	if (master->dgram.pid > 0)
		log_warnx("restarted the datagram process as %d", (int)master->dgram.pid);
}

/* A store file that a live mpechod owns is refused.  One whose master died while its store
 * still drains the old sessions is taken over: this master serves at once, and its store
 * waits for the old one to finish before it writes (store.c). */
int
master_open_store(const struct user_ids *user)
{
	int fd, p[2];

	master->lock_fd = -1;
	if (master->set.store == NULL) {
		master->pipe_rd = master->pipe_wr = -1;
		return -1;
	}
	master->lock_fd = store_master_lock(master->set.store, -1);
	if (master->lock_fd < 0)
		store_unusable(master->set.store, errno == EAGAIN ? "another mpechod is writing it" :
		    strerror(errno));
	fd = store_start_file(master->set.store, user);
	if (store_lock(fd) < 0 && errno == EWOULDBLOCK)
		log_warnx("store %s: the store of an mpechod that ended is still writing it; taking "
		    "over when it has finished", master->set.store);
	if (pipe2(p, O_CLOEXEC) < 0)
		fatal(EX_OSERR, "pipe");
	master->pipe_rd = p[0];
	master->pipe_wr = p[1];
	/* A larger pipe absorbs bursts, so sessions seldom wait for the store.  The kernel refuses
	 * it (EPERM) to a user without CAP_SYS_RESOURCE whose pipes already hold
	 * fs.pipe-user-pages-soft pages, or above fs.pipe-max-size: the store pipe then stays small,
	 * which is slower but correct, and said once. */
	if (fcntl(master->pipe_wr, F_SETPIPE_SZ, MASTER_PIPE_SIZE) < 0)
		log_warnx("store pipe: cannot enlarge it to %d KiB (%s; see fs.pipe-max-size and "
		    "fs.pipe-user-pages-soft): sessions will wait for the store more often",
		    MASTER_PIPE_SIZE / 1024, strerror(errno));
	io_set_nonblock(master->pipe_wr, 1);
	return fd;
}

/* The owed records dropped because the queue was at MASTER_OWED_MAX, not yet told to the
 * store: told in one REC_GAP frame once the queue has drained. */
static struct {
	uint64_t records;
	uint64_t conns[REC_GAP_CONNS];
	size_t nconns;
	int truncated;
} master_dropped;

/* Tells the store what was dropped, when the pipe takes it. */
static void
master_pay_dropped(void)
{
	struct {
		struct rec_hdr h;
		uint64_t v[1 + REC_GAP_CONNS];
	} f;
	size_t len = sizeof(uint64_t) * (1 + master_dropped.nconns);
	ssize_t n;

	f.v[0] = master_dropped.records;
	memcpy(f.v + 1, master_dropped.conns, master_dropped.nconns * sizeof(uint64_t));
	rec_header(&f.h, REC_GAP, master_dropped.truncated ? REC_F_TRUNC : 0,
	    master_dropped.conns[0], getpid(), len);
	do
		n = write(master->pipe_wr, &f, sizeof(f.h) + len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return;
	log_warnx("told the store that %llu owed records of %zu%s connections were dropped",
	    (unsigned long long)master_dropped.records, master_dropped.nconns,
	    master_dropped.truncated ? "+" : "");
	memset(&master_dropped, 0, sizeof(master_dropped));
}

/* The queue is full: the records of conn are dropped, counted and told to the store later.
 * Said once per outage. */
static void
master_drop_owed(uint64_t conn, int records)
{
	if (master_dropped.records == 0)
		log_warnx("the store pipe is full and %d records are queued for it: dropping the "
		    "records of closed connections until it drains (a gap record will say which)",
		    master->nowed);
	master_dropped.records += (uint64_t)records;
	if (master_dropped.nconns < REC_GAP_CONNS)
		master_dropped.conns[master_dropped.nconns++] = conn;
	else
		master_dropped.truncated = 1;
}

/* Puts owed close records into the pipe, as many as fit now; then, once none is left, the word
 * of any that were dropped. */
void
master_pay_owed(void)
{
	int i;

	for (i = 0; i < master->nowed; i++) {
		struct owed *o = &master->owed[i];
		ssize_t n;

		do
			n = write(master->pipe_wr, o, sizeof(o->h) + o->h.len);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			if (errno != EAGAIN)
				log_warn("store pipe");
			break;
		}
	}
	memmove(master->owed, master->owed + i, (size_t)(master->nowed - i) * sizeof(*master->owed));
	master->nowed -= i;
	if (master->nowed == 0 && master_dropped.records > 0)
		master_pay_dropped();
}

/* Queues one frame for the store and writes what the pipe takes now. */
static void
master_owe(enum rec_type type, uint64_t conn, pid_t pid, const void *payload, size_t len)
{
	struct owed *o;

	if (master->nowed == master->capowed) {
		int cap = master->capowed ? master->capowed * 2 : 16;
		struct owed *p = realloc(master->owed, (size_t)cap * sizeof(*p));
		if (p == NULL) {
			log_warn("cannot queue a record of conn %llu", (unsigned long long)conn);
			return;
		}
		master->owed = p;
		master->capowed = cap;
	}
	o = &master->owed[master->nowed++];
	memcpy(o->payload, payload, len);
	rec_header(&o->h, type, REC_F_BEHALF, conn, pid, len);
	master_pay_owed();
}

/* A session that did not write its close record (killed by a signal, or gave up on a stuck
 * store at shutdown) gets it from the master, once; and its open record first if that did not
 * make it either, so that every accepted connection is in the store, opened and closed. */
void
master_owe_close(uint64_t conn, pid_t pid, const struct session_slot *slot, const char *peer,
    const char *reason)
{
	unsigned char payload[8 + REC_REASON_MAX];

	if (master->pipe_wr < 0 || slot->closed)
		return;
	/* The queue grows only while the store takes nothing (stalled, or a disk that blocks):
	 * past its bound a connection's owed records are dropped together, and said. */
	if (master->nowed + (slot->opened ? 1 : 2) > MASTER_OWED_MAX) {
		master_drop_owed(conn, slot->opened ? 1 : 2);
		return;
	}
	if (!slot->opened)
		master_owe(REC_OPEN, conn, pid, peer, strlen(peer));
	master_owe(REC_CLOSE, conn, pid, payload, rec_close_payload(payload, slot->bytes, reason));
}

void
master_store_died(int status)
{
	/* Sticky: a later store that finishes cleanly does not undo an earlier one's loss. */
	if (WIFEXITED(status) && WEXITSTATUS(status) == EX_IOERR)
		master->store_lost = 1;
	if (WIFSIGNALED(status))
		log_warnx("store %d killed by signal %d%s", (int)master->store.pid, WTERMSIG(status),
		    sandbox_signal_note(WTERMSIG(status)));
	else if (master->pipe_wr >= 0 || WEXITSTATUS(status) != 0)
		log_warnx("store %d exited %d", (int)master->store.pid, WEXITSTATUS(status));
	else
		log_info("store %d finished", (int)master->store.pid);
	master->store.pid = 0;
	receipt_store_died();
	master_restart_store();
}

size_t
master_pipe_unread(void)
{
	int n = 0;

	if (master->pipe_rd < 0 || ioctl(master->pipe_rd, FIONREAD, &n) < 0)
		return 0;
	return (size_t)n;
}

/* With --store-full block, a store still waiting for its disk when the last session has ended
 * is told (SIGUSR1) to drop what it cannot write, once, so that the shutdown ends in bounded
 * time; what is lost is said in the log and the exit status. */
void
master_store_giveup(int64_t at, pid_t *told)
{
	if (master->set.store_full != STORE_FULL_BLOCK || master->store.pid <= 0 ||
	    *told == master->store.pid || io_now_ms() < at)
		return;
	log_warnx("the store has not finished %d s after the last session; telling it to stop "
	    "waiting for the disk", MASTER_STORE_GIVEUP_MS / 1000);
	kill(master->store.pid, SIGUSR1);
	*told = master->store.pid;
}
