/*
 * Unit tests for log.c's rate-limited log: the decision with the clock stepped by hand, and the
 * lines it writes (stderr is a pipe read back here).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

Test(ratelimit, one_line_a_period_with_the_count_held_back)
{
	struct log_ratelimit rl = { 0 };
	uint64_t held = 99;

	cr_assert_eq(log_ratelimit_pass(&rl, 10000, &held), 1);
	cr_assert_eq(held, 0u);
	for (int i = 0; i < 7; i++)
		cr_assert_eq(log_ratelimit_pass(&rl, 10000 + i * 100, &held), 0);
	cr_assert_eq(log_ratelimit_pass(&rl, 10000 + LOG_RATELIMIT_MS - 1, &held), 0);
	cr_assert_eq(log_ratelimit_pass(&rl, 10000 + LOG_RATELIMIT_MS, &held), 1);
	cr_assert_eq(held, 8u, "held %llu, want 8", (unsigned long long)held);
	cr_assert_eq(log_ratelimit_pass(&rl, 50000, &held), 1);
	cr_assert_eq(held, 0u);
}

Test(ratelimit, a_clock_that_steps_back_holds_lines_until_the_period_ends)
{
	struct log_ratelimit rl = { 0 };
	uint64_t held;

	cr_assert_eq(log_ratelimit_pass(&rl, 5000, &held), 1);
	cr_assert_eq(log_ratelimit_pass(&rl, 1000, &held), 0);
	cr_assert_eq(log_ratelimit_pass(&rl, 6000, &held), 1);
	cr_assert_eq(held, 1u);
}

/* What log_ratelimit wrote to stderr (a pipe) while fn ran. */
static void
captured(char *out, size_t len, void (*fn)(void))
{
	int p[2], saved = dup(STDERR_FILENO);
	ssize_t n;

	cr_assert_eq(pipe2(p, O_NONBLOCK), 0);
	dup2(p[1], STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	n = read(p[0], out, len - 1);
	close(p[0]);
	out[n > 0 ? n : 0] = '\0';
}

static void
three_in_a_second_then_one(void)
{
	struct log_ratelimit rl = { 0 };

	log_init("test", NULL);
	cr_assert_eq(log_ratelimit(&rl, 1000, 0, "refused %s", "10.0.0.1"), 1);
	cr_assert_eq(log_ratelimit(&rl, 1200, 0, "refused %s", "10.0.0.2"), 0);
	cr_assert_eq(log_ratelimit(&rl, 1900, 0, "refused %s", "10.0.0.3"), 0);
	errno = EMFILE;
	cr_assert_eq(log_ratelimit(&rl, 2000, 1, "accept failed"), 1);
}

Test(ratelimit, lines_say_how_many_were_held_back)
{
	char out[1024], want[256];

	captured(out, sizeof(out), three_in_a_second_then_one);
	snprintf(want, sizeof(want), "test[%ld]: refused 10.0.0.1\ntest[%ld]: accept failed (and 2 "
	    "more in the last second): %s\n", (long)getpid(), (long)getpid(), strerror(EMFILE));
	cr_assert_str_eq(out, want);
}
