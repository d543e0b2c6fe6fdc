/*
 * gate.c - the questions before a connection is served (see gate.h).
 */
#include "gate.h"
#include "io.h"
#include "log.h"
#include "net.h"

#include <stdio.h>

static enum gate_verdict
gate_refuse(const struct gate *g, uint64_t *counter, const struct sockaddr_storage *ss,
    const char *why)
{
	char addr[NET_ADDRLEN], msg[NET_ADDRLEN + 96];

	__atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
	net_addr_str((const struct sockaddr *)ss, addr, sizeof(addr));
	snprintf(msg, sizeof(msg), "refused %s: %s", addr, why);
	shared_log(g->sh, &g->sh->log_refused, msg);
	return GATE_REFUSED;
}

/* A connection the peer reset, or closed with nothing to echo, before it was accepted. */
static int
gate_over(const struct gate *g, int fd, const struct sockaddr_storage *ss,
    enum net_peer_state *state)
{
	enum net_peer_state st = net_peer_state(fd);
	char addr[NET_ADDRLEN], msg[NET_ADDRLEN + 96];

	if (state != NULL)
		*state = st;
	if (st == NET_PEER_LIVE || st == NET_PEER_HALF)
		return 0;
	__atomic_add_fetch(&g->sh->culled, 1, __ATOMIC_RELAXED);
	/* Behind a balancer the peer is the balancer, whose health checks connect and close. */
	if (!g->proxy)
		gate_strike(g, ss);
	net_addr_str((const struct sockaddr *)ss, addr, sizeof(addr));
	snprintf(msg, sizeof(msg), "closed %s unserved: %s before it was accepted", addr,
	    st == NET_PEER_RESET ? "reset by the peer" : "closed by the peer with no data");
	shared_log(g->sh, &g->sh->log_culled, msg);
	return 1;
}

void
gate_strike(const struct gate *g, const struct sockaddr_storage *ss)
{
	struct admit_key k;
	char addr[NET_ADDRLEN];
	int started;

	if (g->penalty == NULL)
		return;
	admit_key_prefix(ss, g->prefix4, g->prefix6, &k);
	shared_lock(g->sh);
	started = penalty_strike(g->penalty, &k, io_now_ms());
	shared_unlock(g->sh);
	if (!started)
		return;
	net_addr_str((const struct sockaddr *)ss, addr, sizeof(addr));
	log_warnx("refusing %s (its --source-prefix block) for %d s: its connections kept being "
	    "culled or failing their PROXY header", addr, (int)(g->penalty->len_ms / 1000));
}

/* --source-penalty: a source refused for a while. */
static int
gate_penalised(const struct gate *g, const struct sockaddr_storage *ss)
{
	struct admit_key k;
	int left;
	char why[80];

	if (g->penalty == NULL)
		return 0;
	admit_key_prefix(ss, g->prefix4, g->prefix6, &k);
	shared_lock(g->sh);
	left = penalty_check(g->penalty, &k, io_now_ms());
	shared_unlock(g->sh);
	if (left == 0)
		return 0;
	snprintf(why, sizeof(why), "--source-penalty (%d s left)", left);
	gate_refuse(g, &g->sh->refused_source, ss, why);
	return 1;
}

/* The rules change on a reload, under the lock (master_reload.c): they are read under it. */
static enum gate_verdict
gate_rules(const struct gate *g, const struct sockaddr_storage *ss)
{
	enum cidr_verdict v;

	shared_lock(g->sh);
	v = cidr_rules_check(&g->rules, (const struct sockaddr *)ss);
	shared_unlock(g->sh);
	switch (v) {
	case CIDR_DENIED:
		return gate_refuse(g, &g->sh->denied, ss, "matches --deny");
	case CIDR_NOT_ALLOWED:
		return gate_refuse(g, &g->sh->denied, ss, "not in --allow");
	case CIDR_ALLOWED:
		break;
	}
	return GATE_SERVE;
}

/* --max-per-source for ss (skipped with per_source 0) and --max-rate (skipped with rate 0).
 * The count and the claim change in one step under the lock (see admit.h). */
static enum gate_verdict
gate_admit(const struct gate *g, const struct sockaddr_storage *ss, int per_source, int rate,
    struct admit_claim *claim)
{
	enum admit_verdict v = ADMIT_OK;
	char why[64];

	__atomic_store_n(&claim->held, 0, __ATOMIC_RELEASE);
	admit_key_prefix(ss, g->prefix4, g->prefix6, &claim->key);
	per_source = per_source && __atomic_load_n(&g->max_per_source, __ATOMIC_RELAXED) > 0;
	rate = rate && __atomic_load_n(&g->max_rate, __ATOMIC_RELAXED) > 0;
	/* No limit asked for: no lock taken on every accept. */
	if (!per_source && !rate)
		return GATE_SERVE;
	shared_lock(g->sh);
	if (rate)
		v = admit_take_rate(g->admit, io_now_ms());
	if (v == ADMIT_OK && per_source) {
		v = admit_take_source(g->admit, &claim->key);
		__atomic_store_n(&claim->held, v == ADMIT_OK, __ATOMIC_RELEASE);
	}
	shared_unlock(g->sh);
	if (v == ADMIT_OK)
		return GATE_SERVE;
	if (v == ADMIT_PER_SOURCE)
		snprintf(why, sizeof(why), "--max-per-source %d reached", g->max_per_source);
	else
		snprintf(why, sizeof(why), "--max-rate %d reached", g->max_rate);
	return gate_refuse(g, v == ADMIT_PER_SOURCE ? &g->sh->refused_source :
	    &g->sh->refused_rate, ss, why);
}

enum gate_verdict
gate_accept(const struct gate *g, int fd, const struct sockaddr_storage *ss,
    struct admit_claim *claim, enum net_peer_state *state)
{
	__atomic_store_n(&claim->held, 0, __ATOMIC_RELEASE);
	if (gate_penalised(g, ss))
		return GATE_REFUSED;
	if (gate_over(g, fd, ss, state))
		return GATE_CULLED;
	if (g->proxy) {
		/* Only the balancer's address is known: it must be one that may send headers;
		 * the rules and the per-source limit wait for the client's (gate_client). */
		int from;

		shared_lock(g->sh);
		from = cidr_list_match(&g->proxy_from, (const struct sockaddr *)ss);
		shared_unlock(g->sh);
		if (!from)
			return gate_refuse(g, &g->sh->denied, ss, "not in --proxy-from");
		return gate_admit(g, ss, 0, 1, claim);
	}
	if (gate_rules(g, ss) != GATE_SERVE)
		return GATE_REFUSED;
	return gate_admit(g, ss, 1, 1, claim);
}

enum gate_verdict
gate_client(const struct gate *g, const struct sockaddr_storage *client,
    struct admit_claim *claim)
{
	__atomic_store_n(&claim->held, 0, __ATOMIC_RELEASE);
	if (gate_penalised(g, client) || gate_rules(g, client) != GATE_SERVE)
		return GATE_REFUSED;
	return gate_admit(g, client, 1, 0, claim);
}

enum gate_verdict
gate_no_client(const struct gate *g, const struct sockaddr_storage *balancer,
    struct admit_claim *claim)
{
	__atomic_store_n(&claim->held, 0, __ATOMIC_RELEASE);
	int how = __atomic_load_n(&g->no_client, __ATOMIC_RELAXED);

	if (how == GATE_NO_CLIENT_REFUSE)
		return gate_refuse(g, &g->sh->denied, balancer,
		    "its PROXY header names no client (--proxy-no-client refuse)");
	if (how == GATE_NO_CLIENT_JUDGE)
		return gate_client(g, balancer, claim);
	return GATE_SERVE;
}

void
gate_release(const struct gate *g, struct admit_claim *claim)
{
	/* held changes only under the lock, by claim's owner (or the master once it is dead). */
	if (!__atomic_load_n(&claim->held, __ATOMIC_ACQUIRE))
		return;
	shared_lock(g->sh);
	admit_release(g->admit, &claim->key);
	__atomic_store_n(&claim->held, 0, __ATOMIC_RELEASE);
	shared_unlock(g->sh);
}
