/*
 * sig.c - sigaction wrappers.
 */
#define _GNU_SOURCE
#include "sig.h"

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

void
sig_reset_all(void)
{
	sigset_t none;
	/* SIGPIPE stays ignored everywhere: every process writes to sockets or pipes and handles
	 * EPIPE itself. */
	static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, 0 };

	for (const int *s = sigs; *s != 0; s++)
		sig_default(*s);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}
