/*
 * libFuzzer target for conf_parse: the input is a configuration file's text.  Whatever it is,
 * the parser must return, and either yield settings inside their documented ranges or one line
 * that names the file and the line.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), err[OPTS_ERRLEN];
	struct settings s;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	err[0] = '\0';
	opts_defaults(&s);
	if (conf_parse(buf, "f", &s, err, sizeof(err)) == 0) {
		if (s.port < 0 || s.port > 65535 || s.max_clients < 1 || s.max_clients > 100000 ||
		    s.idle_timeout < 0 || s.grace < 0 || s.nbinds > OPTS_MAX_BINDS ||
		    s.nallow > OPTS_MAX_RULES || s.ndeny > OPTS_MAX_RULES ||
		    s.nproxy_from > OPTS_MAX_RULES || s.max_per_source < 0 || s.max_rate < 0 ||
		    s.drain < 0 || s.agent_port < -1 || s.agent_port > 65535 ||
		    (s.store && s.store[0] == '\0') || s.config != NULL)
			abort();
	} else if (strncmp(err, "f:", 2) != 0 || strchr(err, '\n') != NULL) {
		abort();
	}
	free(buf);
	return 0;
}
