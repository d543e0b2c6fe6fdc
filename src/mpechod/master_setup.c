/*
 * master_setup.c - what the master sets up before it serves and keeps up after: listen sockets
 * (bound, or passed by systemd), the privilege drop, systemd's
 * notifications, the gate's address rules.
 */
#define _GNU_SOURCE
#include "master.h"
#include "arena.h"

/* Binds every --bind address (or the wildcards) to one port; when the kernel chose the port for
 * the first socket and another address has it taken, starts over with a new port. */
static void
master_listen(void)
{
	char err[NET_ERRLEN];
	int tries, i, n = -1, port;

	for (tries = 0; tries < 16; tries++) {
		port = master->set.port;
		master->nlfd = master->nufd = 0;
		for (i = 0; i < (master->set.nbinds ? master->set.nbinds : 1); i++) {
			const char *host = master->set.nbinds ? master->set.binds[i] : NULL;

			n = net_listen(host, SOCK_STREAM, &port, master->lfd + master->nlfd,
			    MASTER_MAX_LISTEN - master->nlfd, err, sizeof(err));
			if (n < 0)
				break;
			master->nlfd += n;
			if (!master->set.udp)
				continue;
			n = net_listen(host, SOCK_DGRAM, &port, master->ufd + master->nufd,
			    MASTER_MAX_LISTEN - master->nufd, err, sizeof(err));
			if (n < 0)
				break;
			master->nufd += n;
		}
		if (n >= 0) {
			master->port = (uint16_t)port;
			return;
		}
		while (master->nlfd > 0)
			close(master->lfd[--master->nlfd]);
		while (master->nufd > 0)
			close(master->ufd[--master->nufd]);
		if (!(master->set.port == 0 && errno == EADDRINUSE))
			break;
	}
	usage_error("%s", err);
}

void
master_announce(void)
{
	char addr[NET_ADDRLEN];
	int one = 1;

	for (int i = 0; i < master->nlfd; i++) {
		/* Accepted sockets inherit TCP_NODELAY from their listener, which saves every
		 * session a setsockopt: echoes go out at once, whatever their size. */
		setsockopt(master->lfd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (master->set.defer_accept > 0 &&
		    setsockopt(master->lfd[i], IPPROTO_TCP, TCP_DEFER_ACCEPT,
		    &master->set.defer_accept, sizeof(master->set.defer_accept)) < 0)
			log_warn("TCP_DEFER_ACCEPT");
		net_local_addr(master->lfd[i], addr, sizeof(addr));
		log_info("listening on %s", addr);
	}
	for (int i = 0; i < master->nufd; i++) {
		net_local_addr(master->ufd[i], addr, sizeof(addr));
		log_info("serving UDP on %s", addr);
	}
}

/* -u USER[:GROUP]: resolved before anything is opened, so that a bad name is a usage error. */
static struct user_ids master_user;

const struct user_ids *
master_resolve_user(void)
{
	char err[256];

	if (master->set.user == NULL)
		return NULL;
	if (user_resolve(master->set.user, "/", &master_user, err, sizeof(err)) < 0)
		usage_error("%s", err);
	return &master_user;
}

/* After binding and opening the store (store_start_file gave the file to the user), before any
 * child: the store and every session run as the user. */
void
master_drop_user(void)
{
	char err[256];

	/* After an upgrade in place the master runs as the user already. */
	if (master->set.user != NULL && getuid() == master_user.uid && geteuid() == master_user.uid &&
	    getgid() == master_user.gid)
		return;
	if (master->set.user != NULL && user_drop(&master_user, err, sizeof(err)) < 0)
		fatalx(EX_NOPERM, "%s", err);
}

/* Socket activation: the listeners systemd passed (LISTEN_FDS), checked, instead of binding;
 * datagram ones too with --udp (ListenDatagram=). */
void
master_sockets(void)
{
	char err[NET_ERRLEN], addr[NET_ADDRLEN];
	int n;

	if (master->nlfd > 0)
		return; /* handed over by the binary before an upgrade in place */
	n = sd_listen_fds(1, err, sizeof(err));
	if (n < 0)
		usage_error("%s", err);
	if (n == 0) {
		master_listen();
		return;
	}
	if (master->set.port_given || master->set.nbinds > 0)
		usage_error("-p and -b do not apply to the sockets systemd passed (LISTEN_FDS=%d)", n);
	master->sd_sockets = 1;
	for (int fd = SD_FDS_START; fd < SD_FDS_START + n; fd++) {
		if (sd_check_listener(fd, err, sizeof(err)) == 0)
			master->lfd[master->nlfd++] = fd;
		else if (master->set.udp && sd_check_datagram(fd, err, sizeof(err)) == 0)
			master->ufd[master->nufd++] = fd;
		else
			usage_error("%s", err);
	}
	if (master->nlfd == 0)
		usage_error("systemd passed no listening TCP socket");
	if (master->set.udp && master->nufd == 0)
		usage_error("--udp: systemd passed no datagram socket (ListenDatagram=)");
	master->port = (uint16_t)net_local_addr(master->lfd[0], addr, sizeof(addr));
}

/* NOTIFY_SOCKET: the master alone reports to systemd; the variable goes, so that no child
 * sees it. */
void
master_notify_open(void)
{
	const char *ns = getenv("NOTIFY_SOCKET");

	master->notify_fd = -1;
	if (ns == NULL || *ns == '\0')
		return;
	snprintf(master->notify_addr, sizeof(master->notify_addr), "%s", ns);
	master->notify_fd = sd_notify_open(master->notify_addr);
	if (master->notify_fd < 0)
		log_warn("NOTIFY_SOCKET %s", master->notify_addr);
	unsetenv("NOTIFY_SOCKET");
}



void
master_notify(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (master->notify_fd < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (sd_notify_send(master->notify_fd, master->notify_addr, msg) < 0 && errno != EAGAIN)
		log_warn("cannot notify %s", master->notify_addr);
}

/* Zeroed memory shared with every child (see struct master): a piece of the named object
 * mpecho-top reads (arena.h), or anonymous memory when there is none. */
void *
master_shared(size_t len)
{
	void *p = arena_alloc(len);

	if (p != NULL)
		return p;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fatal(EX_OSERR, "cannot map %zu bytes", len);
	return p;
}

/* Adds each CIDR of list to l; a bad one is a usage error. */
void
master_rules(const char *opt, const char *const *list, int n, struct cidr_list *l)
{
	char err[NET_ERRLEN];
	struct cidr c;

	for (int i = 0; i < n; i++) {
		if (cidr_parse(list[i], &c, err, sizeof(err)) < 0)
			usage_error("%s: %s", opt, err);
		if (cidr_list_add(l, &c) < 0)
			usage_error("%s: too many rules", opt);
	}
}

void
master_gate(void)
{
	static const char *const loopback[] = { "127.0.0.0/8", "::1" };
	struct gate *g = &master->gate;
	const struct settings *s = &master->set;

	g->proxy = s->proxy;
	g->proxy_timeout_ms = s->proxy_timeout * 1000;
	g->no_client = s->proxy_no_client;
	g->max_per_source = s->max_per_source;
	g->max_rate = s->max_rate;
	g->prefix4 = s->prefix4;
	g->prefix6 = s->prefix6;
	g->admit = master->admit;
	g->sh = &master->shared;
	if (s->source_penalty > 0) {
		g->penalty = master_shared(penalty_size(PENALTY_SLOTS));
		penalty_init(g->penalty, PENALTY_SLOTS, s->source_penalty);
	}
	master_rules("--allow", s->allow, s->nallow, &g->rules.allow);
	master_rules("--deny", s->deny, s->ndeny, &g->rules.deny);
	if (s->nproxy_from > 0)
		master_rules("--proxy-from", s->proxy_from, s->nproxy_from, &g->proxy_from);
	else
		master_rules("--proxy-from", loopback, 2, &g->proxy_from);
}

/* Started with 0, 1 or 2 closed, the store pipe or the store file could become "stderr" and
 * receive log lines: hold those numbers with /dev/null first. */
void
master_std_fds(void)
{
	int fd;

	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= STDERR_FILENO)
		;
	if (fd > STDERR_FILENO)
		close(fd);
}
