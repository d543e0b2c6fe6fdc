/*
 * log.c - one-line diagnostics on stderr, prefixed with the program, pid and role.
 *
 * When stderr is the journal (systemd's JOURNAL_STREAM names its device and inode), the journal
 * already shows the program and the pid of the unit's main process, so a line carries only the
 * role and the pid of the process that wrote it ("store[57]: "), and starts with a <N> syslog
 * priority that the journal reads as the line's level.
 */
#define _GNU_SOURCE
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

static const char *log_prog = "mpecho";
static const char *log_role;
static int log_guarded;
static int log_to_syslog;
static int log_to_journal;
static unsigned long log_dropped;
static log_sink_fn log_sink;
static const struct log_fields *log_fields_now; /* log_event's, during its line */

/* Whether stderr is the stream systemd connected to the journal: JOURNAL_STREAM is
 * "DEVICE:INODE" of that stream, and a stderr redirected elsewhere has another. */
static int
log_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	if (js == NULL || sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void
log_init(const char *prog, const char *role)
{
	if (prog != NULL) {
		log_prog = prog;
		log_to_journal = log_stderr_is_journal();
	}
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

void
log_syslog_reopen(void)
{
	if (log_to_syslog)
		log_syslog();
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

/* The start of a line on stderr: "prog[pid]: role: ", or for the journal "<prio>role[pid]: "
 * (the master, which has no role: "<prio>").  getpid() per line rather than a cached pid: a
 * session that never logs then never writes to this page (see session.c). */
static int
log_prefix(char *line, size_t size, int prio)
{
	if (!log_to_journal)
		return snprintf(line, size, "%s[%ld]: %s%s", log_prog, (long)getpid(),
		    log_role ? log_role : "", log_role ? ": " : "");
	if (log_role == NULL)
		return snprintf(line, size, "<%d>", prio);
	return snprintf(line, size, "<%d>%s[%ld]: ", prio, log_role, (long)getpid());
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
	/* Into the journal, only events go as datagrams: the journal knows a stream's unit from
	 * its start, a datagram's from its sender, which may have exited by then. */
	if (log_sink != NULL && (log_fields_now != NULL || !log_to_journal)) {
		vsnprintf(line, sizeof(line), fmt, ap);
		n = (int)strlen(line);
		if (with_errno)
			snprintf(line + n, sizeof(line) - (size_t)n, ": %s", strerror(saved));
		log_sink(prio, log_role, line, log_fields_now);
		errno = saved;
		return;
	}
	n = log_prefix(line, sizeof(line), prio);
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
log_set_sink(log_sink_fn sink)
{
	log_sink = sink;
}

int
log_is_journal(void)
{
	return log_to_journal;
}

void
log_event(const struct log_fields *f, const char *fmt, ...)
{
	va_list ap;

	log_fields_now = f;
	va_start(ap, fmt);
	log_emit(LOG_INFO, 0, fmt, ap);
	va_end(ap);
	log_fields_now = NULL;
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

int
log_ratelimit_pass(struct log_ratelimit *rl, int64_t now_ms, uint64_t *held)
{
	if (now_ms < rl->next_ms) {
		rl->held++;
		return 0;
	}
	*held = rl->held;
	rl->held = 0;
	rl->next_ms = now_ms + LOG_RATELIMIT_MS;
	return 1;
}

/* log_emit for a format of its own. */
static void
log_emitf(int prio, int with_errno, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(prio, with_errno, fmt, ap);
	va_end(ap);
}

int
log_ratelimit(struct log_ratelimit *rl, int64_t now_ms, int with_errno, const char *fmt, ...)
{
	char msg[768];
	uint64_t held;
	int saved = errno;
	va_list ap;

	if (!log_ratelimit_pass(rl, now_ms, &held))
		return 0;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errno = saved;
	if (held > 0)
		log_emitf(LOG_WARNING, with_errno, "%s (and %llu more in the last second)", msg,
		    (unsigned long long)held);
	else
		log_emitf(LOG_WARNING, with_errno, "%s", msg);
	return 1;
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
