/*
 * mstore_rec.c - one store line back into a record: a strict decoder for mpechod's own form,
 * and Jansson for everything else (see mstore_rec.h).
 *
 * The strict decoder is a validator too: it accepts only lines that are valid JSON of the exact
 * shape record.c writes, so a line it takes needs no second look.  Its figures, on a 1 GB store
 * of text and random binary sessions (README, "Reading the store back"): Jansson alone reads
 * 73 MB/s, mpecho-store list with the strict decoder about 430 MB/s.
 */
#define _GNU_SOURCE
#include "mstore_rec.h"
#include "record.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How each byte of a JSON string is read by the strict decoder. */
enum { K_PLAIN, K_QUOTE, K_ESC, K_LATIN, K_OTHER };
static unsigned char mrec_kind[256];

static void
mrec_kind_init(void)
{
	for (int c = 0; c < 256; c++)
		mrec_kind[c] = (c < 0x20 || c >= 0x80) ? K_OTHER : K_PLAIN;
	mrec_kind['"'] = K_QUOTE;
	mrec_kind['\\'] = K_ESC;
	mrec_kind[0xc2] = K_LATIN;
	mrec_kind[0xc3] = K_LATIN;
}

static int
mrec_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* One escape after a backslash at *pp; returns the byte, or -1 (not one the strict decoder
 * takes: the fallback decides).  A \u escape gives a byte up to max (0xff for format 1, whose
 * code points are bytes; 0x7f for format 2, whose strings are UTF-8). */
static int
mrec_fast_esc(const char **pp, const char *end, int max)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *p = *pp, *s;
	int v = 0;

	if (p >= end)
		return -1;
	if (*p == 'u') {
		if (end - p < 5)
			return -1;
		for (int i = 1; i <= 4; i++) {
			int h = mrec_hex((unsigned char)p[i]);
			if (h < 0)
				return -1;
			v = v * 16 + h;
		}
		*pp = p + 5;
		return v <= max ? v : -1;
	}
	s = *p != '\0' ? strchr(from, *p) : NULL;
	if (s == NULL)
		return -1;
	*pp = p + 1;
	return (unsigned char)to[s - from];
}

/* Decodes the JSON string starting after its opening quote into out; returns the position
 * after the closing quote, or NULL.  Format 2's strings are UTF-8, copied as they are and
 * validated at the end. */
static const char *
mrec_fast_str(const char *p, const char *end, struct mrec_str *s, char **out, int format)
{
	char *o = *out;
	enum rec_utf8 how;
	int b;

	s->p = o;
	while (p < end) {
		unsigned char c = (unsigned char)*p++;

		switch (mrec_kind[c]) {
		case K_PLAIN:
			*o++ = (char)c;
			break;
		case K_QUOTE:
			s->len = (size_t)(o - s->p);
			*out = o;
			if (format == 2 && (rec_utf8_scan((const unsigned char *)s->p, s->len, &how)
			    != s->len || how != REC_UTF8_WHOLE))
				return NULL;
			return p;
		case K_ESC:
			if ((b = mrec_fast_esc(&p, end, format == 2 ? 0x7f : 0xff)) < 0)
				return NULL;
			*o++ = (char)b;
			break;
		case K_LATIN:
			if (format == 2) {
				*o++ = (char)c;
				break;
			}
			if (p >= end || ((unsigned char)*p & 0xc0) != 0x80)
				return NULL;
			*o++ = (char)(((c & 0x03) << 6) | ((unsigned char)*p++ & 0x3f));
			break;
		default:
			if (format == 2 && c >= 0x80) {
				*o++ = (char)c;
				break;
			}
			return NULL;
		}
	}
	return NULL;
}

/* A base64 string, after its opening quote, decoded into out. */
static const char *
mrec_fast_b64(const char *p, const char *end, struct mrec_str *s, char **out)
{
	const char *q = memchr(p, '"', (size_t)(end - p));
	ssize_t n;

	if (q == NULL || (n = rec_b64_decode((unsigned char *)*out, p, (size_t)(q - p))) < 0)
		return NULL;
	s->p = *out;
	s->len = (size_t)n;
	*out += n;
	return q + 1;
}

static int
mrec_is_life(const char *p, size_t n)
{
	if (n != REC_LIFE_LEN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

static const char *
mrec_lit(const char *p, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	return ((size_t)(end - p) >= n && memcmp(p, lit, n) == 0) ? p + n : NULL;
}

static const char *
mrec_uint(const char *p, const char *end, uint64_t *v)
{
	uint64_t x = 0;
	const char *start = p;

	while (p < end && *p >= '0' && *p <= '9' && p - start < 18)
		x = x * 10 + (uint64_t)(*p++ - '0');
	if (p == start || (*start == '0' && p - start > 1) || (p < end && *p >= '0' && *p <= '9'))
		return NULL;
	*v = x;
	return p;
}

static const char *
mrec_fast_open(const char *p, const char *end, struct mrec *r, char **out)
{
	uint64_t pid;

	if ((p = mrec_uint(p, end, &pid)) == NULL || (p = mrec_lit(p, end,
	    ",\"ev\":\"open\",\"peer\":\"")) == NULL)
		return NULL;
	r->ev = MREC_OPEN;
	r->pid = (long)pid;
	if ((p = mrec_fast_str(p, end, &r->peer, out, r->format)) == NULL)
		return NULL;
	return mrec_lit(p, end, "}");
}

static const char *
mrec_fast_close(const char *p, const char *end, struct mrec *r, char **out)
{
	r->ev = MREC_CLOSE;
	if ((p = mrec_fast_str(p, end, &r->reason, out, r->format)) == NULL ||
	    (p = mrec_lit(p, end, ",\"bytes\":")) == NULL ||
	    (p = mrec_uint(p, end, &r->bytes)) == NULL)
		return NULL;
	return mrec_lit(p, end, "}");
}

/* mpechod's own form, key for key; NULL for anything else. */
static const char *
mrec_fast(const char *p, const char *end, struct mrec *r, char **out)
{
	const char *q;

	if ((p = mrec_lit(p, end, "{\"ts\":\"")) == NULL || end - p < 28 || p[27] != '"' ||
	    mrec_parse_ts(p, 27, &r->ts_us) < 0)
		return NULL;
	p += 28;
	r->format = 1;
	if ((q = mrec_lit(p, end, ",\"life\":\"")) != NULL) {
		if (end - q < REC_LIFE_LEN + 1 || q[REC_LIFE_LEN] != '"' ||
		    !mrec_is_life(q, REC_LIFE_LEN))
			return NULL;
		r->format = 2;
		r->life.p = memcpy(*out, q, REC_LIFE_LEN);
		r->life.len = REC_LIFE_LEN;
		*out += REC_LIFE_LEN;
		p = q + REC_LIFE_LEN + 1;
	}
	if ((p = mrec_lit(p, end, ",\"conn\":")) == NULL ||
	    (p = mrec_uint(p, end, &r->conn)) == NULL || r->conn == 0 ||
	    (p = mrec_lit(p, end, ",\"")) == NULL)
		return NULL;
	if ((q = mrec_lit(p, end, "ev\":\"data\",\"data\":\"")) != NULL) {
		r->ev = MREC_DATA;
		if ((p = mrec_fast_str(q, end, &r->data, out, r->format)) == NULL)
			return NULL;
		return mrec_lit(p, end, "}");
	}
	if (r->format == 2 && (q = mrec_lit(p, end, "ev\":\"data\",\"b64\":\"")) != NULL) {
		r->ev = MREC_DATA;
		if ((p = mrec_fast_b64(q, end, &r->data, out)) == NULL)
			return NULL;
		return mrec_lit(p, end, "}");
	}
	if ((q = mrec_lit(p, end, "ev\":\"close\",\"reason\":\"")) != NULL)
		return mrec_fast_close(q, end, r, out);
	if ((q = mrec_lit(p, end, "pid\":")) != NULL)
		return mrec_fast_open(q, end, r, out);
	return NULL;
}

/* Jansson's strings are UTF-8; each code point must be a byte value. */
static int
mrec_latin1(const char *u, size_t n, struct mrec_str *s, char **out)
{
	char *o = *out;

	s->p = o;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];

		if (c < 0x80) {
			*o++ = (char)c;
		} else if ((c == 0xc2 || c == 0xc3) && i + 1 < n) {
			*o++ = (char)(((c & 0x03) << 6) | ((unsigned char)u[++i] & 0x3f));
		} else {
			return -1;
		}
	}
	s->len = (size_t)(o - s->p);
	*out = o;
	return 0;
}

/* Format 2's strings are UTF-8 (Jansson has checked), kept as they are. */
static int
mrec_utf8(const char *u, size_t n, struct mrec_str *s, char **out)
{
	s->p = memcpy(*out, u, n);
	s->len = n;
	*out += n;
	return 0;
}

/* The string field key of o, decoded for the line's format (r->format). */
static int
mrec_get_str(json_t *o, const char *key, struct mrec_str *s, char **out, char *err, size_t el,
    const struct mrec *r)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL) {
		snprintf(err, el, "missing field \"%s\"", key);
		return -1;
	}
	if (!json_is_string(v)) {
		snprintf(err, el, "field \"%s\" is not a string", key);
		return -1;
	}
	if ((r->format == 2 ? mrec_utf8 : mrec_latin1)(json_string_value(v), json_string_length(v),
	    s, out) < 0) {
		snprintf(err, el, "field \"%s\" has a character above U+00FF", key);
		return -1;
	}
	return 0;
}

static int
mrec_get_uint(json_t *o, const char *key, uint64_t *v, char *err, size_t el)
{
	json_t *j = json_object_get(o, key);

	if (j == NULL) {
		snprintf(err, el, "missing field \"%s\"", key);
		return -1;
	}
	if (!json_is_integer(j) || json_integer_value(j) < 0) {
		snprintf(err, el, "field \"%s\" is not a whole number >= 0", key);
		return -1;
	}
	*v = (uint64_t)json_integer_value(j);
	return 0;
}

static int
mrec_slow_gap(struct mrec_ctx *ctx, json_t *o, struct mrec *r, char *err, size_t el)
{
	json_t *a = json_object_get(o, "conns"), *v;
	size_t i;

	if (mrec_get_uint(o, "dropped_bytes", &r->dropped_bytes, err, el) < 0 ||
	    mrec_get_uint(o, "dropped_records", &r->dropped_records, err, el) < 0)
		return -1;
	if (a == NULL || !json_is_array(a)) {
		snprintf(err, el, "field \"conns\" is %s", a == NULL ? "missing" : "not an array");
		return -1;
	}
	if (json_array_size(a) > ctx->conncap) {
		uint64_t *n = realloc(ctx->conns, json_array_size(a) * sizeof(*n));
		if (n == NULL)
			return -2;
		ctx->conns = n;
		ctx->conncap = json_array_size(a);
	}
	json_array_foreach(a, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) <= 0) {
			snprintf(err, el, "field \"conns\" holds something other than a conn number");
			return -1;
		}
		ctx->conns[i] = (uint64_t)json_integer_value(v);
	}
	r->conns = ctx->conns;
	r->nconns = json_array_size(a);
	r->conns_truncated = json_is_true(json_object_get(o, "conns_truncated"));
	return 0;
}

/* A data record's or a datagram's bytes: "data", or in format 2 "b64" (exactly one). */
static int
mrec_get_bytes(json_t *o, struct mrec *r, char **out, char *err, size_t el)
{
	json_t *b = r->format == 2 ? json_object_get(o, "b64") : NULL;
	ssize_t n;

	if (b == NULL)
		return mrec_get_str(o, "data", &r->data, out, err, el, r);
	if (json_object_get(o, "data") != NULL) {
		snprintf(err, el, "both \"data\" and \"b64\"");
		return -1;
	}
	if (!json_is_string(b) || (n = rec_b64_decode((unsigned char *)*out, json_string_value(b),
	    json_string_length(b))) < 0) {
		snprintf(err, el, "field \"b64\" is not base64");
		return -1;
	}
	r->data.p = *out;
	r->data.len = (size_t)n;
	*out += n;
	return 0;
}

/* A datagram written in parts (record.h's REC_DGRAM_PART) says "part":I,"parts":N, 1 <= I <= N
 * and N > 1; a whole one says neither. */
static int
mrec_dgram_part(json_t *o, struct mrec *r, char *err, size_t el)
{
	json_t *i = json_object_get(o, "part"), *n = json_object_get(o, "parts");

	if (i == NULL && n == NULL)
		return 0;
	if (!json_is_integer(i) || !json_is_integer(n) || json_integer_value(n) < 2 ||
	    json_integer_value(n) > REC_DGRAM_PARTS_MAX || json_integer_value(i) < 1 ||
	    json_integer_value(i) > json_integer_value(n)) {
		snprintf(err, el, "fields \"part\" and \"parts\" are not 1 <= part <= parts, "
		    "parts from 2 to %d", (int)REC_DGRAM_PARTS_MAX);
		return -1;
	}
	r->part = (unsigned)json_integer_value(i);
	r->parts = (unsigned)json_integer_value(n);
	return 0;
}

static int
mrec_slow_ev(struct mrec_ctx *ctx, json_t *o, struct mrec *r, char **out, char *err, size_t el)
{
	json_t *pid;

	switch (r->ev) {
	case MREC_OPEN:
		pid = json_object_get(o, "pid");
		r->pid = json_is_integer(pid) ? (long)json_integer_value(pid) : -1;
		if (mrec_get_str(o, "peer", &r->peer, out, err, el, r) < 0)
			return -1;
		return json_object_get(o, "via") == NULL ? 0 :
		    mrec_get_str(o, "via", &r->via, out, err, el, r);
	case MREC_DATA:
		return mrec_get_bytes(o, r, out, err, el);
	case MREC_CLOSE:
		if (mrec_get_str(o, "reason", &r->reason, out, err, el, r) < 0)
			return -1;
		return mrec_get_uint(o, "bytes", &r->bytes, err, el);
	case MREC_GAP:
		return mrec_slow_gap(ctx, o, r, err, el);
	case MREC_DGRAM:
		if (mrec_get_str(o, "peer", &r->peer, out, err, el, r) < 0 ||
		    mrec_dgram_part(o, r, err, el) < 0)
			return -1;
		return mrec_get_bytes(o, r, out, err, el);
	case MREC_START:
	case MREC_STOP:
		return 0;
	}
	return -1;
}

static int
mrec_slow_head(json_t *o, struct mrec *r, char **out, char *err, size_t el)
{
	static const char *const evs[] = { "open", "data", "close", "gap", "datagram", "start",
	    "stop" };
	struct mrec_str ev, ts;
	json_t *life = json_object_get(o, "life");

	r->format = 1;
	if (life != NULL) {
		if (!json_is_string(life) || !mrec_is_life(json_string_value(life),
		    json_string_length(life))) {
			snprintf(err, el, "field \"life\" is not %d hex digits", REC_LIFE_LEN);
			return -1;
		}
		r->format = 2;
		mrec_utf8(json_string_value(life), REC_LIFE_LEN, &r->life, out);
	}
	if (mrec_get_str(o, "ev", &ev, out, err, el, r) < 0 ||
	    mrec_get_str(o, "ts", &ts, out, err, el, r) < 0)
		return -1;
	if (mrec_parse_ts(ts.p, ts.len, &r->ts_us) < 0) {
		snprintf(err, el, "field \"ts\" is not an RFC 3339 time");
		return -1;
	}
	r->ev = 0;
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (ev.len == strlen(evs[i]) && memcmp(ev.p, evs[i], ev.len) == 0)
			r->ev = (enum mrec_ev)(i + 1);
	if (r->ev == 0) {
		snprintf(err, el, "unknown event \"%.*s\"", (int)(ev.len < 20 ? ev.len : 20), ev.p);
		return -1;
	}
	if (r->ev == MREC_GAP || r->ev == MREC_DGRAM || r->ev == MREC_START || r->ev == MREC_STOP)
		return 0;
	if (mrec_get_uint(o, "conn", &r->conn, err, el) < 0)
		return -1;
	if (r->conn == 0) {
		snprintf(err, el, "field \"conn\" is 0");
		return -1;
	}
	return 0;
}

static int
mrec_slow(struct mrec_ctx *ctx, const char *line, size_t len, struct mrec *r, char *err,
    size_t el)
{
	json_error_t je;
	json_t *o = json_loadb(line, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
	char *out = ctx->buf;
	int rc;

	if (o == NULL) {
		snprintf(err, el, "not JSON: %s (column %d)", je.text, je.column);
		return -1;
	}
	if (!json_is_object(o)) {
		snprintf(err, el, "not a JSON object");
		json_decref(o);
		return -1;
	}
	rc = mrec_slow_head(o, r, &out, err, el);
	if (rc == 0)
		rc = mrec_slow_ev(ctx, o, r, &out, err, el);
	json_decref(o);
	return rc;
}

/* Decoded text is never longer than the line it came from. */
static int
mrec_room(struct mrec_ctx *ctx, size_t len)
{
	if (len + 1 > ctx->cap) {
		size_t cap = len + 1 > 4096 ? len + 1 : 4096;
		char *b = realloc(ctx->buf, cap);
		if (b == NULL)
			return -2;
		ctx->buf = b;
		ctx->cap = cap;
	}
	return 0;
}

int
mrec_decode_json(struct mrec_ctx *ctx, const char *line, size_t len, struct mrec *r,
    char *err, size_t errlen)
{
	if (mrec_room(ctx, len) < 0)
		return -2;
	memset(r, 0, sizeof(*r));
	r->pid = -1;
	return mrec_slow(ctx, line, len, r, err, errlen);
}

int
mrec_decode(struct mrec_ctx *ctx, const char *line, size_t len, struct mrec *r, char *err,
    size_t errlen)
{
	char *out;

	if (mrec_room(ctx, len) < 0)
		return -2;
	if (mrec_kind['"'] == 0)
		mrec_kind_init();
	memset(r, 0, sizeof(*r));
	r->pid = -1;
	out = ctx->buf;
	if (mrec_fast(line, line + len, r, &out) == line + len) {
		ctx->fast++;
		return 0;
	}
	ctx->slow++;
	return mrec_decode_json(ctx, line, len, r, err, errlen);
}

void
mrec_free(struct mrec_ctx *ctx)
{
	free(ctx->buf);
	free(ctx->conns);
	memset(ctx, 0, sizeof(*ctx));
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
 * days_from_civil). */
static int64_t
mrec_days(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* n digits at s as a number, or -1. */
static int
mrec_digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static int
mrec_mdays(int y, int m)
{
	static const int md[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return md[m - 1] + (m == 2 && leap);
}

/* The fraction and zone after the seconds: ".123456Z", "Z", "+02:00".  Adds them to *us. */
static int
mrec_parse_tail(const char *s, size_t len, int64_t *us)
{
	size_t i = 0;
	int64_t frac = 0, scale = 1000000;
	int oh, om;

	if (i < len && s[i] == '.') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
			scale /= 10;
			frac += (s[i] - '0') * scale;
		}
		if (i == 1)
			return -1;
	}
	*us += frac;
	if (len - i == 1 && (s[i] == 'Z' || s[i] == 'z'))
		return 0;
	if (len - i != 6 || (s[i] != '+' && s[i] != '-') || s[i + 3] != ':' ||
	    (oh = mrec_digits(s + i + 1, 2)) < 0 || (om = mrec_digits(s + i + 4, 2)) < 0 ||
	    oh > 23 || om > 59)
		return -1;
	*us -= (s[i] == '+' ? 1 : -1) * ((int64_t)oh * 3600 + (int64_t)om * 60) * 1000000;
	return 0;
}

int
mrec_parse_ts(const char *s, size_t len, int64_t *us)
{
	int y, mo, d, h = 0, mi = 0, se = 0;

	if (len < 10 || s[4] != '-' || s[7] != '-' || (y = mrec_digits(s, 4)) < 0 ||
	    (mo = mrec_digits(s + 5, 2)) < 1 || mo > 12 || (d = mrec_digits(s + 8, 2)) < 1 ||
	    d > mrec_mdays(y, mo))
		return -1;
	if (len > 10 && (len < 20 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    s[13] != ':' || s[16] != ':' || (h = mrec_digits(s + 11, 2)) < 0 || h > 23 ||
	    (mi = mrec_digits(s + 14, 2)) < 0 || mi > 59 || (se = mrec_digits(s + 17, 2)) < 0 ||
	    se > 60))
		return -1;
	*us = (mrec_days(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + se) * 1000000;
	return len > 10 ? mrec_parse_tail(s + 19, len - 19, us) : 0;
}
