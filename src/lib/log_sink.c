/*
 * log_sink.c - structured logs: JSON lines and journald's native protocol (see log_sink.h).
 */
#define _GNU_SOURCE
#include "log_sink.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_SINK_JOURNAL "/run/systemd/journal/socket"
#define LOG_SINK_MAX 2048

static const char *log_sink_prog = "mpecho";
static int log_sink_fd = -1;
static pid_t log_sink_owner; /* the process that opened log_sink_fd (a child reopens) */

/* MESSAGE_ID per event kind (journalctl MESSAGE_ID=...): fixed 128-bit ids. */
static const struct {
	const char *event, *id;
} log_sink_ids[] = {
	{ "session-end", "6b1a2c8e4f0d4d3a9e5b7c1f2a3d4e5f" },
	{ "log", "0d9c8b7a6f5e4d3c2b1a09f8e7d6c5b4" },
};

static const char *
log_sink_level(int prio)
{
	return prio <= LOG_ERR ? "error" : prio == LOG_WARNING ? "warning" : "info";
}

static const char *
log_sink_event(const struct log_fields *f)
{
	return f != NULL && f->event != NULL ? f->event : "log";
}

/* s as the inside of a JSON string, cut to fit. */
static size_t
log_sink_escape(char *out, size_t len, const char *s)
{
	size_t n = 0;

	for (; *s != '\0' && n + 7 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			n += (size_t)snprintf(out + n, len - n, "\\u%04x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
	return n;
}

__attribute__((format(printf, 4, 5)))
static void
log_sink_put(char *out, size_t len, size_t *n, const char *fmt, ...)
{
	va_list ap;
	int m;

	if (*n >= len)
		return;
	va_start(ap, fmt);
	m = vsnprintf(out + *n, len - *n, fmt, ap);
	va_end(ap);
	if (m > 0)
		*n = *n + (size_t)m < len ? *n + (size_t)m : len - 1;
}

size_t
log_sink_json_line(char *out, size_t len, long long ts_ms, int prio, const char *role,
    long pid, const char *msg, const struct log_fields *f)
{
	char esc[LOG_SINK_MAX], ts[40];
	time_t secs = (time_t)(ts_ms / 1000);
	struct tm tm;
	size_t n = 0;

	gmtime_r(&secs, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	log_sink_escape(esc, sizeof(esc), msg);
	log_sink_put(out, len, &n, "{\"ts\":\"%s.%03lldZ\",\"level\":\"%s\",\"event\":\"%s\","
	    "\"role\":\"%s\",\"pid\":%ld,\"msg\":\"%s\"", ts, ts_ms % 1000, log_sink_level(prio),
	    log_sink_event(f), role != NULL ? role : "master", pid, esc);
	if (f != NULL && f->conn > 0)
		log_sink_put(out, len, &n, ",\"conn\":%llu", (unsigned long long)f->conn);
	if (f != NULL && f->pid > 0)
		log_sink_put(out, len, &n, ",\"session_pid\":%ld", f->pid);
	if (f != NULL && f->peer != NULL) {
		log_sink_escape(esc, sizeof(esc), f->peer);
		log_sink_put(out, len, &n, ",\"peer\":\"%s\"", esc);
	}
	if (f != NULL && f->reason != NULL) {
		log_sink_escape(esc, sizeof(esc), f->reason);
		log_sink_put(out, len, &n, ",\"reason\":\"%s\"", esc);
	}
	if (f != NULL && f->bytes >= 0)
		log_sink_put(out, len, &n, ",\"bytes\":%lld", f->bytes);
	if (f != NULL && f->duration_ms >= 0)
		log_sink_put(out, len, &n, ",\"duration\":%.3f", (double)f->duration_ms / 1000);
	if (n + 3 > len)
		n = len - 3; /* cut, but still a line; the unit tests keep within LOG_SINK_MAX */
	out[n++] = '}';
	out[n++] = '\n';
	out[n] = '\0';
	return n;
}

static long long
log_sink_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
log_sink_stderr(const char *buf, size_t n)
{
	while (write(STDERR_FILENO, buf, n) < 0 && errno == EINTR)
		;
}

static void
log_sink_json(int prio, const char *role, const char *msg, const struct log_fields *f)
{
	char line[LOG_SINK_MAX + 512];
	size_t n = log_sink_json_line(line, sizeof(line), log_sink_now_ms(), prio, role,
	    (long)getpid(), msg, f);

	log_sink_stderr(line, n);
}

/* Whether the sink is the journal's socket (log_sink_reopen). */
static int log_sink_to_journal;

/* The journal's socket, opened again in a child (fork's child keeps none of the master's
 * descriptors, proc.c: the old number is not ours to close). */
static int
log_sink_journal_fd(void)
{
	if (log_sink_fd >= 0 && log_sink_owner == getpid())
		return log_sink_fd;
	log_sink_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	log_sink_owner = getpid();
	return log_sink_fd;
}

static const char *
log_sink_id(const char *event)
{
	for (size_t i = 0; i < sizeof(log_sink_ids) / sizeof(log_sink_ids[0]); i++)
		if (strcmp(log_sink_ids[i].event, event) == 0)
			return log_sink_ids[i].id;
	return log_sink_ids[1].id;
}

/* A field's value without newlines (the simple form of the protocol takes no newline). */
static void
log_sink_field(char *out, size_t len, size_t *n, const char *key, const char *v)
{
	size_t at = *n;

	log_sink_put(out, len, n, "%s=%s\n", key, v);
	for (size_t i = at + strlen(key) + 1; i + 1 < *n; i++)
		if (out[i] == '\n')
			out[i] = ' ';
}

static void
log_sink_journal(int prio, const char *role, const char *msg, const struct log_fields *f)
{
	static const struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = LOG_SINK_JOURNAL };
	char buf[LOG_SINK_MAX + 1024], text[LOG_SINK_MAX + 64], num[32];
	size_t n = 0;
	int fd = log_sink_journal_fd();

	if (role != NULL)
		snprintf(text, sizeof(text), "%s[%ld]: %s", role, (long)getpid(), msg);
	else
		snprintf(text, sizeof(text), "%s", msg);
	log_sink_field(buf, sizeof(buf), &n, "MESSAGE", text);
	log_sink_put(buf, sizeof(buf), &n, "PRIORITY=%d\nSYSLOG_IDENTIFIER=%s\nMESSAGE_ID=%s\n"
	    "MPECHO_EVENT=%s\nMPECHO_ROLE=%s\n", prio, log_sink_prog,
	    log_sink_id(log_sink_event(f)), log_sink_event(f), role != NULL ? role : "master");
	if (f != NULL && f->conn > 0)
		log_sink_put(buf, sizeof(buf), &n, "MPECHO_CONN=%llu\n", (unsigned long long)f->conn);
	if (f != NULL && f->peer != NULL)
		log_sink_field(buf, sizeof(buf), &n, "MPECHO_PEER", f->peer);
	if (f != NULL && f->reason != NULL)
		log_sink_field(buf, sizeof(buf), &n, "MPECHO_REASON", f->reason);
	if (f != NULL && f->bytes >= 0)
		log_sink_put(buf, sizeof(buf), &n, "MPECHO_BYTES=%lld\n", f->bytes);
	if (f != NULL && f->duration_ms >= 0) {
		snprintf(num, sizeof(num), "%.3f", (double)f->duration_ms / 1000);
		log_sink_field(buf, sizeof(buf), &n, "MPECHO_DURATION", num);
	}
	if (fd >= 0 && sendto(fd, buf, n, MSG_NOSIGNAL, (const struct sockaddr *)&sa,
	    sizeof(sa)) == (ssize_t)n)
		return;
	/* Refused (the journal restarting, or a line too big): the text on stderr, which is the
	 * journal's stream. */
	n = (size_t)snprintf(buf, sizeof(buf), "<%d>%s\n", prio, text);
	log_sink_stderr(buf, n < sizeof(buf) ? n : sizeof(buf) - 1);
}

void
log_sink_reopen(void)
{
	if (log_sink_to_journal)
		(void)log_sink_journal_fd();
}

void
log_sink_adopt(void)
{
	if (log_sink_fd >= 0)
		log_sink_owner = getpid();
}

const char *
log_sink_setup(const char *prog, enum log_format format)
{
	log_sink_prog = prog;
	if (log_is_journal() && access(LOG_SINK_JOURNAL, W_OK) == 0) {
		log_set_sink(log_sink_journal);
		log_sink_to_journal = 1;
		return "journal";
	}
	if (format == LOG_FORMAT_JSON) {
		log_set_sink(log_sink_json);
		return "json";
	}
	return "text";
}
