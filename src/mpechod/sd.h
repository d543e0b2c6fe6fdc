/*
 * sd.h - the two systemd protocols mpechod speaks, without libsystemd (as OpenSSH 9.8 does).
 *
 * Socket activation (sd_listen_fds(3)): the service manager passes listening sockets as the
 * descriptors 3, 4, ... and says so in LISTEN_FDS=N, with LISTEN_PID=<the pid meant>, so that a
 * child that inherited the environment does not take them too.  Readiness and status
 * (sd_notify(3)): the service sends datagrams such as "READY=1" or "STATUS=..." to the AF_UNIX
 * socket named in NOTIFY_SOCKET, a path or, starting with '@', an abstract name.
 *
 * Nothing here prints or exits: functions return -1, with errno set and, where they take one,
 * a one-line reason in the caller's buffer.  The parsing is pure so the unit tests need no
 * environment; sd_listen_fds is the thin wrapper that reads it.
 */
#ifndef MPECHO_SD_H
#define MPECHO_SD_H

#include <stddef.h>
#include <sys/types.h>

/* The first passed descriptor (SD_LISTEN_FDS_START in sd-daemon.h). */
#define SD_FDS_START 3
/* The most sockets accepted from the manager: as many as the master's table of listeners
 * (MASTER_MAX_LISTEN in master.c).  A larger LISTEN_FDS is an error, not a truncation. */
#define SD_FDS_MAX 32

/* Parses the values of LISTEN_PID and LISTEN_FDS (either may be NULL: not set).  Returns the
 * number of passed descriptors, also stored in *n: 0 when either is unset, when LISTEN_PID names
 * another process than self, or when LISTEN_FDS is 0.  Returns -1 with errno EINVAL and err
 * filled when a value is not a decimal number (LISTEN_PID must be > 0), or when LISTEN_FDS is
 * negative or above SD_FDS_MAX (errno E2BIG then). */
int sd_listen_fds_env(const char *listen_pid, const char *listen_fds, pid_t self, int *n, char *err,
    size_t errlen);
/* sd_listen_fds_env on this process's environment and getpid().  With unset, removes
 * LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from the environment (whatever they held), so that
 * nothing this process starts can mistake them for its own.  Does not check the descriptors:
 * call sd_check_listener on each of SD_FDS_START .. SD_FDS_START + n - 1. */
int sd_listen_fds(int unset, char *err, size_t errlen);

/* Checks that fd is a listening TCP socket (SOCK_STREAM, IPPROTO_TCP, SO_ACCEPTCONN) of
 * AF_INET or AF_INET6, then makes it close-on-exec and nonblocking.  Returns 0, or -1 with err
 * saying what fd is instead ("fd 3 is not a socket", "fd 3 is a TCP socket that is not
 * listening", ...) and errno set (ENOTSOCK, EPROTOTYPE, EAFNOSUPPORT, EINVAL, or the failed
 * call's). */
int sd_check_listener(int fd, char *err, size_t errlen);
/* The same for a bound UDP socket (SOCK_DGRAM, IPPROTO_UDP, AF_INET or AF_INET6, a nonzero
 * local port), for a ListenDatagram= socket. */
int sd_check_datagram(int fd, char *err, size_t errlen);

/* Opens the socket that notifications are sent from: AF_UNIX, SOCK_DGRAM, close-on-exec and
 * nonblocking, so a manager that does not read never blocks the sender.  notify_socket is the
 * value of NOTIFY_SOCKET; it is checked here (a path starting with '/', or '@' and an abstract
 * name, that fits in sun_path), and must be passed again to sd_notify_send.  Returns the
 * descriptor, or -1 with errno: EINVAL (NULL or empty), EAFNOSUPPORT (another form, such as
 * systemd 254's "vsock:"), ENAMETOOLONG, or socket(2)'s. */
int sd_notify_open(const char *notify_socket);
/* Sends msg ("READY=1", "STATUS=...", several assignments separated by newlines) as one
 * datagram to addr_text (NOTIFY_SOCKET's value) with one sendto, without blocking.  Returns 0
 * when the whole message went, or -1 with errno: sd_notify_open's address errors, EAGAIN when
 * the manager's queue is full (the message is dropped, not retried), EMSGSIZE, or sendto's
 * (ECONNREFUSED, ENOENT when nobody listens). */
int sd_notify_send(int fd, const char *addr_text, const char *msg);

#endif
