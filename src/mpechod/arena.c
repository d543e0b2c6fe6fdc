/*
 * arena.c - the master's shared memory as a named object (see arena.h).
 */
#define _GNU_SOURCE
#include "arena.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The address space kept for the object, mapped once: every piece is a part of one mapping, so
 * a fork copies one shared mapping of it, not one per piece, and takes the file's mapping lock
 * (i_mmap_rwsem, which every session's fork and exit take too) once instead of once a piece.
 * Only the object's size is memory; the reservation is address space, inaccessible (PROT_NONE)
 * past the object's end and opened piece by piece, so that nothing reads past the end of the
 * file (valgrind's leak check scans every readable mapping: a readable 64 MiB past the end
 * made each process's exit take minutes there).  A piece that does not fit gets a mapping of
 * its own, as every piece did before. */
#define ARENA_RESERVE ((uint64_t)64 << 20)

static struct {
	int fd;
	pid_t owner;
	char name[64];
	struct arena_head *h;
	unsigned char *base;          /* ARENA_RESERVE bytes mapped at offset 0, or NULL */
	uint64_t end;                 /* the object's size */
} arena = { .fd = -1 };

static uint64_t
arena_pages(uint64_t len)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	return (len + page - 1) / page * page;
}

/* Objects left by masters that were killed (SIGKILL runs no exit handler): a name whose pid
 * runs no process is removed.  Those of another user stay (shm_unlink is refused). */
static void
arena_sweep(void)
{
	DIR *d = opendir(ARENA_DIR);
	struct dirent *e;
	char path[128];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		const char *pid = e->d_name + strlen(ARENA_PREFIX);

		if (strncmp(e->d_name, ARENA_PREFIX, strlen(ARENA_PREFIX)) != 0 ||
		    strspn(pid, "0123456789") != strlen(pid) || strlen(pid) > 20)
			continue;
		snprintf(path, sizeof(path), "/proc/%.100s", pid);
		if (access(path, F_OK) < 0 && errno == ENOENT) {
			snprintf(path, sizeof(path), "/%.100s", e->d_name);
			shm_unlink(path);
		}
	}
	closedir(d);
}

int
arena_create(pid_t pid, uint32_t layout)
{
	int fd;

	arena_sweep();

	snprintf(arena.name, sizeof(arena.name), "/" ARENA_PREFIX "%ld", (long)pid);
	fd = shm_open(arena.name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		/* A master of this pid that died without removing it (killed): its pid is ours now. */
		shm_unlink(arena.name);
		fd = shm_open(arena.name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		return -1;
	arena.fd = fd;
	arena.owner = pid;
	arena.end = 0;
	arena.base = mmap(NULL, ARENA_RESERVE, PROT_NONE, MAP_SHARED, fd, 0);
	if (arena.base == MAP_FAILED)
		arena.base = NULL;
	arena.h = arena_alloc(sizeof(*arena.h));
	if (arena.h == NULL) {
		int err = errno;

		arena_unlink();
		errno = err;
		return -1;
	}
	arena.h->nmaps = 0; /* the header is not a piece a reader looks up */
	memcpy(arena.h->magic, ARENA_MAGIC, sizeof(arena.h->magic));
	arena.h->layout = layout;
	arena.h->pid = (int32_t)pid;
	return 0;
}

void *
arena_alloc(size_t len)
{
	uint64_t size = arena_pages(len);
	void *p;

	if (arena.fd < 0 || (arena.h != NULL && arena.h->nmaps == ARENA_MAPS)) {
		errno = ENOSPC;
		return NULL;
	}
	if (ftruncate(arena.fd, (off_t)(arena.end + size)) < 0)
		return NULL;
	if (arena.base != NULL && arena.end + size <= ARENA_RESERVE) {
		p = arena.base + arena.end;
		if (mprotect(p, size, PROT_READ | PROT_WRITE) < 0)
			return NULL;
	} else if ((p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, arena.fd,
	    (off_t)arena.end)) == MAP_FAILED)
		return NULL;
	if (arena.h != NULL) {
		arena.h->maps[arena.h->nmaps] = (struct arena_map){ .addr = (uint64_t)(uintptr_t)p,
		    .off = arena.end, .len = len };
		__atomic_add_fetch(&arena.h->nmaps, 1, __ATOMIC_RELEASE);
	}
	arena.end += size;
	return p;
}

void
arena_set_master(const void *m)
{
	if (arena.h != NULL)
		arena.h->master = (uint64_t)(uintptr_t)m;
}

void
arena_unlink(void)
{
	if (arena.fd < 0 || getpid() != arena.owner)
		return;
	shm_unlink(arena.name);
	close(arena.fd);
	arena.fd = -1;
}

int
arena_map(const char *path, uint32_t layout, struct arena_view *v)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	void *p;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(struct arena_head)) {
		close(fd);
		errno = EPROTO;
		return -1;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -1;
	v->base = p;
	v->len = (size_t)st.st_size;
	v->h = p;
	if (memcmp(v->h->magic, ARENA_MAGIC, sizeof(v->h->magic)) != 0 || v->h->layout != layout) {
		arena_unmap(v);
		errno = EPROTO;
		return -1;
	}
	return 0;
}

void
arena_unmap(struct arena_view *v)
{
	if (v->base != NULL)
		munmap(v->base, v->len);
	v->base = NULL;
}

const void *
arena_at(const struct arena_view *v, uint64_t a, size_t len)
{
	uint32_t n = __atomic_load_n(&v->h->nmaps, __ATOMIC_ACQUIRE);

	for (uint32_t i = 0; i < n && i < ARENA_MAPS; i++) {
		const struct arena_map *m = &v->h->maps[i];

		if (a >= m->addr && a - m->addr <= m->len && len <= m->len - (a - m->addr) &&
		    m->off + m->len <= v->len)
			return v->base + m->off + (a - m->addr);
	}
	return NULL;
}
