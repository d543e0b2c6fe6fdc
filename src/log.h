/*
 * log.h - diagnostics shared by every mpecho process.
 *
 * Each line goes to stderr in one write(2), so lines from the master, the store and the sessions
 * never interleave mid-line.  The *_warn and fatal variants append strerror(errno); the *x
 * variants do not (OpenBSD's log.c convention).  Only main(), option handling and the store
 * (for what it cannot run without) call fatal(); in a forked child it leaves with _exit.
 */
#ifndef MPECHO_LOG_H
#define MPECHO_LOG_H

#include <stdarg.h>

#define PRINTFLIKE(f, a) __attribute__((format(printf, f, a)))

/* Sets the program name and role ("store", "session" or NULL) and caches the pid; call again
 * in a child after fork(). */
void log_init(const char *prog, const char *role);
/* The same, for a child that already knows its pid. */
void log_child(const char *role, long pid);
/* On: a line is written only if stderr can take it without blocking; the others are counted,
 * and the count is shown on the next line written.  The master logs every connection and must
 * never stall on a stderr nobody reads. */
void log_guard(int on);
void log_info(const char *fmt, ...) PRINTFLIKE(1, 2);
void log_warn(const char *fmt, ...) PRINTFLIKE(1, 2);
void log_warnx(const char *fmt, ...) PRINTFLIKE(1, 2);
_Noreturn void fatal(int status, const char *fmt, ...) PRINTFLIKE(2, 3);
_Noreturn void fatalx(int status, const char *fmt, ...) PRINTFLIKE(2, 3);

#endif
