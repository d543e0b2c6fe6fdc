/*
 * upgrade.c - the hand-over of a binary upgrade in place, as text (see upgrade.h).
 *
 * One line of space-separated fields in a fixed order, so that a reader accepts exactly what a
 * writer of its version writes:
 *   1 l=3,4 u= m= a=-1 r=5 w=6 k=7 s=1234 d=0 x=0 c=100 key=HEX16 life=HEX32
 */
#define _GNU_SOURCE
#include "upgrade.h"
#include "num.h"
#include "record.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int upgrade_put(char *buf, size_t len, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
upgrade_put(char *buf, size_t len, size_t *at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*at >= len)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(buf + *at, len - *at, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *at)
		return -1;
	*at += (size_t)n;
	return 0;
}

static int
upgrade_put_fds(char *buf, size_t len, size_t *at, const char *name, const int *fd, int n)
{
	if (upgrade_put(buf, len, at, " %s=", name) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (upgrade_put(buf, len, at, "%s%d", i ? "," : "", fd[i]) < 0)
			return -1;
	return 0;
}

int
upgrade_format(const struct upgrade_hand *h, char *buf, size_t len)
{
	size_t at = 0;

	if (upgrade_put(buf, len, &at, "%d", UPGRADE_PROTO) < 0 ||
	    upgrade_put_fds(buf, len, &at, "l", h->lfd, h->nlfd) < 0 ||
	    upgrade_put_fds(buf, len, &at, "u", h->ufd, h->nufd) < 0 ||
	    upgrade_put_fds(buf, len, &at, "m", h->mfd, h->nmfd) < 0 ||
	    upgrade_put(buf, len, &at, " a=%d r=%d w=%d k=%d s=%ld d=%ld x=%ld c=%" PRIu64
	    " key=%016" PRIx64 " life=%.32s", h->agent_fd, h->pipe_rd, h->pipe_wr, h->lock_fd,
	    (long)h->store, (long)h->dgram, (long)h->metrics, h->next_conn, h->key, h->life) < 0)
		return -1;
	return (int)at;
}

/* The next field: "name=" then its value up to the next space, into val. */
static int
upgrade_field(const char **s, const char *name, char *val, size_t len)
{
	size_t n = strlen(name), v;

	if (**s != ' ' || strncmp(*s + 1, name, n) != 0 || (*s)[1 + n] != '=')
		return -1;
	*s += n + 2;
	v = strcspn(*s, " ");
	if (v >= len)
		return -1;
	memcpy(val, *s, v);
	val[v] = '\0';
	*s += v;
	return 0;
}

static int
upgrade_num(const char **s, const char *name, long min, long max, long *out)
{
	char val[32];

	return upgrade_field(s, name, val, sizeof(val)) < 0 || num_parse(val, min, max, out) < 0 ?
	    -1 : 0;
}

/* A list of descriptors, each 3 or more, none repeated. */
static int
upgrade_fds(const char **s, const char *name, int *fd, int *n)
{
	char val[UPGRADE_MAX_FDS * 12], *p, *save = NULL;
	long v;

	*n = 0;
	if (upgrade_field(s, name, val, sizeof(val)) < 0)
		return -1;
	if (val[0] == '\0')
		return 0;
	if (val[strlen(val) - 1] == ',')
		return -1;
	for (p = strtok_r(val, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save)) {
		if (*n == UPGRADE_MAX_FDS || num_parse(p, 3, 65535, &v) < 0)
			return -1;
		fd[(*n)++] = (int)v;
	}
	return 0;
}

static int
upgrade_hex(const char *val, size_t len)
{
	return strlen(val) == len && strspn(val, "0123456789abcdef") == len ? 0 : -1;
}

int
upgrade_parse(const char *s, struct upgrade_hand *h)
{
	char val[64];
	long v[7];
	static const char *const names[] = { "a", "r", "w", "k", "s", "d", "x" };

	memset(h, 0, sizeof(*h));
	if (strncmp(s, "1 ", 2) != 0)
		return -1;
	s += 1;
	if (upgrade_fds(&s, "l", h->lfd, &h->nlfd) < 0 || h->nlfd == 0 ||
	    upgrade_fds(&s, "u", h->ufd, &h->nufd) < 0 ||
	    upgrade_fds(&s, "m", h->mfd, &h->nmfd) < 0)
		return -1;
	for (int i = 0; i < 7; i++)
		if (upgrade_num(&s, names[i], i < 4 ? -1 : 0, i < 4 ? 65535 : 0x7fffffffL, &v[i]) < 0 ||
		    (i < 4 && v[i] >= 0 && v[i] < 3))
			return -1;
	h->agent_fd = (int)v[0];
	h->pipe_rd = (int)v[1];
	h->pipe_wr = (int)v[2];
	h->lock_fd = (int)v[3];
	h->store = (pid_t)v[4];
	h->dgram = (pid_t)v[5];
	h->metrics = (pid_t)v[6];
	if ((h->pipe_rd < 0) != (h->pipe_wr < 0))
		return -1;
	if (upgrade_field(&s, "c", val, sizeof(val)) < 0 || strspn(val, "0123456789") != strlen(val) ||
	    val[0] == '\0' || strlen(val) > 20)
		return -1;
	errno = 0;
	h->next_conn = strtoull(val, NULL, 10);
	if (h->next_conn == 0 || errno == ERANGE)
		return -1;
	if (upgrade_field(&s, "key", val, sizeof(val)) < 0 || upgrade_hex(val, 16) < 0)
		return -1;
	h->key = strtoull(val, NULL, 16);
	if (upgrade_field(&s, "life", val, sizeof(val)) < 0 ||
	    upgrade_hex(val, UPGRADE_LIFE_LEN) < 0 || *s != '\0')
		return -1;
	memcpy(h->life, val, UPGRADE_LIFE_LEN + 1);
	return 0;
}

void
upgrade_check_words(char *buf, size_t len, const char *store, const char *user)
{
	snprintf(buf, len, "proto=%d frame=%zu magic=%u store=%s user=%s", UPGRADE_PROTO,
	    sizeof(struct rec_hdr), (unsigned)REC_MAGIC, store != NULL ? store : "",
	    user != NULL ? user : "");
}
