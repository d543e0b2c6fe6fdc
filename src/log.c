/*
 * log.c - one-line diagnostics on stderr, prefixed with the program, pid and role.
 */
#define _GNU_SOURCE
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *log_prog = "mpecho";
static const char *log_role;
static long log_pid;

void
log_init(const char *prog, const char *role)
{
	if (prog != NULL)
		log_prog = prog;
	log_role = role;
	log_pid = (long)getpid();
}

/* Formats one line and writes it with a single write(2); errno is preserved for the caller. */
static void
log_emit(int with_errno, const char *fmt, va_list ap)
{
	char line[1024];
	int saved = errno;
	int n, m;

	n = snprintf(line, sizeof(line), "%s[%ld]: %s%s", log_prog, log_pid,
	    log_role ? log_role : "", log_role ? ": " : "");
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

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(0, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(1, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(0, fmt, ap);
	va_end(ap);
}

void
fatal(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(1, fmt, ap);
	va_end(ap);
	exit(status);
}

void
fatalx(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(0, fmt, ap);
	va_end(ap);
	exit(status);
}
