/*
 * conf.c - the configuration file (see conf.h): lines cut into a key and a value, each handed to
 * opts_set.  Pure but for conf_read, which only reads the file.
 */
#define _GNU_SOURCE
#include "conf.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
conf_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Cuts line (NUL-terminated, no newline) into its key and value in place: *key NULL for a
 * line with nothing but blanks and a comment; *value NULL for a key alone. */
static void
conf_split(char *line, char **key, char **value)
{
	char *p = strchr(line, '#'), *end;

	if (p != NULL)
		*p = '\0';
	end = line + strlen(line);
	while (end > line && conf_space(end[-1]))
		*--end = '\0';
	while (conf_space(*line))
		line++;
	*key = *value = NULL;
	if (*line == '\0')
		return;
	*key = line;
	while (*line != '\0' && !conf_space(*line) && *line != '=')
		line++;
	p = line;
	while (conf_space(*line))
		line++;
	if (*line == '=')
		for (line++; conf_space(*line); line++)
			;
	*p = '\0';
	*value = *line != '\0' ? line : NULL;
}

int
conf_parse(char *text, const char *fname, struct settings *s, char *err, size_t errlen)
{
	char why[OPTS_ERRLEN], *key, *value, *next;
	int lineno = 0;

	for (char *line = text; line != NULL; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		conf_split(line, &key, &value);
		if (key == NULL)
			continue;
		if (key[0] == '\0') {
			snprintf(err, errlen, "%s:%d: a value with no key", fname, lineno);
			return -1;
		}
		if (opts_set(key, value, s, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s:%d: %s", fname, lineno, why);
			return -1;
		}
	}
	return 0;
}

char *
conf_read(const char *path, char *err, size_t errlen)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto error;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > CONF_MAX_SIZE) {
		snprintf(err, errlen, "%s: %s", path, S_ISREG(st.st_mode) ?
		    "bigger than 1 MiB" : "not a regular file");
		goto error;
	}
	text = malloc(CONF_MAX_SIZE + 1);
	if (text == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto error;
	}
	/* The size may have changed since fstat: read to the end, up to the bound. */
	while (len < CONF_MAX_SIZE + 1 && (n = read(fd, text + len, CONF_MAX_SIZE + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto error;
		}
		len += (size_t)n;
	}
	if (len > CONF_MAX_SIZE || memchr(text, '\0', len) != NULL) {
		snprintf(err, errlen, "%s: %s", path, len > CONF_MAX_SIZE ? "bigger than 1 MiB" :
		    "a NUL byte in it: not a text file");
		goto error;
	}
	text[len] = '\0';
	close(fd);
	return text;
error:
	free(text);
	if (fd >= 0)
		close(fd);
	return NULL;
}

enum opts_result
conf_settings(int argc, char **argv, struct settings *s, char **text, char *err, size_t errlen)
{
	enum opts_result r;
	char why[OPTS_ERRLEN];

	*text = NULL;
	opts_defaults(s);
	r = opts_parse_over(argc, argv, s, err, errlen);
	if (r != OPTS_RUN)
		return r;
	if (s->config != NULL) {
		const char *fname = s->config;

		*text = conf_read(fname, err, errlen);
		if (*text == NULL)
			return OPTS_ERROR;
		opts_defaults(s);
		if (conf_parse(*text, fname, s, err, errlen) < 0)
			return OPTS_ERROR;
		/* The command line once more, over the file: it wins. */
		r = opts_parse_over(argc, argv, s, err, errlen);
		if (r != OPTS_RUN)
			return r;
	}
	if (opts_check(s, why, sizeof(why)) < 0) {
		if (s->config != NULL)
			snprintf(err, errlen, "%s: %s", s->config, why);
		else
			snprintf(err, errlen, "%s", why);
		return OPTS_ERROR;
	}
	return OPTS_RUN;
}
