/*
 * metrics_http.c - the metrics endpoint's request parser (see metrics_http.h).
 */
#include "metrics_http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The end of the headers: the offset just past the empty line, or 0 when it has not come. */
static size_t
mh_end(const char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Whether len bytes at s are printable ASCII without spaces (a method or a target). */
static int
mh_token(const char *s, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] >= 0x7f)
			return 0;
	return 1;
}

static int
mh_is(const char *s, size_t len, const char *word)
{
	return len == strlen(word) && memcmp(s, word, len) == 0;
}

/* One header line (without its line end): "Name: value", no control bytes but tabs; a body
 * (Content-Length other than 0, Transfer-Encoding) is refused. */
static int
mh_header(const char *s, size_t len)
{
	const char *colon = memchr(s, ':', len);
	size_t name;

	if (colon == NULL || colon == s)
		return -1;
	name = (size_t)(colon - s);
	if (!mh_token(s, name))
		return -1;
	for (size_t i = name + 1; i < len; i++)
		if ((s[i] < ' ' && s[i] != '\t') || s[i] == 0x7f)
			return -1;
	if (name == 17 && strncasecmp(s, "transfer-encoding", 17) == 0)
		return -1;
	if (name == 14 && strncasecmp(s, "content-length", 14) == 0) {
		size_t i = name + 1;

		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		while (i < len && s[i] == '0')
			i++;
		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i != len || s[len - 1] != '0')
			return -1;
	}
	return 0;
}

/* The request line: METHOD SP TARGET SP HTTP/1.x. */
static enum mh_result
mh_line(const char *s, size_t len, struct mh_req *req)
{
	const char *sp1 = memchr(s, ' ', len), *sp2, *q;
	size_t mlen, tlen, vlen;

	if (sp1 == NULL)
		return MH_BAD;
	mlen = (size_t)(sp1 - s);
	sp2 = memchr(sp1 + 1, ' ', len - mlen - 1);
	if (sp2 == NULL)
		return MH_BAD;
	tlen = (size_t)(sp2 - sp1 - 1);
	vlen = len - mlen - tlen - 2;
	if (!mh_token(s, mlen) || !mh_token(sp1 + 1, tlen) || sp1[1] != '/' || vlen != 8 ||
	    memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1'))
		return MH_BAD;
	req->head = mh_is(s, mlen, "HEAD");
	if (!req->head && !mh_is(s, mlen, "GET"))
		return MH_METHOD;
	/* The path, without a query string. */
	q = memchr(sp1 + 1, '?', tlen);
	if (q != NULL)
		tlen = (size_t)(q - sp1 - 1);
	return mh_is(sp1 + 1, tlen, "/metrics") ? MH_METRICS : MH_NOT_FOUND;
}

enum mh_result
metrics_http_parse(const char *buf, size_t len, struct mh_req *req)
{
	enum mh_result r = MH_BAD;
	size_t end, at = 0;
	int first = 1;

	req->head = 0;
	if (len > MH_MAX)
		len = MH_MAX;
	end = mh_end(buf, len);
	if (end == 0)
		return len >= MH_MAX ? MH_BAD : MH_MORE;
	/* Line by line up to the empty one; each ends in \n, within end. */
	while (at < end) {
		const char *nl = memchr(buf + at, '\n', end - at);
		size_t n = (size_t)(nl - (buf + at)), step = n + 1;

		if (n > 0 && buf[at + n - 1] == '\r')
			n--;
		if (first) {
			r = mh_line(buf + at, n, req);
			if (r == MH_BAD)
				return r;
			first = 0;
		} else if (n == 0) {
			break;
		} else if (mh_header(buf + at, n) < 0) {
			return MH_BAD;
		}
		at += step;
	}
	return r;
}

const char *
metrics_http_reason(enum mh_result r)
{
	switch (r) {
	case MH_METRICS:
		return "OK";
	case MH_NOT_FOUND:
		return "Not Found";
	case MH_METHOD:
		return "Method Not Allowed";
	case MH_MORE:
	case MH_BAD:
		break;
	}
	return "Bad Request";
}

size_t
metrics_http_head(enum mh_result r, size_t body_len, char *out, size_t outlen)
{
	static const int codes[] = { [MH_MORE] = 400, [MH_BAD] = 400, [MH_METRICS] = 200,
	    [MH_NOT_FOUND] = 404, [MH_METHOD] = 405 };
	int n = snprintf(out, outlen, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%sConnection: close\r\n\r\n", codes[r],
	    metrics_http_reason(r), r == MH_METRICS ? "text/plain; version=0.0.4; charset=utf-8" :
	    "text/plain; charset=utf-8", body_len, r == MH_METHOD ? "Allow: GET, HEAD\r\n" : "");

	return n < 0 ? 0 : (size_t)n < outlen ? (size_t)n : outlen - 1;
}
