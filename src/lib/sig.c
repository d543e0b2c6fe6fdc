/*
 * sig.c - sigaction wrappers.
 */
#define _GNU_SOURCE
#include "sig.h"

#include <poll.h>
#include <stddef.h>

int
sig_handle(int signo, void (*handler)(int), int flags)
{
	struct sigaction sa;

	sa.sa_handler = handler;
	sigfillset(&sa.sa_mask);
	sa.sa_flags = flags;
	return sigaction(signo, &sa, NULL);
}

int
sig_ignore(int signo)
{
	return sig_handle(signo, SIG_IGN, 0);
}

int
sig_default(int signo)
{
	return sig_handle(signo, SIG_DFL, 0);
}

int
sig_block(const int *signos, sigset_t *waitmask)
{
	sigset_t set;

	sigemptyset(&set);
	for (; *signos != 0; signos++)
		sigaddset(&set, *signos);
	if (sigprocmask(SIG_BLOCK, &set, waitmask) < 0)
		return -1;
	for (int i = 1; i < NSIG; i++)
		if (sigismember(&set, i) == 1)
			sigdelset(waitmask, i);
	return 0;
}

int
sig_setmask(const int *signos)
{
	sigset_t set;

	sigemptyset(&set);
	for (; *signos != 0; signos++)
		sigaddset(&set, *signos);
	return sigprocmask(SIG_SETMASK, &set, NULL);
}

void
sig_deliver_pending(const sigset_t *waitmask)
{
	struct timespec zero = { 0, 0 };
	sigset_t pending;

	if (sigpending(&pending) == 0 && !sigisemptyset(&pending))
		ppoll(NULL, 0, &zero, waitmask);
}
