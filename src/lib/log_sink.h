/*
 * log_sink.h - structured logs: the sinks log.c hands its lines to instead of stderr's text.
 *
 *  - JSON (--log-format json): one object a line on stderr, in one write(2): ts (RFC 3339, UTC,
 *    milliseconds), level, event ("log" for a plain line), role and pid of the writer, msg, and
 *    an event's fields (conn, peer, reason, bytes, duration in seconds).
 *  - journald's native protocol, when stderr is the journal (JOURNAL_STREAM): one datagram an
 *    event (plain lines stay on the stream, which the journal ties to the unit whatever becomes
 *    of the writer) to /run/systemd/journal/socket with MESSAGE, PRIORITY, SYSLOG_IDENTIFIER,
 *    MESSAGE_ID (one per event kind) and MPECHO_EVENT, MPECHO_ROLE, MPECHO_CONN, MPECHO_PEER,
 *    MPECHO_REASON, MPECHO_BYTES, MPECHO_DURATION, so that `journalctl MPECHO_REASON=idle`
 *    works.  A line the socket refuses goes to stderr as text.
 */
#ifndef MPECHO_LOG_SINK_H
#define MPECHO_LOG_SINK_H

#include "log.h"

#include <stddef.h>

enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Chooses the sink: the journal's socket when stderr is the journal and the socket is there,
 * else JSON when asked, else text.  Returns the sink's name ("journal", "json", "text"). */
const char *log_sink_setup(const char *prog, enum log_format format);
/* A child about to be confined (sandbox.c): opens the journal's socket now, if that is the sink,
 * since it may create no socket once its filter is in place. */
void log_sink_reopen(void);
/* A child that inherited its parent's journal socket and may not open one (a session fork
 * mode's spawner cloned, already confined): takes the inherited one as its own. */
void log_sink_adopt(void);
/* The JSON object of one line, with its newline, into out (pure; for the unit tests).
 * Returns its length. */
size_t log_sink_json_line(char *out, size_t len, long long ts_ms, int prio, const char *role,
    long pid, const char *msg, const struct log_fields *f);

#endif
