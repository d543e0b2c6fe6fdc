/*
 * pool.c - a pool process of --prefork: wait, accept, check, serve, again (see pool.h).
 */
#define _GNU_SOURCE
#include "pool.h"
#include "io.h"
#include "log.h"
#include "net.h"
#include "sig.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

#define POOL_MAX_LISTEN 32

static struct {
	const struct pool_args *a;
	int lfd[POOL_MAX_LISTEN];
	int nlfd;
	volatile sig_atomic_t leave;
} pool;

int
pool_shared_init(struct pool_shared *sh)
{
	pthread_mutexattr_t at;
	int r;

	if ((r = pthread_mutexattr_init(&at)) != 0 ||
	    (r = pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED)) != 0 ||
	    (r = pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST)) != 0 ||
	    (r = pthread_mutex_init(&sh->lock, &at)) != 0) {
		errno = r;
		return -1;
	}
	pthread_mutexattr_destroy(&at);
	return 0;
}

void
pool_lock(struct pool_shared *sh)
{
	if (pthread_mutex_lock(&sh->lock) == EOWNERDEAD)
		pthread_mutex_consistent(&sh->lock);
}

void
pool_unlock(struct pool_shared *sh)
{
	pthread_mutex_unlock(&sh->lock);
}

/* Stop accepting: the listeners are closed here, in the handler (close is async-signal-safe),
 * so that a pool process that outlives its master never holds the port. */
static void
pool_close_listeners(void)
{
	for (int i = 0; i < pool.nlfd; i++)
		close(pool.lfd[i]);
	pool.nlfd = 0;
}

/* SIGUSR1 from the master: retire (too many spares, or shutdown). */
static void
pool_sigusr1(int signo)
{
	int saved = errno;

	(void)signo;
	pool.leave = 1;
	pool_close_listeners();
	errno = saved;
}

/* The master died: leave, after the connection in hand and within the grace. */
static void
pool_sigusr2(int signo)
{
	int saved = errno;

	(void)signo;
	pool.leave = 1;
	pool_close_listeners();
	if (pool.a->slot->state == POOL_BUSY && pool.a->sess.grace > 0)
		alarm((unsigned)pool.a->sess.grace);
	else if (pool.a->slot->state == POOL_BUSY)
		raise(SIGTERM);
	errno = saved;
}

static void
pool_set_state(int from, int to)
{
	struct pool_shared *sh = pool.a->sh;

	__atomic_store_n(&pool.a->slot->state, to, __ATOMIC_RELEASE);
	if (from == POOL_STARTING)
		__atomic_sub_fetch(&sh->starting, 1, __ATOMIC_ACQ_REL);
	if (to == POOL_IDLE)
		__atomic_add_fetch(&sh->idle, 1, __ATOMIC_ACQ_REL);
	/* The last idle one going busy wakes the master, which then watches the listeners and
	 * starts more at once if a connection waits. */
	if (from == POOL_IDLE && __atomic_sub_fetch(&sh->idle, 1, __ATOMIC_ACQ_REL) == 0) {
		char b = 1;

		if (write(pool.a->wake_wr, &b, 1) < 0) {
			/* Full: the master has a wakeup pending already. */
		}
	}
}

static void
pool_log_limited(struct admit_ratelog *rl, const char *msg)
{
	uint64_t held;
	int now;

	pool_lock(pool.a->sh);
	now = admit_ratelog(rl, io_now_ms(), 1000, &held);
	pool_unlock(pool.a->sh);
	if (now && held > 0)
		log_warnx("%s (and %llu more in the last second)", msg, (unsigned long long)held);
	else if (now)
		log_warnx("%s", msg);
}

/* The fork mode's two questions before serving (master_cull, master_admit): 1 to serve. */
static int
pool_admit(int cfd, const struct sockaddr_storage *ss, struct admit_key *key)
{
	const struct pool_args *a = pool.a;
	enum net_peer_state st = net_peer_state(cfd);
	char addr[NET_ADDRLEN], msg[NET_ADDRLEN + 96];
	enum admit_verdict v;

	net_addr_str((const struct sockaddr *)ss, addr, sizeof(addr));
	if (st != NET_PEER_LIVE) {
		__atomic_add_fetch(&a->sh->culled, 1, __ATOMIC_RELAXED);
		snprintf(msg, sizeof(msg), "closed %s unserved: %s before it was accepted", addr,
		    st == NET_PEER_RESET ? "reset by the peer" : "closed by the peer with no data");
		pool_log_limited(&a->sh->log_culled, msg);
		return 0;
	}
	admit_key(ss, key);
	pool_lock(a->sh);
	v = admit_check(a->admit, key, io_now_ms());
	/* Under the lock, with the count: if this process dies now, the master gives it back. */
	a->slot->src = *key;
	a->slot->admitted = v == ADMIT_OK;
	pool_unlock(a->sh);
	if (v == ADMIT_OK)
		return 1;
	if (v == ADMIT_PER_SOURCE) {
		__atomic_add_fetch(&a->sh->refused_source, 1, __ATOMIC_RELAXED);
		snprintf(msg, sizeof(msg), "refused %s: --max-per-source %d reached", addr,
		    a->max_per_source);
	} else {
		__atomic_add_fetch(&a->sh->refused_rate, 1, __ATOMIC_RELAXED);
		snprintf(msg, sizeof(msg), "refused %s: --max-rate %d reached", addr, a->max_rate);
	}
	pool_log_limited(&a->sh->log_refused, msg);
	return 0;
}

/* Serves one accepted connection, as a forked session would, and logs how it ended as the
 * fork mode's master logs a reaped session. */
static void
pool_serve(int cfd, const struct sockaddr_storage *ss)
{
	const struct pool_args *a = pool.a;
	struct pool_slot *slot = a->slot;
	struct session_args s = a->sess;
	struct admit_key key;
	enum session_end end;
	uint64_t bytes;

	/* No connection in hand until its number is set (the master reads the slot if this
	 * process dies). */
	__atomic_store_n(&slot->conn, 0, __ATOMIC_RELEASE);
	if (!pool_admit(cfd, ss, &key)) {
		close(cfd);
		return;
	}
	slot->peer = *ss;
	slot->s = (struct session_slot){ 0 };
	__atomic_store_n(&slot->conn, __atomic_fetch_add(&a->sh->next_conn, 1, __ATOMIC_RELAXED),
	    __ATOMIC_RELEASE);
	__atomic_add_fetch(&a->sh->accepted, 1, __ATOMIC_RELAXED);
	s.fd = cfd;
	s.conn = slot->conn;
	s.peer = *ss;
	s.slot = &slot->s;
	end = session_serve(&s);
	bytes = __atomic_load_n(&slot->s.bytes, __ATOMIC_RELAXED);
	log_info("session %d conn %llu exited %d (%s) after %llu bytes", (int)getpid(),
	    (unsigned long long)s.conn, (int)end, session_reason((int)end),
	    (unsigned long long)bytes);
	__atomic_add_fetch(&a->sh->bytes_done, bytes, __ATOMIC_RELAXED);
	slot->served++;
	pool_lock(a->sh);
	admit_release(a->admit, &key);
	slot->admitted = 0;
	pool_unlock(a->sh);
	if (session_stopping())
		pool.leave = 1;
}

/* Out of descriptors or memory: the connection stays in the backlog; wait a little instead of
 * spinning on a listener that stays readable. */
static void
pool_accept_failed(void)
{
	pool_log_limited(&pool.a->sh->log_refused, "accept failed; pausing 100 ms");
	poll(NULL, 0, 100);
}

static int
pool_epoll(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		fatal(EX_OSERR, "epoll_create1");
	for (int i = 0; i < pool.nlfd; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = pool.lfd[i] };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, pool.lfd[i], &ev) < 0)
			fatal(EX_OSERR, "epoll_ctl");
	}
	return ep;
}

void
pool_run(const struct pool_args *a)
{
	struct sockaddr_storage ss;
	struct epoll_event ev;
	socklen_t len;
	int ep, cfd;

	log_init(NULL, "pool");
	pool.a = a;
	pool.nlfd = a->nlfd < POOL_MAX_LISTEN ? a->nlfd : POOL_MAX_LISTEN;
	memcpy(pool.lfd, a->lfd, (size_t)pool.nlfd * sizeof(int));
	session_init(&a->sess);
	sig_handle(SIGUSR1, pool_sigusr1, 0);
	sig_handle(SIGUSR2, pool_sigusr2, 0);
	if (getppid() != a->sess.master)
		raise(SIGUSR2);
	ep = pool_epoll();
	pool_set_state(POOL_STARTING, POOL_IDLE);
	while (!pool.leave && !session_stopping() && !__atomic_load_n(&a->sh->stopping,
	    __ATOMIC_ACQUIRE)) {
		if (epoll_wait(ep, &ev, 1, -1) < 1)
			continue;
		len = sizeof(ss);
		cfd = accept4(ev.data.fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				pool_accept_failed();
			continue;
		}
		pool_set_state(POOL_IDLE, POOL_BUSY);
		pool_serve(cfd, &ss);
		if (a->max_conns > 0 && a->slot->served >= (uint64_t)a->max_conns)
			break;
		pool_set_state(POOL_BUSY, POOL_IDLE);
	}
	pool_set_state(a->slot->state, POOL_LEAVING);
	_exit(0);
}
