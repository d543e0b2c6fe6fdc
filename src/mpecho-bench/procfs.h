/*
 * procfs.h - what mpecho-bench reads about processes and sockets from /proc: a process tree,
 * its memory (PSS, page tables) and CPU time, the machine's idle time, and the process that
 * listens on a TCP port.  Every function takes the root to read ("/proc" normally), so the
 * unit tests run them on fixture files.  Nothing here prints or exits: a process that is gone,
 * or a file that cannot be read or parsed, reads as 0 (or -1 where the text says so).
 */
#ifndef MPECHO_PROCFS_H
#define MPECHO_PROCFS_H

#include <sys/types.h>

/* The most processes procfs_tree_usage looks at in one tree. */
#define PROCFS_MAX_PROCS 65536

struct procfs_usage {
	long long pss_kib;       /* summed over the tree (with_pss only) */
	long long pte_kib;       /* page tables, summed likewise */
	int nprocs;              /* processes in the tree */
	long long cpu_ticks;     /* user + system, the reaped children's included */
};

/* pid and its descendants, breadth first, through every thread's children list: stores up to
 * max pids in out (pid first) and returns their number. */
int procfs_tree(const char *root, pid_t pid, pid_t *out, int max);
/* The proportional set size in KiB (smaps_rollup), or -1 when the process is gone. */
long procfs_pss(const char *root, pid_t pid);
/* The page tables' size in KiB (VmPTE in status): kernel memory per process that PSS leaves
 * out.  0 when the process is gone. */
long procfs_pte(const char *root, pid_t pid);
/* CPU ticks used by pid and by the children it has reaped (which include theirs). */
long long procfs_cpu(const char *root, pid_t pid);
/* The parent's pid, or 0. */
pid_t procfs_ppid(const char *root, pid_t pid);
/* Sums the tree under pid: its CPU ticks, and with with_pss its PSS and page tables.
 * Children the tree reaped are in their parent's cutime, so the CPU sum covers processes that
 * came and went too.  Not reentrant (one static table of pids). */
struct procfs_usage procfs_tree_usage(const char *root, pid_t pid, int with_pss);
/* CPU ticks every CPU together has spent idle (idle and iowait in stat), 0 if unreadable. */
long long procfs_idle_ticks(const char *root);
/* The inodes of the TCP sockets listening on port (net/tcp and net/tcp6), up to max; returns
 * their number. */
int procfs_listener_inodes(const char *root, int port, unsigned long *ino, int max);
/* The server on port: of the processes that hold a socket listening on it, the one whose
 * parent does not (forking servers' children often inherit the listener).  0 when none. */
pid_t procfs_find_listener(const char *root, int port);

#endif
