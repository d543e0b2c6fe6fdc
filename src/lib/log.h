/*
 * log.h - diagnostics shared by every mpecho process.
 *
 * Each line goes to stderr in one write(2), so lines from the master, the store and the sessions
 * never interleave mid-line; under systemd (stderr the journal) with a <N> priority and no
 * program name, and with --inetd to syslog.  The *_warn and fatal variants append
 * strerror(errno); the *x variants do not (OpenBSD's log.c convention).  Library code never
 * calls fatal(): only a program's setup (options, sockets, privileges, the store it cannot run
 * without) and a process's own loop when a call that cannot fail does (ppoll, sigprocmask,
 * epoll); in a forked child (one with a role) it leaves with _exit.  Floods go through the
 * rate-limited log below.
 */
#ifndef MPECHO_LOG_H
#define MPECHO_LOG_H

#include <stdarg.h>
#include <stdint.h>

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
/* A warning that a flood could repeat thousands of times a second is written at most once a
 * LOG_RATELIMIT_MS, with the count of those held back since (as sshd does for its
 * connection-limit messages).  The time comes from the caller (OpenSSH's log_ratelimit), so
 * the limit is tested without a clock; the state holds no pointer and may live in memory
 * shared by several processes (then behind their lock: log_ratelimit_pass alone). */
#define LOG_RATELIMIT_MS 1000
struct log_ratelimit {
	int64_t next_ms;
	uint64_t held;
};
/* Whether a line may be written at now_ms: 1, with *held set to the number of lines held back
 * since the last one written, or 0 (this one is held back and counted). */
int log_ratelimit_pass(struct log_ratelimit *rl, int64_t now_ms, uint64_t *held);
/* The rate-limited log: a warning (then strerror(errno) if with_errno) when rl lets it pass at
 * now_ms, with " (and N more in the last second)" when N were held back.  Returns whether it
 * passed.  A decision taken under a lock is written after it by passing a fresh struct whose
 * held is the count (it lets the line through at once). */
int log_ratelimit(struct log_ratelimit *rl, int64_t now_ms, int with_errno, const char *fmt,
    ...) PRINTFLIKE(4, 5);

/* A structured event's fields, beside its text (log_sink.c writes them as JSON or journald
 * fields).  bytes and duration_ms below 0, conn 0 and NULL strings are not given. */
struct log_fields {
	const char *event;            /* the kind: "session-end", ... */
	uint64_t conn;
	long pid;                     /* the session's (0: none) */
	const char *peer, *reason;
	long long bytes, duration_ms;
};
/* Where lines go instead of stderr's text (log_sink.c); NULL: text.  msg is the formatted
 * text (with strerror for the *_warn variants); f the event's fields, or NULL. */
typedef void (*log_sink_fn)(int prio, const char *role, const char *msg,
    const struct log_fields *f);
void log_set_sink(log_sink_fn sink);
/* Whether stderr is the journal's stream (JOURNAL_STREAM). */
int log_is_journal(void);
/* An info line that is an event with fields (its text as log_info's). */
void log_event(const struct log_fields *f, const char *fmt, ...) PRINTFLIKE(2, 3);
/* Bad usage: one line "PROG: reason (see PROG --help)" on stderr, then exit 64 (EX_USAGE). */
_Noreturn void usage_error(const char *fmt, ...) PRINTFLIKE(1, 2);

#endif
