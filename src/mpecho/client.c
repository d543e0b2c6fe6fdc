/*
 * client.c - mpecho, the echo client: sends its standard input to an echo server and copies
 * what comes back to its standard output.
 *
 * After connecting, the client forks.  The writer (the child) copies standard input to the
 * socket; at the end of the input, or at a line "q" typed on a terminal, it tells the reader
 * through the done pipe, half-closes the socket and exits.  The reader (the parent) copies the
 * socket to standard output until the server closes, then reaps the writer.  Running the two
 * directions in two processes keeps a large input from deadlocking: the reader drains the echo
 * while the writer is still sending.
 *
 * The processes talk only through the done pipe (one byte: "everything was sent"), its EOF
 * (the writer has exited), the writer's exit status, and signals: the reader sends SIGTERM to
 * a writer it no longer needs, and the writer gets SIGTERM from the kernel if the reader dies
 * (PR_SET_PDEATHSIG).  The reader alone prints the reason the session failed, unless the writer
 * already did (it exits WRITER_FAIL then), so a failure is always one line on stderr.
 */
#define _GNU_SOURCE
#include "io.h"
#include "log.h"
#include "net.h"
#include "sig.h"
#include "version.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLIENT_DEFAULT_HOST "localhost"
#define CLIENT_DEFAULT_PORT "7007"
#define CLIENT_CONNECT_MS 3000 /* per address, so an unreachable host fails in seconds */
#define CLIENT_BUF 65536
#define CLIENT_DONE_BYTE 'e'

/* How the writer ends: its exit status. */
enum writer_end {
	WRITER_OK = 0,     /* all input sent and the socket half-closed */
	WRITER_FAIL = 1,   /* a failure the writer has reported itself */
	WRITER_CLOSED = 2, /* the server closed the connection (EPIPE); the reader reports it */
	WRITER_RESET = 3,  /* the server reset the connection; the reader reports it */
};

/* Why the reader's loop ended. */
enum reader_end {
	READER_EOF,    /* the server closed the connection */
	READER_SOCK,   /* reading the socket failed (errno in err) */
	READER_STDOUT, /* writing standard output failed (errno in err) */
	READER_WRITER, /* the writer exited without sending all the input */
	READER_SIGNAL, /* INT, TERM or HUP arrived */
	READER_FAILED, /* a local failure, already reported */
};

struct reader {
	int sock;
	int done_rd;     /* the done pipe's read end, nonblocking */
	int sig_rd;      /* the self-pipe the signal handler writes to */
	pid_t writer;
	int done;        /* the writer sent all its input and is half-closing */
	int writer_gone; /* the done pipe read EOF: the writer has exited */
	int err;
};

static const int client_signals[] = { SIGINT, SIGTERM, SIGHUP, 0 };
static volatile sig_atomic_t client_signal;
static int client_sig_wr = -1;

static const char client_usage[] =
    "usage: mpecho [HOST [PORT]]\n"
    "Sends standard input to the TCP echo server at HOST and PORT and copies what\n"
    "it sends back to standard output.\n"
    "\n"
    "  HOST            a name, an IPv4 or an IPv6 address, brackets allowed as in\n"
    "                  [::1] (default localhost); every address it resolves to\n"
    "                  is tried, 3 seconds each\n"
    "  PORT            a port number from 1 to 65535 (default 7007, mpechod's;\n"
    "                  the packaged mpechod service listens on 7, the echo port)\n"
    "  -h, --help      show this help and exit\n"
    "  -V, --version   show the version and exit\n"
    "\n"
    "When standard input is a terminal, a line holding only q or Q ends the input\n"
    "and is not sent; otherwise every byte is sent as it is, up to the end of the\n"
    "input.  mpecho then half-closes the connection, prints the rest of the echo,\n"
    "and exits when the server closes.\n"
    "\n"
    "Exit status: 0 when all the input was sent and the server closed after it;\n"
    "1 when the connection failed, the server closed or reset it early, or the\n"
    "input or output failed (one line on stderr says why); 64 for bad arguments.\n"
    "INT, TERM and HUP stop both processes, and mpecho then dies by the same\n"
    "signal.\n";

/* Only a plain decimal number is a port: "+80", " 80" and "80x" are rejected, not guessed at,
 * and service names are not looked up. */
static int
client_port_ok(const char *s)
{
	long v = 0;

	if (*s == '\0' || strlen(s) > 5)
		return 0;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		v = v * 10 + (*s - '0');
	}
	return v >= 1 && v <= 65535;
}

/* Parses the arguments into host and port; prints and exits for help, version and errors. */
static void
client_parse(int argc, char **argv, const char **host, const char **port)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		if (c == 'h') {
			fputs(client_usage, stdout);
			exit(0);
		}
		if (c == 'V') {
			printf("mpecho %s\n", MPECHO_VERSION);
			exit(0);
		}
		if (optopt != 0)
			usage_error("unknown option '-%c'", optopt);
		usage_error("unknown option '%.64s'", argv[optind - 1]);
	}
	if (argc - optind > 2)
		usage_error("unexpected argument '%.64s'", argv[optind + 2]);
	*host = optind < argc ? argv[optind] : CLIENT_DEFAULT_HOST;
	*port = optind + 1 < argc ? argv[optind + 1] : CLIENT_DEFAULT_PORT;
	if ((*host)[0] == '\0')
		usage_error("the host is empty");
	if (!client_port_ok(*port))
		usage_error("port '%.64s' is not a number from 1 to 65535", *port);
}

/* Returns the offset in buf of a line holding only q or Q, or -1.  *bol says whether buf
 * starts a line and is updated for the next chunk.  A terminal in canonical mode hands over one
 * line per read, so a quit line never straddles two chunks. */
static ssize_t
client_find_quit(const char *buf, size_t n, int *bol)
{
	for (size_t i = 0; i < n; i++) {
		if (*bol && (buf[i] == 'q' || buf[i] == 'Q') && i + 1 < n && buf[i + 1] == '\n')
			return (ssize_t)i;
		*bol = (buf[i] == '\n');
	}
	return -1;
}

/* The server's side of a failed send is the reader's to report, so that a closed connection
 * gives one line, not one from each process. */
static enum writer_end
client_send_error(int err)
{
	if (err == EPIPE)
		return WRITER_CLOSED;
	if (err == ECONNRESET)
		return WRITER_RESET;
	errno = err;
	log_warn("cannot send to the server");
	return WRITER_FAIL;
}

static enum writer_end
client_writer_copy(int sock, int interactive)
{
	static char buf[CLIENT_BUF];
	int bol = 1;
	ssize_t n, q;

	for (;;) {
		n = io_read(STDIN_FILENO, buf, sizeof(buf));
		if (n < 0) {
			log_warn("cannot read standard input");
			return WRITER_FAIL;
		}
		if (n == 0)
			return WRITER_OK;
		q = interactive ? client_find_quit(buf, (size_t)n, &bol) : -1;
		if (io_write_all(sock, buf, q >= 0 ? (size_t)q : (size_t)n) < 0)
			return client_send_error(errno);
		if (q >= 0)
			return WRITER_OK;
	}
}

/* The done byte goes first: a server that closes in answer to our FIN does so after the byte
 * is in the pipe, so when the reader reads that EOF, the byte is there to read. */
static enum writer_end
client_half_close(int sock, int done_wr)
{
	char c = CLIENT_DONE_BYTE;

	if (write(done_wr, &c, 1) != 1) {
		log_warn("cannot tell the reader the input has ended");
		return WRITER_FAIL;
	}
	if (shutdown(sock, SHUT_WR) < 0)
		return errno == ENOTCONN ? WRITER_RESET : client_send_error(errno);
	return WRITER_OK;
}

static _Noreturn void
client_writer(int sock, int done_wr, pid_t reader)
{
	enum writer_end end;

	log_init(NULL, NULL);
	/* A writer whose reader is gone would keep the connection open for nobody; the check
	 * after prctl catches a reader that died before it. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) {
		log_warn("prctl");
		_exit(WRITER_FAIL);
	}
	if (getppid() != reader)
		_exit(WRITER_FAIL);
	close(STDOUT_FILENO);
	end = client_writer_copy(sock, isatty(STDIN_FILENO));
	if (end == WRITER_OK)
		end = client_half_close(sock, done_wr);
	_exit(end);
}

/* Saves errno and only records the signal; the self-pipe wakes the reader's poll even when
 * the signal lands between the flag check and the call. */
static void
client_on_signal(int signo)
{
	int saved = errno;
	char c = (char)signo;
	ssize_t n;

	client_signal = signo;
	n = write(client_sig_wr, &c, 1);
	(void)n;
	errno = saved;
}

static int
client_stop_signal(int signo)
{
	for (const int *s = client_signals; *s != 0; s++)
		if (*s == signo)
			return 1;
	return 0;
}

/* A signal ignored on entry (INT and HUP for a background job) stays ignored. */
static int
client_catch(int signo)
{
	struct sigaction old;

	if (sigaction(signo, NULL, &old) < 0)
		return -1;
	if (old.sa_handler == SIG_IGN)
		return 0;
	return sig_handle(signo, client_on_signal, 0);
}

/* The self-pipe is nonblocking at both ends: a handler must never block on a full pipe, and
 * the pipe is only polled, never read. */
static int
client_reader_signals(struct reader *r)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	r->sig_rd = p[0];
	client_sig_wr = p[1];
	for (const int *s = client_signals; *s != 0; s++)
		if (client_catch(*s) < 0)
			return -1;
	return 0;
}

/* Like io_write_all, except that a signal ends the wait: a Ctrl-C must stop the client even
 * while whatever reads its output has stopped reading.  The flag is checked before each write
 * too, since a signal that cut a write short leaves a partial count, not EINTR.  (A signal
 * landing just between the check and the write still waits for the output to move; a second
 * one ends it.) */
static int
client_write_out(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if (client_signal) {
			errno = EINTR;
			return -1;
		}
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR && !client_signal)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads what the writer says: the done byte, or EOF once it has exited. */
static void
client_read_done(struct reader *r)
{
	char c;
	ssize_t n = io_read(r->done_rd, &c, 1);

	if (n == 1 && c == CLIENT_DONE_BYTE)
		r->done = 1;
	else if (n == 0)
		r->writer_gone = 1;
}

/* Copies one chunk from the socket to standard output; returns -1 to go on, or why to stop. */
static int
client_copy_out(struct reader *r)
{
	static char buf[CLIENT_BUF];
	ssize_t n = read(r->sock, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return -1;
	if (n < 0) {
		r->err = errno;
		return READER_SOCK;
	}
	if (n == 0) {
		/* The writer's done byte, if any, is in the pipe by now (see client_half_close);
		 * poll may have looked before it arrived. */
		client_read_done(r);
		return READER_EOF;
	}
	if (client_write_out(STDOUT_FILENO, buf, (size_t)n) == 0)
		return -1;
	r->err = errno;
	return client_signal ? READER_SIGNAL : READER_STDOUT;
}

static enum reader_end
client_reader_loop(struct reader *r)
{
	struct pollfd pfd[3];
	int end;

	for (;;) {
		if (client_signal)
			return READER_SIGNAL;
		pfd[0] = (struct pollfd){ .fd = r->sock, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = r->writer_gone ? -1 : r->done_rd, .events = POLLIN };
		pfd[2] = (struct pollfd){ .fd = r->sig_rd, .events = POLLIN };
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			return READER_FAILED;
		}
		if (pfd[1].revents != 0)
			client_read_done(r);
		if (r->writer_gone && !r->done)
			return READER_WRITER;
		if (pfd[0].revents != 0 && (end = client_copy_out(r)) >= 0)
			return (enum reader_end)end;
	}
}

/* A writer that has not sent everything is stopped; one that has is already on its way out.
 * Either way it is reaped here, so no zombie or orphan outlives the client. */
static int
client_reap_writer(const struct reader *r)
{
	int status = 0;

	if (!r->done)
		kill(r->writer, SIGTERM);
	while (waitpid(r->writer, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

/* Turns how the reader stopped and how the writer ended into one line on stderr (unless the
 * writer already printed one) and the exit status. */
static int
client_report(const struct reader *r, enum reader_end end, int ws)
{
	int wcode = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;

	if (end == READER_WRITER && WIFSIGNALED(ws) && client_stop_signal(WTERMSIG(ws))) {
		/* A Ctrl-C reaches the whole process group, and the writer may die of it before
		 * the reader's own copy is delivered: the reader stops the same way, silently. */
		client_signal = WTERMSIG(ws);
	}
	if (client_signal != 0 || end == READER_FAILED || wcode == WRITER_FAIL)
		return 1;
	if (end == READER_STDOUT) {
		log_warnx("cannot write to standard output: %s", strerror(r->err));
	} else if (end == READER_SOCK ? r->err == ECONNRESET : wcode == WRITER_RESET) {
		log_warnx("connection reset by the server");
	} else if (end == READER_SOCK) {
		log_warnx("connection lost: %s", strerror(r->err));
	} else if (wcode == WRITER_CLOSED || (end == READER_EOF && !r->done)) {
		log_warnx("server closed the connection before the input ended");
	} else if (end == READER_EOF && wcode == WRITER_OK) {
		return 0;
	} else if (WIFSIGNALED(ws)) {
		log_warnx("the sending process was killed by signal %d", WTERMSIG(ws));
	} else {
		log_warnx("the sending process exited with status %d", wcode);
	}
	return 1;
}

static int
client_reader(int sock, int done_rd, pid_t writer, const sigset_t *unblocked)
{
	struct reader r = { .sock = sock, .done_rd = done_rd, .writer = writer };
	enum reader_end end;

	if (client_reader_signals(&r) < 0) {
		log_warn("cannot set up signals");
		end = READER_FAILED;
	} else {
		sigprocmask(SIG_SETMASK, unblocked, NULL);
		close(STDIN_FILENO);
		io_set_nonblock(done_rd, 1);
		end = client_reader_loop(&r);
	}
	return client_report(&r, end, client_reap_writer(&r));
}

/* Forks the writer and runs the reader; returns the exit status.  INT, TERM and HUP stay
 * blocked across fork, so each process has its own dispositions before one can arrive. */
static int
client_run(int sock)
{
	sigset_t unblocked;
	pid_t reader = getpid(), pid;
	int done[2];

	if (pipe2(done, O_CLOEXEC) < 0) {
		log_warn("cannot make a pipe");
		return 1;
	}
	if (sig_block(client_signals, &unblocked) < 0 || (pid = fork()) < 0) {
		log_warn("cannot fork the writer");
		close(done[0]);
		close(done[1]);
		return 1;
	}
	if (pid == 0) {
		close(done[0]);
		sigprocmask(SIG_SETMASK, &unblocked, NULL);
		client_writer(sock, done[1], reader);
	}
	close(done[1]);
	return client_reader(sock, done[0], pid, &unblocked);
}

/* On a terminal, says where the input goes and how to end it. */
static void
client_greet(int sock)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char addr[NET_ADDRLEN];

	if (!isatty(STDIN_FILENO) || getpeername(sock, (struct sockaddr *)&ss, &len) < 0)
		return;
	net_addr_str((struct sockaddr *)&ss, addr, sizeof(addr));
	log_info("connected to %s; a line q ends the input", addr);
}

int
main(int argc, char **argv)
{
	char err[NET_ERRLEN];
	const char *host, *port;
	int sock, status;

	log_init("mpecho", NULL);
	client_parse(argc, argv, &host, &port);
	/* EPIPE is handled where it happens; SIGCHLD must not be inherited as ignored, or the
	 * writer would be reaped behind the reader's back. */
	sig_ignore(SIGPIPE);
	sig_default(SIGCHLD);
	sock = net_connect(host, port, CLIENT_CONNECT_MS, err, sizeof(err));
	if (sock < 0)
		fatalx(1, "%s", err);
	client_greet(sock);
	status = client_run(sock);
	if (client_signal != 0) {
		/* Dying by the signal tells a calling shell that the user stopped us; raise returns
		 * only if it could not, and the shell convention stands in. */
		sig_default(client_signal);
		raise(client_signal);
		status = 128 + client_signal;
	}
	return status;
}
