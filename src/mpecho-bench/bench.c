/*
 * bench.c - mpecho-bench, a load generator for TCP echo servers that checks every byte: the
 * parent.
 *
 * The parent parses the options, resolves the address (numerically: it never looks up a name),
 * and forks the workers (bench_worker.c; in flood mode the flood workers and one probe process,
 * bench_flood.c; in udp mode UDP clients, bench_udp.c).  Each worker keeps its counters and latency histogram in a page shared with
 * the parent, which reads them for the progress line and, once the workers have exited, merges
 * them into the report (bench_report.c).  The parent and the workers talk through two pipes
 * besides: a worker writes one byte on "ready" when its connections are set up, and the parent
 * closes "go" to start them all at once.  The workers hold "ready"'s write end until they exit,
 * so its EOF tells the parent they are all done; a worker whose parent dies is killed
 * (PR_SET_PDEATHSIG).  The server's memory and CPU come from /proc (procfs.c).
 */
#define _GNU_SOURCE
#include "bench.h"
#include "log.h"
#include "net.h"
#include "num.h"
#include "sig.h"
#include "version.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROC_ROOT "/proc"

enum opt_ids { OPT_PID = 256, OPT_JSON, OPT_RST, OPT_TEXT, OPT_FLOOD_CLOSE, OPT_PAYLOAD };

/* flood: how each connection ends (--flood-close) */
static int flood_fin;

static const char bench_usage_text[] =
"usage: mpecho-bench [options] MODE [HOST [PORT]]\n"
"       mpecho-bench fsync-probe DIR [COUNT]\n"
"Drives a TCP echo server (udp mode: a UDP one) and checks every byte it\n"
"echoes.  HOST is an IP address, or localhost for 127.0.0.1 (no name is ever\n"
"looked up); the default is localhost 7007, mpechod's own default port (the\n"
"packaged mpechod service listens on 7, the well-known echo port).\n"
"\n"
"Modes:\n"
"  connect   each connection: connect, send SIZE bytes, read them back, close;\n"
"            reports connections/s and the latency of the whole cycle\n"
"  rr        N persistent connections ping-pong SIZE-byte messages; reports\n"
"            requests/s and latency percentiles (p50 p90 p99 p99.9 max)\n"
"  stream    N connections write SIZE-byte chunks while reading the echo back\n"
"            concurrently; reports MiB/s echoed\n"
"  hold      opens N connections, checks that each echoes, holds them for the\n"
"            duration, checks them again; reports the server's memory per\n"
"            connection: the PSS summed over its process tree (/proc smaps_rollup)\n"
"            less the sum before, divided by the connections held\n"
"  flood     a flood of dead connections: N in flight connect and close at once\n"
"            with a reset (or a FIN, --flood-close fin) without sending, except\n"
"            one in ten that first sends a SIZE-byte chunk; meanwhile a probe\n"
"            connects a fresh client every 200 ms and times its echo of a few\n"
"            bytes.  Reports the flood's connections/s, the probes' latency\n"
"            (p50 p90 p99 max) and probe errors (a failure, a wrong echo, or no\n"
"            echo within the timeout)\n"
"  udp       N UDP clients (sockets) ping-pong SIZE-byte datagrams (12-65507\n"
"            bytes: a request number and a pattern, checked): reports\n"
"            requests/s, latency percentiles, and requests lost (no echo within\n"
"            the timeout: the client goes on with the next).  A wrong echo, a\n"
"            second one or an ICMP port unreachable is an error; a loss is not,\n"
"            but a run in which no request is answered fails\n"
"\n";

/* The rest of it (one string would pass the 4095 bytes ISO C asks compilers to take). */
static const char bench_usage_options[] =
"Options:\n"
"  -c, --connections N  concurrent connections (udp: clients), 1-100000\n"
"                       (default 1; flood: 16)\n"
"  -d, --duration SEC   seconds measured, e.g. 2 or 0.5 (default 5)\n"
"  -s, --size BYTES     message size, 1-16777216 (default 64; stream: 65536,\n"
"                       the size of each write; flood: 16384, the chunk;\n"
"                       udp: 12-65507)\n"
"  -w, --workers N      worker processes, each with an epoll loop over its share\n"
"                       of the connections (default: one per CPU, at most N)\n"
"  -t, --timeout MS     a connect, an echo or a stalled stream counts as an\n"
"                       error after MS milliseconds (default 5000); udp: a\n"
"                       request counts as lost\n"
"      --pid PID        the server's pid, for its memory and CPU figures\n"
"                       (default: the process listening on TCP PORT, from\n"
"                       /proc; udp: none unless given)\n"
"      --rst            close with a reset (SO_LINGER 0): no TIME_WAIT is left,\n"
"                       which otherwise caps a loopback client near 14,000 conn/s\n"
"      --flood-close rst|fin  flood: how each connection ends (default rst)\n"
"      --text           printable payload bytes instead of binary ones\n"
"      --payload binary|text|ko  the payload: pseudo-random bytes (the default),\n"
"                       printable ASCII (as --text), or UTF-8 Korean text\n"
"                       (Hangul syllables and spaces, valid UTF-8 from each\n"
"                       connection's first byte)\n"
"      --json           print one JSON object instead of the text report\n"
"  -h, --help           show this help and exit\n"
"  -V, --version        show the version and exit\n"
"\n"
"Every byte that comes back is compared with the byte sent (a pseudo-random\n"
"pattern at an offset of each connection's own): wrong bytes, short echoes,\n"
"extra bytes, resets and timeouts are errors; they are reported and the exit\n"
"status is 1 (udp: losses alone are not, unless nothing was answered).  A fast\n"
"result from a broken server is a failure.  Exit status 64 for bad usage, 71\n"
"for a local failure.\n"
"\n"
"On one machine the client and the server share the CPUs: the report gives\n"
"both sides' CPU use, so a saturated client shows.  A progress line is drawn\n"
"while stderr is a terminal.\n";
/* In two parts: one string literal may be at most 4095 bytes in ISO C. */
static const char bench_usage_fsync[] =
"\n"
"fsync-probe times COUNT (default 50) fdatasync calls, one after the other, on a\n"
"file in DIR, and prints their p50, p90 and max: the floor under the latency of\n"
"mpechod's synced receipts on that file system.\n";

static long
bench_number(const char *name, const char *arg, long min, long max)
{
	long v;

	if (num_parse(arg, min, max, &v) < 0)
		usage_error("%s: '%.64s' is not a whole number from %ld to %ld", name, arg, min,
		    max);
	return v;
}

static double
bench_seconds(const char *arg)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (arg[0] < '0' || arg[0] > '9' || errno != 0 || *end != '\0' || !(v >= 0.05) ||
	    v > 86400)
		usage_error("duration: '%.64s' is not a number of seconds from 0.05 to 86400",
		    arg);
	return v;
}

static enum bench_payload
bench_payload(const char *arg)
{
	for (int p = 0; p < PAYLOAD_MAX; p++)
		if (strcmp(arg, bench_payload_names[p]) == 0)
			return (enum bench_payload)p;
	usage_error("payload: '%.64s' is not binary, text or ko", arg);
}

static void
bench_option(int ch, const char *arg, char **argv)
{
	switch (ch) {
	case 'c': bench_cfg.conns = (int)bench_number("connections", arg, 1, BENCH_MAX_CONNS); break;
	case 'd': bench_cfg.duration = bench_seconds(arg); break;
	case 's': bench_cfg.size = (size_t)bench_number("size", arg, 1, BENCH_MAX_SIZE); break;
	case 'w': bench_cfg.workers = (int)bench_number("workers", arg, 1, BENCH_MAX_WORKERS); break;
	case 't': bench_cfg.timeout_ms = (int)bench_number("timeout", arg, 1, 3600000); break;
	case OPT_PID: bench_cfg.pid = (pid_t)bench_number("pid", arg, 1, INT_MAX); break;
	case OPT_JSON: bench_cfg.json = 1; break;
	case OPT_RST: bench_cfg.rst = 1; break;
	case OPT_TEXT: bench_cfg.payload = PAYLOAD_TEXT; break;
	case OPT_PAYLOAD: bench_cfg.payload = bench_payload(arg); break;
	case OPT_FLOOD_CLOSE:
		if (strcmp(arg, "rst") != 0 && strcmp(arg, "fin") != 0)
			usage_error("flood-close: '%.64s' is not rst or fin", arg);
		flood_fin = strcmp(arg, "fin") == 0;
		break;
	case 'h':
		fputs(bench_usage_text, stdout);
		fputs(bench_usage_options, stdout);
		fputs(bench_usage_fsync, stdout);
		exit(0);
	case 'V':
		printf("mpecho-bench %s\n", MPECHO_VERSION);
		exit(0);
	default:
		if (optopt != 0 && optopt < 256)
			usage_error("unknown option or missing argument: -%c", optopt);
		usage_error("unknown option or missing argument: %.64s", argv[optind - 1]);
	}
}

/* The defaults that depend on the mode. */
static void
bench_defaults(void)
{
	int flood = bench_cfg.mode == MODE_FLOOD;

	if (bench_cfg.conns == 0)
		bench_cfg.conns = flood ? BENCH_FLOOD_CONNS : 1;
	if (bench_cfg.size == 0)
		bench_cfg.size = bench_cfg.mode == MODE_STREAM ? 65536 :
		    flood ? BENCH_FLOOD_CHUNK : 64;
	if (flood)
		bench_cfg.rst = !flood_fin;
	if (bench_cfg.mode == MODE_UDP &&
	    (bench_cfg.size < BENCH_UDP_HDR || bench_cfg.size > BENCH_UDP_MAX))
		usage_error("size: a udp datagram is %d to %d bytes", BENCH_UDP_HDR, BENCH_UDP_MAX);
}

static void
bench_parse(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "connections", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 's' },
		{ "workers", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "pid", required_argument, NULL, OPT_PID },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "rst", no_argument, NULL, OPT_RST },
		{ "text", no_argument, NULL, OPT_TEXT },
		{ "flood-close", required_argument, NULL, OPT_FLOOD_CLOSE },
		{ "payload", required_argument, NULL, OPT_PAYLOAD },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int ch, m;

	bench_cfg.duration = 5;
	bench_cfg.timeout_ms = 5000;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "c:d:s:w:t:hV", longopts, NULL)) != -1)
		bench_option(ch, optarg, argv);
	if (optind >= argc)
		usage_error("no MODE given: connect, rr, stream, hold, flood or udp");
	for (m = 0; m < MODE_MAX && strcmp(argv[optind], bench_mode_names[m]) != 0; m++)
		;
	if (m == MODE_MAX)
		usage_error("unknown mode '%.64s': connect, rr, stream, hold, flood or udp",
		    argv[optind]);
	bench_cfg.mode = (enum bench_mode)m;
	bench_cfg.host = optind + 1 < argc ? argv[optind + 1] : "localhost";
	bench_cfg.port = optind + 2 < argc ? argv[optind + 2] : "7007";
	if (optind + 3 < argc)
		usage_error("unexpected argument '%.64s'", argv[optind + 3]);
	bench_cfg.portnum = (int)bench_number("port", bench_cfg.port, 1, 65535);
	bench_defaults();
}

static void
bench_resolve(void)
{
	struct addrinfo hints, *res;
	char hbuf[NET_ADDRLEN];
	const char *host = bench_cfg.host;
	size_t n = strlen(host);
	int rc;

	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (host[0] == '[' && n > 2 && n - 2 < sizeof(hbuf) && host[n - 1] == ']') {
		memcpy(hbuf, host + 1, n - 2);
		hbuf[n - 2] = '\0';
		host = hbuf;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(host, bench_cfg.port, &hints, &res);
	if (rc != 0)
		usage_error("HOST '%.64s' is not an IP address or localhost (names are not "
		    "looked up)", bench_cfg.host);
	memcpy(&bench_cfg.addr, res->ai_addr, res->ai_addrlen);
	bench_cfg.addrlen = res->ai_addrlen;
	freeaddrinfo(res);
}

/* Each worker needs a descriptor per connection; ask for what the hard limit allows, and as
 * root raise the hard limit too. */
static void
bench_raise_nofile(int per_worker)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)per_worker + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max < want) {
		struct rlimit up = { want, want };
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < want)
		fatalx(EX_OSERR, "each worker needs %llu descriptors and the limit is %llu; use "
		    "more workers (-w) or raise ulimit -n", (unsigned long long)want,
		    (unsigned long long)rl.rlim_cur);
}

/* The run as the parent sees it, and as the report shows it. */
static struct bench_run run_state;

static long long
clients_cpu(void)
{
	long long t = 0;

	for (int i = 0; i < run_state.nprocs; i++)
		t += procfs_cpu(PROC_ROOT, run_state.wpid[i]);
	return t;
}

static void
bench_fork_workers(void)
{
	int nw = run_state.nworkers, ready[2], go[2];
	size_t shsize = sizeof(struct bench_shared) +
	    (size_t)run_state.nprocs * sizeof(struct bench_stats);
	pid_t parent = getpid();

	run_state.sh = mmap(NULL, shsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (run_state.sh == MAP_FAILED)
		fatal(EX_OSERR, "mmap");
	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
		fatal(EX_OSERR, "pipe");
	for (int i = 0; i < run_state.nprocs; i++) {
		int share = bench_cfg.conns / nw + (i < bench_cfg.conns % nw);
		pid_t pid = fork();

		if (pid < 0)
			fatal(EX_OSERR, "fork");
		if (pid == 0) {
			close(ready[0]);
			close(go[1]);
			if (i == nw)
				flood_probe_main(i, run_state.sh, ready[1], go[0], parent);
			if (bench_cfg.mode == MODE_FLOOD)
				flood_worker_main(i, share, nw, run_state.sh, ready[1], go[0], parent);
			if (bench_cfg.mode == MODE_UDP)
				udp_worker_main(i, share, nw, run_state.sh, ready[1], go[0], parent);
			worker_main(i, share, nw, run_state.sh, ready[1], go[0], parent);
		}
		run_state.wpid[i] = pid;
	}
	close(ready[1]);
	close(go[0]);
	run_state.ready_rd = ready[0];
	run_state.go_wr = go[1];
}

static void
bench_kill_workers(void)
{
	for (int i = 0; i < run_state.nprocs; i++)
		if (run_state.wpid[i] > 0)
			kill(run_state.wpid[i], SIGKILL);
}

static uint64_t
bench_sum(size_t offset)
{
	uint64_t t = 0;

	for (int i = 0; i < run_state.nworkers; i++)
		t += stat_get((const uint64_t *)(const void *)((const char *)&run_state.sh->w[i] +
		    offset));
	return t;
}

static uint64_t
bench_errors(void)
{
	uint64_t t = 0;

	for (int k = 0; k < E_MAX; k++)
		t += bench_sum(offsetof(struct bench_stats, err) + (size_t)k * sizeof(uint64_t));
	return t;
}

static void
bench_progress(const char *what, int64_t now)
{
	double t = run_state.start_ns ? (double)(now - run_state.start_ns) / NS : 0;
	uint64_t done = bench_sum(offsetof(struct bench_stats, done));
	uint64_t bytes = bench_sum(offsetof(struct bench_stats, bytes));
	char line[160];

	if (!run_state.tty)
		return;
	if (bench_cfg.mode == MODE_STREAM)
		snprintf(line, sizeof(line), "%s %.1f/%.1f s  %.1f MiB  %.0f MiB/s", what, t,
		    bench_cfg.duration, (double)bytes / 1048576.0,
		    t > 0 ? (double)bytes / 1048576.0 / t : 0);
	else if (bench_cfg.mode == MODE_HOLD)
		snprintf(line, sizeof(line), "%s %.1f/%.1f s  %llu held", what, t, bench_cfg.duration,
		    (unsigned long long)bench_sum(offsetof(struct bench_stats, held)));
	else
		snprintf(line, sizeof(line), "%s %.1f/%.1f s  %llu done  %.0f/s", what, t,
		    bench_cfg.duration, (unsigned long long)done, t > 0 ? (double)done / t : 0);
	fprintf(stderr, "\r%s  %llu errors\033[K", line, (unsigned long long)bench_errors());
}

/* Waits until every worker has written its ready byte; 0, or -1 when one died or the setup
 * outlived every connection's timeout. */
static int
bench_wait_ready(void)
{
	int64_t deadline = bench_now_ns() + (int64_t)bench_cfg.timeout_ms * 1000000 + 5 * NS;
	struct pollfd pfd = { .fd = run_state.ready_rd, .events = POLLIN };
	int got = 0;
	char buf[BENCH_MAX_WORKERS];
	ssize_t n;

	while (got < run_state.nprocs) {
		int64_t now = bench_now_ns();
		if (now >= deadline)
			return -1;
		bench_progress("connecting", now);
		if (poll(&pfd, 1, BENCH_PROGRESS_MS) <= 0)
			continue;
		n = read(run_state.ready_rd, buf, sizeof(buf));
		if (n <= 0)
			return -1;
		got += (int)n;
	}
	return 0;
}

static void
bench_sample_end(int64_t now)
{
	run_state.window_s = (double)(now - run_state.start_ns) / NS;
	run_state.client1 = clients_cpu();
	run_state.machine1 = procfs_idle_ticks(PROC_ROOT);
	if (run_state.server)
		run_state.srv1 = procfs_tree_usage(PROC_ROOT, run_state.server, 0);
}

/* From go to the last worker's exit: progress, the samples at the middle (hold) and the end of
 * the window, and a hard deadline after which the workers are killed. */
static void
bench_watch(void)
{
	struct pollfd pfd = { .fd = run_state.ready_rd, .events = POLLIN };
	int64_t end = run_state.start_ns + (int64_t)(bench_cfg.duration * NS);
	int64_t mid = run_state.start_ns + (int64_t)(bench_cfg.duration * NS / 2);
	int64_t hard = end + 2 * (int64_t)bench_cfg.timeout_ms * 1000000 + 5 * NS;
	int sampled = 0, measured = bench_cfg.mode != MODE_HOLD || run_state.server == 0;
	char buf[64];

	for (;;) {
		int64_t now = bench_now_ns(), wake = now + BENCH_PROGRESS_MS * 1000000LL;
		if (!measured && now >= mid) {
			run_state.held = procfs_tree_usage(PROC_ROOT, run_state.server, 1);
			measured = 1;
		}
		if (!sampled && now >= end) {
			bench_sample_end(now);
			sampled = 1;
		}
		if (now >= hard) {
			run_state.worker_failures++;
			run_state.failure = "the workers did not finish in time "
			    "(duration + 2 timeouts + 5 s)";
			bench_kill_workers();
			return;
		}
		bench_progress(sampled ? "finishing" : bench_mode_names[bench_cfg.mode], now);
		if (!measured && mid < wake)
			wake = mid;
		if (!sampled && end < wake)
			wake = end;
		if (poll(&pfd, 1, (int)((wake - now + 999999) / 1000000)) > 0 &&
		    read(run_state.ready_rd, buf, sizeof(buf)) == 0) {
			if (!sampled)
				bench_sample_end(bench_now_ns());
			return;
		}
	}
}

static void
bench_reap(void)
{
	int status;

	for (int i = 0; i < run_state.nprocs; i++) {
		while (waitpid(run_state.wpid[i], &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !run_state.sh->w[i].finished)
			run_state.worker_failures++;
	}
	if (run_state.tty)
		fputs("\r\033[K", stderr);
}

static void
bench_locate_server(void)
{
	run_state.server = bench_cfg.pid;
	/* The listener found would be TCP's: a UDP server need not have one, and another
	 * process may listen on the same port number. */
	if (run_state.server == 0 && bench_cfg.mode != MODE_UDP) {
		run_state.server = procfs_find_listener(PROC_ROOT, bench_cfg.portnum);
		run_state.server_found = run_state.server != 0;
	}
	if (run_state.server && kill(run_state.server, 0) < 0 && errno == ESRCH)
		fatalx(EX_USAGE, "no process %d", (int)run_state.server);
	if (bench_cfg.mode == MODE_HOLD && run_state.server) {
		run_state.srv0 = procfs_tree_usage(PROC_ROOT, run_state.server, 1);
	}
}

static int
bench_run(void)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	run_state.nworkers = bench_cfg.workers ? bench_cfg.workers : (int)(ncpu > 0 ? ncpu : 1);
	if (run_state.nworkers > bench_cfg.conns)
		run_state.nworkers = bench_cfg.conns;
	run_state.nprocs = run_state.nworkers + (bench_cfg.mode == MODE_FLOOD);
	bench_raise_nofile((bench_cfg.conns + run_state.nworkers - 1) / run_state.nworkers);
	run_state.tty = isatty(STDERR_FILENO);
	bench_locate_server();
	bench_fork_workers();
	if (bench_wait_ready() < 0) {
		bench_kill_workers();
		run_state.worker_failures++;
		run_state.failure = "the connections were not all set up in time (timeout + 5 s)";
	} else {
		run_state.client0 = clients_cpu();
		run_state.machine0 = procfs_idle_ticks(PROC_ROOT);
		if (run_state.server)
			run_state.srv0.cpu_ticks = procfs_tree_usage(PROC_ROOT, run_state.server, 0).cpu_ticks;
		run_state.start_ns = run_state.sh->start_ns = bench_now_ns();
		close(run_state.go_wr);
		bench_watch();
	}
	bench_reap();
	return report_print(&run_state) ? 1 : 0;
}

int
main(int argc, char **argv)
{
	log_init("mpecho-bench", NULL);
	if (argc > 1 && strcmp(argv[1], "fsync-probe") == 0)
		return bench_fsync_probe(argc - 1, argv + 1);
	bench_parse(argc, argv);
	bench_resolve();
	sig_ignore(SIGPIPE);
	bench_pattern_make();
	return bench_run();
}
