/*
 * metrics_http.h - the metrics endpoint's HTTP request parser, and what it answers.  Pure: it
 * reads bytes the caller has received and says whether they are a whole request, a bad one, or
 * not yet complete; no I/O, no allocation.  Fuzzed (fuzz/fuzz_metrics_http.c).
 *
 * Only what a scraper sends is understood: "GET /metrics HTTP/1.1", headers, an empty line.  A
 * request without its end within MH_MAX bytes is bad.  No body is read (a request that
 * announces one is bad).
 */
#ifndef MPECHO_METRICS_HTTP_H
#define MPECHO_METRICS_HTTP_H

#include <stddef.h>

#define MH_MAX 4096

enum mh_result {
	MH_MORE,       /* a prefix of a request: read on */
	MH_BAD,        /* 400 */
	MH_METRICS,    /* GET (or HEAD) /metrics: 200 */
	MH_NOT_FOUND,  /* GET or HEAD of another path: 404 */
	MH_METHOD,     /* another method: 405 */
};

struct mh_req {
	int head;      /* HEAD: the answer has no body */
};

/* Parses the len bytes received so far (at most MH_MAX are ever passed). */
enum mh_result metrics_http_parse(const char *buf, size_t len, struct mh_req *req);
/* The status line and headers of the answer to r, for a body of body_len bytes (the body of a
 * 4xx answer is its reason, metrics_http_reason). */
size_t metrics_http_head(enum mh_result r, size_t body_len, char *out, size_t outlen);
const char *metrics_http_reason(enum mh_result r);

#endif
