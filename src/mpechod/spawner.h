/*
 * spawner.h - fork mode's spawner: the process that forks the sessions when the sandbox is on.
 *
 * Installing a seccomp filter costs a child about as much as its fork on a slow machine (the
 * kernel copies, converts and JIT-compiles the program, and frees it again at the exit:
 * 290-340 us of CPU per connection here, bench/results/2026-12-07-sandbox-5.md).  A filter
 * is shared only by inheritance, so the master starts one spawner, which enters the sandbox
 * once (sandbox_spawner_enter: the session's allow-list, plus what it needs to spawn), and
 * hands it each connection it accepted and admitted, with the session's arguments, over a
 * SOCK_SEQPACKET pair (the descriptor by SCM_RIGHTS).  The spawner clones a session with
 * CLONE_PARENT (sandbox_spawn), so the master is the session's parent as with its own fork:
 * it reaps it, gets its SIGCHLD, and the session's PR_SET_PDEATHSIG and getppid checks watch
 * the master.  The session inherits the filter, the Landlock domain and NO_NEW_PRIVS, and
 * installs nothing.  The spawner answers each connection with the session's pid (or the
 * clone's errno), which the master puts in its child table.
 *
 * The master keeps its own fork as the fallback: while no spawner runs (before its start, after
 * its death, until the restart) or when too many connections wait for an answer, a session is
 * forked by the master and installs the filter itself, as without the spawner.  The spawner
 * holds nothing but the pair's end, the store pipe and the log socket; it exits when the
 * master's end closes (a shutdown, an upgrade's exec) or the master dies (PR_SET_PDEATHSIG).
 */
#ifndef MPECHO_SPAWNER_H
#define MPECHO_SPAWNER_H

#include "session.h"

#include <stdint.h>
#include <sys/types.h>

/* The spawner's process name (comm, PR_SET_NAME); its sessions have the master's. */
#define SPAWNER_NAME "mpechod-spawn"

/* What the spawner answers for each connection, in the order they came. */
struct spawn_reply {
	uint64_t conn; /* the session_args' conn */
	int32_t pid;   /* the session's; 0 when the clone failed */
	int32_t err;   /* the clone's errno when it failed; SPAWN_READY in the first answer */
};

/* The spawner's first answer, once it is confined and named: it takes connections from then. */
#define SPAWN_READY (-1)

/* The master: forks the spawner (it keeps the master's scheduling boost, and its sessions
 * start at the nice value a fork of the master's would have) and waits for its SPAWN_READY,
 * bounded (SPAWN_READY_MS), so that a server that says it listens has its spawner confined.
 * pipe_wr is the store pipe (-1: none), passed on to every session.  Returns its pid and *fd
 * (the master's end, non-blocking, close-on-exec), or -1 with errno. */
#define SPAWN_READY_MS 1000
pid_t spawner_start(int *fd, int pipe_wr);

/* The master: hands the connection a->fd over with its arguments (a->fd and a->pipe_wr are
 * the spawner's own in the message).  Never blocks.  Returns 0, or -1 with errno (EAGAIN:
 * the pair is full; EPIPE: the spawner is gone). */
int spawner_send(int fd, const struct session_args *a);

/* The master: one answer.  Returns 1 with *r, 0 when none is waiting, -1 when the spawner
 * closed its end (it is gone) or on an error. */
int spawner_reply(int fd, struct spawn_reply *r);

#endif
