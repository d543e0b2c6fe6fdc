/*
 * penalty.h - --source-penalty: a source whose connections keep being culled (reset or closed
 * unserved before their accept) or failing their PROXY header is refused for a while (OpenSSH's
 * PerSourcePenalties).
 *
 * Pure logic like admit.h: the caller passes the time in milliseconds and the memory (one block
 * without pointers, in the master's shared mapping), and serialises the calls behind shared.h's
 * lock.  A source is an admit_key, cut to its --source-prefix block by the caller.  Its strikes
 * are counted from its first one; PENALTY_STRIKES of them within one penalty's length start a
 * penalty of that length, after which it starts again from nothing.  The table has a fixed
 * size: when it is half full the sources with no strike in the window and no penalty left are
 * dropped, and when that frees nothing a new source is not tracked (the penalty is a defence
 * of last resort, not a limit: it never refuses a source for want of room).  A death under the
 * lock can leave one entry torn: at worst one source is penalised for one period too many or
 * too few.
 */
#ifndef MPECHO_PENALTY_H
#define MPECHO_PENALTY_H

#include "admit.h"

#include <stddef.h>
#include <stdint.h>

/* Culls or bad headers within one penalty's length that start a penalty. */
#define PENALTY_STRIKES 8
/* Sources tracked at most (a power of two; kept at most half full). */
#define PENALTY_SLOTS 4096

struct penalty_src {
	struct admit_key key;
	uint32_t strikes;
	int64_t first_ms; /* the first strike counted */
	int64_t until_ms; /* refused until then; 0: not penalised */
};

struct penalty {
	int64_t len_ms; /* a penalty's length, and the window its strikes are counted in */
	uint32_t cap, count;
	struct penalty_src tab[];
};

/* Bytes a table of cap slots (a power of two) needs. */
size_t penalty_size(uint32_t cap);
/* Sets up zeroed memory of penalty_size(cap) bytes for penalties of seconds (> 0). */
void penalty_init(struct penalty *p, uint32_t cap, int seconds);
/* Whether k is refused at now_ms.  Returns the seconds left (at least 1), or 0. */
int penalty_check(const struct penalty *p, const struct admit_key *k, int64_t now_ms);
/* One strike against k at now_ms.  Returns 1 when it starts k's penalty (for the caller to say
 * so, once), else 0. */
int penalty_strike(struct penalty *p, const struct admit_key *k, int64_t now_ms);

#endif
