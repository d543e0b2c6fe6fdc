/*
 * store_wb.c - the store's write-behind ranges (see store_wb.h).  Pure: no I/O.
 */
#include "store_wb.h"

void
store_wb_reset(struct store_wb *w, off_t end)
{
	w->kicked = w->prev = w->dropped = end;
}

struct store_wb_step
store_wb_next(struct store_wb *w, off_t end)
{
	struct store_wb_step s = { 0, 0, 0, 0 };

	/* Shorter than what was written: truncated (or replaced) under the store. */
	if (end < w->kicked)
		store_wb_reset(w, 0);
	if (end - w->kicked < STORE_WB_CHUNK)
		return s;
	s.kick_off = w->kicked;
	s.kick_len = end - w->kicked;
	/* The chunk kicked the time before last: its writeback had a whole chunk's writes to
	 * finish in. */
	if (w->prev > w->dropped) {
		s.drop_off = w->dropped;
		s.drop_len = w->prev - w->dropped;
		w->dropped = w->prev;
	}
	w->prev = w->kicked;
	w->kicked = end;
	return s;
}
