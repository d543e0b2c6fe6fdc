/*
 * log.c - one-line diagnostics on stderr, prefixed with the program, pid and role.
 */
#define _GNU_SOURCE
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <syslog.h>
#include <unistd.h>

static const char *log_prog = "mpecho";
static const char *log_role;
static int log_guarded;
static int log_to_syslog;
static unsigned long log_dropped;

void
log_init(const char *prog, const char *role)
{
	if (prog != NULL)
		log_prog = prog;
	log_role = role;
}

void
log_guard(int on)
{
	log_guarded = on;
}

void
log_syslog(void)
{
	openlog(log_prog, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_to_syslog = 1;
}

/* With the guard on, a line that could block (stderr a full pipe nobody reads) is counted and
 * dropped; the next line that goes out says how many were. */
static int
log_writable(void)
{
	struct pollfd pfd = { .fd = STDERR_FILENO, .events = POLLOUT };

	if (!log_guarded || poll(&pfd, 1, 0) == 1)
		return 1;
	log_dropped++;
	return 0;
}

/* Formats one line and writes it with a single write(2), or hands it to syslog; errno is
 * preserved for the caller. */
static void
log_emit(int prio, int with_errno, const char *fmt, va_list ap)
{
	char line[1024];
	int saved = errno;
	int n, m;

	if (log_to_syslog) {
		vsnprintf(line, sizeof(line), fmt, ap);
		if (with_errno)
			syslog(prio, "%s%s%s: %s", log_role ? log_role : "", log_role ? ": " : "",
			    line, strerror(saved));
		else
			syslog(prio, "%s%s%s", log_role ? log_role : "", log_role ? ": " : "", line);
		errno = saved;
		return;
	}
	if (!log_writable()) {
		errno = saved;
		return;
	}
	/* getpid() per line rather than a cached pid: a session that never logs then never
	 * writes to this page (see session.c). */
	n = snprintf(line, sizeof(line), "%s[%ld]: %s%s", log_prog, (long)getpid(),
	    log_role ? log_role : "", log_role ? ": " : "");
	if (log_dropped > 0 && n > 0 && n < (int)sizeof(line)) {
		m = snprintf(line + n, sizeof(line) - (size_t)n, "(%lu log lines dropped) ",
		    log_dropped);
		if (m > 0 && n + m < (int)sizeof(line))
			n += m;
		log_dropped = 0;
	}
	if (n < 0 || n >= (int)sizeof(line))
		n = 0;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m > 0)
		n = (n + m < (int)sizeof(line) - 2) ? n + m : (int)sizeof(line) - 2;
	if (with_errno) {
		m = snprintf(line + n, sizeof(line) - (size_t)n, ": %s", strerror(saved));
		if (m > 0)
			n = (n + m < (int)sizeof(line) - 2) ? n + m : (int)sizeof(line) - 2;
	}
	line[n++] = '\n';
	while (write(STDERR_FILENO, line, (size_t)n) < 0 && errno == EINTR)
		;
	errno = saved;
}

/* A forked child (it has a role) leaves with _exit: the atexit handlers and stdio buffers it
 * inherited are the parent's. */
static _Noreturn void
log_exit(int status)
{
	if (log_role != NULL)
		_exit(status);
	exit(status);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_INFO, 0, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_WARNING, 1, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_WARNING, 0, fmt, ap);
	va_end(ap);
}

void
fatal(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_ERR, 1, fmt, ap);
	va_end(ap);
	log_exit(status);
}

void
fatalx(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_ERR, 0, fmt, ap);
	va_end(ap);
	log_exit(status);
}

void
usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s (see %s --help)\n", log_prog, msg, log_prog);
	exit(EX_USAGE);
}
