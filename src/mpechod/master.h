/*
 * master.h - the master's state and the functions its files share.  The master is one
 * process in five files, each calling only files below it: master.c (the loop: wait, reap,
 * shutdown, stats), the two process models behind struct master_mode, mode_fork.c (accept and
 * fork a session per connection) and mode_pool.c (--prefork's pool), master_store.c (the store
 * and datagram processes, and the records owed to the store), master_setup.c (sockets,
 * privileges, systemd, the gate's rules); beside them master_figures.c (the live figures: the
 * named shared memory, the stats line, the metrics process).
 */
#ifndef MPECHO_MASTER_H
#define MPECHO_MASTER_H

#include "admit.h"
#include "conf.h"
#include "datagram.h"
#include "figures.h"
#include "inetd.h"
#include "io.h"
#include "log.h"
#include "log_sink.h"
#include "net.h"
#include "opts.h"
#include "pool.h"
#include "proc.h"
#include "version.h"
#include "record.h"
#include "sd.h"
#include "session.h"
#include "sig.h"
#include "spare.h"
#include "store.h"
#include "store_start.h"
#include "user.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define MASTER_MAX_LISTEN 32
#define MASTER_ACCEPT_BURST 32
/* Half-closed connections with data put aside while the listen queue is worked through. */
#define MASTER_DEFER_MAX 256
#define MASTER_DEFER_BATCH 16
#define MASTER_DEFER_AGE_MS 50
#define MASTER_PIPE_SIZE (1024 * 1024)
#define MASTER_KILL_WAIT_MS ((int64_t)2 * SESSION_STOP_WAIT_MS)
/* While shutting down, how often the master looks whether the pool has closed its listeners. */
#define MASTER_PORTS_POLL_MS 20
#define MASTER_STORE_WAIT_MS 60000
#define MASTER_STATUS_MS 5000
/* --store-full block: how long the end of a shutdown waits for a full disk. */
#define MASTER_STORE_GIVEUP_MS 5000

/* A child of the master: its role says what it is and what its end means (the master never
 * tells its children apart by comparing pids with special cases). */
struct child {
	pid_t pid;      /* 0: not running */
	enum proc_role role;
	int slot;       /* scoreboard index */
	uint64_t conn;
	struct admit_claim claim; /* the peer's address, and whether the master counted it for
	                           * --max-per-source at accept (fork mode; the master's own memory) */
	uint16_t port;  /* the peer's, in host order: with claim.key, its open record if the master
	                 * owes it */
	uint32_t spawn_gen; /* pid 0: handed to this spawner (mode_fork.c), not yet named */
};

/* A record the master owes the store for a session that could not write it: a close record,
 * or an open record (the peer's address as text). */
struct owed {
	struct rec_hdr h;
	unsigned char payload[8 + REC_REASON_MAX > NET_ADDRLEN ? 8 + REC_REASON_MAX : NET_ADDRLEN];
};

/* The master's state lives in a shared anonymous mapping, not in its private memory.  A page
 * the master writes after a fork is copied for the master, and every older session keeps the
 * original as its own: with the counters and the child table in private memory,
 * each held connection would pay for several pages it never touches.  In a MAP_SHARED mapping
 * there is no copy; sessions only read it (right after fork) and never write it. */
/* The most descriptors a mode adds to the master's wait (mode_fork.c's spawners). */
#define MASTER_MODE_FDS 4

struct master {
	struct settings set;
	int lfd[MASTER_MAX_LISTEN];
	int nlfd;
	int ufd[MASTER_MAX_LISTEN];  /* --udp: bound UDP sockets, served by the datagram process */
	int nufd;
	uint16_t port;               /* the port served */
	struct child dgram;          /* the datagram process (role PROC_DGRAM) */
	int64_t dgram_started_ms;
	struct datagram_stats dgstats; /* written by the datagram process */
	int pipe_rd, pipe_wr;        /* the store pipe; -1 without a store */
	int lock_fd;                 /* holds the master's lock on the store; -1 without one */
	struct child store;          /* the store process (role PROC_STORE) */
	int store_lost;              /* records never reached the file: exit EX_IOERR (sticky) */
	int64_t store_started_ms;
	struct child *kids;          /* active sessions, unordered */
	int nkids;
	struct session_slot *board;  /* shared with the sessions */
	int *free_slots;
	int nfree;
	struct owed *owed;           /* close records not yet in the pipe */
	int nowed, capowed;
	uint64_t next_conn, accepted, reaped_exit, reaped_signal, bytes_done;
	struct admit *admit;         /* --max-per-source and --max-rate */
	struct log_ratelimit log_accept, log_fork;
	int64_t accept_resume_ms;    /* accepting paused until then (fork or fd failure) */
	struct deferred {            /* accepted, admitted, not yet forked (a FIFO ring) */
		int fd;
		int64_t since_ms;
		struct sockaddr_storage ss;
		struct admit_claim claim;
	} defer[MASTER_DEFER_MAX];
	int defer_head, ndefer;
	int stopping;                /* 0 serving, 1 grace, 2 sessions told to stop, 3 killed */
	int ports_free;              /* stopping, and no process of ours holds a listener */
	int sd_sockets;              /* the listeners came from systemd (LISTEN_FDS), which keeps
	                              * its own copies */
	struct shared shared;        /* updated by pool processes and sessions too */
	struct gate gate;            /* the questions before a connection is served */
	struct pool_slot *pslots;    /* one per pool process, indexed like the scoreboard */
	struct spare_map pool_idle, pool_starting; /* a bit per slot (spare.h) */
	int wake_rd, wake_wr;        /* pool processes wake the master when none is idle */
	int spawn_rate, burst_rate;  /* spare.c's doubling */
	int64_t next_tick_ms;        /* the pool's next maintenance */
	int notify_fd;               /* NOTIFY_SOCKET (systemd); -1 without */
	char notify_addr[128];
	int64_t next_status_ms;      /* STATUS= at most every MASTER_STATUS_MS */
	int64_t phase_deadline_ms;
	sigset_t waitmask;
	struct pollfd pfd[MASTER_MAX_LISTEN + 3 + MASTER_MODE_FDS]; /* what the last ppoll
	                                                                * watched */
	int npfd;
	int mode_pfd, mode_pfd_end;  /* pfd[mode_pfd .. mode_pfd_end): the mode's (mode->fds) */
	int quiesce;                 /* an upgrade waits for a quiet moment: nothing is handed
	                              * over that the exec could leave unanswered */
	struct figures figures;      /* counters every process adds to (figures.h) */
	struct child metrics;        /* the metrics process (role PROC_METRICS), --metrics */
	int64_t metrics_started_ms;
	pid_t spawner;               /* fork mode's spawner in use (mode_fork.c), for the process
	                              * list; 0: none */
	int64_t spawner_started_ms;
	int metrics_fd[MASTER_MAX_LISTEN]; /* its listeners */
	int nmetrics_fd;
	struct cidr_list metrics_allow; /* who may scrape */
	int agent_fd;                /* --agent-port's listener; -1 without */
	int draining;                /* --drain: TERM came, serving until drain_deadline_ms */
	int64_t drain_deadline_ms;
};

extern struct master *master;

/* A process model, Apache's MPM: how accepted connections reach sessions.  master.c's loop
 * knows no other; main chooses one at startup: master_mode_fork (mode_fork.c, a fork per
 * connection) or master_mode_pool (mode_pool.c, --prefork).  Times are io_now_ms(). */
struct master_mode {
	void (*alloc)(size_t n);            /* its shared state, for n sessions at most */
	void (*start)(void);                /* serving from now on (the pool's first spares) */
	int (*watch)(int64_t now);          /* the listeners are watched in the next wait */
	int64_t (*timeout)(int64_t now);    /* ms until it needs the loop again; -1: not */
	int (*readable)(int lfd);           /* a watched listener is readable; 1: no more can be
	                                     * accepted now */
	void (*served)(int queue_done);     /* after the listeners of one wakeup; queue_done: every
	                                     * readable one returned 1 */
	void (*woken)(void);                /* the wake pipe (wake_rd) is readable */
	void (*tick)(void);                 /* once round the loop */
	void (*died)(const struct child *c, int status); /* one of the child table ended */
	void (*stop)(void);                 /* the shutdown begins */
	int (*busy)(void);                  /* sessions in progress */
	int (*pending)(void);               /* connections accepted, not yet in a session */
	uint64_t (*bytes)(void);            /* bytes echoed by the sessions in progress */
	void (*stats)(char *line, size_t len); /* appends its part of the stats line */
	/* Calls each(claim) for every --max-per-source claim its children and the master hold;
	 * returns the sum of what each returned. */
	int (*claims)(int (*each)(const struct admit_claim *));
	void (*reload)(void);               /* new settings apply (SIGHUP with -f) */
	/* Fork mode's spawners (NULL in the pool): their ends to watch (at most MASTER_MODE_FDS);
	 * one readable (1: answers were read); a reaped pid that is not in the child table (1:
	 * the mode's: a spawner, or a session not named yet, held); the next held session that
	 * is named now (1 with *pid and *status); how many sessions are not named yet. */
	int (*fds)(struct pollfd *pfd);
	int (*ready)(int fd);
	int (*reaped)(pid_t pid, int status);
	int (*named)(pid_t *pid, int *status);
	int (*awaited)(void);
	/* The pool's processes that still hold a listener (NULL in fork mode: a session never
	 * holds one). */
	int (*listening)(void);
};

extern const struct master_mode master_mode_fork, master_mode_pool;
/* Tells a pool process to retire (leave once idle), in its slot and by SIGUSR1. */
void master_pool_retire(const struct child *c);

/* The files below master.c (the loop), each calling only the ones listed after it:
 * mode_fork.c and mode_pool.c, master_store.c, master_setup.c. */

/* master_setup.c: sockets, privileges, systemd, the gate */
void master_rules(const char *opt, const char *const *list, int n, struct cidr_list *l);
void master_std_fds(void);
void *master_shared(size_t len);
void master_gate(void);
void master_sockets(void);
void master_announce(void);
const struct user_ids *master_resolve_user(void);
void master_drop_user(void);
void master_notify_open(void);
void master_notify(const char *fmt, ...) PRINTFLIKE(1, 2);

/* master_store.c: the store and datagram processes, the records owed to the store */
int master_open_store(const struct user_ids *user);
void master_start_store(int filefd);
void master_restart_store(void);
void master_store_died(int status);
void master_store_giveup(int64_t at, pid_t *told);
size_t master_pipe_unread(void);
void master_start_dgram(void);
void master_restart_dgram(void);
void master_helper_died(const char *what, struct child *c, int status);
void master_pay_owed(void);
void master_peer_str(const struct child *c, char *buf, size_t len);
/* master_figures.c: the named shared memory, the stats line, the metrics process */
void master_arena(void);
void master_figures_line(char *line, size_t len);
struct sb_src;
/* The master's own view of its shared state (in the metrics process too: the same pages). */
void master_scoreboard(struct sb_src *s);
void master_metrics_listen(void);
void master_start_metrics(void);
void master_restart_metrics(void);
void master_stop_metrics(void);

void master_owe_close(uint64_t conn, pid_t pid, const struct session_slot *slot, const char *peer,
    const char *reason);

/* master_reload.c: -f's file read again on SIGHUP (applied, or kept out whole) */
void master_conf_keep(int argc, char **argv, char *text);
/* Applies the file, then calls the mode's part (apply) before it says so: 0, or -1 with
 * nothing changed. */
int master_reload(void (*apply)(void));

/* master_agent.c: --agent-port, HAProxy's agent check */
void master_agent_open(void);
void master_agent_serve(int busy);
void master_agent_close(void);

/* master_upgrade.c: a binary upgrade in place on SIGUSR2 */
void master_upgrade_init(int argc, char **argv);
void master_upgrade_request(void);
void master_upgrade_tick(int pending);
int64_t master_upgrade_timeout(int64_t now);
/* 1 when pid was the check or a child of the binary before (then it is forgotten). */
int master_upgrade_reaped(pid_t pid, int status);
int master_upgrade_old(void);
/* Of those, the ones that may still hold a listening socket (master_ports_step). */
int master_upgrade_old_listening(void);
void master_upgrade_signal_old(int sig);
int master_upgrade_check(char *err, size_t len);
int master_upgrade_adopt(void);
int master_upgrade_store(void);
void master_upgrade_started(void);

#endif
