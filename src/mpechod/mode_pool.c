/*
 * mode_pool.c - the master's prefork mode (--prefork): pool processes accept and serve the
 * connections themselves (pool.c); the master starts them (spare.c decides how many, at each
 * maintenance tick and at once when a connection waits for nobody), retires idle ones, and puts
 * right what a pool process that died leaves behind.  Behind struct master_mode (master.h),
 * beside the fork mode (mode_fork.c).
 */
#define _GNU_SOURCE
#include "master.h"
#include "sandbox.h"

static void
master_alloc_pool(size_t n)
{
	int p[2];

	master->pslots = master_shared(n * sizeof(*master->pslots));
	master->pool_idle = (struct spare_map){ .words = SPARE_MAP_WORDS((int)n),
	    .bits = master_shared(SPARE_MAP_WORDS(n) * sizeof(uint64_t)) };
	master->pool_starting = (struct spare_map){ .words = master->pool_idle.words,
	    .bits = master_shared(SPARE_MAP_WORDS(n) * sizeof(uint64_t)) };
	master->shared.next_conn = 1;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		fatal(EX_OSERR, "pipe");
	master->wake_rd = p[0];
	master->wake_wr = p[1];
	master->spawn_rate = master->burst_rate = 1;
}

static void
master_owe_pool(const struct session_ending *e, const char *reason)
{
	const struct pool_slot *slot = e->who;
	char peer[NET_ADDRLEN];

	net_addr_str((const struct sockaddr *)&slot->peer, peer, sizeof(peer));
	master_owe_close(e->conn, e->pid, e->slot, peer, reason);
}

/* A pool process ended.  One that left by itself has put everything right; one that died
 * otherwise leaves its bits in the idle and starting maps, its source's admission and, when it
 * died in a connection, the end of that session to the master.  Its bits are cleared whatever
 * its state says: it may have died between changing its state and its bits. */
static void
master_pool_died(const struct child *c, int status)
{
	struct pool_slot *slot = &master->pslots[c->slot];
	struct shared *sh = &master->shared;
	int state = __atomic_load_n(&slot->state, __ATOMIC_ACQUIRE);
	struct session_ending e = {
		.pid = c->pid, .conn = slot->conn, .status = status, .bytes = slot->s.bytes,
		.logged = 1, .gate = &master->gate, .claim = &slot->claim,
		.slot = &slot->s, .total = &sh->bytes_done, .who = slot,
	};

	spare_map_clear(&master->pool_starting, c->slot);
	spare_map_clear(&master->pool_idle, c->slot);
	if (slot->conn != 0 && !slot->s.closed && slot->end >= 0) {
		/* It finished the connection and said so, but did not get the close record in (a
		 * shutdown with the store stuck). */
		e.status = W_EXITCODE(slot->end, 0);
		e.owe = master_owe_pool;
	} else if (state == POOL_BUSY && slot->conn != 0 && !slot->s.closed) {
		/* It died in the connection. */
		e.logged = 0;
		e.owe = master_owe_pool;
	} else if (WIFSIGNALED(status) || WEXITSTATUS(status) != 0) {
		log_warnx("pool process %d %s %d%s after %llu connections", (int)c->pid,
		    WIFSIGNALED(status) ? "killed by signal" : "exited",
		    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
		    WIFSIGNALED(status) ? sandbox_signal_note(WTERMSIG(status)) : "",
		    (unsigned long long)slot->served);
	}
	/* Its source's counts are given back in every case. */
	session_ended(&e);
	__atomic_store_n(&slot->state, POOL_FREE, __ATOMIC_RELEASE);
}

void
master_pool_retire(const struct child *c)
{
	/* In the slot first: a process not yet past its start would lose the signal alone. */
	__atomic_store_n(&master->pslots[c->slot].leave, 1, __ATOMIC_RELEASE);
	kill(c->pid, SIGUSR1);
}

/* Sessions in progress: the busy pool processes. */
static int
master_pool_busy(void)
{
	int n = 0;

	for (int i = 0; i < master->nkids; i++)
		n += __atomic_load_n(&master->pslots[master->kids[i].slot].state,
		    __ATOMIC_ACQUIRE) == POOL_BUSY;
	return n;
}

/* Pool processes that have not closed their listeners yet: each closes them in its SIGUSR1
 * handler, and its slot says so (nlfd 0). */
static int
master_pool_listening(void)
{
	int n = 0;

	for (int i = 0; i < master->nkids; i++)
		n += __atomic_load_n(&master->pslots[master->kids[i].slot].nlfd,
		    __ATOMIC_ACQUIRE) > 0;
	return n;
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
			.index = slot, .idle = master->pool_idle, .starting = master->pool_starting,
			.sess = { .fd = -1, .pipe_wr = master->pipe_wr,
			    .idle_timeout = master->set.idle_timeout, .grace = master->set.grace,
			    .master = getpid(), .gate = master->set.proxy ? &master->gate : NULL,
			    .receipt = slot },
		};
		int *keep[2 + POOL_MAX_LISTEN] = { &a.wake_wr, &a.sess.pipe_wr };
		int nkeep = 2;
		pid_t pid;

		master->pslots[slot] = (struct pool_slot){ .state = POOL_STARTING };
		spare_map_set(&master->pool_starting, slot);
		pool_prepare(&a);
		/* A pool process keeps its listeners (in its slot), the wake pipe's write end and
		 * the store pipe's; nothing else of the master's. */
		for (int i = 0; i < master->pslots[slot].nlfd; i++)
			keep[nkeep++] = &master->pslots[slot].lfd[i];
		pid = proc_fork(keep, nkeep);
		if (pid == 0)
			pool_run(&a);
		if (pid < 0) {
			spare_map_clear(&master->pool_starting, slot);
			master->pslots[slot].state = POOL_FREE;
			/* Not at once again: the listeners are watched (and a waiting connection
			 * makes the master try again) after 100 ms, as in fork mode. */
			log_ratelimit(&master->log_fork, io_now_ms(), 1, "fork failed; the pool does "
			    "not grow for 100 ms");
			master->accept_resume_ms = io_now_ms() + 100;
			return;
		}
		master->nfree--;
		figures_add(&master->figures.pool_spawned, 1);
		master->kids[master->nkids++] = (struct child){ .pid = pid, .role = PROC_POOL,
		    .slot = slot };
	}
}

static struct spare_view
master_pool_view(void)
{
	return (struct spare_view){
		.total = master->nkids,
		.idle = spare_map_count(&master->pool_idle),
		.starting = spare_map_count(&master->pool_starting),
		.max_clients = master->set.max_clients,
		.min_spare = master->set.min_spare, .max_spare = master->set.max_spare,
	};
}

/* The master watches the listeners only when a connection could wait for nobody: no pool
 * process idle or starting, and room to start one.  Otherwise a pool process takes it. */
static int
master_pool_watch(int64_t now)
{
	struct spare_view v = master_pool_view();

	return !master->stopping && v.idle == 0 && v.starting == 0 && v.total < v.max_clients &&
	    now >= master->accept_resume_ms;
}

/* A connection waits for nobody: start pool processes at once (spare.c's burst). */
static int
master_pool_readable(int lfd)
{
	struct spare_view v = master_pool_view();

	(void)lfd;
	master_spawn_pool(spare_burst(&v, &master->burst_rate));
	return 1;
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

	if (master->stopping || io_now_ms() < master->next_tick_ms)
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
			master_pool_retire(&master->kids[i]);
			figures_add(&master->figures.pool_retired, 1);
			p.retire--;
		}
	}
}

/* Apache's StartServers: the spares at once. */
static void
master_pool_start(void)
{
	master_spawn_pool(master->set.min_spare);
	master->next_tick_ms = io_now_ms() + 1000;
}

static int64_t
master_pool_timeout(int64_t now)
{
	if (master->stopping)
		return -1;
	return master->next_tick_ms > now ? master->next_tick_ms - now : 0;
}

static void
master_pool_served(int queue_done)
{
	(void)queue_done;
}

/* Idle pool processes leave at once; busy ones after their connection. */
static void
master_pool_stop(void)
{
	__atomic_store_n(&master->shared.stopping, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < master->nkids; i++)
		master_pool_retire(&master->kids[i]);
}

static int
master_pool_pending(void)
{
	return 0;
}

/* Bytes echoed by the connections in hand, from the busy pool processes' slots. */
static uint64_t
master_pool_bytes(void)
{
	uint64_t bytes = 0;

	for (int i = 0; i < master->nkids; i++) {
		struct pool_slot *p = &master->pslots[master->kids[i].slot];

		if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) == POOL_BUSY)
			bytes += __atomic_load_n(&p->s.bytes, __ATOMIC_RELAXED);
	}
	return bytes;
}

static void
master_pool_stats(char *line, size_t len)
{
	size_t n = strlen(line);

	snprintf(line + n, len - n, ", pool %d processes, %d idle, %d starting", master->nkids,
	    spare_map_count(&master->pool_idle), spare_map_count(&master->pool_starting));
}

/* Each pool process's claims, in its slot: at accept, and a PROXY header's client. */
static int
master_pool_claims(int (*each)(const struct admit_claim *))
{
	int n = 0;

	for (int i = 0; i < master->nkids; i++) {
		const struct pool_slot *p = &master->pslots[master->kids[i].slot];

		n += each(&p->claim) + each(&p->s.claim);
	}
	return n;
}

/* A reload: every pool process forked with the old settings is retired as Apache's graceful
 * restart retires its children (idle ones leave at once, busy ones after their connection: the
 * session keeps what it started with), and the spares are forked again with the new ones.  The
 * address rules need no new process (the gate is shared and read under its lock): this is for
 * what a pool process copied at its fork, its timeouts and --max-conns-per-child. */
static void
master_pool_reload(void)
{
	int n = 0;

	for (int i = 0; i < master->nkids; i++) {
		if (__atomic_load_n(&master->pslots[master->kids[i].slot].state,
		    __ATOMIC_ACQUIRE) != POOL_LEAVING) {
			master_pool_retire(&master->kids[i]);
			n++;
		}
	}
	log_info("reload: %d pool processes retire after their connection", n);
	master_spawn_pool(master->set.min_spare);
	master->next_tick_ms = io_now_ms() + 1000;
}

const struct master_mode master_mode_pool = {
	.alloc = master_alloc_pool, .start = master_pool_start, .watch = master_pool_watch,
	.timeout = master_pool_timeout, .readable = master_pool_readable,
	.served = master_pool_served, .woken = master_pool_woken, .tick = master_pool_tick,
	.died = master_pool_died, .stop = master_pool_stop, .busy = master_pool_busy,
	.pending = master_pool_pending, .bytes = master_pool_bytes, .stats = master_pool_stats,
	.claims = master_pool_claims, .reload = master_pool_reload,
	.listening = master_pool_listening,
};
