/*
 * libFuzzer target for metrics_http_parse.  The input is what a scraper sends; the parser must
 * read every prefix of it consistently, as the metrics process calling it on each read would:
 *  - MH_MORE only below MH_MAX bytes;
 *  - once it has an answer, every longer prefix gets the same answer (what follows the empty
 *    line is never read);
 *  - the answer's head fits its buffer, starts "HTTP/1.1 " and ends in an empty line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	enum mh_result first = MH_MORE, r;
	struct mh_req req;
	char head[256];
	size_t n;

	for (size_t len = 0; len <= size; len++) {
		r = metrics_http_parse(s, len, &req);
		if (r == MH_MORE && len >= MH_MAX)
			abort();
		if (first != MH_MORE && r != first)
			abort();
		if (first == MH_MORE)
			first = r;
	}
	n = metrics_http_head(first, size, head, sizeof(head));
	if (n == 0 || n >= sizeof(head) || strncmp(head, "HTTP/1.1 ", 9) != 0 ||
	    strcmp(head + n - 4, "\r\n\r\n") != 0)
		abort();
	return 0;
}
