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
 * master's own code (djb's tcpserver blocks SIGCHLD the same way): handlers only set flags, and
 * the loop does the work, reaping with waitpid(-1, WNOHANG) until no dead child is left.
 *
 * Before it forks, the master asks two questions of every accepted connection: is it already
 * over (reset, or closed with nothing sent: nothing to echo, so no fork is spent on it), and
 * does admission control (admit.c) let it in.
 */
#define _GNU_SOURCE
#include "admit.h"
#include "datagram.h"
#include "inetd.h"
#include "io.h"
#include "log.h"
#include "net.h"
#include "opts.h"
#include "pool.h"
#include "version.h"
#include "record.h"
#include "sd.h"
#include "session.h"
#include "sig.h"
#include "spare.h"
#include "store.h"
#include "user.h"

#include <errno.h>
#include <stdarg.h>
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
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define MASTER_MAX_LISTEN 32
#define MASTER_ACCEPT_BURST 32
/* Half-closed connections with data put aside while the listen queue is worked through. */
#define MASTER_DEFER_MAX 256
#define MASTER_DEFER_BATCH 16
#define MASTER_DEFER_AGE_MS 50
#define MASTER_PIPE_SIZE (1024 * 1024)
#define MASTER_KILL_WAIT_MS ((int64_t)2 * SESSION_STOP_WAIT_MS)
#define MASTER_STORE_WAIT_MS 60000
#define MASTER_STATUS_MS 5000
/* --store-full block: how long the end of a shutdown waits for a full disk. */
#define MASTER_STORE_GIVEUP_MS 5000

struct child {
	pid_t pid;
	int slot;       /* scoreboard index */
	uint64_t conn;
	struct admit_key src; /* the peer's address */
	int admitted;         /* src is counted for --max-per-source */
	uint16_t port;  /* the peer's, in host order: with src, its open record if the master owes it */
};

/* A record the master owes the store for a session that could not write it: a close record,
 * or an open record (the peer's address as text). */
struct owed {
	struct rec_hdr h;
	unsigned char payload[8 + REC_REASON_MAX > NET_ADDRLEN ? 8 + REC_REASON_MAX : NET_ADDRLEN];
};

/* The master's state lives in a shared anonymous mapping, not in its private memory.  A page
 * the master writes after a fork is copied for the master, and every older session keeps the
 * original as its own: with the counters and the child table in private memory,
 * each held connection would pay for several pages it never touches.  In a MAP_SHARED mapping
 * there is no copy; sessions only read it (right after fork) and never write it. */
struct master {
	struct settings set;
	int lfd[MASTER_MAX_LISTEN];
	int nlfd;
	int ufd[MASTER_MAX_LISTEN];  /* --udp: bound UDP sockets, served by the datagram process */
	int nufd;
	uint16_t port;               /* the port served */
	pid_t dgram_pid;
	int64_t dgram_started_ms;
	struct datagram_stats dgstats; /* written by the datagram process */
	int pipe_rd, pipe_wr;        /* the store pipe; -1 without a store */
	int lock_fd;                 /* holds the master's lock on the store; -1 without one */
	pid_t store_pid;
	int store_lost;              /* the last store ended with records it could not write */
	int64_t store_started_ms;
	struct child *kids;          /* active sessions, unordered */
	int nkids;
	struct session_slot *board;  /* shared with the sessions */
	int *free_slots;
	int nfree;
	struct owed *owed;           /* close records not yet in the pipe */
	int nowed, capowed;
	uint64_t next_conn, accepted, reaped_exit, reaped_signal, bytes_done;
	struct admit *admit;         /* --max-per-source and --max-rate */
	struct admit_ratelog log_accept, log_fork;
	int64_t accept_resume_ms;    /* accepting paused until then (fork or fd failure) */
	struct deferred {            /* accepted, admitted, not yet forked (a FIFO ring) */
		int fd, admitted;
		int64_t since_ms;
		struct sockaddr_storage ss;
		struct admit_key key;
	} defer[MASTER_DEFER_MAX];
	int defer_head, ndefer;
	int stopping;                /* 0 serving, 1 grace, 2 sessions told to stop, 3 killed */
	struct shared shared;        /* updated by pool processes and sessions too */
	struct gate gate;            /* the questions before a connection is served */
	struct pool_slot *pslots;    /* one per pool process, indexed like the scoreboard */
	int wake_rd, wake_wr;        /* pool processes wake the master when none is idle */
	int spawn_rate, burst_rate;  /* spare.c's doubling */
	int64_t next_tick_ms;        /* the pool's next maintenance */
	int notify_fd;               /* NOTIFY_SOCKET (systemd); -1 without */
	char notify_addr[128];
	int64_t next_status_ms;      /* STATUS= at most every MASTER_STATUS_MS */
	int64_t phase_deadline_ms;
	sigset_t waitmask;
	struct pollfd pfd[MASTER_MAX_LISTEN + 1]; /* what the last ppoll watched */
	int npfd;
};

static struct master *master;

static volatile sig_atomic_t got_chld, got_term, got_hup, got_usr1;

/* A warning that a flood could repeat thousands of times a second, at most once a second. */
static void
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

/* Binds every --bind address (or the wildcards) to one port; when the kernel chose the port for
 * the first socket and another address has it taken, starts over with a new port. */
static void
master_listen(void)
{
	char err[NET_ERRLEN];
	int tries, i, n = -1, port;

	for (tries = 0; tries < 16; tries++) {
		port = master->set.port;
		master->nlfd = master->nufd = 0;
		for (i = 0; i < (master->set.nbinds ? master->set.nbinds : 1); i++) {
			const char *host = master->set.nbinds ? master->set.binds[i] : NULL;

			n = net_listen(host, SOCK_STREAM, &port, master->lfd + master->nlfd,
			    MASTER_MAX_LISTEN - master->nlfd, err, sizeof(err));
			if (n < 0)
				break;
			master->nlfd += n;
			if (!master->set.udp)
				continue;
			n = net_listen(host, SOCK_DGRAM, &port, master->ufd + master->nufd,
			    MASTER_MAX_LISTEN - master->nufd, err, sizeof(err));
			if (n < 0)
				break;
			master->nufd += n;
		}
		if (n >= 0) {
			master->port = (uint16_t)port;
			return;
		}
		while (master->nlfd > 0)
			close(master->lfd[--master->nlfd]);
		while (master->nufd > 0)
			close(master->ufd[--master->nufd]);
		if (!(master->set.port == 0 && errno == EADDRINUSE))
			break;
	}
	usage_error("%s", err);
}

static void
master_announce(void)
{
	char addr[NET_ADDRLEN];
	int one = 1;

	for (int i = 0; i < master->nlfd; i++) {
		/* Accepted sockets inherit TCP_NODELAY from their listener, which saves every
		 * session a setsockopt: echoes go out at once, whatever their size. */
		setsockopt(master->lfd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (master->set.defer_accept > 0 &&
		    setsockopt(master->lfd[i], IPPROTO_TCP, TCP_DEFER_ACCEPT,
		    &master->set.defer_accept, sizeof(master->set.defer_accept)) < 0)
			log_warn("TCP_DEFER_ACCEPT");
		net_local_addr(master->lfd[i], addr, sizeof(addr));
		log_info("listening on %s", addr);
	}
	for (int i = 0; i < master->nufd; i++) {
		net_local_addr(master->ufd[i], addr, sizeof(addr));
		log_info("serving UDP on %s", addr);
	}
}

/* The master's own descriptors that a child must close: listeners, UDP sockets (but in the
 * datagram process), the master's store lock, and the pipe end it does not use.  Collected
 * before the fork, as the master has them then: the shared state may change before the child
 * reads it.  A child that kept the lock's descriptor would make its master look alive after
 * its death. */
struct master_fds {
	int fd[2 * MASTER_MAX_LISTEN + 4];
	int n;
};

enum { KEEP_NONE = 0, KEEP_UDP = 1, KEEP_LISTENERS = 2 };

static void
master_fds_to_close(struct master_fds *c, int keep_pipe_end, int keep)
{
	c->n = 0;
	for (int i = 0; !(keep & KEEP_LISTENERS) && i < master->nlfd; i++)
		c->fd[c->n++] = master->lfd[i];
	for (int i = 0; !(keep & KEEP_UDP) && i < master->nufd; i++)
		c->fd[c->n++] = master->ufd[i];
	if (master->lock_fd >= 0)
		c->fd[c->n++] = master->lock_fd;
	if (master->wake_rd >= 0)
		c->fd[c->n++] = master->wake_rd;
	if (master->wake_wr >= 0 && !(keep & KEEP_LISTENERS))
		c->fd[c->n++] = master->wake_wr;
	if (master->pipe_rd >= 0 && master->pipe_rd != keep_pipe_end)
		c->fd[c->n++] = master->pipe_rd;
	if (master->pipe_wr >= 0 && master->pipe_wr != keep_pipe_end)
		c->fd[c->n++] = master->pipe_wr;
}

/* In a new child. */
static void
master_close_inherited(const struct master_fds *c)
{
	for (int i = 0; i < c->n; i++)
		close(c->fd[i]);
}

static void
master_start_store(int filefd)
{
	struct store_args a = {
		.pipe_rd = master->pipe_rd, .filefd = filefd, .path = master->set.store,
		.format = master->set.format, .fsync = master->set.fsync, .master = getpid(),
		.full = master->set.store_full,
	};
	struct master_fds c;
	pid_t pid;

	master_fds_to_close(&c, master->pipe_rd, KEEP_NONE);
	pid = fork();
	if (pid < 0) {
		log_warn("cannot fork the store");
		return;
	}
	if (pid == 0) {
		master_close_inherited(&c);
		store_run(&a);
	}
	master->store_pid = pid;
	master->store_started_ms = io_now_ms();
}

/* The master keeps the pipe's read end, so what sessions wrote while no store ran stays in the
 * pipe for the next one.  Restarts come at most once a second, so a store that cannot open its
 * file does not spin. */
static void
master_restart_store(void)
{
	if (master->store_pid > 0 || master->pipe_rd < 0 || master->pipe_wr < 0)
		return;
	if (io_now_ms() - master->store_started_ms < 1000)
		return;
	master_start_store(-1);
	if (master->store_pid > 0)
		log_warnx("restarted the store as %d", (int)master->store_pid);
}

/* The datagram process (--udp), supervised like the store: started after it, restarted at most
 * once a second if it dies, told to stop (SIGTERM) at shutdown. */
static void
master_start_dgram(void)
{
	struct datagram_args a = {
		.fds = master->ufd, .nfds = master->nufd, .pipe_wr = master->pipe_wr,
		.port = master->port, .per_source = master->set.udp_per_source,
		.global = master->set.udp_rate, .master = getpid(), .stats = &master->dgstats,
	};
	struct master_fds c;
	pid_t pid;

	if (master->nufd == 0 || master->stopping)
		return;
	master_fds_to_close(&c, master->pipe_wr, KEEP_UDP);
	master->dgram_started_ms = io_now_ms();
	pid = fork();
	if (pid < 0) {
		log_warn("cannot fork the datagram process");
		return;
	}
	if (pid == 0) {
		/* The UDP sockets in a's array are the master's: the same numbers in the child. */
		master_close_inherited(&c);
		datagram_run(&a);
	}
	master->dgram_pid = pid;
}

static void
master_dgram_died(int status)
{
	if (WIFSIGNALED(status))
		log_warnx("datagram process %d killed by signal %d", (int)master->dgram_pid,
		    WTERMSIG(status));
	else if (!master->stopping || WEXITSTATUS(status) != 0)
		log_warnx("datagram process %d exited %d", (int)master->dgram_pid,
		    WEXITSTATUS(status));
	master->dgram_pid = 0;
}

static void
master_restart_dgram(void)
{
	if (master->dgram_pid > 0 || master->nufd == 0 || master->stopping ||
	    io_now_ms() - master->dgram_started_ms < 1000)
		return;
	master_start_dgram();
	if (master->dgram_pid > 0)
		log_warnx("restarted the datagram process as %d", (int)master->dgram_pid);
}

/* A store file that a live mpechod owns is refused.  One whose master died while its store
 * still drains the old sessions is taken over: this master serves at once, and its store
 * waits for the old one to finish before it writes (store.c). */
static int
master_open_store(void)
{
	char msg[OPTS_ERRLEN + 64];
	int fd = -1;

	master->lock_fd = -1;
	if (master->set.store == NULL) {
		master->pipe_rd = master->pipe_wr = -1;
		return -1;
	}
	master->lock_fd = store_master_lock(master->set.store, -1);
	if (master->lock_fd >= 0)
		fd = store_open(master->set.store);
	if (fd < 0) {
		snprintf(msg, sizeof(msg), "cannot open store %.200s: %s", master->set.store,
		    errno == EAGAIN ? "another mpechod is writing it" : strerror(errno));
		usage_error("%s", msg);
	}
	if (store_lock(fd) < 0 && errno == EWOULDBLOCK)
		log_warnx("store %s: the store of an mpechod that ended is still writing it; taking "
		    "over when it has finished", master->set.store);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		fatal(EX_OSERR, "pipe");
	master->pipe_rd = p[0];
	master->pipe_wr = p[1];
	/* A larger pipe absorbs bursts, so sessions seldom wait for the store. */
	fcntl(master->pipe_wr, F_SETPIPE_SZ, MASTER_PIPE_SIZE);
	io_set_nonblock(master->pipe_wr, 1);
	return fd;
}

/* -u USER[:GROUP]: resolved before anything is opened, so that a bad name is a usage error. */
static struct user_ids master_user;

static void
master_resolve_user(void)
{
	char err[256];

	if (master->set.user != NULL && user_resolve(master->set.user, "/", &master_user, err,
	    sizeof(err)) < 0)
		usage_error("%s", err);
}

/* After binding and opening the store, before any child: the store and every session run as
 * the user.  The store file becomes the user's, so a restarted store can open it again. */
static void
master_drop_user(int store_fd)
{
	char err[256];

	if (master->set.user == NULL)
		return;
	if (store_fd >= 0 && fchown(store_fd, master_user.uid, master_user.gid) < 0)
		log_warn("cannot give %s to %s", master->set.store, master_user.name);
	if (user_drop(&master_user, err, sizeof(err)) < 0)
		fatalx(EX_NOPERM, "%s", err);
}

/* Socket activation: the listeners systemd passed (LISTEN_FDS), checked, instead of binding;
 * datagram ones too with --udp (ListenDatagram=). */
static void
master_sockets(void)
{
	char err[NET_ERRLEN], addr[NET_ADDRLEN];
	int n = sd_listen_fds(1, err, sizeof(err));

	if (n < 0)
		usage_error("%s", err);
	if (n == 0) {
		master_listen();
		return;
	}
	if (master->set.port_given || master->set.nbinds > 0)
		usage_error("-p and -b do not apply to the sockets systemd passed (LISTEN_FDS=%d)", n);
	for (int fd = SD_FDS_START; fd < SD_FDS_START + n; fd++) {
		if (sd_check_listener(fd, err, sizeof(err)) == 0)
			master->lfd[master->nlfd++] = fd;
		else if (master->set.udp && sd_check_datagram(fd, err, sizeof(err)) == 0)
			master->ufd[master->nufd++] = fd;
		else
			usage_error("%s", err);
	}
	if (master->nlfd == 0)
		usage_error("systemd passed no listening TCP socket");
	if (master->set.udp && master->nufd == 0)
		usage_error("--udp: systemd passed no datagram socket (ListenDatagram=)");
	master->port = (uint16_t)net_local_addr(master->lfd[0], addr, sizeof(addr));
}

/* NOTIFY_SOCKET: the master alone reports to systemd; the variable goes, so that no child
 * sees it. */
static void
master_notify_open(void)
{
	const char *ns = getenv("NOTIFY_SOCKET");

	master->notify_fd = -1;
	if (ns == NULL || *ns == '\0')
		return;
	snprintf(master->notify_addr, sizeof(master->notify_addr), "%s", ns);
	master->notify_fd = sd_notify_open(master->notify_addr);
	if (master->notify_fd < 0)
		log_warn("NOTIFY_SOCKET %s", master->notify_addr);
	unsetenv("NOTIFY_SOCKET");
}

static void
master_notify(const char *fmt, ...) PRINTFLIKE(1, 2);

static void
master_notify(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (master->notify_fd < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (sd_notify_send(master->notify_fd, master->notify_addr, msg) < 0 && errno != EAGAIN)
		log_warn("cannot notify %s", master->notify_addr);
}

/* Zeroed memory shared with every child (see struct master). */
static void *
master_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fatal(EX_OSERR, "cannot map %zu bytes", len);
	return p;
}

/* Adds each CIDR of list to l; a bad one is a usage error. */
static void
master_rules(const char *opt, const char *const *list, int n, struct cidr_list *l)
{
	char err[NET_ERRLEN];
	struct cidr c;

	for (int i = 0; i < n; i++) {
		if (cidr_parse(list[i], &c, err, sizeof(err)) < 0)
			usage_error("%s: %s", opt, err);
		if (cidr_list_add(l, &c) < 0)
			usage_error("%s: too many rules", opt);
	}
}

static void
master_gate(void)
{
	static const char *const loopback[] = { "127.0.0.0/8", "::1" };
	struct gate *g = &master->gate;
	const struct settings *s = &master->set;

	g->proxy = s->proxy;
	g->proxy_timeout_ms = s->proxy_timeout * 1000;
	g->max_per_source = s->max_per_source;
	g->max_rate = s->max_rate;
	g->admit = master->admit;
	g->sh = &master->shared;
	master_rules("--allow", s->allow, s->nallow, &g->rules.allow);
	master_rules("--deny", s->deny, s->ndeny, &g->rules.deny);
	if (s->nproxy_from > 0)
		master_rules("--proxy-from", s->proxy_from, s->nproxy_from, &g->proxy_from);
	else
		master_rules("--proxy-from", loopback, 2, &g->proxy_from);
}

static void
master_alloc_pool(size_t n)
{
	int p[2];

	master->pslots = master_shared(n * sizeof(*master->pslots));
	master->shared.next_conn = 1;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		fatal(EX_OSERR, "pipe");
	master->wake_rd = p[0];
	master->wake_wr = p[1];
	master->spawn_rate = master->burst_rate = 1;
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
	if (sig_block(blocked, &master->waitmask) < 0)
		fatal(EX_OSERR, "sigprocmask");
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

/* The peer's address as the session would have written it, from the child table. */
static void
master_peer_str(const struct child *c, char *buf, size_t len)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = c->src.b[0];
	if (ss.ss_family == AF_INET6) {
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, c->src.b + 1, 16);
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(c->port);
	} else {
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, c->src.b + 1, 4);
		((struct sockaddr_in *)&ss)->sin_port = htons(c->port);
	}
	net_addr_str((struct sockaddr *)&ss, buf, len);
}

/* A session that did not write its close record (killed by a signal, or gave up on a stuck
 * store at shutdown) gets it from the master, once; and its open record first if that did not
 * make it either, so that every accepted connection is in the store, opened and closed. */
static void
master_owe_close(uint64_t conn, pid_t pid, const struct session_slot *slot, const char *peer,
    const char *reason)
{
	unsigned char payload[8 + REC_REASON_MAX];

	if (master->pipe_wr < 0 || slot->closed)
		return;
	if (!slot->opened)
		master_owe(REC_OPEN, conn, pid, peer, strlen(peer));
	master_owe(REC_CLOSE, conn, pid, payload, rec_close_payload(payload, slot->bytes, reason));
}

/* How a child ended, as a close record's reason. */
static const char *
master_end_reason(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "signal %d", WTERMSIG(status));
	else
		snprintf(buf, len, "%s", session_reason(WEXITSTATUS(status)));
	return buf;
}

static void
master_store_died(int status)
{
	master->store_lost = WIFEXITED(status) && WEXITSTATUS(status) == EX_IOERR;
	if (WIFSIGNALED(status))
		log_warnx("store %d killed by signal %d", (int)master->store_pid, WTERMSIG(status));
	else if (master->pipe_wr >= 0 || WEXITSTATUS(status) != 0)
		log_warnx("store %d exited %d", (int)master->store_pid, WEXITSTATUS(status));
	else
		log_info("store %d finished", (int)master->store_pid);
	master->store_pid = 0;
	master_restart_store();
}

/* Gives back what a child that died had counted for --max-per-source: at accept, and for the
 * client a PROXY header named (a session that ended normally gave that back itself). */
static void
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

/* A pool process ended.  One that left by itself has put everything right; one that died
 * otherwise leaves its counts, its source's admission and, when it died in a connection, the
 * records of that connection to the master. */
static void
master_pool_died(const struct child *c, int status)
{
	struct pool_slot *slot = &master->pslots[c->slot];
	struct shared *sh = &master->shared;
	char reason[32], peer[NET_ADDRLEN];
	int state = __atomic_load_n(&slot->state, __ATOMIC_ACQUIRE);

	if (state == POOL_STARTING)
		__atomic_sub_fetch(&sh->starting, 1, __ATOMIC_ACQ_REL);
	else if (state == POOL_IDLE)
		__atomic_sub_fetch(&sh->idle, 1, __ATOMIC_ACQ_REL);
	master_release(slot->admitted, &slot->src, &slot->s);
	/* A connection without its close record: the process died in it, or finished it (a
	 * shutdown with the store stuck) without getting the record in. */
	if (slot->conn != 0 && !slot->s.closed && slot->end >= 0) {
		snprintf(reason, sizeof(reason), "%s", session_reason(slot->end));
		net_addr_str((const struct sockaddr *)&slot->peer, peer, sizeof(peer));
		master_owe_close(slot->conn, c->pid, &slot->s, peer, reason);
	} else if (state == POOL_BUSY && slot->conn != 0 && !slot->s.closed) {
		master_end_reason(status, reason, sizeof(reason));
		log_info("session %d conn %llu %s %d after %llu bytes", (int)c->pid,
		    (unsigned long long)slot->conn, WIFSIGNALED(status) ? "killed by signal" :
		    "exited", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
		    (unsigned long long)slot->s.bytes);
		__atomic_add_fetch(&sh->bytes_done, slot->s.bytes, __ATOMIC_RELAXED);
		net_addr_str((const struct sockaddr *)&slot->peer, peer, sizeof(peer));
		master_owe_close(slot->conn, c->pid, &slot->s, peer, reason);
	} else if (WIFSIGNALED(status) || WEXITSTATUS(status) != 0) {
		log_warnx("pool process %d %s %d after %llu connections", (int)c->pid,
		    WIFSIGNALED(status) ? "killed by signal" : "exited",
		    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
		    (unsigned long long)slot->served);
	}
	__atomic_store_n(&slot->state, POOL_FREE, __ATOMIC_RELEASE);
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

/* Sessions in progress: every child in fork mode, the busy pool processes in prefork mode. */
static int
master_active(void)
{
	int n = 0;

	if (!master->set.prefork)
		return master->nkids;
	for (int i = 0; i < master->nkids; i++)
		n += __atomic_load_n(&master->pslots[master->kids[i].slot].state,
		    __ATOMIC_ACQUIRE) == POOL_BUSY;
	return n;
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
static void
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

/* systemd's status line, at most every MASTER_STATUS_MS. */
static void
master_status(void)
{
	char line[768];

	if (master->notify_fd < 0 || io_now_ms() < master->next_status_ms)
		return;
	master->next_status_ms = io_now_ms() + MASTER_STATUS_MS;
	master_stats_line(line, sizeof(line));
	master_notify("STATUS=%s", line);
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

/* Starts n pool processes (--prefork), each in a free slot. */
static void
master_spawn_pool(int n)
{
	for (; n > 0 && master->nfree > 0 && !master->stopping; n--) {
		int slot = master->free_slots[master->nfree - 1];
		struct pool_args a = {
			.lfd = master->lfd, .nlfd = master->nlfd, .wake_wr = master->wake_wr,
			.max_conns = master->set.max_conns_per_child,
			.sh = &master->shared, .slot = &master->pslots[slot], .gate = &master->gate,
			.sess = { .fd = -1, .pipe_wr = master->pipe_wr,
			    .idle_timeout = master->set.idle_timeout, .grace = master->set.grace,
			    .master = getpid(), .gate = master->set.proxy ? &master->gate : NULL },
		};
		struct master_fds c;
		pid_t pid;

		/* A pool process keeps the listeners (and the wake pipe's write end, which is not
		 * in the list): everything else of the master's goes. */
		master_fds_to_close(&c, master->pipe_wr, KEEP_LISTENERS);
		master->pslots[slot] = (struct pool_slot){ .state = POOL_STARTING };
		__atomic_add_fetch(&master->shared.starting, 1, __ATOMIC_ACQ_REL);
		pid = _Fork();
		if (pid == 0) {
			master_close_inherited(&c);
			pool_run(&a);
		}
		if (pid < 0) {
			__atomic_sub_fetch(&master->shared.starting, 1, __ATOMIC_ACQ_REL);
			master->pslots[slot].state = POOL_FREE;
			master_ratelog(&master->log_fork, 1, "fork failed; the pool does not grow now");
			return;
		}
		master->nfree--;
		master->kids[master->nkids++] = (struct child){ .pid = pid, .slot = slot };
	}
}

static struct spare_view
master_pool_view(void)
{
	return (struct spare_view){
		.total = master->nkids,
		.idle = __atomic_load_n(&master->shared.idle, __ATOMIC_ACQUIRE),
		.starting = __atomic_load_n(&master->shared.starting, __ATOMIC_ACQUIRE),
		.max_clients = master->set.max_clients,
		.min_spare = master->set.min_spare, .max_spare = master->set.max_spare,
	};
}

/* The master watches the listeners only when a connection could wait for nobody: no pool
 * process idle or starting, and room to start one.  Otherwise a pool process takes it. */
static int
master_pool_watch(void)
{
	struct spare_view v = master_pool_view();

	return !master->stopping && v.idle == 0 && v.starting == 0 && v.total < v.max_clients;
}

static int
master_pool_burst(void)
{
	struct spare_view v = master_pool_view();

	return spare_burst(&v, &master->burst_rate);
}

/* A pool process took the last idle place: drain the wake pipe; the next wait then watches
 * the listeners if nobody is idle any more. */
static void
master_pool_woken(void)
{
	char buf[64];

	while (read(master->wake_rd, buf, sizeof(buf)) > 0)
		;
}

/* Once a second: Apache's idle maintenance (spare.c). */
static void
master_pool_tick(void)
{
	struct spare_view v;
	struct spare_plan p;

	if (!master->set.prefork || master->stopping || io_now_ms() < master->next_tick_ms)
		return;
	master->next_tick_ms = io_now_ms() + 1000;
	v = master_pool_view();
	p = spare_tick(&v, &master->spawn_rate);
	if (p.spawn == 0 && v.idle > 0)
		master->burst_rate = 1;
	master_spawn_pool(p.spawn);
	for (int i = 0; p.retire > 0 && i < master->nkids; i++) {
		if (__atomic_load_n(&master->pslots[master->kids[i].slot].state,
		    __ATOMIC_ACQUIRE) == POOL_IDLE) {
			kill(master->kids[i].pid, SIGUSR1);
			p.retire--;
		}
	}
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

	if (master->stopping == 0 || master->nkids == 0 || io_now_ms() < master->phase_deadline_ms)
		return;
	if (master->stopping >= 3)
		return;
	sig = (master->stopping == 1) ? SIGTERM : SIGKILL;
	log_info("sending signal %d to %d sessions", sig, master->nkids);
	for (int i = 0; i < master->nkids; i++)
		kill(master->kids[i].pid, sig);
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
	if (master->stopping && master->stopping < 3 && master->nkids > 0) {
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

static size_t
master_pipe_unread(void)
{
	int n = 0;

	if (master->pipe_rd < 0 || ioctl(master->pipe_rd, FIONREAD, &n) < 0)
		return 0;
	return (size_t)n;
}

/* After the last session: hand the store everything owed, close the pipe so the store reads
 * EOF, and wait for it to write, fsync and exit. */
/* With --store-full block, a store still waiting for its disk when the last session has ended
 * is told (SIGUSR1) to drop what it cannot write, once, so that the shutdown ends in bounded
 * time; what is lost is said in the log and the exit status. */
static void
master_store_giveup(int64_t at, pid_t *told)
{
	if (master->set.store_full != STORE_FULL_BLOCK || master->store_pid <= 0 ||
	    *told == master->store_pid || io_now_ms() < at)
		return;
	log_warnx("the store has not finished %d s after the last session; telling it to stop "
	    "waiting for the disk", MASTER_STORE_GIVEUP_MS / 1000);
	kill(master->store_pid, SIGUSR1);
	*told = master->store_pid;
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
	}
	if (master_pipe_unread() > 0 || master->nowed > 0)
		log_warnx("%zu bytes of records and %d close records were never stored",
		    master_pipe_unread(), master->nowed);
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
	master_resolve_user();
	if (master->set.inetd)
		inetd_run(&master->set, master->set.user ? &master_user : NULL);
	master_alloc();
	master_key();
	master_signals();
	master_sockets();
	master_start(master_open_store());
	master_loop();
}
