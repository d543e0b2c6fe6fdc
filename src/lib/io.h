/*
 * io.h - robust reads and writes (Stevens' readn/writen): EINTR is retried, short writes are
 * completed, and errors come back as -1 with errno set.  Nothing here prints or exits.
 */
#ifndef MPECHO_IO_H
#define MPECHO_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One read(2), retried on EINTR. */
ssize_t io_read(int fd, void *buf, size_t len);
/* Writes all len bytes; returns 0, or -1 with errno (EAGAIN on a socket send timeout). */
int io_write_all(int fd, const void *buf, size_t len);
int io_set_nonblock(int fd, int on);
/* CLOCK_MONOTONIC in milliseconds, for deadlines and intervals. */
int64_t io_now_ms(void);

#endif
