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
	/* Whole pages only: the page the end is in gets the next write, which must not find it
	 * being written out (where the kernel keeps pages stable under writeback, that write
	 * would wait for the disk). */
	off_t whole = end & ~(STORE_WB_ALIGN - 1);

	/* Shorter than what was written: truncated (or replaced) under the store.  What is there
	 * now is left to the kernel; write-behind goes on from its end. */
	if (end < w->kicked)
		store_wb_reset(w, end);
	if (whole - w->kicked < STORE_WB_CHUNK)
		return s;
	s.kick_off = w->kicked;
	s.kick_len = whole - w->kicked;
	/* The chunk kicked the time before last: its writeback had a whole chunk's writes to
	 * finish in. */
	if (w->prev > w->dropped) {
		s.drop_off = w->dropped;
		s.drop_len = w->prev - w->dropped;
		w->dropped = w->prev;
	}
	w->prev = w->kicked;
	w->kicked = whole;
	return s;
}
