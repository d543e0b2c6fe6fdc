/*
 * pool.c - a pool process of --prefork: wait, accept, check, serve, again (see pool.h).
 */
#define _GNU_SOURCE
#include "pool.h"
#include "io.h"
#include "log.h"
#include "net.h"
#include "sig.h"
#include "sandbox.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>


/* This process's arguments, set by the master just before the fork (pool_prepare).  A pool
 * process writes no static variable of its own: the state it changes lives in its slot, in the
 * master's shared mapping, and in the session's buffer page, which its first read dirties
 * anyway.  A write to any other page of the program's data would copy that page for every
 * pool process, 4 KiB per held connection (see bench/: a pool process then costs what a
 * forked session does). */
static const struct pool_args *pool_self;
#define pool (*pool_self->slot)

/* Stop accepting: the listeners are closed here, in the handler (close is async-signal-safe),
 * so that a pool process that outlives its master never holds the port. */
static void
pool_close_listeners(void)
{
	for (int i = 0; i < pool.nlfd; i++)
		close(pool.lfd[i]);
	/* After the closes: the master reads it to say when the ports are free. */
	__atomic_store_n(&pool.nlfd, 0, __ATOMIC_RELEASE);
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
	if (pool_self->slot->state == POOL_BUSY && pool_self->sess.grace > 0)
		alarm((unsigned)pool_self->sess.grace);
	else if (pool_self->slot->state == POOL_BUSY)
		raise(SIGTERM);
	errno = saved;
}

/* Each step is one atomic change of what this process alone owns (its state, its bit in a
 * map): a death between two of them leaves nothing for anyone but the master to put right, and
 * it does so from the slot (master_pool_died).  The idle bit is set before the starting bit is
 * cleared, so that the master never sees a process that is neither. */
static void
pool_set_state(int from, int to)
{
	const struct pool_args *a = pool_self;

	__atomic_store_n(&a->slot->state, to, __ATOMIC_RELEASE);
	if (to == POOL_IDLE)
		spare_map_set(&a->idle, a->index);
	if (from == POOL_STARTING)
		spare_map_clear(&a->starting, a->index);
	/* The last idle one going busy wakes the master, which then watches the listeners and
	 * starts more at once if a connection waits. */
	if (from == POOL_IDLE && spare_map_clear(&a->idle, a->index)) {
		char b = 1;

		if (write(pool_self->wake_wr, &b, 1) < 0) {
			/* Full: the master has a wakeup pending already. */
		}
	}
}

/* Serves one accepted connection, as a forked session would, and ends it as every session ends
 * (session_ended: the same line as the fork mode's master logs for a reaped session).  Returns
 * 0 when the connection was refused or culled, with this process idle again already. */
static int
pool_serve(int cfd, const struct sockaddr_storage *ss)
{
	const struct pool_args *a = pool_self;
	struct pool_slot *slot = a->slot;
	struct session_args *s = &slot->sess;
	char peer[NET_ADDRLEN];
	enum session_end end;

	/* No connection in hand until its number is set (the master reads the slot if this
	 * process dies). */
	__atomic_store_n(&slot->conn, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&slot->end, -1, __ATOMIC_RELEASE);
	/* Claimed in the slot with the count, under the lock, in gate_accept: if this process dies
	 * at any point after, the master gives back what the slot claims. */
	if (gate_accept(a->gate, cfd, ss, &slot->claim, NULL) != GATE_SERVE) {
		/* Idle again before the close: a client that sees its refusal and then asks for
		 * the stats must not find this process still counted busy. */
		pool_set_state(POOL_BUSY, POOL_IDLE);
		close(cfd);
		return 0;
	}
	slot->s = (struct session_slot){ .start_ms = io_now_ms() };
	__atomic_store_n(&slot->conn, __atomic_fetch_add(&a->sh->next_conn, 1, __ATOMIC_RELAXED),
	    __ATOMIC_RELEASE);
	__atomic_add_fetch(&a->sh->accepted, 1, __ATOMIC_RELAXED);
	*s = a->sess;
	/* A reload after this process was forked: the connection gets the new timeouts all the
	 * same (the master retires this process, but it may have taken the connection first). */
	s->idle_timeout = __atomic_load_n(&a->sh->idle_timeout, __ATOMIC_ACQUIRE);
	s->grace = __atomic_load_n(&a->sh->grace, __ATOMIC_ACQUIRE);
	s->fd = cfd;
	s->conn = slot->conn;
	s->peer = *ss;
	s->slot = &slot->s;
	end = session_serve(s);
	__atomic_store_n(&slot->end, (int)end, __ATOMIC_RELEASE);
	net_addr_str((const struct sockaddr *)ss, peer, sizeof(peer));
	session_ended(&(struct session_ending){ .pid = getpid(), .conn = s->conn, .peer = peer,
	    .status = W_EXITCODE((int)end, 0), .bytes = __atomic_load_n(&slot->s.bytes,
	    __ATOMIC_RELAXED), .gate = a->gate, .claim = &slot->claim,
	    .slot = &slot->s, .total = &a->sh->bytes_done });
	slot->served++;
	/* A connection whose close record did not get into the pipe (the store gone or stuck):
	 * this process leaves, and the master writes the record on its behalf, as it does for a
	 * forked session. */
	if (session_stopping() || (s->pipe_wr >= 0 && !slot->s.closed))
		pool.leave = 1;
	return 1;
}

/* Out of descriptors or memory: the connection stays in the backlog; wait a little instead of
 * spinning on a listener that stays readable. */
static void
pool_accept_failed(void)
{
	shared_log(pool_self->sh, &pool_self->sh->log_refused, "accept failed; pausing 100 ms");
	poll(NULL, 0, 100);
}

/* A pool process leaves with _exit: what it inherited at the fork is the master's. */
static _Noreturn void
pool_fatal(const char *what)
{
	log_warn("pool process: %s", what);
	_exit(EX_OSERR);
}

static int
pool_epoll(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		pool_fatal("epoll_create1");
	for (int i = 0; i < pool.nlfd; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = pool.lfd[i] };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, pool.lfd[i], &ev) < 0)
			pool_fatal("epoll_ctl");
	}
	return ep;
}

void
pool_prepare(const struct pool_args *a)
{
	struct pool_slot *slot = a->slot;

	pool_self = a;
	slot->nlfd = a->nlfd < POOL_MAX_LISTEN ? a->nlfd : POOL_MAX_LISTEN;
	memcpy(slot->lfd, a->lfd, (size_t)slot->nlfd * sizeof(int));
	slot->leave = 0;
}

/* The signals that end an idle pool process's wait: retire (SIGUSR1), the master's death
 * (SIGUSR2), SIGTERM.  They are blocked while it is idle, except inside epoll_pwait: one that
 * comes after the loop has tested its flags and before the wait is delivered by the wait, which
 * then returns EINTR, instead of being handled just before a wait that nothing would end. */
static const int pool_idle_signals[] = { SIGUSR1, SIGUSR2, SIGTERM, SIGALRM, 0 };

void
pool_run(const struct pool_args *a)
{
	struct epoll_event ev;
	sigset_t waitmask;
	socklen_t len;
	int ep, cfd;

	session_init(&a->sess);
	sig_handle(SIGUSR1, pool_sigusr1, 0);
	sig_handle(SIGUSR2, pool_sigusr2, 0);
	if (sig_block(pool_idle_signals, &waitmask) < 0)
		pool_fatal("sigprocmask");
	if (getppid() != a->sess.master)
		raise(SIGUSR2);
	/* Told to retire before the handler was in place (session_init ignores SIGUSR1, which
	 * discards one pending): the master says so in the slot too, before its signal. */
	if (__atomic_load_n(&pool.leave, __ATOMIC_ACQUIRE))
		pool_close_listeners();
	ep = pool_epoll();
	sandbox_child(SANDBOX_POOL, NULL);
	pool_set_state(POOL_STARTING, POOL_IDLE);
	while (!pool.leave && !session_stopping() && !__atomic_load_n(&a->sh->stopping,
	    __ATOMIC_ACQUIRE)) {
		if (epoll_pwait(ep, &ev, 1, -1, &waitmask) < 1)
			continue;
		len = sizeof(a->slot->peer);
		cfd = accept4(ev.data.fd, (struct sockaddr *)&a->slot->peer, &len, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				pool_accept_failed();
			continue;
		}
		pool_set_state(POOL_IDLE, POOL_BUSY);
		/* Busy, the signals reach the session as in a forked one (one that came during the
		 * wait's return is delivered here, and sees the state busy). */
		sigprocmask(SIG_SETMASK, &waitmask, NULL);
		if (pool_serve(cfd, &a->slot->peer)) {
			if (a->max_conns > 0 && a->slot->served >= (uint64_t)a->max_conns)
				break;
			pool_set_state(POOL_BUSY, POOL_IDLE);
		}
		/* Blocked again before the loop tests its flags. */
		sig_block(pool_idle_signals, &waitmask);
	}
	pool_set_state(a->slot->state, POOL_LEAVING);
	_exit(0);
}
