/*
 * opts.h - mpechod's settings and their command-line parsing.  Pure: nothing here prints,
 * exits or touches the network, so the parser is unit-tested and fuzzed as it is.
 */
#ifndef MPECHO_OPTS_H
#define MPECHO_OPTS_H

#include <stddef.h>


#define OPTS_MAX_BINDS 16
#define OPTS_MAX_RULES 256 /* each of --allow, --deny, --proxy-from (cidr.h's CIDR_LIST_MAX) */
#define OPTS_ERRLEN 256

enum store_format { STORE_JSONL, STORE_RAW };
enum fsync_policy { FSYNC_ALWAYS, FSYNC_EVERYSEC, FSYNC_NO };
/* What the store does while its file cannot be written. */
enum store_full { STORE_FULL_DROP, STORE_FULL_BLOCK };

struct settings {
	int port;                          /* TCP port; 0 lets the kernel choose */
	int port_given;                    /* -p was given */
	const char *binds[OPTS_MAX_BINDS]; /* addresses to listen on; none: every address */
	int nbinds;
	const char *store;                 /* store file; NULL with --no-store */
	enum store_format format;          /* what the store writes */
	enum fsync_policy fsync;           /* when the store fsyncs (Redis's appendfsync) */
	enum store_full store_full;        /* drop records, or hold sessions back, while full */
	int max_clients;                   /* concurrent sessions */
	int idle_timeout;                  /* seconds without input or progress; 0: none */
	int grace;                         /* seconds sessions get to finish at shutdown */
	int max_per_source;                /* concurrent sessions from one address; 0: any */
	int max_rate;                      /* new sessions per second; 0: any */
	int defer_accept;                  /* TCP_DEFER_ACCEPT seconds; 0: off */
	int prefork;                       /* a pool of processes instead of a fork each */
	int min_spare, max_spare;          /* idle pool processes kept (Apache's terms) */
	int max_conns_per_child;           /* connections a pool process serves; 0: any */
	int udp;                           /* also serve UDP echo */
	int inetd;                         /* serve the one connection on standard input */
	int proxy;                         /* every connection begins with a PROXY header */
	int proxy_timeout;                 /* seconds the header may take */
	const char *proxy_from[OPTS_MAX_RULES]; /* who may send one (CIDR text; checked by
	                                         * the master); none given: loopback */
	int nproxy_from;
	int proxy_no_client;               /* a header naming no client: 0 serve, 1 judge by
	                                    * the balancer's address, 2 refuse */
	const char *allow[OPTS_MAX_RULES], *deny[OPTS_MAX_RULES]; /* CIDR text */
	int nallow, ndeny;
	const char *user;                  /* -u USER[:GROUP] to run as; NULL: stay */
	int udp_per_source;                /* UDP replies a second per source address; 0: any */
	int udp_rate;                      /* UDP replies a second in all; 0: any */
	int echo_after;                    /* --echo-after: enum receipt_mode (0 off, 1 written,
	                                    * 2 synced) */
	const char *metrics;               /* --metrics ADDR:PORT; NULL: no endpoint */
	const char *metrics_allow[OPTS_MAX_RULES]; /* who may scrape (CIDR text); none: loopback */
	int nmetrics_allow;
	int log_json;                      /* --log-format json */
	int sandbox;                       /* seccomp and Landlock for every child (sandbox.c) */
	int prefix4, prefix6;              /* the source blocks per-source limits count by */
	const char *config;                /* -f: the configuration file (conf.c); NULL: none */
	int check_config;                  /* -t: check the settings and exit */
	const char *agent_addr;            /* --agent-address; NULL: 127.0.0.1 */
	int agent_port;                    /* --agent-port: HAProxy's agent check; 0: any
	                                    * port; -1: none */
	int drain;                         /* --drain: seconds serving after SIGTERM, saying drain */
	int source_penalty;                /* --source-penalty: seconds a source is refused; 0 off */
};

enum opts_result { OPTS_RUN, OPTS_HELP, OPTS_VERSION, OPTS_ERROR };

/* Parses argv into s (which opts_parse first sets to the defaults).  On OPTS_ERROR, err holds
 * a one-line reason. */
enum opts_result opts_parse(int argc, char **argv, struct settings *s, char *err, size_t errlen);
/* The defaults, as opts_parse starts from them. */
void opts_defaults(struct settings *s);
/* The settings of one option, named as its long form ("allow", "max-clients") with its value
 * (NULL for an option that takes none), on top of s: what a configuration file's line does.
 * -1 with a one-line reason in err.  Options that only the command line may give (config,
 * check-config, help, version) are refused. */
int opts_set(const char *name, const char *value, struct settings *s, char *err, size_t errlen);
/* The command line on top of s (a configuration file's settings) instead of the defaults: an
 * option given there wins; a list (--allow, --deny, --proxy-from, --bind) given there replaces
 * the file's.  The checks between options are not made (opts_check). */
enum opts_result opts_parse_over(int argc, char **argv, struct settings *s, char *err,
    size_t errlen);
/* The checks between options, once every source of settings is in: 0, or -1 with err. */
int opts_check(const struct settings *s, char *err, size_t errlen);
/* The --help text. */
const char *opts_usage(void);

#endif
