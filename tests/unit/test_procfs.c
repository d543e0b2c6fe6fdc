/*
 * Unit tests for procfs.c on a small /proc written into a temporary directory: a process tree
 * through each thread's children list, PSS, page tables, CPU ticks from a stat whose command
 * holds spaces and parentheses, the machine's idle time, and the listener's owner found from
 * net/tcp, net/tcp6 and the fd symlinks.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "procfs.h"

static char root[64];

/* Writes text to root/rel, making the directories on the way. */
static void
put(const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

/* A /proc/PID/stat line: ppid, utime, stime, cutime, cstime; the command has ") (" in it. */
static void
put_stat(int pid, int ppid, int ut, int st, int cut, int cst)
{
	char rel[64], text[256];

	snprintf(rel, sizeof(rel), "%d/stat", pid);
	snprintf(text, sizeof(text), "%d (a) (b c) S %d %d %d 0 -1 4194560 5 0 0 0 %d %d %d %d 20 0 "
	    "1 0 100 1000 10\n", pid, ppid, pid, pid, ut, st, cut, cst);
	put(rel, text);
}

static void
put_fd(int pid, int fd, const char *target)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%d/fd", root, pid);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%d/fd/%d", root, pid, fd);
	cr_assert_eq(symlink(target, path), 0, "symlink %s", path);
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
setup(void)
{
	strcpy(root, "/tmp/procfs-test.XXXXXX");
	cr_assert_not_null(mkdtemp(root));
}

static void
teardown(void)
{
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(procfs, .init = setup, .fini = teardown);

/* 100 has children 101, 102 through its main thread and 104 through thread 103; 101 has 105. */
static void
put_tree(void)
{
	put("100/task/100/children", "101 102 ");
	put("100/task/103/children", "104");
	put("101/task/101/children", "105 ");
	put("102/task/102/children", "");
	put("104/task/104/children", "");
	put("105/task/105/children", "");
}

Test(procfs, tree_breadth_first_through_every_thread)
{
	pid_t out[16];
	int n;

	put_tree();
	n = procfs_tree(root, 100, out, 16);
	cr_assert_eq(n, 5, "got %d processes", n);
	cr_assert_eq(out[0], 100);
	cr_assert_eq(out[1] + out[2] + out[3], 101 + 102 + 104, "the children of 100");
	cr_assert_eq(out[4], 105, "the grandchild last");
}

Test(procfs, tree_stops_at_max)
{
	pid_t out[3];

	put_tree();
	cr_assert_eq(procfs_tree(root, 100, out, 3), 3);
	cr_assert_eq(procfs_tree(root, 100, out, 0), 0);
}

Test(procfs, tree_of_a_gone_process_is_itself)
{
	pid_t out[4];

	cr_assert_eq(procfs_tree(root, 999, out, 4), 1);
	cr_assert_eq(out[0], 999);
}

Test(procfs, pss_and_pte)
{
	put("100/smaps_rollup", "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss:  2048 kB\n"
	    "Pss:  1234 kB\nPss_Anon:  1000 kB\n");
	put("100/status", "Name:\tx\nVmPTE:\t  48 kB\nVmSwap:\t0 kB\n");
	cr_assert_eq(procfs_pss(root, 100), 1234);
	cr_assert_eq(procfs_pte(root, 100), 48);
	cr_assert_eq(procfs_pss(root, 101), -1, "a gone process has no PSS");
	cr_assert_eq(procfs_pte(root, 101), 0);
}

Test(procfs, cpu_and_ppid_past_a_tricky_command)
{
	put_stat(100, 1, 7, 3, 20, 10);
	cr_assert_eq(procfs_cpu(root, 100), 40);
	cr_assert_eq(procfs_ppid(root, 100), 1);
	cr_assert_eq(procfs_cpu(root, 101), 0);
	cr_assert_eq(procfs_ppid(root, 101), 0);
	put("102/stat", "102 (truncated");
	cr_assert_eq(procfs_cpu(root, 102), 0, "no closing parenthesis");
}

Test(procfs, tree_usage_sums_the_tree)
{
	struct procfs_usage u;

	put_tree();
	put_stat(100, 1, 1, 1, 0, 0);
	put_stat(101, 100, 2, 2, 0, 0);
	put_stat(105, 101, 5, 0, 0, 0);
	put("100/smaps_rollup", "Pss: 100 kB\n");
	put("101/smaps_rollup", "Pss: 10 kB\n");
	put("100/status", "VmPTE: 8 kB\n");
	put("101/status", "VmPTE: 4 kB\n");
	u = procfs_tree_usage(root, 100, 0);
	cr_assert_eq(u.nprocs, 5);
	cr_assert_eq(u.cpu_ticks, 11);
	cr_assert_eq(u.pss_kib, 0, "no PSS unless asked");
	u = procfs_tree_usage(root, 100, 1);
	cr_assert_eq(u.pss_kib, 110);
	cr_assert_eq(u.pte_kib, 12);
}

Test(procfs, idle_ticks)
{
	cr_assert_eq(procfs_idle_ticks(root), 0, "no stat file");
	put("stat", "cpu  10 20 30 400 50 0 0 0 0 0\ncpu0 5 10 15 200 25 0 0 0 0 0\n");
	cr_assert_eq(procfs_idle_ticks(root), 450);
	put("stat", "intr 1 2 3\n");
	cr_assert_eq(procfs_idle_ticks(root), 0, "not a cpu line");
}

static const char tcp_header[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode\n";

/* Port 7007 (0x1B5F) listening on 127.0.0.1 (inode 5001) and [::] (5002); a connection on
 * the same port (5003), and a listener on another port (5004), which do not count. */
static void
put_net(void)
{
	char text[1024];

	snprintf(text, sizeof(text), "%s"
	    "   0: 0100007F:1B5F 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5001 1 0 100 0 0 10 0\n"
	    "   1: 0100007F:1B5F 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 5003 1 0 20 4 30 10 -1\n"
	    "   2: 0100007F:1B60 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5004 1 0 100 0 0 10 0\n",
	    tcp_header);
	put("net/tcp", text);
	snprintf(text, sizeof(text), "%s"
	    "   0: 00000000000000000000000000000000:1B5F 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5002 1 0 100 0 0 10 0\n",
	    tcp_header);
	put("net/tcp6", text);
}

Test(procfs, listener_inodes_from_tcp_and_tcp6)
{
	unsigned long ino[4];

	put_net();
	cr_assert_eq(procfs_listener_inodes(root, 7007, ino, 4), 2);
	cr_assert_eq(ino[0], 5001);
	cr_assert_eq(ino[1], 5002);
	cr_assert_eq(procfs_listener_inodes(root, 7007, ino, 1), 1, "max is respected");
	cr_assert_eq(procfs_listener_inodes(root, 7009, ino, 4), 0);
}

/* The server (200) holds the listener, and so does its child (201), which inherited it; 300
 * holds another socket.  The server is the holder whose parent does not hold it. */
Test(procfs, find_listener_skips_children_that_inherited_it)
{
	put_net();
	put_stat(201, 200, 0, 0, 0, 0);
	put_stat(200, 1, 0, 0, 0, 0);
	put_stat(300, 1, 0, 0, 0, 0);
	put_fd(201, 3, "socket:[5001]");
	put_fd(200, 0, "/dev/null");
	put_fd(200, 3, "socket:[5001]");
	put_fd(200, 4, "socket:[5002]");
	put_fd(300, 3, "socket:[5004]");
	put("self/stat", "not a pid directory");
	cr_assert_eq(procfs_find_listener(root, 7007), 200);
	cr_assert_eq(procfs_find_listener(root, 7008), 300);
	cr_assert_eq(procfs_find_listener(root, 7009), 0, "nobody listens");
}

Test(procfs, find_listener_without_net_files)
{
	cr_assert_eq(procfs_find_listener(root, 7007), 0);
}
