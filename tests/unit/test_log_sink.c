/*
 * Unit tests for log_sink.c's JSON line: the fields, the escapes, one line.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <syslog.h>

#include "log_sink.h"

Test(json, a_plain_line)
{
	char out[4096];
	size_t n = log_sink_json_line(out, sizeof(out), 1700000000123LL, LOG_WARNING, NULL, 42,
	    "say \"hi\"\\\n", NULL);

	cr_assert_eq(n, strlen(out));
	cr_assert_str_eq(out, "{\"ts\":\"2023-11-14T22:13:20.123Z\",\"level\":\"warning\","
	    "\"event\":\"log\",\"role\":\"master\",\"pid\":42,\"msg\":\"say \\\"hi\\\"\\\\\\u000a\"}\n");
}

Test(json, an_event_with_fields)
{
	char out[4096];
	struct log_fields f = { .event = "session-end", .conn = 7, .pid = 99, .peer = "[::1]:5",
		.reason = "idle", .bytes = 0, .duration_ms = 1500 };

	log_sink_json_line(out, sizeof(out), 0, LOG_INFO, "pool", 3, "m", &f);
	cr_assert(strstr(out, "\"event\":\"session-end\",\"role\":\"pool\",\"pid\":3,\"msg\":\"m\","
	    "\"conn\":7,\"session_pid\":99,\"peer\":\"[::1]:5\",\"reason\":\"idle\",\"bytes\":0,"
	    "\"duration\":1.500}\n") != NULL, "%s", out);
}

Test(json, cut_to_fit_is_still_a_line)
{
	char out[64];
	size_t n = log_sink_json_line(out, sizeof(out), 0, LOG_INFO, NULL, 1,
	    "a long message that does not fit in sixty-four bytes at all", NULL);

	cr_assert(n < sizeof(out) && out[n - 1] == '\n' && out[n - 2] == '}', "%s", out);
}
