/*
 * spawner.c - fork mode's spawner (see spawner.h): its loop, and the master's side of the
 * pair.
 */
#define _GNU_SOURCE
#include "spawner.h"
#include "log.h"
#include "proc.h"
#include "sandbox.h"
#include "sig.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sysexits.h>
#include <unistd.h>

/* One connection handed over: its arguments, the descriptor beside them. */
struct spawn_msg {
	struct session_args a;
};

/* The spawner's loop: a connection, a clone, an answer, until the master's end closes.
 * Blocking calls only: it has nothing else to do, and PR_SET_PDEATHSIG (SIGKILL) ends it
 * with the master. */
static _Noreturn void
spawner_loop(int sock, int pipe_wr, pid_t master)
{
	static const int blocked[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD,
		SIGALRM, SIGWINCH, 0 };
	int *ctid = NULL;
	void *head = NULL;
	size_t hlen = 0;
	char name[16] = "";

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != master)
		_exit(0);
	/* Every signal the master handles stays blocked, as in the master at its fork: a session
	 * has its own handlers set before it lets them in (session_init).  The spawner itself
	 * is ended by the master's end closing, or by SIGKILL. */
	sig_default(SIGCHLD);
	sig_setmask(blocked);
	/* What fork(3) gives a child and a raw clone does not: the thread's tid where the C
	 * library keeps it (the robust lock's owner, raise(3)), and the robust list. */
	if (prctl(PR_GET_TID_ADDRESS, &ctid) < 0 || ctid == NULL ||
	    syscall(SYS_get_robust_list, 0, &head, &hlen) < 0) {
		log_warn("spawner: cannot read the thread's tid address or robust list");
		_exit(EX_OSERR);
	}
	/* Told apart from the sessions in ps(1) and top(1); a session takes the name back. */
	(void)prctl(PR_GET_NAME, name);
	(void)prctl(PR_SET_NAME, SPAWNER_NAME);
	if (sandbox_spawner_enter() < 0) {
		log_warn("spawner: cannot enter the sandbox");
		_exit(EX_OSERR);
	}
	{
		const struct spawn_reply ready = { .err = SPAWN_READY };

		if (send(sock, &ready, sizeof(ready), MSG_NOSIGNAL) < 0)
			_exit(0);
	}
	for (;;) {
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct spawn_msg m;
		struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
		    .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm;
		struct spawn_reply r;
		ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		int fd = -1;
		pid_t pid;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);
		cm = CMSG_FIRSTHDR(&mh);
		if (cm != NULL && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(cm), sizeof(int));
		r = (struct spawn_reply){ .conn = m.a.conn };
		if ((size_t)n != sizeof(m) || fd < 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
			/* Not the master's message: a bug; nothing is served from it. */
			if (fd >= 0)
				close(fd);
			r.err = EPROTO;
		} else {
			m.a.fd = fd;
			m.a.pipe_wr = pipe_wr;
			pid = sandbox_spawn(ctid, &m.a.slot->spawned);
			if (pid == 0) {
				sandbox_spawned();
				(void)prctl(PR_SET_NAME, name);
				close(sock);
				syscall(SYS_set_robust_list, head, hlen);
				session_run_spawned(&m.a);
			}
			close(fd);
			r.pid = pid > 0 ? pid : 0;
			r.err = pid > 0 ? 0 : errno;
		}
		while (send(sock, &r, sizeof(r), MSG_NOSIGNAL) < 0)
			if (errno != EINTR)
				_exit(0);
	}
}

pid_t
spawner_start(int *fd, int pipe_wr)
{
	int sv[2], fl;
	pid_t master = getpid(), pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	{
		int *const keep[] = { &sv[1], &pipe_wr };

		pid = proc_fork_favoured(keep, 2);
	}
	if (pid == 0)
		spawner_loop(sv[1], pipe_wr, master);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return -1;
	}
	{
		struct pollfd p = { .fd = sv[0], .events = POLLIN };
		struct spawn_reply r;

		/* The master's signals are blocked outside its ppoll: nothing interrupts this.  A
		 * late answer is skipped among the others (master_spawn_answers). */
		if (poll(&p, 1, SPAWN_READY_MS) > 0 && (p.revents & POLLIN))
			(void)recv(sv[0], &r, sizeof(r), MSG_DONTWAIT);
	}
	fl = fcntl(sv[0], F_GETFL);
	(void)fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
	*fd = sv[0];
	return pid;
}

int
spawner_send(int fd, const struct session_args *a)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct spawn_msg m = { .a = *a };
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
	    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	ssize_t n;

	memset(cbuf, 0, sizeof(cbuf));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &a->fd, sizeof(int));
	do
		n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	return 0;
}

int
spawner_reply(int fd, struct spawn_reply *r)
{
	ssize_t n;

	do
		n = recv(fd, r, sizeof(*r), MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(*r))
		return 1;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return -1;
}
