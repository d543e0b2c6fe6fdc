/*
 * master_pool.c - the master's side of --prefork: starting pool processes (spare.c decides how
 * many, at each maintenance tick and at once when a connection waits for nobody), retiring
 * idle ones, and putting right what a pool process that died leaves behind.
 */
#define _GNU_SOURCE
#include "master.h"

void
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

/* A pool process ended.  One that left by itself has put everything right; one that died
 * otherwise leaves its counts, its source's admission and, when it died in a connection, the
 * records of that connection to the master. */
void
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

/* Sessions in progress: every child in fork mode, the busy pool processes in prefork mode. */
int
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

/* Starts n pool processes (--prefork), each in a free slot. */
void
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
		int *keep[2 + POOL_MAX_LISTEN] = { &a.wake_wr, &a.sess.pipe_wr };
		int nkeep = 2;
		pid_t pid;

		master->pslots[slot] = (struct pool_slot){ .state = POOL_STARTING };
		__atomic_add_fetch(&master->shared.starting, 1, __ATOMIC_ACQ_REL);
		pool_prepare(&a);
		/* A pool process keeps its listeners (in its slot), the wake pipe's write end and
		 * the store pipe's; nothing else of the master's. */
		for (int i = 0; i < master->pslots[slot].nlfd; i++)
			keep[nkeep++] = &master->pslots[slot].lfd[i];
		pid = proc_fork(keep, nkeep);
		if (pid == 0)
			pool_run(&a);
		if (pid < 0) {
			__atomic_sub_fetch(&master->shared.starting, 1, __ATOMIC_ACQ_REL);
			master->pslots[slot].state = POOL_FREE;
			/* Not at once again: the listeners are watched (and a waiting connection
			 * makes the master try again) after 100 ms, as in fork mode. */
			master_ratelog(&master->log_fork, 1, "fork failed; the pool does not grow for "
			    "100 ms");
			master->accept_resume_ms = io_now_ms() + 100;
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
int
master_pool_watch(void)
{
	struct spare_view v = master_pool_view();

	return !master->stopping && v.idle == 0 && v.starting == 0 && v.total < v.max_clients &&
	    io_now_ms() >= master->accept_resume_ms;
}

int
master_pool_burst(void)
{
	struct spare_view v = master_pool_view();

	return spare_burst(&v, &master->burst_rate);
}

/* A pool process took the last idle place: drain the wake pipe; the next wait then watches
 * the listeners if nobody is idle any more. */
void
master_pool_woken(void)
{
	char buf[64];

	while (read(master->wake_rd, buf, sizeof(buf)) > 0)
		;
}

/* Once a second: Apache's idle maintenance (spare.c). */
void
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
