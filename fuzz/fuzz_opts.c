/*
 * libFuzzer target for opts_parse: the input is an argument vector, arguments separated by NUL
 * bytes.  Whatever the input, the parser must return, and either yield settings inside their
 * documented ranges or a one-line reason.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 32

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *argv[MAX_ARGS + 2], err[OPTS_ERRLEN];
	struct settings s;
	int argc = 0;
	size_t start = 0;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = (char *)"mpechod";
	for (size_t i = 0; i <= size && argc <= MAX_ARGS; i++) {
		if (buf[i] == '\0') {
			argv[argc++] = buf + start;
			start = i + 1;
		}
	}
	argv[argc] = NULL;
	err[0] = '\0';
	switch (opts_parse(argc, argv, &s, err, sizeof(err))) {
	case OPTS_RUN:
		if (s.port < 0 || s.port > 65535 || s.max_clients < 1 || s.max_clients > 100000 ||
		    s.idle_timeout < 0 || s.grace < 0 || s.nbinds > OPTS_MAX_BINDS ||
		    s.max_per_source < 0 || s.max_rate < 0 || (s.store && s.store[0] == '\0'))
			abort();
		break;
	case OPTS_ERROR:
		if (err[0] == '\0' || strchr(err, '\n') != NULL)
			abort();
		break;
	case OPTS_HELP:
	case OPTS_VERSION:
		break;
	}
	free(buf);
	return 0;
}
