/*
 * inetd.h - mpechod --inetd: one connection on standard input, as inetd, xinetd and systemd's
 * Accept=yes start a program (see inetd.c).
 */
#ifndef MPECHO_INETD_H
#define MPECHO_INETD_H

#include "opts.h"
#include "user.h"

/* Serves the connection on descriptor 0 to its end and exits (0, or 74 when its records
 * could not all be written).  user: drop to it after opening the store; NULL: stay. */
_Noreturn void inetd_run(const struct settings *set, const struct user_ids *user);

#endif
