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

/* Sets the program name (NULL: keep it) and the role shown after the pid ("store", or NULL for
 * none); a child with a role leaves with _exit from fatal(). */
void log_init(const char *prog, const char *role);
/* On: a line is written only if stderr can take it without blocking; the others are counted,
 * and the count is shown on the next line written.  The master logs every connection and must
 * never stall on a stderr nobody reads. */
void log_guard(int on);
/* From now on, lines go to syslog (LOG_DAEMON, tagged with the program and pid) instead of
 * stderr: for --inetd, where stderr may be the client's socket. */
void log_syslog(void);
/* With lines going to syslog, connects its socket again now (a child whose sandbox will not let
 * syslog(3) make a socket later). */
void log_syslog_reopen(void);
void log_info(const char *fmt, ...) PRINTFLIKE(1, 2);
void log_warn(const char *fmt, ...) PRINTFLIKE(1, 2);
void log_warnx(const char *fmt, ...) PRINTFLIKE(1, 2);
_Noreturn void fatal(int status, const char *fmt, ...) PRINTFLIKE(2, 3);
_Noreturn void fatalx(int status, const char *fmt, ...) PRINTFLIKE(2, 3);
/* Bad usage: one line "PROG: reason (see PROG --help)" on stderr, then exit 64 (EX_USAGE). */
_Noreturn void usage_error(const char *fmt, ...) PRINTFLIKE(1, 2);

#endif
