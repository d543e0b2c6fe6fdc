/*
 * pipe_store.c - several writers, one pipe, one store process: records that never interleave.
 *
 *   usage: pipe_store [writers [records]]      defaults 4 and 50; record size 1000 bytes
 *
 * Seed notes: "메시지를 저장하는 형태의 에코 서버".  The seed's server forks a child that
 * reads a pipe and saves what it reads, and every connection's process writes what it echoes
 * into that pipe.  Here the writers stand in for the sessions, and the store checks every
 * record it reads instead of saving it.  What the seed's version gets wrong:
 *
 * - Writes from several processes into one pipe interleave unless each is one write(2) of at
 *   most PIPE_BUF bytes (4096 on Linux, at least 512 by POSIX): only such a write is atomic.
 *   The seed writes whatever read() returned, up to BUF_SIZE, so two sessions' bytes can mix.
 *   Here each record is one write() of 1000 bytes, and the store finds every record whole.
 *
 * - Its store loops in while (1) and never looks at read()'s result: at end of file read
 *   returns 0 forever (a busy loop), on error -1, which fwrite takes as a huge size; fclose is
 *   never reached.  Here the store stops at end of file, which comes once every writer has
 *   closed the pipe, so the parent must close its own copy of the write end too.
 *
 * - A record may arrive split over two reads even though it was written at once (a read
 *   returns what is there, and the buffer may end mid-record), so the store keeps the tail of
 *   each read for the next one.
 *
 * In mpechod: session_record() in session.c writes each record as one frame of at most
 * PIPE_BUF bytes (REC_FRAME_MAX, record.h), and store.c keeps the incomplete tail of a read
 * (store_consume) and finishes when read() returns 0 (store_drain, store_finish).
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define RECORD_SIZE 1000 /* bytes, newline included; at most PIPE_BUF */
#define MAX_WRITERS 32
#define MAX_RECORDS 1000

#if RECORD_SIZE > PIPE_BUF
#error "a record must fit in one atomic pipe write"
#endif

/* A record: "w<writer> r<record> " then the writer's letter up to the newline, so a record
 * with another writer's bytes in it does not parse. */
static void
make_record(char *rec, int w, int r)
{
	int n = snprintf(rec, RECORD_SIZE, "w%d r%d ", w, r);

	memset(rec + n, 'a' + w % 26, (size_t)(RECORD_SIZE - 1 - n));
	rec[RECORD_SIZE - 1] = '\n';
}

static _Noreturn void
writer(int fd, int w, int nrec)
{
	char rec[RECORD_SIZE];

	for (int r = 0; r < nrec; r++) {
		make_record(rec, w, r);
		/* One write of the whole record: atomic, so it is all there or none of it. */
		while (write(fd, rec, sizeof(rec)) < 0) {
			if (errno != EINTR)
				_exit(1);
		}
	}
	_exit(0);
}

/* Checks one record: its header, and that it is exactly what its writer wrote. */
static int
check_record(const char *rec, int nwriters, int *counts)
{
	char want[RECORD_SIZE];
	int w, r;

	if (sscanf(rec, "w%d r%d ", &w, &r) != 2 || w < 0 || w >= nwriters || r < 0 ||
	    r >= MAX_RECORDS)
		return -1;
	make_record(want, w, r);
	if (memcmp(rec, want, RECORD_SIZE) != 0)
		return -1;
	counts[w]++;
	return 0;
}

static _Noreturn void
store(int fd, int nwriters)
{
	static char buf[64 * RECORD_SIZE];
	int counts[MAX_WRITERS] = { 0 }, whole = 0, broken = 0;
	size_t len = 0, off;
	ssize_t n;

	for (;;) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("pipe_store: store: read");
			_exit(1);
		}
		len += (size_t)n;
		for (off = 0; len - off >= RECORD_SIZE; off += RECORD_SIZE) {
			if (check_record(buf + off, nwriters, counts) == 0)
				whole++;
			else
				broken++;
		}
		memmove(buf, buf + off, len - off); /* keep the tail for the next read */
		len -= off;
	}
	printf("pipe_store: store %d read end of file: every writer has closed the pipe\n",
	    (int)getpid());
	for (int w = 0; w < nwriters; w++)
		printf("pipe_store: writer %d: %d whole records\n", w, counts[w]);
	printf("pipe_store: %d whole records, %d broken, %zu stray bytes\n", whole, broken, len);
	_exit(broken == 0 && len == 0 ? 0 : 1);
}

static int
parse(const char *s, int hi, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end != '\0' || v < 1 || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

int
main(int argc, char **argv)
{
	int nwriters = 4, nrec = 50, fds[2], status, failed = 0;
	pid_t store_pid, pid;

	if (argc > 3 || (argc > 1 && parse(argv[1], MAX_WRITERS, &nwriters) < 0) ||
	    (argc > 2 && parse(argv[2], MAX_RECORDS, &nrec) < 0)) {
		fprintf(stderr, "usage: pipe_store [writers 1-%d [records 1-%d]]\n", MAX_WRITERS,
		    MAX_RECORDS);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pipe(fds) < 0) {
		perror("pipe_store: pipe");
		return 1;
	}
	store_pid = fork();
	if (store_pid == 0) {
		close(fds[1]);
		store(fds[0], nwriters);
	}
	for (int w = 0; store_pid > 0 && w < nwriters; w++) {
		pid = fork();
		if (pid == 0) {
			close(fds[0]);
			writer(fds[1], w, nrec);
		}
		if (pid < 0)
			failed = 1;
	}
	/* The parent writes nothing: without these the store would never see end of file. */
	close(fds[0]);
	close(fds[1]);
	if (store_pid < 0 || failed)
		perror("pipe_store: fork");
	printf("pipe_store: %d writers send %d records of %d bytes each (PIPE_BUF is %d)\n",
	    nwriters, nrec, RECORD_SIZE, PIPE_BUF);
	while ((pid = wait(&status)) > 0 || errno == EINTR) {
		if (pid > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			failed = 1;
	}
	return failed || store_pid < 0;
}
