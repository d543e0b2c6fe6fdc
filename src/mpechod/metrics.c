/*
 * metrics.c - the metrics process (see metrics.h).
 */
#define _GNU_SOURCE
#include "metrics.h"
#include "proc.h"
#include "sandbox.h"
#include "metrics_http.h"
#include "metrics_text.h"
#include "scoreboard.h"


static volatile sig_atomic_t metrics_stop;

static void
metrics_sigstop(int signo)
{
	(void)signo;
	metrics_stop = 1;
}

static void
metrics_setup(const struct metrics_args *a, sigset_t *waitmask)
{
	if (proc_helper_signals(metrics_sigstop, a->master, waitmask))
		metrics_stop = 1;
}

/* Reads a request until it is whole, bad, MH_MAX bytes long, or the deadline passes (then
 * MH_MORE). */
static enum mh_result
metrics_read(int fd, char *buf, struct mh_req *req)
{
	int64_t deadline = io_now_ms() + METRICS_TIMEOUT_MS;
	enum mh_result r = MH_MORE;
	size_t len = 0;

	while (r == MH_MORE && len < MH_MAX && !metrics_stop) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - io_now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return MH_MORE;
		n = io_read(fd, buf + len, MH_MAX - len);
		if (n <= 0)
			return len == 0 ? MH_MORE : MH_BAD;
		len += (size_t)n;
		r = metrics_http_parse(buf, len, req);
	}
	return r;
}

static size_t
metrics_body(const struct metrics_args *a, enum mh_result r, char *body, size_t cap)
{
	struct fig_snap snap;
	struct sb_src src;
	int unread = 0;

	if (r != MH_METRICS)
		return (size_t)snprintf(body, cap, "%s\n", metrics_http_reason(r));
	master_scoreboard(&src);
	scoreboard_snap(&src, &snap);
	if (a->pipe_rd >= 0 && ioctl(a->pipe_rd, FIONREAD, &unread) == 0 && unread > 0)
		snap.store_pipe = (uint64_t)unread;
	return metrics_text(&snap, body, cap);
}

/* One connection: the request, one answer, the close. */
static void
metrics_serve(const struct metrics_args *a, int fd)
{
	static char req[MH_MAX], body[METRICS_TEXT_MAX];
	struct timeval tv = { .tv_sec = METRICS_TIMEOUT_MS / 1000 };
	struct mh_req rq = { 0 };
	enum mh_result r = metrics_read(fd, req, &rq);
	char head[256];
	size_t blen, hlen;

	if (r == MH_MORE && metrics_stop)
		return;
	if (r == MH_MORE)
		r = MH_BAD; /* too slow, or closed before a whole request */
	blen = metrics_body(a, r, body, sizeof(body));
	hlen = metrics_http_head(r, blen, head, sizeof(head));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (io_write_all(fd, head, hlen) == 0 && !rq.head)
		io_write_all(fd, body, blen);
	/* Whatever else the client sent is dropped, without a reset before it read the answer. */
	shutdown(fd, SHUT_WR);
}

static void
metrics_accept(const struct metrics_args *a, int lfd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (cidr_list_match(a->allow, (struct sockaddr *)&ss))
		metrics_serve(a, fd);
	close(fd);
}

void
metrics_run(const struct metrics_args *a)
{
	struct pollfd pfd[METRICS_MAX_FDS];
	sigset_t waitmask;
	int n = a->nfds < METRICS_MAX_FDS ? a->nfds : METRICS_MAX_FDS;

	log_init(NULL, "metrics");
	log_guard(1);
	metrics_setup(a, &waitmask);
	sandbox_child(SANDBOX_METRICS, NULL);
	for (int i = 0; i < n; i++)
		pfd[i] = (struct pollfd){ .fd = a->fds[i], .events = POLLIN };
	while (!metrics_stop) {
		if (ppoll(pfd, (nfds_t)n, NULL, &waitmask) < 0) {
			if (errno != EINTR)
				fatal(EX_OSERR, "ppoll");
			continue;
		}
		sig_deliver_pending(&waitmask);
		for (int i = 0; i < n && !metrics_stop; i++)
			if (pfd[i].revents & POLLIN)
				metrics_accept(a, pfd[i].fd);
	}
	_exit(0);
}
