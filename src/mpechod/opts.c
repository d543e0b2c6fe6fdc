/*
 * opts.c - getopt_long parsing with range-checked numbers (strtonum's discipline, not atoi).
 */
#define _GNU_SOURCE
#include "opts.h"
#include "num.h"
#include "cidr.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPTS_QUOTE_LEN 65

enum {
	OPT_STORE_FORMAT = 256, OPT_FSYNC, OPT_IDLE, OPT_GRACE, OPT_NO_STORE, OPT_PER_SOURCE,
	OPT_RATE, OPT_STORE_FULL, OPT_UDP, OPT_UDP_PER_SOURCE, OPT_UDP_RATE, OPT_PREFORK,
	OPT_MIN_SPARE, OPT_MAX_SPARE, OPT_MAX_CONNS_CHILD, OPT_INETD, OPT_PROXY, OPT_PROXY_TIMEOUT,
	OPT_PROXY_FROM, OPT_ALLOW, OPT_DENY, OPT_DEFER_ACCEPT, OPT_PROXY_NO_CLIENT, OPT_ECHO_AFTER,
	OPT_METRICS, OPT_METRICS_ALLOW, OPT_LOG_FORMAT, OPT_SANDBOX, OPT_SOURCE_PREFIX, OPT_AGENT_PORT,
	OPT_AGENT_ADDR, OPT_DRAIN, OPT_SOURCE_PENALTY
};

static const struct option opts_long[] = {
	{ "port", required_argument, NULL, 'p' },
	{ "bind", required_argument, NULL, 'b' },
	{ "user", required_argument, NULL, 'u' },
	{ "inetd", no_argument, NULL, OPT_INETD },
	{ "proxy-protocol", no_argument, NULL, OPT_PROXY },
	{ "proxy-timeout", required_argument, NULL, OPT_PROXY_TIMEOUT },
	{ "proxy-from", required_argument, NULL, OPT_PROXY_FROM },
	{ "proxy-no-client", required_argument, NULL, OPT_PROXY_NO_CLIENT },
	{ "allow", required_argument, NULL, OPT_ALLOW },
	{ "defer-accept", required_argument, NULL, OPT_DEFER_ACCEPT },
	{ "deny", required_argument, NULL, OPT_DENY },
	{ "store", required_argument, NULL, 's' },
	{ "no-store", no_argument, NULL, OPT_NO_STORE },
	{ "store-format", required_argument, NULL, OPT_STORE_FORMAT },
	{ "fsync", required_argument, NULL, OPT_FSYNC },
	{ "store-full", required_argument, NULL, OPT_STORE_FULL },
	{ "max-clients", required_argument, NULL, 'c' },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE },
	{ "grace", required_argument, NULL, OPT_GRACE },
	{ "max-per-source", required_argument, NULL, OPT_PER_SOURCE },
	{ "max-rate", required_argument, NULL, OPT_RATE },
	{ "udp", no_argument, NULL, OPT_UDP },
	{ "prefork", no_argument, NULL, OPT_PREFORK },
	{ "min-spare", required_argument, NULL, OPT_MIN_SPARE },
	{ "max-spare", required_argument, NULL, OPT_MAX_SPARE },
	{ "max-conns-per-child", required_argument, NULL, OPT_MAX_CONNS_CHILD },
	{ "udp-per-source", required_argument, NULL, OPT_UDP_PER_SOURCE },
	{ "udp-rate", required_argument, NULL, OPT_UDP_RATE },
	{ "echo-after", required_argument, NULL, OPT_ECHO_AFTER },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "metrics-allow", required_argument, NULL, OPT_METRICS_ALLOW },
	{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
	{ "sandbox", required_argument, NULL, OPT_SANDBOX },
	{ "source-prefix", required_argument, NULL, OPT_SOURCE_PREFIX },
	{ "config", required_argument, NULL, 'f' },
	{ "check-config", no_argument, NULL, 't' },
	{ "agent-port", required_argument, NULL, OPT_AGENT_PORT },
	{ "agent-address", required_argument, NULL, OPT_AGENT_ADDR },
	{ "drain", required_argument, NULL, OPT_DRAIN },
	{ "source-penalty", required_argument, NULL, OPT_SOURCE_PENALTY },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

void
opts_defaults(struct settings *s)
{
	memset(s, 0, sizeof(*s));
	s->port = 7007;
	s->store = "echomsg.jsonl";
	s->format = STORE_JSONL;
	s->fsync = FSYNC_EVERYSEC;
	s->max_clients = 1024;
	s->idle_timeout = 0;
	s->grace = 10;
	s->proxy_timeout = 3;
	s->min_spare = 5;
	s->max_spare = 10;
	s->udp_per_source = 100;
	s->udp_rate = 10000;
	/* The sanitizers' runtimes read /proc and stop threads (LeakSanitizer at exit): their
	 * builds start with the sandbox off. */
#if defined(__SANITIZE_ADDRESS__)
	s->sandbox = 0;
#else
	s->sandbox = 1;
#endif
	s->prefix4 = 32;
	s->prefix6 = 64;
	s->agent_port = -1;
}

/* Copies at most 64 bytes of a user's argument for an error message, non-printable bytes made
 * '?', so the reason stays on one line whatever was typed. */
static const char *
opts_quote(const char *src, char dst[OPTS_QUOTE_LEN])
{
	size_t i;

	for (i = 0; i < OPTS_QUOTE_LEN - 1 && src[i] != '\0'; i++) {
		/* char may be signed: bytes past 0x7f are negative here and become '?' too. */
		dst[i] = src[i];
		if (src[i] < 0x20 || src[i] == 0x7f)
			dst[i] = '?';
	}
	dst[i] = '\0';
	return dst;
}

static int
opts_int(const char *name, const char *arg, long min, long max, int *dst, char *err, size_t errlen)
{
	char q[OPTS_QUOTE_LEN];
	long v;

	if (num_parse(arg, min, max, &v) < 0) {
		snprintf(err, errlen, "%s: '%s' is not a whole number from %ld to %ld", name,
		    opts_quote(arg, q), min, max);
		return -1;
	}
	*dst = (int)v;
	return 0;
}

/* Maps arg to the index of its name in names (a NULL-terminated list). */
static int
opts_word(const char *name, const char *arg, const char *const *names, int *dst, char *err,
    size_t errlen)
{
	for (int i = 0; names[i] != NULL; i++) {
		if (strcmp(arg, names[i]) == 0) {
			*dst = i;
			return 0;
		}
	}
	char q[OPTS_QUOTE_LEN];

	snprintf(err, errlen, "%s: '%s' is not one of %s%s%s", name, opts_quote(arg, q), names[0],
	    names[1] ? ", " : "", names[1] ? names[1] : "");
	if (names[1] && names[2]) {
		size_t n = strlen(err);
		snprintf(err + n, errlen - n, ", %s", names[2]);
	}
	return -1;
}

static int
opts_path(const char *name, const char *arg, const char **dst, char *err, size_t errlen)
{
	if (arg[0] == '\0') {
		snprintf(err, errlen, "%s: the value is empty", name);
		return -1;
	}
	*dst = arg;
	return 0;
}

/* Handles one option; returns -1 with err filled when its value is bad. */
/* One more address rule (its text: the master parses it, cidr.c, and refuses a bad one). */
/* --proxy-no-client: serve, judge or refuse (0, 1, 2: gate.h's GATE_NO_CLIENT_*). */
static int
opts_no_client(const char *arg, int *out, char *err, size_t errlen)
{
	static const char *const how[] = { "serve", "judge", "refuse" };

	for (int i = 0; i < 3; i++) {
		if (strcmp(arg, how[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	snprintf(err, errlen, "--proxy-no-client: serve, judge or refuse, not %s", arg);
	return -1;
}

static int
opts_rule(const char *name, const char *arg, const char **list, int *n, char *err,
    size_t errlen)
{
	if (*n == OPTS_MAX_RULES) {
		snprintf(err, errlen, "%s: at most %d rules", name, OPTS_MAX_RULES);
		return -1;
	}
	char why[OPTS_ERRLEN - 64];
	struct cidr c;

	/* Checked here, so that a bad block is refused with its file's line (and by -t); the
	 * master parses it again into its rules. */
	if (cidr_parse(arg, &c, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s", name, why);
		return -1;
	}
	return opts_path(name, arg, &list[(*n)++], err, errlen);
}

/* --sandbox on|off. */
static int
opts_sandbox(const char *arg, struct settings *s, char *err, size_t errlen)
{
	char q[OPTS_QUOTE_LEN];

	if (strcmp(arg, "on") == 0 || strcmp(arg, "off") == 0) {
		s->sandbox = strcmp(arg, "on") == 0;
		return 0;
	}
	snprintf(err, errlen, "--sandbox: on or off, not '%s'", opts_quote(arg, q));
	return -1;
}

/* --source-prefix V4:V6, the blocks --max-per-source and --udp-per-source count by. */
static int
opts_source_prefix(const char *arg, struct settings *s, char *err, size_t errlen)
{
	char q[OPTS_QUOTE_LEN], v4[8];
	const char *colon = strchr(arg, ':');
	size_t n = colon == NULL ? 0 : (size_t)(colon - arg);

	if (colon == NULL || n == 0 || n >= sizeof(v4)) {
		snprintf(err, errlen, "--source-prefix: V4:V6 (e.g. 32:64), not '%s'",
		    opts_quote(arg, q));
		return -1;
	}
	memcpy(v4, arg, n);
	v4[n] = '\0';
	if (opts_int("--source-prefix (IPv4)", v4, 1, 32, &s->prefix4, err, errlen) < 0)
		return -1;
	return opts_int("--source-prefix (IPv6)", colon + 1, 1, 128, &s->prefix6, err, errlen);
}

static int
opts_one(int c, const char *arg, struct settings *s, char *err, size_t errlen)
{
	static const char *const formats[] = { "jsonl", "raw", NULL };
	static const char *const fsyncs[] = { "always", "everysec", "no", NULL };
	static const char *const fulls[] = { "drop", "block", NULL };
	static const char *const afters[] = { "written", "synced", NULL };
	static const char *const log_formats[] = { "text", "json", NULL };
	int v;

	switch (c) {
	case 'p':
		s->port_given = 1;
		return opts_int("--port", arg, 0, 65535, &s->port, err, errlen);
	case 'u':
		return opts_path("--user", arg, &s->user, err, errlen);
	case OPT_INETD:
		s->inetd = 1;
		return 0;
	case OPT_PROXY:
		s->proxy = 1;
		return 0;
	case OPT_PROXY_TIMEOUT:
		return opts_int("--proxy-timeout", arg, 1, 3600, &s->proxy_timeout, err, errlen);
	case OPT_PROXY_FROM:
		return opts_rule("--proxy-from", arg, s->proxy_from, &s->nproxy_from, err, errlen);
	case OPT_PROXY_NO_CLIENT:
		return opts_no_client(arg, &s->proxy_no_client, err, errlen);
	case OPT_DEFER_ACCEPT:
		return opts_int("--defer-accept", arg, 0, 3600, &s->defer_accept, err, errlen);
	case OPT_ALLOW:
		return opts_rule("--allow", arg, s->allow, &s->nallow, err, errlen);
	case OPT_DENY:
		return opts_rule("--deny", arg, s->deny, &s->ndeny, err, errlen);
	case 'b':
		if (s->nbinds == OPTS_MAX_BINDS) {
			snprintf(err, errlen, "--bind: at most %d addresses", OPTS_MAX_BINDS);
			return -1;
		}
		return opts_path("--bind", arg, &s->binds[s->nbinds++], err, errlen);
	case 's':
		return opts_path("--store", arg, &s->store, err, errlen);
	case OPT_NO_STORE:
		s->store = NULL;
		return 0;
	case OPT_STORE_FORMAT:
		if (opts_word("--store-format", arg, formats, &v, err, errlen) < 0)
			return -1;
		s->format = (enum store_format)v;
		return 0;
	case OPT_FSYNC:
		if (opts_word("--fsync", arg, fsyncs, &v, err, errlen) < 0)
			return -1;
		s->fsync = (enum fsync_policy)v;
		return 0;
	case OPT_STORE_FULL:
		if (opts_word("--store-full", arg, fulls, &v, err, errlen) < 0)
			return -1;
		s->store_full = (enum store_full)v;
		return 0;
	case 'c':
		return opts_int("--max-clients", arg, 1, 100000, &s->max_clients, err, errlen);
	case OPT_IDLE:
		return opts_int("--idle-timeout", arg, 0, 86400, &s->idle_timeout, err, errlen);
	case OPT_GRACE:
		return opts_int("--grace", arg, 0, 3600, &s->grace, err, errlen);
	case OPT_PER_SOURCE:
		return opts_int("--max-per-source", arg, 0, 100000, &s->max_per_source, err,
		    errlen);
	case OPT_RATE:
		return opts_int("--max-rate", arg, 0, 1000000, &s->max_rate, err, errlen);
	case OPT_UDP:
		s->udp = 1;
		return 0;
	case OPT_PREFORK:
		s->prefork = 1;
		return 0;
	case OPT_MIN_SPARE:
		return opts_int("--min-spare", arg, 1, 100000, &s->min_spare, err, errlen);
	case OPT_MAX_SPARE:
		return opts_int("--max-spare", arg, 1, 100000, &s->max_spare, err, errlen);
	case OPT_MAX_CONNS_CHILD:
		return opts_int("--max-conns-per-child", arg, 0, 2000000000, &s->max_conns_per_child,
		    err, errlen);
	case OPT_UDP_PER_SOURCE:
		return opts_int("--udp-per-source", arg, 0, 10000000, &s->udp_per_source, err,
		    errlen);
	case OPT_UDP_RATE:
		return opts_int("--udp-rate", arg, 0, 10000000, &s->udp_rate, err, errlen);
	case OPT_ECHO_AFTER:
		if (opts_word("--echo-after", arg, afters, &v, err, errlen) < 0)
			return -1;
		s->echo_after = v + 1;
		return 0;
	case OPT_METRICS:
		return opts_path("--metrics", arg, &s->metrics, err, errlen);
	case OPT_METRICS_ALLOW:
		return opts_rule("--metrics-allow", arg, s->metrics_allow, &s->nmetrics_allow, err,
		    errlen);
	case OPT_LOG_FORMAT:
		return opts_word("--log-format", arg, log_formats, &s->log_json, err, errlen);
	case OPT_SANDBOX:
		return opts_sandbox(arg, s, err, errlen);
	case OPT_SOURCE_PREFIX:
		return opts_source_prefix(arg, s, err, errlen);
	case 'f':
		return opts_path("--config", arg, &s->config, err, errlen);
	case 't':
		s->check_config = 1;
		return 0;
	case OPT_AGENT_PORT:
		return opts_int("--agent-port", arg, 0, 65535, &s->agent_port, err, errlen);
	case OPT_AGENT_ADDR:
		return opts_path("--agent-address", arg, &s->agent_addr, err, errlen);
	case OPT_DRAIN:
		return opts_int("--drain", arg, 0, 3600, &s->drain, err, errlen);
	case OPT_SOURCE_PENALTY:
		return opts_int("--source-penalty", arg, 0, 86400, &s->source_penalty, err, errlen);
	}
	snprintf(err, errlen, "unhandled option");
	return -1;
}

/* Describes the option getopt_long rejected, from what it left in optopt and argv. */
static void
opts_bad(int c, char **argv, char *err, size_t errlen)
{
	char q[OPTS_QUOTE_LEN];
	/* getopt_long has stepped past the word it rejected, so optind is at least 1. */
	const char *word = opts_quote(argv[optind - 1], q);

	if (c == ':')
		snprintf(err, errlen, "option '%s' needs a value", word);
	else if (strncmp(word, "--", 2) == 0)
		snprintf(err, errlen, "unknown option or unexpected value '%s'", word);
	else if (optopt >= 0x20 && optopt < 0x7f)
		snprintf(err, errlen, "unknown option '-%c'", optopt);
	else
		snprintf(err, errlen, "unknown option in '%s'", word);
}

/* getopt_long over argv into s, as it stands. */
static enum opts_result
opts_getopt(int argc, char **argv, struct settings *s, char *err, size_t errlen)
{
	int c;

	optind = 0; /* glibc: reset getopt's state completely */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":p:b:s:c:u:f:thV", opts_long, NULL)) != -1) {
		if (c == 'h')
			return OPTS_HELP;
		if (c == 'V')
			return OPTS_VERSION;
		if (c == '?' || c == ':') {
			opts_bad(c, argv, err, errlen);
			return OPTS_ERROR;
		}
		if (opts_one(c, optarg, s, err, errlen) < 0)
			return OPTS_ERROR;
	}
	if (optind < argc) {
		char q[OPTS_QUOTE_LEN];

		snprintf(err, errlen, "unexpected argument '%s'", opts_quote(argv[optind], q));
		return OPTS_ERROR;
	}
	return OPTS_RUN;
}

int
opts_check(const struct settings *s, char *err, size_t errlen)
{
	if ((s->nproxy_from > 0 || s->proxy_timeout != 3 || s->proxy_no_client != 0) && !s->proxy) {
		snprintf(err, errlen, "--proxy-from, --proxy-timeout and --proxy-no-client need "
		    "--proxy-protocol");
		return -1;
	}
	if (s->inetd && (s->port_given || s->nbinds > 0 || s->prefork || s->udp || s->proxy ||
	    s->agent_port >= 0 || s->drain > 0)) {
		snprintf(err, errlen, "--inetd serves the one connection on standard input: -p, -b, "
		    "--prefork, --udp, --proxy-protocol, --agent-port and --drain do not apply");
		return -1;
	}
	if (s->echo_after != 0 && s->store == NULL) {
		snprintf(err, errlen, "--echo-after waits for the store: it needs one (not "
		    "--no-store)");
		return -1;
	}
	if (s->inetd && s->metrics != NULL) {
		snprintf(err, errlen, "--metrics needs the daemon: not with --inetd");
		return -1;
	}
	if (s->nmetrics_allow > 0 && s->metrics == NULL) {
		snprintf(err, errlen, "--metrics-allow needs --metrics");
		return -1;
	}
	if (s->min_spare > s->max_spare) {
		snprintf(err, errlen, "--min-spare %d is more than --max-spare %d", s->min_spare,
		    s->max_spare);
		return -1;
	}
	if (s->agent_addr != NULL && s->agent_port < 0) {
		snprintf(err, errlen, "--agent-address needs --agent-port");
		return -1;
	}
	return 0;
}

enum opts_result
opts_parse(int argc, char **argv, struct settings *s, char *err, size_t errlen)
{
	enum opts_result r;

	opts_defaults(s);
	r = opts_getopt(argc, argv, s, err, errlen);
	if (r == OPTS_RUN && opts_check(s, err, errlen) < 0)
		return OPTS_ERROR;
	return r;
}

/* A list the command line gave replaces the file's; one it did not give is the file's. */
static void
opts_keep_list(const char **list, int *n, const char *const *base, int nbase)
{
	if (*n > 0)
		return;
	memcpy(list, base, (size_t)nbase * sizeof(*list));
	*n = nbase;
}

enum opts_result
opts_parse_over(int argc, char **argv, struct settings *s, char *err, size_t errlen)
{
	struct settings base = *s;
	enum opts_result r;

	s->nallow = s->ndeny = s->nproxy_from = s->nbinds = s->nmetrics_allow = 0;
	r = opts_getopt(argc, argv, s, err, errlen);
	opts_keep_list(s->allow, &s->nallow, base.allow, base.nallow);
	opts_keep_list(s->deny, &s->ndeny, base.deny, base.ndeny);
	opts_keep_list(s->proxy_from, &s->nproxy_from, base.proxy_from, base.nproxy_from);
	opts_keep_list(s->binds, &s->nbinds, base.binds, base.nbinds);
	opts_keep_list(s->metrics_allow, &s->nmetrics_allow, base.metrics_allow, base.nmetrics_allow);
	return r;
}

int
opts_set(const char *name, const char *value, struct settings *s, char *err, size_t errlen)
{
	char q[OPTS_QUOTE_LEN];

	for (const struct option *o = opts_long; o->name != NULL; o++) {
		if (strcmp(o->name, name) != 0)
			continue;
		if (o->val == 'f' || o->val == 't' || o->val == 'h' || o->val == 'V') {
			snprintf(err, errlen, "%s is for the command line only", name);
			return -1;
		}
		if (o->has_arg == required_argument && (value == NULL || value[0] == '\0')) {
			snprintf(err, errlen, "%s needs a value", name);
			return -1;
		}
		/* A switch alone, or "yes": "udp" and "udp yes" say the same. */
		if (o->has_arg == no_argument && value != NULL && strcmp(value, "yes") != 0) {
			snprintf(err, errlen, "%s takes no value (or yes), not '%s'", name,
			    opts_quote(value, q));
			return -1;
		}
		return opts_one(o->val, value != NULL ? value : "", s, err, errlen);
	}
	snprintf(err, errlen, "unknown key '%s'", opts_quote(name, q));
	return -1;
}

/* In parts: one string literal may be at most 4095 bytes in ISO C. */
static const char *const opts_usage_parts[] = {
	    "usage: mpechod [options]\n"
	    "A TCP echo server that forks one process per connection and keeps every\n"
	    "byte it echoes in a store file.\n"
	    "\n"
	    "  -p, --port PORT          TCP port, 0 lets the kernel choose (default 7007, which\n"
	    "                           any user may bind; the packaged service listens on\n"
	    "                           7, the well-known echo port, which needs root)\n"
	    "  -b, --bind ADDR          listen on this address only; repeatable\n"
	    "                           (default: every IPv6 and IPv4 address)\n"
	    "  -s, --store FILE         append records to FILE (default ./echomsg.jsonl)\n"
	    "      --no-store           keep no store: echo only\n"
	    "      --store-format FMT   jsonl (one JSON object per event) or raw (the echoed\n"
	    "                           bytes only); default jsonl\n"
	    "      --fsync WHEN         always, everysec or no (default everysec)\n"
	    "      --store-full POLICY  while the store file cannot be written: drop records\n"
	    "                           and say so in a gap record, or block sessions until\n"
	    "                           it can (default drop)\n"
	    "  -c, --max-clients N      concurrent sessions, 1-100000 (default 1024); past it,\n"
	    "                           connections wait in the listen backlog\n"
	    "      --idle-timeout SEC   end a session idle (nothing received, or its echo not\n"
	    "                           written) for SEC seconds; 0 = never (default 0)\n"
	    "      --grace SEC          seconds sessions get to finish at shutdown (default 10)\n"
	    "      --max-per-source N   concurrent sessions from one address; 0 = no limit\n"
	    "      --max-rate N         new sessions per second, overall; 0 = no limit\n"
	    "                           (over either limit a connection is closed at once)\n"
	    "      --defer-accept SEC   TCP_DEFER_ACCEPT: a connection reaches the server only\n"
	    "                           once its first data has come (or SEC seconds have\n"
	    "                           passed); cheaper floods, but a client that waits for\n"
	    "                           the server to speak first waits SEC (default 0: off)\n"
	    ,
	    "      --prefork            serve from a pool of processes that accept connections\n"
	    "                           themselves, one at a time each, instead of a fork per\n"
	    "                           connection; -c bounds the pool\n"
	    "      --min-spare N        idle pool processes kept at least (default 5)\n"
	    "      --max-spare N        idle pool processes kept at most (default 10)\n"
	    "      --max-conns-per-child N  connections a pool process serves before it is\n"
	    "                           replaced; 0 = never (default 0)\n"
	    "      --udp                also serve UDP echo on the same addresses and port\n"
	    "      --udp-per-source N   UDP replies a second per source address (default 100;\n"
	    "                           0 = no limit)\n"
	    "      --udp-rate N         UDP replies a second in all (default 10000; 0 = no\n"
	    "                           limit).  No reply ever goes to a source port below\n"
	    "                           1024, our own port, ports of services that answer\n"
	    "                           datagrams, or broadcast and multicast addresses\n"
	    ,
	    "      --allow CIDR         serve only clients in these blocks (repeatable; an\n"
	    "                           address alone is /32 or /128)\n"
	    "      --deny CIDR          refuse clients in these blocks (repeatable); a refused\n"
	    "                           connection is closed at once, never forked\n"
	    "      --proxy-protocol     every connection begins with a PROXY header (v1 or v2,\n"
	    "                           HAProxy's): the client's address comes from it, the\n"
	    "                           balancer's is kept as via; rules and --max-per-source\n"
	    "                           apply to the client\n"
	    "      --proxy-timeout SEC  seconds the header may take (default 3)\n"
	    "      --proxy-from CIDR    who may send headers (repeatable; default 127.0.0.0/8\n"
	    "                           and ::1); other connections are refused unread\n"
	    "      --proxy-no-client HOW  a header that names no client (LOCAL, UNKNOWN,\n"
	    "                           UNSPEC): serve (default; no rule applies), judge (the\n"
	    "                           rules and --max-per-source apply to the balancer's\n"
	    "                           address) or refuse\n"
	    "  -u, --user USER[:GROUP]  after binding and opening the store, run as USER (and\n"
	    "                           GROUP, or USER's group): names from /etc/passwd and\n"
	    "                           /etc/group, or numbers\n"
	    "      --inetd              serve the one connection on standard input, as started\n"
	    "                           by inetd, xinetd or systemd (Accept=yes); logs go to\n"
	    "                           syslog; the store file may be shared by many of them\n"
	    "      --echo-after WHEN    echo a chunk (or datagram) only once the store has\n"
	    "                           written its record (written: write(2) returned) or\n"
	    "                           made it durable (synced: an fdatasync covering it\n"
	    "                           returned); off by default.  --idle-timeout bounds the\n"
	    "                           wait (reason receipt-timeout)\n"
	    "      --metrics ADDR:PORT  answer HTTP GET /metrics there with the live figures in\n"
	    "                           Prometheus's text format (PORT alone: 127.0.0.1)\n"
	    "      --metrics-allow CIDR who may scrape (repeatable; default 127.0.0.0/8, ::1)\n"
	    "      --log-format FMT     text (default) or json (one JSON object a line)\n"
	    "      --sandbox on|off     confine every process but the master: a seccomp\n"
	    "                           allow-list per role and, where the kernel has it,\n"
	    "                           Landlock (no files, no TCP bind or connect; the store\n"
	    "                           only its directory); in fork mode a confined\n"
	    "                           spawner forks the sessions, which inherit its filter;\n"
	    "                           default on\n"
	    "      --source-prefix V4:V6  --max-per-source and --udp-per-source count per\n"
	    "                           block of this many bits (default 32:64: an IPv6 /64\n"
	    "                           is one source; IPv4-mapped IPv6 counts as IPv4)\n"
	    ,
	    "  -f, --config FILE        read settings from FILE first: a line is a long option\n"
	    "                           name and its value (\"allow 10.0.0.0/8\" or \"grace = 5\"),\n"
	    "                           # starts a comment; options given here win; HUP reads\n"
	    "                           it again\n"
	    "  -t, --check-config       check the file and the options, say so and exit (0, or\n"
	    "                           64 with the file, line and reason)\n"
	    "      --agent-port PORT    answer HAProxy's agent check on PORT (0: the kernel\n"
	    "                           chooses; logged): \"ready N%\" (free session slots),\n"
	    "                           \"drain\" while shutting down, \"down\" while the\n"
	    "                           store holds sessions back\n"
	    "      --agent-address ADDR the agent's address (default 127.0.0.1)\n"
	    "      --drain SEC          after TERM, keep serving SEC seconds while the agent says\n"
	    "                           drain, then shut down (default 0)\n"
	    "      --source-penalty SEC refuse for SEC seconds a source (its --source-prefix\n"
	    "                           block) whose connections keep being culled or failing\n"
	    "                           their PROXY header (8 in SEC); 0 = off (default)\n"
	    "  -h, --help               show this help and exit\n"
	    "  -V, --version            show the version and exit\n"
	    "\n"
	    "Sockets passed by systemd (LISTEN_PID, LISTEN_FDS) are served instead of binding;\n"
	    "with NOTIFY_SOCKET set, readiness, status and stopping are reported to it.\n"
	    "Signals: TERM/INT shut down gracefully, HUP reopens the store file (and\n"
	    "reloads -f's file: rules, limits, timeouts, pool sizes; the rest needs a restart),\n"
	    "USR1 prints one stats line, USR2 upgrades the binary in place (PATH -t checks\n"
	    "it, then it is executed with the same pid, sockets, sessions and store).\n"
	    "Exit status 64 for a bad option, an unusable\n"
	    "address or port, or a store that cannot be opened; 74 when the store could\n"
	    "not write every record by the end.\n",
	NULL
};

const char *
opts_usage(void)
{
	static char text[8192];

	if (text[0] == '\0')
		for (int i = 0; opts_usage_parts[i] != NULL; i++)
			strncat(text, opts_usage_parts[i], sizeof(text) - strlen(text) - 1);
	return text;
}
