/*
 * Unit tests for the metrics endpoint's pure parts: the request parser (metrics_http.c), the
 * Prometheus text (metrics_text.c) and the figures' buckets and stats line (figures.c).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "figures.h"
#include "metrics_http.h"
#include "metrics_text.h"

static enum mh_result
parse(const char *s)
{
	struct mh_req r;

	return metrics_http_parse(s, strlen(s), &r);
}

Test(http, a_scrape_is_metrics)
{
	cr_assert_eq(parse("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\n"
	    "Accept: text/plain;version=0.0.4\r\n\r\n"), MH_METRICS);
	cr_assert_eq(parse("GET /metrics?x=1 HTTP/1.0\n\n"), MH_METRICS);
}

Test(http, head_has_no_body)
{
	struct mh_req r;
	const char *s = "HEAD /metrics HTTP/1.1\r\n\r\n";

	cr_assert_eq(metrics_http_parse(s, strlen(s), &r), MH_METRICS);
	cr_assert_eq(r.head, 1);
}

Test(http, other_paths_and_methods)
{
	cr_assert_eq(parse("GET / HTTP/1.1\r\n\r\n"), MH_NOT_FOUND);
	cr_assert_eq(parse("GET /metricsx HTTP/1.1\r\n\r\n"), MH_NOT_FOUND);
	cr_assert_eq(parse("POST /metrics HTTP/1.1\r\n\r\n"), MH_METHOD);
}

Test(http, prefixes_ask_for_more)
{
	const char *s = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	struct mh_req r;

	for (size_t n = 0; n < strlen(s); n++)
		cr_assert_eq(metrics_http_parse(s, n, &r), MH_MORE, "prefix of %zu bytes", n);
}

Test(http, bad_requests)
{
	static const char *const bad[] = {
		"\r\n\r\n", "GET\r\n\r\n", "GET /metrics\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n",
		"GET /metrics HTTP/2.0\r\n\r\n", "GET /metrics  HTTP/1.1\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", "GET /metrics HTTP/1.1\r\n: x\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
		"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nX: a\x01b\r\n\r\n", "G\x7f /metrics HTTP/1.1\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse(bad[i]), MH_BAD, "request %zu", i);
	cr_assert_eq(parse("GET /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), MH_METRICS);
}

Test(http, too_long_is_bad)
{
	static char big[MH_MAX + 10];
	struct mh_req r;

	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
	cr_assert_eq(metrics_http_parse(big, MH_MAX - 1, &r), MH_MORE);
	cr_assert_eq(metrics_http_parse(big, MH_MAX, &r), MH_BAD);
	cr_assert_eq(metrics_http_parse(big, sizeof(big), &r), MH_BAD);
}

Test(http, answer_head)
{
	char h[256];
	size_t n = metrics_http_head(MH_BAD, 12, h, sizeof(h));

	cr_assert_eq(n, strlen(h));
	cr_assert(strncmp(h, "HTTP/1.1 400 Bad Request\r\n", 26) == 0, "%s", h);
	cr_assert(strstr(h, "Content-Length: 12\r\n") != NULL);
	cr_assert(strstr(h, "Connection: close\r\n\r\n") != NULL);
	metrics_http_head(MH_METRICS, 1, h, sizeof(h));
	cr_assert(strstr(h, "text/plain; version=0.0.4") != NULL, "%s", h);
}

Test(figures, buckets)
{
	cr_assert_eq(figures_bucket(fig_dur_bounds, FIG_NDUR - 1, 0), 0);
	cr_assert_eq(figures_bucket(fig_dur_bounds, FIG_NDUR - 1, 0.001), 0, "le is inclusive");
	cr_assert_eq(figures_bucket(fig_dur_bounds, FIG_NDUR - 1, 0.0011), 1);
	cr_assert_eq(figures_bucket(fig_dur_bounds, FIG_NDUR - 1, 1e9), FIG_NDUR - 1, "+Inf");
	cr_assert_eq(figures_bucket(fig_size_bounds, FIG_NSIZE - 1, 0), 0);
	cr_assert_eq(figures_bucket(fig_size_bounds, FIG_NSIZE - 1, 1), 1);
}

Test(figures, session_counts_once_in_each)
{
	struct figures f = { 0 };

	figures_session(&f, 0, 2500, 100);
	figures_session(&f, FIG_CLOSE_SIGNAL, 0, 0);
	figures_session(&f, 99, 0, 0);
	figures_session(NULL, 0, 0, 0);
	cr_assert_eq(f.closed[0], 1);
	cr_assert_eq(f.closed[FIG_CLOSE_SIGNAL], 1);
	cr_assert_eq(f.closed[1], 1, "an unknown status counts as error");
	cr_assert_eq(f.dur[1], 1, "2.5 ms is in the 5 ms bucket");
	cr_assert_eq(f.dur[0], 2);
	cr_assert_eq(f.size[2], 1, "100 bytes is in the 1024 bucket");
	cr_assert_eq(f.size_sum, 100);
	cr_assert_eq(f.dur_sum_us, 2500);
}

Test(figures, line_keeps_its_words)
{
	struct fig_snap s = { .active = 2, .accepted = 7, .bytes = 99, .prefork = 1, .procs = 5,
		.idle = 3, .udp = 1, .udp_echoed = 4 };
	char line[768];

	s.udp_dropped[4] = 1;
	figures_line(&s, line, sizeof(line));
	cr_assert(strncmp(line, "active 2, accepted 7, bytes echoed 99, reaped 0 by exit", 55) == 0,
	    "%s", line);
	cr_assert(strstr(line, ", pool 5 processes, 3 idle, 0 starting, udp echoed 4,") != NULL,
	    "%s", line);
	cr_assert(strstr(line, "udp dropped 1,") != NULL && strstr(line, "for store 1") != NULL);
}

Test(text, exposition)
{
	static char out[METRICS_TEXT_MAX];
	struct fig_snap s = { .accepted = 3, .active = 1, .bytes = 10, .store = 1 };
	size_t n;

	s.f.closed[0] = 2;
	s.f.dur[0] = 1;
	s.f.dur[3] = 1;
	n = metrics_text(&s, out, sizeof(out));
	cr_assert(n > 0 && n == strlen(out));
	cr_assert(strstr(out, "# TYPE mpecho_connections_accepted_total counter\n"
	    "mpecho_connections_accepted_total 3\n") != NULL);
	cr_assert(strstr(out, "mpecho_sessions_closed_total{reason=\"eof\"} 2\n") != NULL);
	cr_assert(strstr(out, "mpecho_session_duration_seconds_bucket{le=\"0.001\"} 1\n"
	    "mpecho_session_duration_seconds_bucket{le=\"0.005\"} 1\n") != NULL, "%s", out);
	cr_assert(strstr(out, "mpecho_session_duration_seconds_bucket{le=\"+Inf\"} 2\n") != NULL);
	cr_assert(strstr(out, "mpecho_session_duration_seconds_count 2\n") != NULL);
	cr_assert(strstr(out, "mpecho_store_written_bytes_total 0\n") != NULL);
	cr_assert(strstr(out, "mpecho_pool_processes") == NULL, "no pool figures in fork mode");
	cr_assert_eq(metrics_text(&s, out, 100), 0, "too small a buffer gives nothing");
}
