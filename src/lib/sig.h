/*
 * sig.h - signal helpers.  Handlers installed here run with every other signal blocked and
 * without SA_RESTART unless asked, so a blocking call they interrupt returns EINTR and the
 * caller re-checks its flags.
 */
#ifndef MPECHO_SIG_H
#define MPECHO_SIG_H

#include <signal.h>

int sig_handle(int signo, void (*handler)(int), int flags);
int sig_ignore(int signo);
int sig_default(int signo);
/* Blocks the given signals (a 0-terminated list) and stores the mask to wait with in *waitmask:
 * the old mask without them, for ppoll(2). */
int sig_block(const int *signos, sigset_t *waitmask);
/* ppoll(2) runs the handlers of signals pending in its temporary mask only when it has to wait:
 * when a descriptor is ready at once it returns without them, and under a load that keeps one
 * ready, a blocked signal could wait forever.  Called after a ppoll that returned descriptors,
 * this delivers whatever is pending (a zero-timeout ppoll with no descriptors). */
void sig_deliver_pending(const sigset_t *waitmask);
/* Sets the signal mask to exactly the given signals (a 0-terminated list; may be empty).  A
 * child forked by the master starts with the master's mask, everything blocked: it installs its
 * own dispositions first and calls this last, so no signal reaches it with the master's. */
int sig_setmask(const int *signos);

#endif
