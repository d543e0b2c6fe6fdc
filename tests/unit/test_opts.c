/*
 * Unit tests for opts.c: defaults, every option, and every kind of bad value.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdint.h>
#include <string.h>

#include "opts.h"
#include "num.h"

static enum opts_result
parse(struct settings *s, char *err, const char *const *args)
{
	char *argv[32];
	int argc = 0;

	argv[argc++] = (char *)"mpechod";
	for (; *args != NULL; args++)
		argv[argc++] = (char *)(uintptr_t)*args;
	argv[argc] = NULL;
	err[0] = '\0';
	return opts_parse(argc, argv, s, err, OPTS_ERRLEN);
}

#define PARSE(s, err, ...) parse(s, err, (const char *const[]){ __VA_ARGS__, NULL })

Test(opts, defaults)
{
	struct settings s;
	char err[OPTS_ERRLEN];

	cr_assert_eq(parse(&s, err, (const char *const[]){ NULL }), OPTS_RUN);
	cr_assert_eq(s.port, 7007);
	cr_assert_str_eq(s.store, "echomsg.jsonl");
	cr_assert_eq(s.format, STORE_JSONL);
	cr_assert_eq(s.fsync, FSYNC_EVERYSEC);
	cr_assert_eq(s.max_clients, 1024);
	cr_assert_eq(s.idle_timeout, 0);
	cr_assert_eq(s.nbinds, 0);
}

Test(opts, every_option)
{
	struct settings s;
	char err[OPTS_ERRLEN];

	cr_assert_eq(PARSE(&s, err, "-p", "0", "-b", "127.0.0.1", "--bind=::1", "-s", "x.jsonl",
	    "--store-format", "raw", "--fsync", "always", "-c", "5", "--idle-timeout", "30",
	    "--grace", "2"), OPTS_RUN, "%s", err);
	cr_assert_eq(s.port, 0);
	cr_assert_eq(s.nbinds, 2);
	cr_assert_str_eq(s.binds[1], "::1");
	cr_assert_str_eq(s.store, "x.jsonl");
	cr_assert_eq(s.format, STORE_RAW);
	cr_assert_eq(s.fsync, FSYNC_ALWAYS);
	cr_assert_eq(s.max_clients, 5);
	cr_assert_eq(s.idle_timeout, 30);
	cr_assert_eq(s.grace, 2);
	cr_assert_eq(PARSE(&s, err, "--no-store", "--fsync=no"), OPTS_RUN);
	cr_assert_null(s.store);
	cr_assert_eq(s.fsync, FSYNC_NO);
}

Test(opts, help_and_version)
{
	struct settings s;
	char err[OPTS_ERRLEN];

	cr_assert_eq(PARSE(&s, err, "--help"), OPTS_HELP);
	cr_assert_eq(PARSE(&s, err, "-V"), OPTS_VERSION);
	cr_assert_not_null(strstr(opts_usage(), "--max-clients"));
}

/* Criterion runs each parameter in a new process image, so the cases hold their strings by
 * value, not as pointers into the parent's memory. */
struct bad { char a[24], b[24], msg[24]; };

ParameterizedTestParameters(opts, rejects)
{
	static struct bad cases[] = {
		{ "-p", "65536", "--port" }, { "-p", "-1", "--port" }, { "-p", "", "--port" },
		{ "-p", "7x", "--port" }, { "-p", " 7", "--port" }, { "-p", "99999999999999999999", "--port" },
		{ "-c", "0", "--max-clients" }, { "-c", "-5", "--max-clients" },
		{ "-c", "100001", "--max-clients" }, { "--idle-timeout", "-1", "--idle-timeout" },
		{ "--grace", "abc", "--grace" }, { "--store-format", "xml", "--store-format" },
		{ "--store-format", "", "--store-format" }, { "--fsync", "sometimes", "--fsync" },
		{ "-s", "", "--store" }, { "-b", "", "--bind" }, { "--bogus", "NONE", "--bogus" },
		{ "-x", "NONE", "-x" }, { "-p", "NONE", "needs a value" }, { "extra", "NONE", "unexpected" },
		{ "--help=1", "NONE", "--help" }, { "--port", "NONE", "--port" },
	};
	return cr_make_param_array(struct bad, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct bad *c, opts, rejects)
{
	struct settings s;
	char err[OPTS_ERRLEN];
	const char *args[3] = { c->a, strcmp(c->b, "NONE") ? c->b : NULL, NULL };

	cr_assert_eq(parse(&s, err, args), OPTS_ERROR, "%s %s accepted", c->a, c->b);
	cr_assert_not_null(strstr(err, c->msg), "reason '%s' does not name '%s'", err, c->msg);
	cr_assert_null(strchr(err, '\n'), "reason has more than one line");
}

Test(opts, empty_values)
{
	struct settings s;
	char err[OPTS_ERRLEN];

	cr_assert_eq(PARSE(&s, err, "-p", ""), OPTS_ERROR);
	cr_assert_eq(PARSE(&s, err, "--max-clients="), OPTS_ERROR);
	cr_assert_eq(PARSE(&s, err, "--store-format="), OPTS_ERROR);
}

Test(opts, reasons_stay_on_one_line)
{
	struct settings s;
	char err[OPTS_ERRLEN];

	/* Found by fuzz/fuzz_opts.c: a newline in an option cluster reached the reason. */
	cr_assert_eq(PARSE(&s, err, "-\np"), OPTS_ERROR);
	cr_assert_null(strchr(err, '\n'), "%s", err);
	cr_assert_eq(PARSE(&s, err, "-p", "1\n2"), OPTS_ERROR);
	cr_assert_null(strchr(err, '\n'), "%s", err);
	cr_assert_eq(PARSE(&s, err, "--fsync", "a\nb"), OPTS_ERROR);
	cr_assert_null(strchr(err, '\n'), "%s", err);
	cr_assert_eq(PARSE(&s, err, "x\ny"), OPTS_ERROR);
	cr_assert_null(strchr(err, '\n'), "%s", err);
}

Test(opts, too_many_binds)
{
	struct settings s;
	char err[OPTS_ERRLEN];
	const char *args[2 * OPTS_MAX_BINDS + 3];
	int n = 0;

	for (int i = 0; i <= OPTS_MAX_BINDS; i++) {
		args[n++] = "-b";
		args[n++] = "127.0.0.1";
	}
	args[n] = NULL;
	cr_assert_eq(parse(&s, err, args), OPTS_ERROR);
}

Test(opts, number_bounds)
{
	long v;

	cr_assert_eq(num_parse("0", 0, 10, &v), 0);
	cr_assert_eq(num_parse("10", 0, 10, &v), 0);
	cr_assert_eq(v, 10);
	cr_assert_eq(num_parse("11", 0, 10, &v), -1);
	cr_assert_eq(num_parse("-0", 0, 10, &v), 0);
	cr_assert_eq(num_parse("+3", 0, 10, &v), 0);
	cr_assert_eq(num_parse("", 0, 10, &v), -1);
	cr_assert_eq(num_parse("-", 0, 10, &v), -1);
	cr_assert_eq(num_parse("0x5", 0, 10, &v), -1);
}

Test(opts, echo_after)
{
	struct settings s;
	char err[OPTS_ERRLEN];

	cr_assert_eq(parse(&s, err, (const char *const[]){ NULL }), OPTS_RUN);
	cr_assert_eq(s.echo_after, 0);
	cr_assert_eq(PARSE(&s, err, "--echo-after", "written"), OPTS_RUN, "%s", err);
	cr_assert_eq(s.echo_after, 1);
	cr_assert_eq(PARSE(&s, err, "--echo-after=synced"), OPTS_RUN, "%s", err);
	cr_assert_eq(s.echo_after, 2);
	cr_assert_eq(PARSE(&s, err, "--echo-after", "read"), OPTS_ERROR);
	cr_assert_neq(strstr(err, "--echo-after"), NULL, "%s", err);
	cr_assert_eq(PARSE(&s, err, "--echo-after", "written", "--no-store"), OPTS_ERROR);
	cr_assert_neq(strstr(err, "needs one"), NULL, "%s", err);
}

Test(opts, sandbox_and_source_prefix)
{
	struct settings s;
	char err[OPTS_ERRLEN];

	cr_assert_eq(PARSE(&s, err, "-p", "0"), OPTS_RUN);
	cr_assert_eq(s.sandbox, 1);
	cr_assert_eq(s.prefix4, 32);
	cr_assert_eq(s.prefix6, 64);
	cr_assert_eq(PARSE(&s, err, "--sandbox", "off", "--source-prefix", "24:48"), OPTS_RUN,
	    "%s", err);
	cr_assert_eq(s.sandbox, 0);
	cr_assert_eq(s.prefix4, 24);
	cr_assert_eq(s.prefix6, 48);
	cr_assert_eq(PARSE(&s, err, "--sandbox=maybe"), OPTS_ERROR);
	cr_assert(strstr(err, "--sandbox") != NULL, "%s", err);
	cr_assert_eq(PARSE(&s, err, "--source-prefix", "32"), OPTS_ERROR);
	cr_assert_eq(PARSE(&s, err, "--source-prefix", "33:64"), OPTS_ERROR);
	cr_assert_eq(PARSE(&s, err, "--source-prefix", "32:129"), OPTS_ERROR);
	cr_assert_eq(PARSE(&s, err, "--source-prefix", ":64"), OPTS_ERROR);
	cr_assert_eq(PARSE(&s, err, "--source-prefix", "0:64"), OPTS_ERROR);
}
