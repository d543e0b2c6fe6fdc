/*
 * master_agent.c - --agent-port: HAProxy's agent check, answered by the master itself.  Each
 * connection gets one line and is closed: "ready N%" (N: the free session slots, so a balancer
 * weighs an instance by its room), "drain" while the instance drains or shuts down (a balancer
 * then sends it no new connection but lets the ones it has finish), "down" while the store holds
 * sessions back (--store-full block with the pipe near full: new connections would only wait).
 * Its listener closes with the others when the shutdown begins (after --drain).
 *
 * It never blocks the loop: the listener and its connections are non-blocking, at most
 * MASTER_AGENT_BURST are answered a wakeup, and the reply, a few bytes into an empty socket
 * buffer, is sent at once or not at all.
 */
#define _GNU_SOURCE
#include "master.h"

#include <fcntl.h>

#define MASTER_AGENT_BURST 16

void
master_agent_open(void)
{
	char err[NET_ERRLEN], addr[NET_ADDRLEN];
	const char *host = master->set.agent_addr ? master->set.agent_addr : "127.0.0.1";
	int port = master->set.agent_port, fd = master->agent_fd;

	if (port < 0 || fd >= 0)
		goto said; /* none, or handed over by the binary before an upgrade in place */
	if (net_listen(host, SOCK_STREAM, &port, &fd, 1, err, sizeof(err)) < 0)
		usage_error("--agent-port: %s", err);
	io_set_nonblock(fd, 1);
	master->agent_fd = fd;
said:
	if (fd < 0)
		return;
	net_local_addr(fd, addr, sizeof(addr));
	log_info("agent check on %s", addr);
}

/* With the listeners, at the shutdown (after the drain): a new instance may take both ports
 * while this one's sessions finish; HAProxy keeps the last word it had ("drain") and its
 * health check sees the port closed. */
void
master_agent_close(void)
{
	if (master->agent_fd >= 0)
		close(master->agent_fd);
	master->agent_fd = -1;
}

/* The store cannot keep up and holds sessions back: its pipe is three quarters full.  The pipe's
 * size is asked each time: the kernel may have refused to enlarge it (master_store.c). */
static int
master_agent_store_blocked(void)
{
	int size;

	if (master->set.store_full != STORE_FULL_BLOCK || master->pipe_wr < 0)
		return 0;
	size = fcntl(master->pipe_wr, F_GETPIPE_SZ);
	if (size <= 0)
		size = MASTER_PIPE_SIZE;
	return master_pipe_unread() >= (size_t)size / 4 * 3;
}

static int
master_agent_line(int busy, char *line, size_t len)
{
	int free_slots = master->set.max_clients - busy, pct;

	if (master->draining || master->stopping)
		return snprintf(line, len, "drain\n");
	if (master_agent_store_blocked())
		return snprintf(line, len, "down\n");
	if (free_slots < 0)
		free_slots = 0;
	pct = (int)((int64_t)free_slots * 100 / master->set.max_clients);
	/* A free slot is never 0%: HAProxy would send nothing (it scales the server's weight). */
	return snprintf(line, len, "ready %d%%\n", free_slots > 0 && pct == 0 ? 1 : pct);
}

void
master_agent_serve(int busy)
{
	char line[32], junk[256];
	int fd, n;

	for (int i = 0; i < MASTER_AGENT_BURST; i++) {
		fd = accept4(master->agent_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		n = master_agent_line(busy, line, sizeof(line));
		if (send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			log_ratelimit(&master->log_accept, io_now_ms(), 1, "agent check: send");
		/* What the checker sent (HAProxy's agent-send) is read, so that the close is a FIN
		 * and not a reset that could lose the line. */
		for (int k = 0; k < 16 && recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0; k++)
			;
		close(fd);
	}
}
