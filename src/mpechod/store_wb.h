/*
 * store_wb.h - the store's write-behind: which ranges of the file to start writing to disk, and
 * which to drop from the page cache, as the file grows (pure: store.c makes the
 * calls, sync_file_range(2) and posix_fadvise(2)).
 *
 * A store that only appends fills the page cache with pages it never reads again: at hundreds of
 * MB/s every write(2) takes fresh pages, and on this project's benchmark machine (a VM whose
 * host takes free pages back) copying into a fresh page cost more than everything else the
 * store does (half its CPU in copy_folio_from_iter_atomic).  With --fsync everysec or always
 * the bytes go to disk within a second anyway, so the store starts each STORE_WB_CHUNK's
 * writeback as soon as it is written (whole pages only, never the one the next write goes to),
 * and two chunks later drops its pages (their writeback long done, as a rule; a page still dirty
 * or being written is left where it is): the file then holds about 3 chunks of page cache,
 * recycled hot, and each fdatasync finds little left to do instead of a second's worth.  This
 * is Linux's own advice for streaming writers (sync_file_range, then POSIX_FADV_DONTNEED), as
 * PostgreSQL's *_flush_after and RocksDB's bytes_per_sync do it.  Durability is unchanged: what
 * fdatasync promises is still only what it promised.  --fsync no is left to the kernel.
 */
#ifndef MPECHO_STORE_WB_H
#define MPECHO_STORE_WB_H

#include <sys/types.h>

/* A chunk of the file: its writeback is started once it is whole. */
#define STORE_WB_CHUNK ((off_t)4 * 1024 * 1024)
/* What is kicked ends at a multiple of this (the largest page size Linux uses, so a page
 * the next write goes to is never in a kicked range). */
#define STORE_WB_ALIGN ((off_t)64 * 1024)

struct store_wb {
	off_t kicked;  /* writeback started for [dropped, kicked) */
	off_t prev;    /* where the chunk before the last one kicked ends */
	off_t dropped; /* everything before is written and out of the page cache */
};

/* What to do after a write that left the file's end at end.  A zero length: nothing. */
struct store_wb_step {
	off_t kick_off, kick_len; /* start writing this range (SYNC_FILE_RANGE_WRITE) */
	off_t drop_off, drop_len; /* drop this range's pages (POSIX_FADV_DONTNEED) */
};

/* Starts at the end of a file just opened (or found shorter: truncated). */
void store_wb_reset(struct store_wb *w, off_t end);
/* The step for a file that now ends at end; w moves on as if it was taken. */
struct store_wb_step store_wb_next(struct store_wb *w, off_t end);

#endif
