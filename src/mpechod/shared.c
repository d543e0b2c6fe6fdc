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
shared_settings(struct shared *sh, int idle_timeout, int grace)
{
	__atomic_store_n(&sh->idle_timeout, idle_timeout, __ATOMIC_RELEASE);
	__atomic_store_n(&sh->grace, grace, __ATOMIC_RELEASE);
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

/* The decision under the lock; the line, which may wait for stderr, after it. */
void
shared_log(struct shared *sh, struct log_ratelimit *rl, const char *msg)
{
	struct log_ratelimit now = { .next_ms = INT64_MIN };
	int64_t ms = io_now_ms();
	int pass;

	shared_lock(sh);
	pass = log_ratelimit_pass(rl, ms, &now.held);
	shared_unlock(sh);
	if (pass)
		log_ratelimit(&now, ms, 0, "%s", msg);
}
