/*
 * store_start.h - how the store process is started, the same way by the daemon's master and by
 * --inetd (PostgreSQL's SysLogger_Start, beside the logger it starts): the file is opened and
 * given to the user mpechod runs as before anyone drops privileges, then the store is forked by
 * proc_fork, holding only the pipe's read end and the file.
 */
#ifndef MPECHO_STORE_START_H
#define MPECHO_STORE_START_H

#include "store.h"
#include "user.h"

#include <sysexits.h>

/* The exit status of mpechod, daemon or --inetd, when its store cannot be used: the file cannot
 * be opened or created, or another live mpechod is writing it (sysexits' "cannot create output
 * file"; man/mpechod.8, EXIT STATUS). */
#define STORE_EX_UNUSABLE EX_CANTCREAT

/* Says "cannot open store PATH: WHY" and exits STORE_EX_UNUSABLE. */
_Noreturn void store_unusable(const char *path, const char *why);
/* Opens path for the store and gives the file to user (NULL: keeps its owner), so that a store
 * running as the user can open it again after a rotation; exits STORE_EX_UNUSABLE if it cannot
 * be opened.  Called before privileges are dropped.  Returns the descriptor. */
int store_start_file(const char *path, const struct user_ids *user);
/* Forks the store process, which runs store_run(a) with nothing but a's pipe end and file
 * (descriptor 0 becomes /dev/null: under --inetd it was the client's socket, and the connection
 * must end when the session closes it, not when the store has written).  Returns its pid, or -1
 * with errno. */
pid_t store_start(struct store_args *a);

#endif
