/*
 * procfs.c - the /proc readers of mpecho-bench (see procfs.h).  Paths are built under a root
 * given by the caller, so the same code reads the live /proc and the unit tests' fixtures.
 */
#define _GNU_SOURCE
#include "procfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The most listening sockets procfs_find_listener considers. */
#define PROCFS_MAX_INODES 16

static pid_t procfs_pids[PROCFS_MAX_PROCS];

int
procfs_tree(const char *root, pid_t pid, pid_t *out, int max)
{
	char path[512];
	struct dirent *e;
	DIR *d;
	FILE *f;
	long k;
	int n = 0;

	if (max < 1)
		return 0;
	out[n++] = pid;
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%d/task", root, (int)out[i]);
		if ((d = opendir(path)) == NULL)
			continue;
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%d/task/%.32s/children", root, (int)out[i],
			    e->d_name);
			if ((f = fopen(path, "re")) == NULL)
				continue;
			while (n < max && fscanf(f, "%ld", &k) == 1)
				out[n++] = (pid_t)k;
			fclose(f);
		}
		closedir(d);
	}
	return n;
}

/* The number after key in the first line of root/pid/file that starts with key, or dflt. */
static long
procfs_field(const char *root, pid_t pid, const char *file, const char *key, long dflt)
{
	char path[512], line[256];
	size_t keylen = strlen(key);
	long v, found = dflt;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%d/%s", root, (int)pid, file);
	if ((f = fopen(path, "re")) == NULL)
		return dflt;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, keylen) == 0 && sscanf(line + keylen, "%ld", &v) == 1) {
			found = v;
			break;
		}
	fclose(f);
	return found;
}

long
procfs_pss(const char *root, pid_t pid)
{
	return procfs_field(root, pid, "smaps_rollup", "Pss:", -1);
}

long
procfs_pte(const char *root, pid_t pid)
{
	return procfs_field(root, pid, "status", "VmPTE:", 0);
}

/* Reads root/pid/stat into buf and returns the text after the command's closing parenthesis
 * (the command may hold spaces and parentheses), or NULL. */
static const char *
procfs_stat(const char *root, pid_t pid, char *buf, size_t len)
{
	char path[512];
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%d/stat", root, (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p ? p + 1 : NULL;
}

long long
procfs_cpu(const char *root, pid_t pid)
{
	char buf[1024];
	unsigned long long ut, st;
	long long cut, cst;
	const char *p = procfs_stat(root, pid, buf, sizeof(buf));

	if (p == NULL ||
	    sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld", &ut,
	    &st, &cut, &cst) != 4)
		return 0;
	return (long long)(ut + st) + cut + cst;
}

pid_t
procfs_ppid(const char *root, pid_t pid)
{
	char buf[1024];
	const char *p = procfs_stat(root, pid, buf, sizeof(buf));
	int ppid = 0;

	if (p == NULL || sscanf(p, " %*c %d", &ppid) != 1)
		return 0;
	return (pid_t)ppid;
}

struct procfs_usage
procfs_tree_usage(const char *root, pid_t pid, int with_pss)
{
	struct procfs_usage u = { 0, 0, 0, 0 };
	long kib;

	u.nprocs = procfs_tree(root, pid, procfs_pids, PROCFS_MAX_PROCS);
	for (int i = 0; i < u.nprocs; i++) {
		u.cpu_ticks += procfs_cpu(root, procfs_pids[i]);
		if (!with_pss)
			continue;
		if ((kib = procfs_pss(root, procfs_pids[i])) > 0)
			u.pss_kib += kib;
		u.pte_kib += procfs_pte(root, procfs_pids[i]);
	}
	return u;
}

/* With a tickless kernel idle time is measured at each entry to and exit from idle, where the
 * busy fields are sampled at ticks that short bursts of work miss: the machine's busy time is
 * the window's length on every CPU less this. */
long long
procfs_idle_ticks(const char *root)
{
	unsigned long long idle = 0, iowait = 0;
	char path[512], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/stat", root);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	if (fgets(line, sizeof(line), f) == NULL ||
	    sscanf(line, "cpu %*u %*u %*u %llu %llu", &idle, &iowait) != 2)
		idle = iowait = 0;
	fclose(f);
	return (long long)(idle + iowait);
}

/* Adds the inodes of the sockets listening on port in one net/tcp-format file. */
static int
procfs_scan_tcp(const char *path, int port, unsigned long *ino, int n, int max)
{
	char line[512], local[128], *colon;
	unsigned int lport, state;
	unsigned long inode;
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return n;
	while (n < max && fgets(line, sizeof(line), f) != NULL) {
		/* State 0x0A is TCP_LISTEN. */
		if (sscanf(line, " %*d: %127s %*s %x %*s %*s %*s %*d %*d %lu", local, &state,
		    &inode) != 3 || state != 0x0A || (colon = strrchr(local, ':')) == NULL)
			continue;
		if (sscanf(colon + 1, "%x", &lport) == 1 && (int)lport == port && inode != 0)
			ino[n++] = inode;
	}
	fclose(f);
	return n;
}

int
procfs_listener_inodes(const char *root, int port, unsigned long *ino, int max)
{
	char path[512];
	int n;

	snprintf(path, sizeof(path), "%s/net/tcp", root);
	n = procfs_scan_tcp(path, port, ino, 0, max);
	snprintf(path, sizeof(path), "%s/net/tcp6", root);
	return procfs_scan_tcp(path, port, ino, n, max);
}

/* Whether process pid (a directory name under root) has a descriptor on one of the inodes. */
static int
procfs_holds_inode(const char *root, const char *pid, const unsigned long *ino, int n)
{
	char path[512], link[64];
	struct dirent *e;
	unsigned long v;
	ssize_t len;
	int found = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%.32s/fd", root, pid);
	if ((d = opendir(path)) == NULL)
		return 0;
	while (!found && (e = readdir(d)) != NULL) {
		snprintf(path, sizeof(path), "%s/%.32s/fd/%.32s", root, pid, e->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (sscanf(link, "socket:[%lu]", &v) == 1)
			for (int i = 0; i < n; i++)
				found |= (v == ino[i]);
	}
	closedir(d);
	return found;
}

/* Up from pid through the parents that hold the listener too: the process that opened it (the
 * master, above its sessions or pool processes, however many there are). */
static pid_t
procfs_topmost(const char *root, pid_t pid, const unsigned long *ino, int n)
{
	char name[24];

	for (int depth = 0; depth < 64; depth++) {
		pid_t pp = procfs_ppid(root, pid);

		snprintf(name, sizeof(name), "%d", (int)pp);
		if (pp <= 1 || !procfs_holds_inode(root, name, ino, n))
			break;
		pid = pp;
	}
	return pid;
}

pid_t
procfs_find_listener(const char *root, int port)
{
	unsigned long ino[PROCFS_MAX_INODES];
	pid_t holder = 0;
	struct dirent *e;
	int n;
	DIR *d;

	n = procfs_listener_inodes(root, port, ino, PROCFS_MAX_INODES);
	if (n == 0 || (d = opendir(root)) == NULL)
		return 0;
	while (holder == 0 && (e = readdir(d)) != NULL)
		if (e->d_name[0] >= '1' && e->d_name[0] <= '9' &&
		    procfs_holds_inode(root, e->d_name, ino, n))
			holder = (pid_t)strtol(e->d_name, NULL, 10);
	closedir(d);
	return holder == 0 ? 0 : procfs_topmost(root, holder, ino, n);
}
