/*
 * Unit tests for sd.c: LISTEN_PID/LISTEN_FDS parsing (unset, garbage, another pid, 0, counts
 * too big), the checks of passed sockets on real sockets made here (a listening TCP socket
 * passes and becomes close-on-exec and nonblocking; connected, UDP, unix and non-socket
 * descriptors fail with their reason), and notifications received on an AF_UNIX datagram
 * socket bound here, by path and by abstract name.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sd.h"

static char err[256];

/* sd_listen_fds_env with pid 100 as self; *n is also checked against the result. */
static int
parse(const char *pid, const char *fds)
{
	int n = -7, r;

	err[0] = '\0';
	r = sd_listen_fds_env(pid, fds, 100, &n, err, sizeof(err));
	if (r >= 0)
		cr_assert_eq(n, r, "n %d, returned %d", n, r);
	return r;
}

Test(listen_env, counts_the_fds_passed_to_this_process)
{
	cr_assert_eq(parse("100", "1"), 1);
	cr_assert_eq(parse("100", "2"), 2);
	cr_assert_eq(parse("100", "32"), SD_FDS_MAX);
}

Test(listen_env, unset_or_another_process_or_zero_is_none)
{
	cr_assert_eq(parse(NULL, NULL), 0);
	cr_assert_eq(parse("100", NULL), 0);
	cr_assert_eq(parse(NULL, "2"), 0);
	cr_assert_eq(parse("101", "2"), 0, "another process's sockets were taken");
	cr_assert_eq(parse("101", "garbage"), 0, "another process's LISTEN_FDS was parsed");
	cr_assert_eq(parse("100", "0"), 0);
}

Test(listen_env, garbage_is_an_error_with_a_reason)
{
	const char *pids[] = { "", "abc", "-100", "- 100", " 100", "100 ", "100x", "0",
		"99999999999999999999" };
	const char *fds[] = { "", "x", "-1", "--1", " 1", "1 ", "1.0", "0x1",
		"99999999999999999999" };

	for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++) {
		cr_assert_eq(parse(pids[i], "1"), -1, "LISTEN_PID='%s' was accepted", pids[i]);
		cr_assert_eq(errno, EINVAL, "LISTEN_PID='%s': errno %d", pids[i], errno);
		cr_assert_not_null(strstr(err, "LISTEN_PID"), "err: %s", err);
	}
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		cr_assert_eq(parse("100", fds[i]), -1, "LISTEN_FDS='%s' was accepted", fds[i]);
		cr_assert_not_null(strstr(err, "LISTEN_FDS"), "err: %s", err);
	}
}

Test(listen_env, more_than_the_master_serves_is_an_error)
{
	cr_assert_eq(parse("100", "33"), -1);
	cr_assert_eq(errno, E2BIG, "errno %d", errno);
	cr_assert_not_null(strstr(err, "33"), "err: %s", err);
	cr_assert_eq(parse("100", "2147483647"), -1);
	cr_assert_eq(parse("100", "2147483648"), -1);
}

Test(listen_env, reads_and_unsets_the_environment)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "3", 1);
	setenv("LISTEN_FDNAMES", "a:b:c", 1);
	cr_assert_eq(sd_listen_fds(0, err, sizeof(err)), 3);
	cr_assert_not_null(getenv("LISTEN_FDS"));
	cr_assert_eq(sd_listen_fds(1, err, sizeof(err)), 3);
	cr_assert_null(getenv("LISTEN_PID"));
	cr_assert_null(getenv("LISTEN_FDS"));
	cr_assert_null(getenv("LISTEN_FDNAMES"));
	cr_assert_eq(sd_listen_fds(1, err, sizeof(err)), 0);
}

/* A TCP socket of family on the loopback, bound to an ephemeral port; listening if asked. */
static int
tcp_socket(int family, int listening)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(family, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
	if (family == AF_INET6)
		cr_assert_eq(bind(fd, (struct sockaddr *)&s6, sizeof(s6)), 0, "%s", strerror(errno));
	else
		cr_assert_eq(bind(fd, (struct sockaddr *)&s4, sizeof(s4)), 0, "%s", strerror(errno));
	if (listening)
		cr_assert_eq(listen(fd, 8), 0);
	return fd;
}

/* Expects sd_check_listener to refuse fd with errno e and a reason holding word. */
static void
refused(int fd, int e, const char *word)
{
	err[0] = '\0';
	cr_assert_eq(sd_check_listener(fd, err, sizeof(err)), -1, "fd %d accepted", fd);
	cr_assert_eq(errno, e, "errno %d (%s), expected %d; err: %s", errno, strerror(errno), e, err);
	cr_assert_not_null(strstr(err, word), "err '%s' lacks '%s'", err, word);
}

Test(listener, a_listening_tcp_socket_passes_and_is_made_cloexec_and_nonblocking)
{
	int families[] = { AF_INET, AF_INET6 };

	for (int i = 0; i < 2; i++) {
		int fd = tcp_socket(families[i], 1);

		cr_assert_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
		cr_assert_eq(sd_check_listener(fd, err, sizeof(err)), 0, "family %d: %s", families[i],
		    err);
		cr_assert_neq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0, "not close-on-exec");
		cr_assert_neq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0, "not nonblocking");
		close(fd);
	}
}

Test(listener, a_bound_but_not_listening_or_connected_socket_fails)
{
	int lfd = tcp_socket(AF_INET, 1), fd = tcp_socket(AF_INET, 0), cfd;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	refused(fd, EINVAL, "not listening");
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(cfd, (struct sockaddr *)&sa, len), 0, "%s", strerror(errno));
	refused(cfd, EINVAL, "not listening");
	close(cfd);
	close(fd);
	close(lfd);
}

Test(listener, udp_unix_and_non_sockets_fail_with_their_reason)
{
	int udp = socket(AF_INET, SOCK_DGRAM, 0), sv[2], p[2];
	int fd = open("/dev/null", O_RDONLY);

	refused(udp, EPROTOTYPE, "UDP");
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	refused(sv[0], EAFNOSUPPORT, "unix");
	refused(fd, ENOTSOCK, "not a socket");
	cr_assert_eq(pipe(p), 0);
	refused(p[0], ENOTSOCK, "not a socket");
	close(p[1]);
	refused(p[1], EBADF, "not open");
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
	close(fd);
	close(udp);
}

Test(datagram, a_bound_udp_socket_passes_and_others_fail)
{
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int udp = socket(AF_INET, SOCK_DGRAM, 0), tcp = tcp_socket(AF_INET6, 1);

	cr_assert_eq(sd_check_datagram(udp, err, sizeof(err)), -1, "an unbound socket passed");
	cr_assert_not_null(strstr(err, "not bound"), "err: %s", err);
	cr_assert_eq(bind(udp, (struct sockaddr *)&s4, sizeof(s4)), 0);
	cr_assert_eq(sd_check_datagram(udp, err, sizeof(err)), 0, "%s", err);
	cr_assert_neq(fcntl(udp, F_GETFD) & FD_CLOEXEC, 0);
	cr_assert_neq(fcntl(udp, F_GETFL) & O_NONBLOCK, 0);
	cr_assert_eq(sd_check_datagram(tcp, err, sizeof(err)), -1);
	cr_assert_eq(errno, EPROTOTYPE);
	cr_assert_not_null(strstr(err, "TCP socket, not UDP"), "err: %s", err);
	close(tcp);
	close(udp);
}

/* A datagram socket bound to text, as NOTIFY_SOCKET names it; a nonblocking receiver. */
static int
receiver(const char *text)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t n = strlen(text);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	memcpy(sun.sun_path, text, n);
	if (text[0] == '@')
		sun.sun_path[0] = '\0';
	cr_assert_eq(bind(fd, (struct sockaddr *)&sun,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)), 0, "bind %s: %s", text,
	    strerror(errno));
	return fd;
}

/* Sends msg to text through a socket from sd_notify_open and reads it back from rfd. */
static void
round_trip(int rfd, const char *text, const char *msg)
{
	char buf[512];
	int fd = sd_notify_open(text);
	ssize_t r;

	cr_assert_geq(fd, 0, "sd_notify_open(%s): %s", text, strerror(errno));
	cr_assert_neq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0, "not close-on-exec");
	cr_assert_eq(sd_notify_send(fd, text, msg), 0, "send to %s: %s", text, strerror(errno));
	r = recv(rfd, buf, sizeof(buf) - 1, 0);
	cr_assert_eq(r, (ssize_t)strlen(msg), "received %zd bytes, sent %zu", r, strlen(msg));
	buf[r] = '\0';
	cr_assert_str_eq(buf, msg);
	close(fd);
}

Test(notify, reaches_a_path_socket)
{
	char dir[] = "/tmp/test_sd.XXXXXX", path[64];
	int rfd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notify", dir);
	rfd = receiver(path);
	round_trip(rfd, path, "READY=1");
	round_trip(rfd, path, "STATUS=active 1, accepted 2\nMAINPID=42");
	close(rfd);
	unlink(path);
	rmdir(dir);
}

Test(notify, reaches_an_abstract_socket)
{
	char name[64];
	int rfd;

	snprintf(name, sizeof(name), "@mpecho/test_sd/%d", (int)getpid());
	rfd = receiver(name);
	round_trip(rfd, name, "RELOADING=1");
	round_trip(rfd, name, "STOPPING=1");
	close(rfd);
}

Test(notify, bad_addresses_and_absent_managers_are_errors_not_blocks)
{
	char longname[200];
	int fd;

	memset(longname, 'a', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	errno = 0;
	cr_assert_eq(sd_notify_open(NULL), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(sd_notify_open(""), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(sd_notify_open("@"), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(sd_notify_open("relative/path"), -1);
	cr_assert_eq(errno, EAFNOSUPPORT);
	cr_assert_eq(sd_notify_open("vsock:2:1234"), -1);
	cr_assert_eq(errno, EAFNOSUPPORT);
	cr_assert_eq(sd_notify_open(longname), -1);
	cr_assert_eq(errno, ENAMETOOLONG);
	fd = sd_notify_open("/nonexistent/notify");
	cr_assert_geq(fd, 0);
	cr_assert_eq(sd_notify_send(fd, "/nonexistent/notify", "READY=1"), -1);
	cr_assert_eq(errno, ENOENT, "errno %d", errno);
	cr_assert_eq(sd_notify_send(fd, "bad", "READY=1"), -1);
	cr_assert_eq(errno, EAFNOSUPPORT);
	close(fd);
}

Test(notify, a_full_queue_drops_without_blocking)
{
	char name[64];
	int rfd, fd, sent = 0, r;

	snprintf(name, sizeof(name), "@mpecho/test_sd_full/%d", (int)getpid());
	rfd = receiver(name);
	fd = sd_notify_open(name);
	cr_assert_geq(fd, 0);
	/* A unix datagram queue holds max_dgram_qlen (10 by default) messages; nobody reads. */
	while ((r = sd_notify_send(fd, name, "STATUS=filling")) == 0 && sent < 100000)
		sent++;
	cr_assert_eq(r, -1, "never full after %d messages", sent);
	cr_assert_eq(errno, EAGAIN, "errno %d (%s)", errno, strerror(errno));
	close(fd);
	close(rfd);
}
