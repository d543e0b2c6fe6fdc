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
/* Restores every signal's disposition to the default and unblocks them all (for a child). */
void sig_reset_all(void);

#endif
