/*
 * Unit tests for store_wb.c: the store's write-behind ranges.  Every byte written is kicked
 * exactly once and dropped exactly once, in order, at most three chunks behind the end, and a
 * kick ends on a whole page (STORE_WB_ALIGN), never in the page the next write goes to; a file
 * found shorter (truncated under the store) goes on from its new end.
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
	/* A whole chunk past the start, but its last whole page ends short of one. */
	s = store_wb_next(&w, 100 + C);
	cr_assert_eq(s.kick_len, 0);
	s = store_wb_next(&w, C + STORE_WB_ALIGN + 1);
	cr_assert_eq(s.kick_off, 100);
	cr_assert_eq(s.kick_len, C + STORE_WB_ALIGN - 100, "up to the page the end is in");
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
			cr_assert_eq(kicked % STORE_WB_ALIGN, 0);
			cr_assert_leq(kicked, end);
			cr_assert_gt(kicked + STORE_WB_ALIGN, end, "all but the page the end is in");
		}
		if (s.drop_len > 0) {
			cr_assert_eq(s.drop_off, dropped);
			dropped += s.drop_len;
			/* Only what was kicked before this step's kick, and not the last chunk. */
			cr_assert_leq(dropped, kicked - s.kick_len);
		}
		cr_assert_leq(end - dropped, 3 * C + 2 * 600 * 1024 + STORE_WB_ALIGN,
		    "at most ~3 chunks kept");
		cr_assert_lt(end - kicked, C + STORE_WB_ALIGN);
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
	cr_assert_eq(s.kick_len, 0, "from the new end, not from the start");
	s = store_wb_next(&w, C + STORE_WB_ALIGN + 10);
	cr_assert_eq(s.kick_off, 1000);
	cr_assert_eq(s.kick_len, C + STORE_WB_ALIGN - 1000);
	cr_assert_eq(s.drop_len, 0, "nothing of the new file kicked before, so nothing dropped");
}
