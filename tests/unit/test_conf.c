/*
 * Unit tests for conf.c: lines, comments, both forms, repeated list keys, errors with their
 * line, and the command line over the file (conf_settings).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

static int
parse(const char *text, struct settings *s, char *err)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "%s", text);
	opts_defaults(s);
	err[0] = '\0';
	return conf_parse(buf, "f.conf", s, err, OPTS_ERRLEN);
}

Test(conf, both_forms_comments_and_lists)
{
	struct settings s;
	char err[OPTS_ERRLEN];

	cr_assert_eq(parse("# a comment\n\n  port 0\ngrace = 3   # three\nallow 10.0.0.0/8\n"
	    "allow=127.0.0.1\r\nprefork\nudp yes\nmax-clients\t 5\n", &s, err), 0, "%s", err);
	cr_assert(s.port == 0 && s.grace == 3 && s.max_clients == 5, "numbers");
	cr_assert(s.prefork == 1 && s.udp == 1, "switches, alone and with yes");
	cr_assert(s.nallow == 2 && strcmp(s.allow[0], "10.0.0.0/8") == 0 &&
	    strcmp(s.allow[1], "127.0.0.1") == 0, "a key repeated is a list");
}

Test(conf, errors_name_file_and_line)
{
	struct settings s;
	char err[OPTS_ERRLEN];

	cr_assert_eq(parse("port 1\n\nbogus 3\n", &s, err), -1);
	cr_assert_str_eq(err, "f.conf:3: unknown key 'bogus'");
	cr_assert_eq(parse("# x\ngrace 99999\n", &s, err), -1);
	cr_assert(strncmp(err, "f.conf:2: --grace:", 18) == 0, "%s", err);
	cr_assert_eq(parse("allow 10.1.2.3/8\n", &s, err), -1);
	cr_assert(strstr(err, "f.conf:1: --allow:") == err, "%s", err);
	cr_assert_eq(parse("grace\n", &s, err), -1);
	cr_assert_str_eq(err, "f.conf:1: grace needs a value");
	cr_assert_eq(parse("prefork no\n", &s, err), -1);
	cr_assert(strstr(err, "f.conf:1: prefork takes no value") == err, "%s", err);
	cr_assert_eq(parse("= 3\n", &s, err), -1);
	cr_assert_str_eq(err, "f.conf:1: a value with no key");
	cr_assert_eq(parse("config other.conf\n", &s, err), -1);
	cr_assert_str_eq(err, "f.conf:1: config is for the command line only");
}

Test(conf, at_most_the_rules_allowed)
{
	static char text[OPTS_MAX_RULES * 24 + 64];
	struct settings s;
	char err[OPTS_ERRLEN];
	size_t n = 0;

	for (int i = 0; i < OPTS_MAX_RULES; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "allow 10.%d.%d.0/24\n", i / 256,
		    i % 256);
	opts_defaults(&s);
	cr_assert_eq(conf_parse(text, "f", &s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s.nallow, OPTS_MAX_RULES);
	cr_assert_geq(OPTS_MAX_RULES, 256);
	char more[] = "allow 192.0.2.1\n";

	cr_assert_eq(conf_parse(more, "f", &s, err, sizeof(err)), -1);
}

static char *
write_conf(const char *text)
{
	static char path[] = "/tmp/test_conf_XXXXXX";
	int fd;

	strcpy(path, "/tmp/test_conf_XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

Test(conf, command_line_wins)
{
	char *path = write_conf("grace 3\nallow 10.0.0.0/8\nallow 10.1.0.0/16\ndeny 10.2.0.0/16\n"
	    "max-clients 7\n");
	char *argv[] = { (char *)"mpechod", (char *)"-f", path, (char *)"--grace", (char *)"5",
	    (char *)"--allow", (char *)"192.0.2.0/24", NULL };
	struct settings s;
	char err[OPTS_ERRLEN], *text;

	cr_assert_eq(conf_settings(7, argv, &s, &text, err, sizeof(err)), OPTS_RUN, "%s", err);
	cr_assert_eq(s.grace, 5);
	cr_assert_eq(s.max_clients, 7);
	/* A list the command line gives replaces the file's; one it does not is the file's. */
	cr_assert_eq(s.nallow, 1);
	cr_assert_str_eq(s.allow[0], "192.0.2.0/24");
	cr_assert_eq(s.ndeny, 1);
	cr_assert_str_eq(s.deny[0], "10.2.0.0/16");
	cr_assert_str_eq(s.config, path);
	unlink(path);
	free(text);
}

Test(conf, checks_between_options_name_the_file)
{
	char *path = write_conf("proxy-from 10.0.0.0/8\n");
	char *argv[] = { (char *)"mpechod", (char *)"-f", path, NULL };
	struct settings s;
	char err[OPTS_ERRLEN], *text, want[128];

	cr_assert_eq(conf_settings(3, argv, &s, &text, err, sizeof(err)), OPTS_ERROR);
	snprintf(want, sizeof(want), "%s: --proxy-from", path);
	cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
	free(text);
	unlink(path);
	char *argv2[] = { (char *)"mpechod", (char *)"-f", (char *)"/nonexistent/x.conf", NULL };

	cr_assert_eq(conf_settings(3, argv2, &s, &text, err, sizeof(err)), OPTS_ERROR);
	cr_assert_str_eq(err, "/nonexistent/x.conf: No such file or directory");
	cr_assert_null(text);
}

Test(conf, a_nul_byte_is_refused)
{
	static char path[] = "/tmp/test_conf_nul_XXXXXX";
	int fd = mkstemp(path);
	char err[OPTS_ERRLEN];

	cr_assert_eq(write(fd, "port 1\n\0x\n", 10), 10);
	close(fd);
	cr_assert_null(conf_read(path, err, sizeof(err)));
	cr_assert(strstr(err, "NUL") != NULL, "%s", err);
	unlink(path);
}
