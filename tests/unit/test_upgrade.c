/*
 * Unit tests for upgrade.c: the hand-over of an upgrade in place written and read back, and
 * every kind of malformed value refused (another version, a descriptor below 3, a field
 * missing, out of order or extra, a bad key or life).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "upgrade.h"

static struct upgrade_hand
sample(void)
{
	struct upgrade_hand h = { .lfd = { 3, 4 }, .nlfd = 2, .ufd = { 5 }, .nufd = 1, .nmfd = 0,
		.agent_fd = -1, .pipe_rd = 6, .pipe_wr = 7, .lock_fd = 8, .store = 1234,
		.dgram = 1235, .metrics = 0, .next_conn = 18446744073709551000ULL,
		.key = 0x0123456789abcdefULL };

	memcpy(h.life, "9f0c41d2a7b35e6084c1f2a9d3b7e510", UPGRADE_LIFE_LEN + 1);
	return h;
}

Test(upgrade, round_trip)
{
	struct upgrade_hand h = sample(), back;
	char buf[UPGRADE_ENV_MAX];

	cr_assert_gt(upgrade_format(&h, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "1 l=3,4 u=5 m= a=-1 r=6 w=7 k=8 s=1234 d=1235 x=0 "
	    "c=18446744073709551000 key=0123456789abcdef life=9f0c41d2a7b35e6084c1f2a9d3b7e510");
	cr_assert_eq(upgrade_parse(buf, &back), 0);
	cr_assert_eq(memcmp(&h, &back, sizeof(h)), 0);
}

Test(upgrade, too_short_a_buffer)
{
	struct upgrade_hand h = sample();
	char buf[40];

	cr_assert_eq(upgrade_format(&h, buf, sizeof(buf)), -1);
}

Test(upgrade, malformed)
{
	static const char *const bad[] = {
		"",
		"2 l=3 u= m= a=-1 r=-1 w=-1 k=-1 s=0 d=0 x=0 c=1 key=0000000000000000 "
		    "life=00000000000000000000000000000000",
		/* no listener */
		"1 l= u= m= a=-1 r=-1 w=-1 k=-1 s=0 d=0 x=0 c=1 key=0000000000000000 "
		    "life=00000000000000000000000000000000",
		/* a descriptor below 3 */
		"1 l=2 u= m= a=-1 r=-1 w=-1 k=-1 s=0 d=0 x=0 c=1 key=0000000000000000 "
		    "life=00000000000000000000000000000000",
		"1 l=3 u= m= a=1 r=-1 w=-1 k=-1 s=0 d=0 x=0 c=1 key=0000000000000000 "
		    "life=00000000000000000000000000000000",
		/* one end of the pipe */
		"1 l=3 u= m= a=-1 r=5 w=-1 k=-1 s=0 d=0 x=0 c=1 key=0000000000000000 "
		    "life=00000000000000000000000000000000",
		/* a trailing comma, a sign, a field out of order, one missing, one extra */
		"1 l=3, u= m= a=-1 r=-1 w=-1 k=-1 s=0 d=0 x=0 c=1 key=0000000000000000 "
		    "life=00000000000000000000000000000000",
		"1 l=3 u= m= a=-1 r=-1 w=-1 k=-1 s=-5 d=0 x=0 c=1 key=0000000000000000 "
		    "life=00000000000000000000000000000000",
		"1 u= l=3 m= a=-1 r=-1 w=-1 k=-1 s=0 d=0 x=0 c=1 key=0000000000000000 "
		    "life=00000000000000000000000000000000",
		"1 l=3 u= m= a=-1 r=-1 w=-1 k=-1 s=0 d=0 c=1 key=0000000000000000 "
		    "life=00000000000000000000000000000000",
		"1 l=3 u= m= a=-1 r=-1 w=-1 k=-1 s=0 d=0 x=0 c=1 key=0000000000000000 "
		    "life=00000000000000000000000000000000 z=1",
		/* conn 0, a short key, an upper-case life */
		"1 l=3 u= m= a=-1 r=-1 w=-1 k=-1 s=0 d=0 x=0 c=0 key=0000000000000000 "
		    "life=00000000000000000000000000000000",
		"1 l=3 u= m= a=-1 r=-1 w=-1 k=-1 s=0 d=0 x=0 c=1 key=000000000000000 "
		    "life=00000000000000000000000000000000",
		"1 l=3 u= m= a=-1 r=-1 w=-1 k=-1 s=0 d=0 x=0 c=1 key=0000000000000000 "
		    "life=0000000000000000000000000000000A",
	};
	struct upgrade_hand h;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(upgrade_parse(bad[i], &h), -1, "accepted %s", bad[i]);
}

Test(upgrade, check_words_name_the_frame)
{
	char buf[128];

	upgrade_check_words(buf, sizeof(buf), "/x/s.jsonl", NULL);
	cr_assert_not_null(strstr(buf, "proto=1 frame=40 "));
	cr_assert_not_null(strstr(buf, " store=/x/s.jsonl"));
}
