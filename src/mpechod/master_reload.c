/*
 * master_reload.c - SIGHUP with -f: the file is read and checked again, with the command line
 * over it as at start.  A file that does not check out changes nothing (logged with its line,
 * and sent to systemd as STATUS=).  Otherwise what can change while serving applies to the next
 * connection: the address rules and the admission limits (in the gate, under the shared lock
 * that every reader of the rules takes, so no process ever sees half a rule set), the timeouts
 * and the pool's sizes (read at each fork); sessions in progress keep what they started with.
 * What needs a restart (ports, addresses, user, store, mode, UDP, the agent, the table sizes)
 * is logged as such and left as it was.
 *
 * Pool processes (--prefork) copied their settings when they were forked; they are retired
 * the way Apache's graceful restart retires its children (idle ones leave at once, busy ones
 * after their connection) and new ones, forked with the new settings, take over.
 */
#define _GNU_SOURCE
#include "master.h"

static int conf_argc;
static char **conf_argv;
static char *conf_text;    /* the file's text that master->set points into */

/* The copies below, chained from here: master->set, which points to them, is in shared memory,
 * where a leak checker does not look (they live as long as the master). */
struct conf_copy {
	struct conf_copy *next;
	char s[];
};
static struct conf_copy *conf_copies;

/* What a restart-only setting's value came from may be the file's text, freed at the next
 * reload: those kept across reloads are copied once here. */
static const char *
master_conf_dup(const char *v)
{
	struct conf_copy *c;
	size_t n;

	if (v == NULL)
		return NULL;
	n = strlen(v) + 1;
	c = malloc(sizeof(*c) + n);
	if (c != NULL) {
		memcpy(c->s, v, n);
		c->next = conf_copies;
		conf_copies = c;
		return c->s;
	}
	fatal(EX_OSERR, "malloc");
}

void
master_conf_keep(int argc, char **argv, char *text)
{
	struct settings *s = &master->set;

	conf_argc = argc;
	conf_argv = argv;
	conf_text = text;
	s->store = master_conf_dup(s->store);
	s->user = master_conf_dup(s->user);
	s->agent_addr = master_conf_dup(s->agent_addr);
	s->metrics = master_conf_dup(s->metrics);
	for (int i = 0; i < s->nbinds; i++)
		s->binds[i] = master_conf_dup(s->binds[i]);
	for (int i = 0; i < s->nmetrics_allow; i++)
		s->metrics_allow[i] = master_conf_dup(s->metrics_allow[i]);
}

static int
master_str_differ(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

static int
master_lists_differ(const char *const *a, int na, const char *const *b, int nb)
{
	if (na != nb)
		return 1;
	for (int i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 1;
	return 0;
}

/* Puts back in n every setting that needs a restart, saying which ones the file changed. */
static void
master_reload_keep(struct settings *n, const struct settings *o)
{
	const struct {
		const char *name;
		int differ;
	} restart[] = {
		{ "port", n->port != o->port },
		{ "bind", master_lists_differ(n->binds, n->nbinds, o->binds, o->nbinds) },
		{ "user", master_str_differ(n->user, o->user) },
		{ "store", master_str_differ(n->store, o->store) },
		{ "store-format", n->format != o->format },
		{ "fsync", n->fsync != o->fsync },
		{ "store-full", n->store_full != o->store_full },
		{ "max-clients", n->max_clients != o->max_clients },
		{ "prefork", n->prefork != o->prefork },
		{ "udp", n->udp != o->udp },
		{ "udp-per-source", n->udp_per_source != o->udp_per_source },
		{ "udp-rate", n->udp_rate != o->udp_rate },
		{ "proxy-protocol", n->proxy != o->proxy },
		{ "defer-accept", n->defer_accept != o->defer_accept },
		{ "agent-port", n->agent_port != o->agent_port },
		{ "agent-address", master_str_differ(n->agent_addr, o->agent_addr) },
		{ "echo-after", n->echo_after != o->echo_after },
		{ "metrics", master_str_differ(n->metrics, o->metrics) },
		{ "metrics-allow", master_lists_differ(n->metrics_allow, n->nmetrics_allow,
		    o->metrics_allow, o->nmetrics_allow) },
		{ "log-format", n->log_json != o->log_json },
		{ "sandbox", n->sandbox != o->sandbox },
		{ "source-prefix", n->prefix4 != o->prefix4 || n->prefix6 != o->prefix6 },
		/* The per-source table is sized at start for a limit, or is not there. */
		{ "max-per-source", (n->max_per_source == 0) != (o->max_per_source == 0) },
		{ "source-penalty", n->source_penalty != o->source_penalty },
	};

	for (size_t i = 0; i < sizeof(restart) / sizeof(restart[0]); i++)
		if (restart[i].differ)
			log_warnx("reload: %s changed in %s; it needs a restart and stays as it was",
			    restart[i].name, o->config);
	if ((n->max_per_source == 0) != (o->max_per_source == 0))
		n->max_per_source = o->max_per_source;
	n->port = o->port;
	n->port_given = o->port_given;
	memcpy(n->binds, o->binds, sizeof(n->binds));
	n->nbinds = o->nbinds;
	n->user = o->user;
	n->store = o->store;
	n->format = o->format;
	n->fsync = o->fsync;
	n->store_full = o->store_full;
	n->max_clients = o->max_clients;
	n->prefork = o->prefork;
	n->udp = o->udp;
	n->udp_per_source = o->udp_per_source;
	n->udp_rate = o->udp_rate;
	n->proxy = o->proxy;
	n->defer_accept = o->defer_accept;
	n->agent_port = o->agent_port;
	n->agent_addr = o->agent_addr;
	n->echo_after = o->echo_after;
	n->metrics = o->metrics;
	memcpy(n->metrics_allow, o->metrics_allow, sizeof(n->metrics_allow));
	n->nmetrics_allow = o->nmetrics_allow;
	n->log_json = o->log_json;
	n->sandbox = o->sandbox;
	n->prefix4 = o->prefix4;
	n->prefix6 = o->prefix6;
	n->inetd = o->inetd;
	n->config = o->config;
	n->check_config = 0;
}

/* A rule list from its text; -1 with err for a block that does not parse (opts.c checked each
 * already) or one too many. */
static int
master_reload_rules(const char *opt, const char *const *list, int n, struct cidr_list *l,
    char *err, size_t errlen)
{
	char why[128] = "too many rules";
	struct cidr c;

	memset(l, 0, sizeof(*l));
	for (int i = 0; i < n; i++) {
		if (cidr_parse(list[i], &c, why, sizeof(why)) < 0 || cidr_list_add(l, &c) < 0) {
			snprintf(err, errlen, "%s: %s", opt, why);
			return -1;
		}
	}
	return 0;
}

/* The gate's new rules and limits, built aside, then put in under the lock in one step. */
static int
master_reload_gate(const struct settings *s, char *err, size_t errlen)
{
	static const char *const loopback[] = { "127.0.0.0/8", "::1" };
	static struct cidr_rules rules;
	static struct cidr_list from;
	struct gate *g = &master->gate;
	struct shared *sh = &master->shared;

	if (master_reload_rules("allow", s->allow, s->nallow, &rules.allow, err, errlen) < 0 ||
	    master_reload_rules("deny", s->deny, s->ndeny, &rules.deny, err, errlen) < 0 ||
	    master_reload_rules("proxy-from", s->nproxy_from ? s->proxy_from : loopback,
	    s->nproxy_from ? s->nproxy_from : 2, &from, err, errlen) < 0)
		return -1;
	shared_lock(sh);
	g->rules = rules;
	g->proxy_from = from;
	__atomic_store_n(&g->proxy_timeout_ms, s->proxy_timeout * 1000, __ATOMIC_RELAXED);
	__atomic_store_n(&g->no_client, s->proxy_no_client, __ATOMIC_RELAXED);
	__atomic_store_n(&g->max_per_source, s->max_per_source, __ATOMIC_RELAXED);
	__atomic_store_n(&g->max_rate, s->max_rate, __ATOMIC_RELAXED);
	admit_set_limits(master->admit, s->max_per_source, s->max_rate);
	shared_unlock(sh);
	return 0;
}

int
master_reload(void (*apply)(void))
{
	struct settings n;
	char err[OPTS_ERRLEN], *text;

	if (conf_settings(conf_argc, conf_argv, &n, &text, err, sizeof(err)) != OPTS_RUN) {
		log_warnx("reload: %s; nothing changed", err);
		master_notify("STATUS=reload failed: %s", err);
		free(text);
		return -1;
	}
	master_reload_keep(&n, &master->set);
	if (master_reload_gate(&n, err, sizeof(err)) < 0) {
		log_warnx("reload: %s; nothing changed", err);
		master_notify("STATUS=reload failed: %s", err);
		free(text);
		return -1;
	}
	master->set = n;
	shared_settings(&master->shared, n.idle_timeout, n.grace);
	free(conf_text);
	conf_text = text;
	/* The mode's part (the pool retired) before the line that says it is done: a client
	 * that waits for the line must find the new settings. */
	apply();
	log_info("reload: %s applied: %d allow, %d deny rules, max-per-source %d, max-rate %d, "
	    "idle-timeout %d, grace %d", n.config, n.nallow, n.ndeny, n.max_per_source,
	    n.max_rate, n.idle_timeout, n.grace);
	return 0;
}
