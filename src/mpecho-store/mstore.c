/*
 * mstore.c - mpecho-store, the store read back: options and dispatch to the commands.
 *
 *   mpecho-store list   [filters] [--json] FILE...
 *   mpecho-store dump   [--both] CONN... FILE...
 *   mpecho-store check  FILE...
 *   mpecho-store follow [--from-start] [--poll MS] [CONN] FILE
 *   mpecho-store stats  [filters] [--interval DUR] [--top N] FILE...
 *
 * It only reads: the store files (plain or gzip, "-" for standard input), never the server.
 */
#define _GNU_SOURCE
#include "log.h"
#include "mstore.h"
#include "num.h"
#include "version.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char mstore_usage[] =
    "usage: mpecho-store COMMAND [OPTIONS] FILE...\n"
    "  list   [--conn ID] [--peer ADDR[/BITS]] [--since T] [--until T] [--reason R] [--json]\n"
    "         one line per connection\n"
    "  dump   [--both] CONN... FILE...   the bytes echoed on those connections\n"
    "  check                             verify the store's promises (exit 1 on a violation)\n"
    "  follow [--from-start] [--poll MS] [CONN] FILE   records (or CONN's bytes) as written\n"
    "  stats  [filters] [--interval DUR] [--top N]     connections, bytes, reasons, peers\n"
    "common: -1, --one-instance  every FILE is one store, in the order given\n"
    "        -q, --quiet         no warning for lines that are skipped\n"
    "FILE: a store file, rotated (FILE.N) or gzipped (FILE.N.gz), or - for standard input.\n"
    "Files named alike are one instance, read oldest first; other names are merged by time.\n"
    "ID: N, L.N (server life L) or I:L.N (instance I); T: RFC 3339, a date, now or -DUR;\n"
    "DUR: 90s, 15m, 1h, 2d.  See mpecho-store(1).\n";

enum { O_CONN = 256, O_PEER, O_SINCE, O_UNTIL, O_REASON, O_JSON, O_BOTH, O_FROM, O_POLL,
	O_INTERVAL, O_TOP };

static const struct option mstore_longopts[] = {
	{ "conn", required_argument, NULL, O_CONN },
	{ "peer", required_argument, NULL, O_PEER },
	{ "since", required_argument, NULL, O_SINCE },
	{ "until", required_argument, NULL, O_UNTIL },
	{ "reason", required_argument, NULL, O_REASON },
	{ "json", no_argument, NULL, O_JSON },
	{ "both", no_argument, NULL, O_BOTH },
	{ "from-start", no_argument, NULL, O_FROM },
	{ "poll", required_argument, NULL, O_POLL },
	{ "interval", required_argument, NULL, O_INTERVAL },
	{ "top", required_argument, NULL, O_TOP },
	{ "one-instance", no_argument, NULL, '1' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static const struct {
	const char *name;
	enum mcmd cmd;
	const int *allowed; /* options besides the common ones, 0-terminated */
} mstore_cmds[] = {
	{ "list", MCMD_LIST, (const int[]){ O_CONN, O_PEER, O_SINCE, O_UNTIL, O_REASON, O_JSON, 0 } },
	{ "dump", MCMD_DUMP, (const int[]){ O_BOTH, O_CONN, 0 } },
	{ "check", MCMD_CHECK, (const int[]){ 0 } },
	{ "follow", MCMD_FOLLOW, (const int[]){ O_FROM, O_POLL, 0 } },
	{ "stats", MCMD_STATS, (const int[]){ O_CONN, O_PEER, O_SINCE, O_UNTIL, O_REASON,
	    O_INTERVAL, O_TOP, 0 } },
};

static int
mstore_allowed(const int *allowed, int c)
{
	for (; *allowed != 0; allowed++)
		if (*allowed == c)
			return 1;
	return strchr("1qhV", c) != NULL;
}

static void
mstore_add_conn(struct mopts *o, const char *s)
{
	if (o->filt.nconns == MFILT_MAX)
		usage_error("at most %d connections", MFILT_MAX);
	if (mfilt_parse_conn(s, &o->filt.conns[o->filt.nconns]) < 0)
		usage_error("'%s' is not a connection (N, L.N or I:L.N)", s);
	o->filt.nconns++;
}

static void
mstore_add_peer(struct mopts *o, const char *s)
{
	char err[256];

	if (o->filt.nnets == MFILT_MAX)
		usage_error("at most %d peers", MFILT_MAX);
	if (cidr_parse(s, &o->filt.nets[o->filt.nnets], err, sizeof(err)) < 0)
		usage_error("--peer %s", err);
	o->filt.nnets++;
}

static int64_t
mstore_time(const char *s)
{
	struct timespec now;
	int64_t us;

	clock_gettime(CLOCK_REALTIME, &now);
	if (mfilt_parse_time(s, (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000, &us) < 0)
		usage_error("'%s' is not a time (RFC 3339, a date, now or -DURATION)", s);
	return us;
}

static void
mstore_option(struct mopts *o, int c, const char *arg)
{
	long n;

	switch (c) {
	case O_CONN: mstore_add_conn(o, arg); break;
	case O_PEER: mstore_add_peer(o, arg); break;
	case O_SINCE: o->filt.since = mstore_time(arg); break;
	case O_UNTIL: o->filt.until = mstore_time(arg); break;
	case O_REASON:
		if (o->filt.nreasons == MFILT_MAX)
			usage_error("at most %d reasons", MFILT_MAX);
		o->filt.reasons[o->filt.nreasons++] = arg;
		break;
	case O_JSON: o->json = 1; break;
	case O_BOTH: o->both = 1; break;
	case O_FROM: o->from_start = 1; break;
	case O_POLL:
		if (num_parse(arg, 10, 5000, &n) < 0)
			usage_error("--poll '%s' is not a number of milliseconds from 10 to 5000", arg);
		o->poll_ms = (int)n;
		break;
	case O_INTERVAL:
		if (mfilt_parse_duration(arg, &o->interval) < 0)
			usage_error("--interval '%s' is not a duration (90s, 15m, 1h, 2d)", arg);
		break;
	case O_TOP:
		if (num_parse(arg, 0, 1000, &n) < 0)
			usage_error("--top '%s' is not a number from 0 to 1000", arg);
		o->top = (int)n;
		break;
	case '1': o->one_instance = 1; break;
	case 'q': o->quiet = 1; break;
	default: usage_error("unknown option");
	}
}

/* dump's and follow's leading arguments that read as connections are connections; a file
 * named like a number can be given as ./17. */
static void
mstore_positional(struct mopts *o, int argc, char **argv, int i)
{
	struct mfilt_conn c;

	if (o->cmd == MCMD_DUMP || o->cmd == MCMD_FOLLOW)
		for (; i < argc - 1 && mfilt_parse_conn(argv[i], &c) == 0; i++)
			mstore_add_conn(o, argv[i]);
	o->files = argv + i;
	o->nfiles = (size_t)(argc - i);
	if (o->nfiles == 0)
		usage_error("no store file given (- for standard input)");
	if (o->cmd == MCMD_DUMP && o->filt.nconns == 0)
		usage_error("dump needs a connection (see list)");
	for (size_t f = 0; o->cmd == MCMD_DUMP && o->filt.nconns > 1 && f < o->nfiles; f++)
		if (strcmp(o->files[f], "-") == 0)
			usage_error("standard input can be read once: dump one connection from it");
	if (o->cmd == MCMD_FOLLOW && (o->nfiles != 1 || strcmp(o->files[0], "-") == 0 ||
	    o->filt.nconns > 1))
		usage_error("follow takes at most one connection and exactly one file");
}

static size_t
mstore_command(const char *name)
{
	for (size_t k = 0; k < sizeof(mstore_cmds) / sizeof(mstore_cmds[0]); k++)
		if (strcmp(name, mstore_cmds[k].name) == 0)
			return k;
	usage_error("unknown command '%s' (list, dump, check, follow or stats)", name);
}

static void
mstore_parse(struct mopts *o, int argc, char **argv)
{
	size_t k = mstore_command(argv[1]);
	int c;

	memset(o, 0, sizeof(*o));
	mfilt_init(&o->filt);
	o->top = 5;
	o->poll_ms = 200;
	o->cmd = mstore_cmds[k].cmd;
	optind = 2;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "1qhV", mstore_longopts, NULL)) != -1) {
		if (c == '?')
			usage_error("unknown option or missing value: '%s'", argv[optind - 1]);
		if (c == 'h' || c == 'V') {
			fputs(c == 'h' ? mstore_usage : "mpecho-store " MPECHO_VERSION "\n", stdout);
			exit(0);
		}
		if (!mstore_allowed(mstore_cmds[k].allowed, c))
			usage_error("'%s' is not an option of %s", argv[optind - 1], argv[1]);
		mstore_option(o, c, optarg);
	}
	if (o->filt.since >= o->filt.until)
		usage_error("--since is not before --until");
	mstore_positional(o, argc, argv, optind);
}

int
main(int argc, char **argv)
{
	static int (*const run[])(const struct mopts *) = {
		[MCMD_LIST] = mlist_run, [MCMD_DUMP] = mdump_run, [MCMD_CHECK] = mcheck_run,
		[MCMD_FOLLOW] = mfollow_run, [MCMD_STATS] = mstats_run,
	};
	struct mopts o;

	log_init(MSTORE_PROG, NULL);
	if (argc < 2)
		usage_error("no command (list, dump, check, follow or stats)");
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fputs(mstore_usage, stdout);
		return 0;
	}
	if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
		puts("mpecho-store " MPECHO_VERSION);
		return 0;
	}
	mstore_parse(&o, argc, argv);
	return run[o.cmd](&o);
}
