/*
 * scoreboard.c - the figures and the processes of a running server (see scoreboard.h).
 */
#define _GNU_SOURCE
#include "scoreboard.h"

static uint64_t
sb_load(const uint64_t *w)
{
	return __atomic_load_n(w, __ATOMIC_RELAXED);
}

/* The child table entry i, or NULL when it is being changed under us (a reader elsewhere). */
static const struct child *
sb_kid(const struct sb_src *s, int i)
{
	const struct child *c = &s->kids[i];

	if (c->slot < 0 || c->slot >= s->m->set.max_clients)
		return NULL;
	return c;
}

static int
sb_busy(const struct sb_src *s, const struct child *c)
{
	if (!s->m->set.prefork)
		return c->role == PROC_SESSION;
	return __atomic_load_n(&s->pslots[c->slot].state, __ATOMIC_ACQUIRE) == POOL_BUSY;
}

static const struct session_slot *
sb_session(const struct sb_src *s, const struct child *c)
{
	return s->m->set.prefork ? &s->pslots[c->slot].s : &s->board[c->slot];
}

/* Sessions in progress and their bytes so far. */
static void
sb_sessions(const struct sb_src *s, struct fig_snap *o)
{
	int n = s->m->nkids;

	for (int i = 0; i < n && i < s->m->set.max_clients; i++) {
		const struct child *c = sb_kid(s, i);

		if (c == NULL || !sb_busy(s, c))
			continue;
		o->active++;
		o->bytes += sb_load(&sb_session(s, c)->bytes);
	}
}

static void
sb_udp(const struct sb_src *s, struct fig_snap *o)
{
	const struct datagram_stats *d = &s->m->dgstats;

	o->udp_echoed = sb_load(&d->echoed);
	o->udp_bytes = sb_load(&d->bytes);
	for (int v = DG_OK + 1; v < DG_NVERDICTS; v++)
		o->udp_dropped[v - 1] = sb_load(&d->dropped[v]);
	o->udp_dropped[FIG_NUDP_DROP - 1] = sb_load(&d->dropped_store);
}

/* spare_map_count, for a reader's read-only copy of the map. */
static int
sb_count(const uint64_t *bits, int words)
{
	int n = 0;

	for (int i = 0; i < words; i++)
		n += __builtin_popcountll(__atomic_load_n(&bits[i], __ATOMIC_ACQUIRE));
	return n;
}

void
scoreboard_snap(const struct sb_src *s, struct fig_snap *o)
{
	const struct master *m = s->m;
	const struct shared *sh = &m->shared;
	const uint64_t *from = (const uint64_t *)&m->figures;
	uint64_t *to = (uint64_t *)&o->f;

	*o = (struct fig_snap){ .prefork = m->set.prefork, .udp = m->set.udp,
	    .store = m->set.store != NULL };
	sb_sessions(s, o);
	o->accepted = sb_load(&m->accepted) + sb_load(&sh->accepted);
	o->bytes += sb_load(&m->bytes_done) + sb_load(&sh->bytes_done);
	o->reaped_exit = sb_load(&m->reaped_exit);
	o->reaped_signal = sb_load(&m->reaped_signal);
	o->refused_source = sb_load(&sh->refused_source);
	o->refused_rate = sb_load(&sh->refused_rate);
	o->culled = sb_load(&sh->culled);
	o->denied = sb_load(&sh->denied);
	o->proxy_errors = sb_load(&sh->proxy_errors);
	if (m->set.prefork) {
		o->procs = m->nkids;
		o->idle = sb_count(s->idle, s->words);
		o->starting = sb_count(s->starting, s->words);
	}
	if (m->set.udp)
		sb_udp(s, o);
	/* struct figures is nothing but 64-bit words: each is read once, atomically. */
	for (size_t i = 0; i < sizeof(o->f) / sizeof(uint64_t); i++)
		to[i] = sb_load(&from[i]);
}

static const char *const sb_pool_states[] = {
	[POOL_FREE] = "free", [POOL_STARTING] = "starting", [POOL_IDLE] = "idle",
	[POOL_BUSY] = "busy", [POOL_LEAVING] = "leaving",
};

static void
sb_kid_proc(const struct sb_src *s, const struct child *c, struct sb_proc *p)
{
	const struct session_slot *ss = sb_session(s, c);

	*p = (struct sb_proc){ .role = "session", .state = "busy", .pid = c->pid,
	    .conn = c->conn, .bytes = sb_load(&ss->bytes), .since_ms = ss->start_ms };
	if (!s->m->set.prefork) {
		master_peer_str(c, p->peer, sizeof(p->peer));
		return;
	}
	int st = __atomic_load_n(&s->pslots[c->slot].state, __ATOMIC_ACQUIRE);

	p->role = "pool";
	p->state = st >= POOL_FREE && st <= POOL_LEAVING ? sb_pool_states[st] : "?";
	if (st != POOL_BUSY) {
		p->conn = p->bytes = 0;
		p->since_ms = 0;
		return;
	}
	p->conn = __atomic_load_n(&s->pslots[c->slot].conn, __ATOMIC_ACQUIRE);
	net_addr_str((const struct sockaddr *)&s->pslots[c->slot].peer, p->peer, sizeof(p->peer));
}

int
scoreboard_procs(const struct sb_src *s, struct sb_proc *p, int max)
{
	const struct master *m = s->m;
	const struct { const char *role; const struct child *c; int64_t since; } helpers[] = {
		{ "store", &m->store, m->store_started_ms },
		{ "datagram", &m->dgram, m->dgram_started_ms },
		{ "metrics", &m->metrics, m->metrics_started_ms },
	};
	int n = 0, nk = m->nkids;

	for (size_t i = 0; i < sizeof(helpers) / sizeof(helpers[0]); i++) {
		if (helpers[i].c->pid <= 0)
			continue;
		if (n < max)
			p[n] = (struct sb_proc){ .role = helpers[i].role, .state = "running",
			    .pid = helpers[i].c->pid, .since_ms = helpers[i].since };
		n++;
	}
	if (m->spawner > 0) { /* fork mode's, with the sandbox on */
		if (n < max)
			p[n] = (struct sb_proc){ .role = "spawner", .state = "running",
			    .pid = m->spawner, .since_ms = m->spawner_started_ms };
		n++;
	}
	for (int i = 0; i < nk && i < m->set.max_clients; i++) {
		const struct child *c = sb_kid(s, i);

		/* pid 0: handed to fork mode's spawner, not named yet (a process without a pid is
		 * not listed). */
		if (c == NULL || c->pid == 0)
			continue;
		if (n < max)
			sb_kid_proc(s, c, &p[n]);
		n++;
	}
	return n;
}

/* The peer of a forked session, from what the master keeps of it: the address it counted for
 * admission and the port. */
void
master_peer_str(const struct child *c, char *buf, size_t len)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = c->claim.key.b[0];
	if (ss.ss_family == AF_INET6) {
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, c->claim.key.b + 1, 16);
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(c->port);
	} else {
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, c->claim.key.b + 1, 4);
		((struct sockaddr_in *)&ss)->sin_port = htons(c->port);
	}
	net_addr_str((struct sockaddr *)&ss, buf, len);
}
