/*
 * session.h - the process that serves one connection.
 *
 * The master forks a session per accepted connection.  The session records each chunk it reads
 * in the store pipe before it echoes the chunk back, so whatever a client received is in the
 * store.  It talks to no one else: the master learns how it ended from its exit status, and how
 * much it echoed from its scoreboard slot (Apache prefork's scoreboard, in shared memory).
 */
#ifndef MPECHO_SESSION_H
#define MPECHO_SESSION_H

#include "gate.h"

#include <sys/wait.h>

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* How a session ended: its exit status, and the close record's reason. */
enum session_end {
	SESSION_EOF = 0,      /* the peer closed (half-closed) and everything was echoed */
	SESSION_ERROR = 1,    /* an unexpected error; logged by the session */
	SESSION_IDLE = 2,     /* nothing received for --idle-timeout seconds */
	SESSION_WTIMEOUT = 3, /* the echo could not be written for --idle-timeout seconds */
	SESSION_RESET = 4,    /* the peer reset the connection */
	SESSION_SHUTDOWN = 5, /* the server shut down */
	SESSION_STORE = 6,    /* the store pipe is gone; nothing unrecorded is echoed */
	SESSION_STORE_WAIT = 7, /* the store took no record for --idle-timeout seconds */
	SESSION_REFUSED = 8,  /* the client named by the PROXY header is refused: no record */
	SESSION_PROXY_ERROR = 9, /* no valid PROXY header in time */
	SESSION_RECEIPT_WAIT = 10, /* --echo-after: no receipt from the store for --idle-timeout */
	SESSION_END_MAX = SESSION_RECEIPT_WAIT
};

/* After SIGTERM, how long a session waits for room in a full store pipe before it gives up
 * (the master then writes its close record).  The master's SIGKILL comes twice as late. */
#define SESSION_STOP_WAIT_MS 1000

/* One session's shared state; only that session writes it, after the master cleared it. */
struct session_slot {
	uint64_t bytes;  /* bytes recorded and echoed so far */
	uint32_t opened; /* its open record is in the pipe */
	uint32_t closed; /* its close record is in the pipe, or no record is owed */
	struct admit_claim claim; /* counted by admission control (behind a PROXY header) */
	int64_t start_ms; /* io_now_ms() at its start (the master's or pool process's write) */
	int32_t spawned;  /* fork mode's spawner: the session's pid, written by the kernel at the
	                   * clone (CLONE_PARENT_SETTID); 0 until then */
};


struct session_args {
	int fd;                       /* the connection */
	uint64_t conn;                /* its number */
	struct sockaddr_storage peer; /* the address accept(2) returned */
	int pipe_wr;                  /* the store pipe, nonblocking; -1: no store */
	int idle_timeout;             /* seconds; 0: none */
	const struct gate *gate;      /* --proxy-protocol: the session reads the PROXY header and
	                               * applies the rules to the client it names; NULL: none */
	int grace;                    /* seconds to finish in when the master dies */
	pid_t master;                 /* the master's pid, to notice its death */
	struct session_slot *slot;
	int receipt;                  /* --echo-after: the receipt slot (receipt.h); -1: none */
};

const char *session_reason(int status);

/* How one session ended, as each place that ends one knows it: the fork mode's master reaping a
 * session, a pool process after its connection, the master for a pool process that died in
 * one, --inetd.  session_ended() is the one end of a session (sshd's child_reap). */
struct session_ending {
	pid_t pid;
	uint64_t conn;
	int status;                   /* a wait status: exited with its enum session_end, or killed */
	uint64_t bytes;
	int logged;                   /* its line and bytes were given already (a pool process that
	                               * died after its connection) */
	const struct gate *gate;      /* for the counts below; NULL: none taken */
	struct admit_claim *claim;    /* counted for --max-per-source since accept; NULL: no such
	                               * count */
	struct session_slot *slot;    /* its records, and the PROXY client's count */
	uint64_t *total;              /* the bytes go to this running total (atomic); NULL: none */
	/* The master: writes the records the session could not (its close record, and its open
	 * record if that did not make it either), with reason; NULL elsewhere. */
	void (*owe)(const struct session_ending *e, const char *reason);
	const void *who;              /* for owe: the master's record of the session */
	const char *peer;             /* the client's address as text, for the log's fields; NULL:
	                               * not known */
};

/* The end of a session: gives back its --max-per-source counts (before the line, so that a
 * client that reads the line and connects again is not refused), logs the "session PID conn N
 * exited STATUS (REASON) after N bytes" line (or "killed by signal N"), adds its bytes to the
 * total, and has the records it owes the store written on its behalf. */
void session_ended(const struct session_ending *e);
/* How a child ended, as a close record's reason: the session's reason, or "signal N". */
const char *session_status_reason(int status, char *buf, size_t len);
/* A forked session: session_init, then session_serve, then _exit(enum session_end). */
_Noreturn void session_run(const struct session_args *a);
/* The same in a session fork mode's spawner forked (spawner.h): confined already, by the
 * filter it inherited. */
_Noreturn void session_run_spawned(const struct session_args *a);
/* Once per process: the signals (SIGTERM ends the connection in hand by shutdown(2); the
 * master's death starts the grace, SIGUSR2 from PR_SET_PDEATHSIG).  a->fd is not used. */
void session_init(const struct session_args *a);
/* Serves the connection a->fd to its end, writes its records, closes it and says how it
 * ended.  A pool process calls it once per connection. */
enum session_end session_serve(const struct session_args *a);
/* SIGTERM (or the end of the grace after the master's death) has come. */
int session_stopping(void);

#endif
