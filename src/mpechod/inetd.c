/*
 * inetd.c - mpechod --inetd: serve the one connection that inetd, xinetd (nowait) or systemd
 * (Accept=yes) accepted and passed on standard input and output.
 *
 * No master, no listener: this process is the session, and a store process of its own (forked
 * as the master forks one) writes its records.  Many such processes may append to one store
 * file at once, so the store takes the file's lock for each write only (store.c, shared), and
 * every write is whole lines.  Each process is a server life of its own, with its own random
 * life id on every line (record.c), so its one connection is conn 1, as a master's first is:
 * (life, conn) is unique across them by construction.  Nothing but the
 * echo is ever written to the socket: under xinetd standard error is the socket too, so
 * diagnostics go to syslog and descriptor 2 to /dev/null.
 */
#define _GNU_SOURCE
#include "inetd.h"
#include "io.h"
#include "log.h"
#include "net.h"
#include "proc.h"
#include "receipt.h"
#include "record.h"
#include "session.h"
#include "sig.h"
#include "sandbox.h"
#include "store_start.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#define INETD_STORE_WAIT_MS 60000

/* Standard input must be a connected socket; anything else is a usage error, said on stderr
 * (then stderr is not the client's). */
static void
inetd_check_socket(struct sockaddr_storage *peer)
{
	socklen_t len = sizeof(*peer);
	int type = 0;
	socklen_t tl = sizeof(type);

	if (getsockopt(STDIN_FILENO, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM ||
	    getpeername(STDIN_FILENO, (struct sockaddr *)peer, &len) < 0)
		usage_error("--inetd: standard input is not a connected TCP socket");
}

/* From here on nothing but the echo reaches the client: descriptor 1 (the socket again, under
 * inetd) and 2 (the socket too under xinetd) become /dev/null and diagnostics go to syslog.
 * Descriptor 0 is then the socket's only copy here, so closing it ends the connection. */
static void
inetd_quiet(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	log_syslog();
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
}

/* The store's file is opened and given to the user before the drop, and the store forked after
 * it, as the master does: the store runs as the user too. */
static pid_t
inetd_start_store(const struct settings *set, const struct user_ids *user, int *pipe_wr)
{
	static struct store_args a;
	int p[2], fd = store_start_file(set->store, user);
	char err[256];
	pid_t pid;

	if (user != NULL && user_drop(user, err, sizeof(err)) < 0)
		fatalx(EX_NOPERM, "%s", err);
	if (pipe2(p, O_CLOEXEC) < 0)
		fatal(EX_OSERR, "pipe");
	a = (struct store_args){ .pipe_rd = p[0], .filefd = fd, .path = set->store,
	    .format = set->format, .fsync = set->fsync, .master = getpid(),
	    .full = set->store_full, .shared = 1 };
	pid = store_start(&a);
	if (pid < 0)
		fatal(EX_OSERR, "fork");
	close(p[0]);
	close(fd);
	io_set_nonblock(p[1], 1);
	*pipe_wr = p[1];
	return pid;
}

/* The store exits once it has read the pipe to its end; it gets a bounded time for that. */
static int
inetd_wait_store(pid_t pid)
{
	int64_t deadline = io_now_ms() + INETD_STORE_WAIT_MS;
	int status = 0;

	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (io_now_ms() >= deadline) {
			log_warnx("store %d did not finish in time; killing it", (int)pid);
			proc_kill_wait(pid);
			return EX_IOERR;
		}
		poll(NULL, 0, 10);
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == EX_IOERR ? EX_IOERR : 0;
}

void
inetd_run(const struct settings *set, const struct user_ids *user)
{
	static struct session_slot slot;
	struct session_args a = { .fd = STDIN_FILENO, .pipe_wr = -1,
	    .idle_timeout = set->idle_timeout, .grace = set->grace, .master = getppid(),
	    .slot = &slot, .receipt = 0 };
	char err[256];
	pid_t store = 0;
	enum session_end end;

	inetd_check_socket(&a.peer);
	inetd_quiet();
	sig_ignore(SIGPIPE);
	rec_new_key();
	a.conn = 1;
	if (set->store != NULL && receipt_setup((enum receipt_mode)set->echo_after, 1) < 0)
		fatal(EX_OSERR, "receipt board");
	if (set->store != NULL)
		store = inetd_start_store(set, user, &a.pipe_wr);
	else if (user != NULL && user_drop(user, err, sizeof(err)) < 0)
		fatalx(EX_NOPERM, "%s", err);
	session_init(&a);
	sandbox_child(SANDBOX_INETD, NULL);
	end = session_serve(&a);
	session_ended(&(struct session_ending){ .pid = getpid(), .conn = a.conn,
	    .status = W_EXITCODE((int)end, 0), .bytes = slot.bytes, .slot = &slot });
	if (store > 0) {
		close(a.pipe_wr);
		exit(inetd_wait_store(store));
	}
	exit(0);
}
