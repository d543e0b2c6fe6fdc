/*
 * Unit tests for store_wb.c: the store's write-behind ranges.  Every byte written is kicked
 * exactly once and dropped exactly once, in order, at most three chunks behind the end; a file
 * found shorter (truncated under the store) starts over from its start.
 */
#include <criterion/criterion.h>

#include "store_wb.h"

#define C STORE_WB_CHUNK

Test(store_wb, nothing_before_a_whole_chunk)
{
	struct store_wb w;
	struct store_wb_step s;

	store_wb_reset(&w, 100);
	s = store_wb_next(&w, 100 + C - 1);
	cr_assert_eq(s.kick_len, 0);
	cr_assert_eq(s.drop_len, 0);
	s = store_wb_next(&w, 100 + C);
	cr_assert_eq(s.kick_off, 100);
	cr_assert_eq(s.kick_len, C);
	cr_assert_eq(s.drop_len, 0);
}

Test(store_wb, every_byte_kicked_then_dropped_once_in_order)
{
	struct store_wb w;
	off_t end = 0, kicked = 0, dropped = 0;

	store_wb_reset(&w, 0);
	for (int i = 0; i < 5000; i++) {
		struct store_wb_step s;

		end += 1 + (i * 7919) % (600 * 1024); /* writes of up to 600 KiB */
		s = store_wb_next(&w, end);
		if (s.kick_len > 0) {
			cr_assert_eq(s.kick_off, kicked);
			cr_assert_geq(s.kick_len, C);
			kicked += s.kick_len;
			cr_assert_eq(kicked, end);
		}
		if (s.drop_len > 0) {
			cr_assert_eq(s.drop_off, dropped);
			dropped += s.drop_len;
			/* Only what was kicked before this step's kick, and not the last chunk. */
			cr_assert_leq(dropped, kicked - s.kick_len);
		}
		cr_assert_leq(end - dropped, 3 * C + 2 * 600 * 1024, "at most ~3 chunks kept");
		cr_assert_lt(end - kicked, C);
	}
	cr_assert_gt(dropped, 0);
}

Test(store_wb, truncated_file_starts_over)
{
	struct store_wb w;
	struct store_wb_step s;

	store_wb_reset(&w, 0);
	for (off_t e = C; e <= 5 * C; e += C)
		(void)store_wb_next(&w, e);
	s = store_wb_next(&w, 1000);
	cr_assert_eq(s.kick_len, 0);
	cr_assert_eq(s.drop_len, 0);
	s = store_wb_next(&w, C + 10);
	cr_assert_eq(s.kick_off, 0);
	cr_assert_eq(s.kick_len, C + 10);
	cr_assert_eq(s.drop_len, 0, "nothing of the new file kicked before, so nothing dropped");
}
