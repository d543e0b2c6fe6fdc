/*
 * shared.c - the lock and the rate-limited log that the master's children share (shared.h).
 */
#define _GNU_SOURCE
#include "shared.h"
#include "io.h"
#include "log.h"

#include <errno.h>

int
shared_init(struct shared *sh)
{
	pthread_mutexattr_t at;
	int r;

	if ((r = pthread_mutexattr_init(&at)) != 0 ||
	    (r = pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED)) != 0 ||
	    (r = pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST)) != 0 ||
	    (r = pthread_mutex_init(&sh->lock, &at)) != 0) {
		errno = r;
		return -1;
	}
	pthread_mutexattr_destroy(&at);
	return 0;
}

void
shared_lock(struct shared *sh)
{
	if (pthread_mutex_lock(&sh->lock) == EOWNERDEAD) {
		pthread_mutex_consistent(&sh->lock);
		sh->torn = 1;
	}
}

void
shared_unlock(struct shared *sh)
{
	pthread_mutex_unlock(&sh->lock);
}

void
shared_log(struct shared *sh, struct admit_ratelog *rl, const char *msg)
{
	uint64_t held;
	int now;

	shared_lock(sh);
	now = admit_ratelog(rl, io_now_ms(), 1000, &held);
	shared_unlock(sh);
	if (now && held > 0)
		log_warnx("%s (and %llu more in the last second)", msg, (unsigned long long)held);
	else if (now)
		log_warnx("%s", msg);
}
