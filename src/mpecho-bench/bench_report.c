/*
 * bench_report.c - mpecho-bench's report, printed by the parent once the workers have exited:
 * it merges the workers' shared results and prints them as text or, with --json, as one JSON
 * object whose keys bench/report.py and the tests read.  Errors are always reported; a run with
 * any is a failure, and so is a udp run in which not one request was answered (its losses
 * alone are not).
 */
#define _GNU_SOURCE
#include "bench.h"
#include "net.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The workers' results added up. */
struct totals {
	uint64_t done, bytes, held, lost, late, errors;
	uint64_t err[E_MAX];
	struct hist lat;
	const char *first_error;
};

/* The run being reported; set by report_print, read-only here. */
static const struct bench_run *run;
/* flood: the probe's results, apart from the flood's */
static struct totals probe;

/* Adds up the slots from first to end - 1. */
static void
report_merge(struct totals *t, int first, int end)
{
	memset(t, 0, sizeof(*t));
	t->first_error = "";
	for (int i = first; i < end; i++) {
		const struct bench_stats *s = &run->sh->w[i];
		t->done += s->done;
		t->bytes += s->bytes;
		t->held += s->held;
		t->lost += s->lost;
		t->late += s->late;
		for (int k = 0; k < E_MAX; k++)
			t->err[k] += s->err[k];
		hist_merge(&t->lat, &s->lat);
		if (t->first_error[0] == '\0')
			t->first_error = s->first_error;
	}
	for (int k = 0; k < E_MAX; k++)
		t->errors += t->err[k];
}

/* The q-quantile in microseconds (never above the exact maximum). */
static double
report_quantile(const struct totals *t, double q)
{
	return hist_quantile(&t->lat, q) / 1000;
}

static double
report_rate(const struct totals *t)
{
	if (bench_cfg.mode == MODE_STREAM)
		return (double)t->bytes / 1048576.0 / bench_cfg.duration;
	return (double)t->done / bench_cfg.duration;
}

static const char *
report_rate_key(void)
{
	static const char *const keys[MODE_MAX] = {
		"conn_per_sec", "req_per_sec", "mib_per_sec", NULL, "flood_conn_per_sec",
		"req_per_sec"
	};
	return keys[bench_cfg.mode];
}

static double
report_cpu_pct(long long ticks)
{
	return run->window_s > 0 ? 100.0 * (double)ticks / (double)sysconf(_SC_CLK_TCK) / run->window_s
	    : 0;
}

/* What the whole machine used in the window, in % of one CPU. */
static double
report_machine_pct(void)
{
	double pct = 100.0 * (double)sysconf(_SC_NPROCESSORS_ONLN) -
	    report_cpu_pct(run->machine1 - run->machine0);

	return pct > 0 ? pct : 0;
}

/* PSS per held connection in KiB; negative when unknown. */
static double
report_pss_per_conn(const struct totals *t)
{
	if (!run->server || t->held == 0 || run->held.nprocs == 0)
		return -1;
	return (double)(run->held.pss_kib - run->srv0.pss_kib) / (double)t->held;
}

static void
report_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

/* "{" and the count of each kind of error, the object left open. */
static void
report_json_kinds(const uint64_t *err)
{
	putchar('{');
	for (int k = 0; k < E_MAX; k++)
		printf("%s\"%s\":%llu", k ? "," : "", bench_err_names[k], (unsigned long long)err[k]);
}

static void
report_json_common(const struct totals *t)
{
	printf("{\"mode\":\"%s\",\"host\":", bench_mode_names[bench_cfg.mode]);
	report_json_string(bench_cfg.host);
	printf(",\"port\":%d,\"connections\":%d,\"duration_s\":%g,\"size\":%zu,\"workers\":%d,"
	    "\"timeout_ms\":%d,\"rst\":%s,\"payload\":\"%s\"", bench_cfg.portnum,
	    bench_cfg.conns, bench_cfg.duration, bench_cfg.size, run->nworkers, bench_cfg.timeout_ms,
	    bench_cfg.rst ? "true" : "false", bench_payload_names[bench_cfg.payload]);
	printf(",\"errors\":%llu,\"error_kinds\":", (unsigned long long)t->errors);
	report_json_kinds(t->err);
	printf(",\"worker\":%d},\"first_error\":", run->worker_failures);
	if (t->first_error[0])
		report_json_string(t->first_error);
	else if (run->worker_failures)
		report_json_string(run->failure ? run->failure : "a worker failed");
	else
		fputs("null", stdout);
	printf(",\"window_s\":%.3f", run->window_s);
	if (run->server)
		printf(",\"server_pid\":%d,\"server_cpu_pct\":%.1f", (int)run->server,
		    report_cpu_pct(run->srv1.cpu_ticks - run->srv0.cpu_ticks));
	printf(",\"client_cpu_pct\":%.1f,\"machine_cpu_pct\":%.1f", report_cpu_pct(run->client1 -
	    run->client0), report_machine_pct());
}

/* The flood's connections, then the probes: their latency, and their errors apart from the
 * flood's. */
static void
report_json_flood(const struct totals *t)
{
	printf(",\"flood_close\":\"%s\",\"chunk_every\":%d,\"flood_connections\":%llu,"
	    "\"flood_conn_per_sec\":%.1f", bench_cfg.rst ? "rst" : "fin", BENCH_FLOOD_EVERY,
	    (unsigned long long)t->done, report_rate(t));
	printf(",\"probe_interval_ms\":%d,\"probes\":%llu", BENCH_PROBE_MS,
	    (unsigned long long)probe.done + probe.errors);
	printf(",\"probe_latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f}",
	    report_quantile(&probe, 0.5), report_quantile(&probe, 0.9),
	    report_quantile(&probe, 0.99), (double)probe.lat.max / 1000);
	printf(",\"probe_errors\":%llu,\"probe_error_kinds\":", (unsigned long long)probe.errors);
	report_json_kinds(probe.err);
	fputs("},\"probe_first_error\":", stdout);
	if (probe.first_error[0])
		report_json_string(probe.first_error);
	else
		fputs("null", stdout);
}

/* The modes that time one request after another: connect, rr and udp. */
static int
report_requests(void)
{
	return bench_cfg.mode == MODE_CONNECT || bench_cfg.mode == MODE_RR ||
	    bench_cfg.mode == MODE_UDP;
}

static void
report_json(const struct totals *t)
{
	double pss = report_pss_per_conn(t);

	report_json_common(t);
	if (report_requests()) {
		printf(",\"%s\":%llu,\"%s\":%.1f", bench_cfg.mode == MODE_CONNECT ? "connects" : "requests",
		    (unsigned long long)t->done, report_rate_key(), report_rate(t));
		printf(",\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
		    "\"max\":%.1f,\"mean\":%.1f}", report_quantile(t, 0.5), report_quantile(t, 0.9),
		    report_quantile(t, 0.99), report_quantile(t, 0.999), (double)t->lat.max / 1000,
		    t->done ? (double)t->lat.sum / (double)t->done / 1000 : 0);
		if (bench_cfg.mode == MODE_UDP)
			printf(",\"lost\":%llu,\"late\":%llu", (unsigned long long)t->lost,
			    (unsigned long long)t->late);
	} else if (bench_cfg.mode == MODE_STREAM) {
		printf(",\"bytes\":%llu,\"mib_per_sec\":%.1f", (unsigned long long)t->bytes,
		    report_rate(t));
	} else if (bench_cfg.mode == MODE_FLOOD) {
		report_json_flood(t);
	} else {
		printf(",\"held\":%llu", (unsigned long long)t->held);
		if (pss >= 0)
			printf(",\"server_procs_baseline\":%d,\"server_procs\":%d,"
			    "\"pss_kib_baseline\":%lld,\"pss_kib_loaded\":%lld,"
			    "\"pss_kib_total\":%lld,"
			    "\"pss_kib_per_conn\":%.1f,\"pte_kib_per_conn\":%.1f", run->srv0.nprocs,
			    run->held.nprocs, run->srv0.pss_kib, run->held.pss_kib,
			    run->held.pss_kib - run->srv0.pss_kib, pss,
			    (double)(run->held.pte_kib - run->srv0.pte_kib) / (double)t->held);
		else
			fputs(",\"pss_kib_per_conn\":null", stdout);
	}
	puts("}");
}

static void
report_text_kinds(const uint64_t *err)
{
	for (int k = 0; k < E_MAX; k++)
		if (err[k])
			printf(" %s=%llu", bench_err_names[k], (unsigned long long)err[k]);
}

static void
report_text_flood(const struct totals *t)
{
	printf("  flood        %llu connections (%.1f/s), closed with a %s, 1 in %d after a "
	    "chunk\n", (unsigned long long)t->done, report_rate(t), bench_cfg.rst ? "reset" : "FIN",
	    BENCH_FLOOD_EVERY);
	printf("  probes       %llu, one every %d ms; latency us p50 %.1f  p90 %.1f  p99 %.1f  "
	    "max %.1f\n", (unsigned long long)probe.done + probe.errors, BENCH_PROBE_MS,
	    report_quantile(&probe, 0.5), report_quantile(&probe, 0.9),
	    report_quantile(&probe, 0.99), (double)probe.lat.max / 1000);
	printf("  probe errors %llu", (unsigned long long)probe.errors);
	report_text_kinds(probe.err);
	putchar('\n');
	if (probe.first_error[0])
		printf("  first probe error  %s\n", probe.first_error);
}

/* The mode's own lines of the text report. */
static void
report_text_mode(const struct totals *t)
{
	double pss = report_pss_per_conn(t);

	if (report_requests()) {
		printf("  %-12s %llu (%.1f/s)\n", bench_cfg.mode == MODE_CONNECT ? "connections" :
		    "requests", (unsigned long long)t->done, report_rate(t));
		printf("  latency us   p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
		    report_quantile(t, 0.5), report_quantile(t, 0.9), report_quantile(t, 0.99),
		    report_quantile(t, 0.999), (double)t->lat.max / 1000);
		if (bench_cfg.mode == MODE_UDP)
			printf("  lost         %llu (no echo within %d ms), %llu of them echoed late\n",
			    (unsigned long long)t->lost, bench_cfg.timeout_ms,
			    (unsigned long long)t->late);
	} else if (bench_cfg.mode == MODE_STREAM) {
		printf("  echoed       %.1f MiB (%.1f MiB/s)\n", (double)t->bytes / 1048576.0,
		    report_rate(t));
	} else if (bench_cfg.mode == MODE_FLOOD) {
		report_text_flood(t);
	} else {
		printf("  held         %llu\n", (unsigned long long)t->held);
		if (pss >= 0)
			printf("  server PSS   %lld KiB in %d processes, %lld KiB before: "
			    "%.1f KiB per connection (page tables: %.1f KiB more)\n",
			    run->held.pss_kib, run->held.nprocs, run->srv0.pss_kib, pss,
			    (double)(run->held.pte_kib - run->srv0.pte_kib) / (double)t->held);
		else
			printf("  server PSS   unknown (no server pid; use --pid)\n");
	}
}

static void
report_text_errors(const struct totals *t)
{
	printf("  errors       %llu", (unsigned long long)t->errors);
	report_text_kinds(t->err);
	if (run->worker_failures)
		printf(" worker=%d", run->worker_failures);
	putchar('\n');
	if (t->first_error[0])
		printf("  first error  %s\n", t->first_error);
	else if (run->worker_failures)
		printf("  first error  %s\n", run->failure ? run->failure : "a worker failed");
}

static void
report_text(const struct totals *t)
{
	char addr[NET_ADDRLEN];

	net_addr_str((const struct sockaddr *)&bench_cfg.addr, addr, sizeof(addr));
	printf("mpecho-bench %s %s: %d %s%s, %zu-byte %s, %g s, %d worker%s%s\n",
	    bench_mode_names[bench_cfg.mode], addr, bench_cfg.conns,
	    bench_cfg.mode == MODE_UDP ? "client" : "connection", bench_cfg.conns == 1 ? "" : "s",
	    bench_cfg.size, bench_cfg.mode == MODE_STREAM ? "writes" :
	    bench_cfg.mode == MODE_FLOOD ? "chunks" : bench_cfg.mode == MODE_UDP ? "datagrams" :
	    "messages",
	    bench_cfg.duration, run->nworkers, run->nworkers == 1 ? "" : "s",
	    bench_cfg.rst ? ", reset on close" : "");
	report_text_mode(t);
	if (run->server)
		printf("  cpu          server %.0f%% (pid %d%s), ",
		    report_cpu_pct(run->srv1.cpu_ticks - run->srv0.cpu_ticks), (int)run->server,
		    run->server_found ? ", found by its listener" : "");
	else
		printf("  cpu          ");
	printf("client %.0f%%, whole machine %.0f%% of %ld00%%\n",
	    report_cpu_pct(run->client1 - run->client0), report_machine_pct(),
	    sysconf(_SC_NPROCESSORS_ONLN));
	report_text_errors(t);
}

uint64_t
report_print(const struct bench_run *r)
{
	static struct totals t;

	run = r;
	report_merge(&t, 0, run->nworkers);
	t.errors += (uint64_t)run->worker_failures;
	report_merge(&probe, run->nworkers, run->nprocs);
	/* UDP may drop, but a server that answers nothing has failed, as a TCP one would. */
	if (bench_cfg.mode == MODE_UDP && t.done == 0 && t.first_error[0] == '\0' &&
	    !run->worker_failures)
		t.first_error = "no request was answered in the window";
	if (bench_cfg.json)
		report_json(&t);
	else
		report_text(&t);
	fflush(stdout);
	return t.errors + probe.errors + (bench_cfg.mode == MODE_UDP && t.done == 0);
}
