/*
 * arena.h - the master's shared memory as a named object, /dev/shm/mpechod.PID, so that
 * mpecho-top can read the live figures and the scoreboard of a running server without signals
 * or ptrace.
 *
 * The master creates the object (mode 0600, owned by whoever started the server) before it
 * allocates its shared state, and every later shared mapping (master_shared) is a piece of it
 * at its own page-aligned offset, all inside one mapping of the object (so a fork or an exit
 * handles one readable mapping, not one a piece); the children inherit it by fork as before.  The
 * first page is a header that lists each piece's address in the master and its offset in the
 * object, so a reader maps the object once and translates the master's pointers.  The master
 * removes the object when it exits; one left by a master killed with SIGKILL names a pid that
 * no longer runs: mpecho-top passes it by, and the next master to start removes it.
 */
#ifndef MPECHO_ARENA_H
#define MPECHO_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARENA_MAGIC "mpechod\1"
#define ARENA_MAPS 32
#define ARENA_PREFIX "mpechod."
#define ARENA_DIR "/dev/shm"

struct arena_head {
	char magic[8];
	uint32_t layout;              /* the creator's sizeof(struct master): a reader of another
	                               * build refuses a layout it does not share */
	int32_t pid;                  /* the master's */
	uint64_t master;              /* the address of struct master in the master */
	uint32_t nmaps;
	struct arena_map {
		uint64_t addr, off, len;
	} maps[ARENA_MAPS];
};

/* The master: removes the objects of masters no longer running, then creates
 * /dev/shm/mpechod.PID; 0, or -1 with errno. */
int arena_create(pid_t pid, uint32_t layout);
/* A zeroed shared piece of len bytes from the object; NULL with errno when there is no object
 * or it cannot grow (the caller then maps anonymous memory). */
void *arena_alloc(size_t len);
/* Records where struct master is. */
void arena_set_master(const void *m);
/* Removes the object, in the process that created it only (an atexit handler). */
void arena_unlink(void);

/* A reader's view of an object mapped read-only. */
struct arena_view {
	unsigned char *base;          /* mapped PROT_READ */
	size_t len;
	const struct arena_head *h;
};

/* Maps path read-only and checks its header (EPROTO: not one, or another layout). */
int arena_map(const char *path, uint32_t layout, struct arena_view *v);
void arena_unmap(struct arena_view *v);
/* The master's address addr, len bytes from it, in the view; NULL when outside every piece. */
const void *arena_at(const struct arena_view *v, uint64_t addr, size_t len);

#endif
