/*
 * gate.h - the questions a connection answers before it is served, wherever they are asked:
 * by the master before it forks, by a pool process after its accept, and (behind a load
 * balancer) by the session once the PROXY header has named the client.
 *
 * At accept: is the connection already over (reset, or closed with nothing sent: culled, no
 * fork spent on it)?  May its address connect at all (--proxy-from with --proxy-protocol,
 * else --allow/--deny)?  Does admission control let it in (--max-rate, and --max-per-source
 * unless the address is only the balancer's)?  Refusals are closed at once, counted in shared.h's
 * counters and logged at most once a second.
 */
#ifndef MPECHO_GATE_H
#define MPECHO_GATE_H

#include "admit.h"
#include "penalty.h"
#include "cidr.h"
#include "net.h"
#include "shared.h"

#include <sys/socket.h>

/* Read-only once the master has set it up; in its shared mapping. */
struct gate {
	int proxy;                  /* --proxy-protocol */
	int proxy_timeout_ms;
	int no_client;              /* --proxy-no-client: enum gate_no_client */
	struct cidr_list proxy_from;
	struct cidr_rules rules;    /* --allow, --deny */
	int max_per_source, max_rate;
	struct admit *admit;        /* counted under sh's lock */
	struct shared *sh;
	int prefix4, prefix6;       /* --source-prefix: the blocks --max-per-source counts */
	struct penalty *penalty;    /* --source-penalty (under sh's lock); NULL: off */
};

enum gate_verdict { GATE_SERVE, GATE_CULLED, GATE_REFUSED };
/* A PROXY header that names no client (LOCAL, UNKNOWN, UNSPEC): served with no rule (a
 * health check, as before), judged by the balancer's own address, or refused. */
enum gate_no_client { GATE_NO_CLIENT_SERVE, GATE_NO_CLIENT_JUDGE, GATE_NO_CLIENT_REFUSE };

/* The questions at accept, for the connection fd from ss.  On GATE_SERVE, claim says whether
 * its key was counted for --max-per-source (then gate_release it when the session ends), and
 * *state (unless NULL) how the connection stands (live, or half-closed with data).  claim lives
 * in memory its process owns and the master reads (a slot): it is set in one step with the
 * count, under the lock, so that no death can leave the two apart. */
enum gate_verdict gate_accept(const struct gate *g, int fd, const struct sockaddr_storage *ss,
    struct admit_claim *claim, enum net_peer_state *state);
/* Behind a load balancer: the rules and --max-per-source for the client the header names.
 * GATE_SERVE with claim as above, or GATE_REFUSED (counted and logged). */
enum gate_verdict gate_client(const struct gate *g, const struct sockaddr_storage *client,
    struct admit_claim *claim);
/* Behind a load balancer, a header that names no client: --proxy-no-client decides, for the
 * balancer's address. */
enum gate_verdict gate_no_client(const struct gate *g, const struct sockaddr_storage *balancer,
    struct admit_claim *claim);
/* One strike against ss's source for --source-penalty (a PROXY header that failed); a
 * penalty it starts is logged once.  Nothing without --source-penalty. */
void gate_strike(const struct gate *g, const struct sockaddr_storage *ss);
/* Gives back what claim holds (nothing if it holds nothing), in one step with clearing it. */
void gate_release(const struct gate *g, struct admit_claim *claim);

#endif
