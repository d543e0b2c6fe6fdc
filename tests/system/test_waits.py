"""How mpechod's processes wait (issue 22): a signal that comes at the worst moment still ends
the wait, and a wait that cannot make progress sleeps instead of spinning.

- A pool process tests its flags, then waits: a signal between the two used to be handled just
  before a wait that nothing ended.  gdb stops the process at the entry of its wait (after the
  flags were tested), the signal is sent while it is stopped there, and the process resumes.
- The prefork master spun at full CPU while fork failed (RLIMIT_NPROC); fork mode pauses
  100 ms.  The master's CPU time is read from /proc, against a generous share of the time that
  passed, not a wall-clock figure.
- Put-aside connections filling -c: the master must not poll with a zero timeout while it
  cannot fork them."""
import os
import resource
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import (SANITIZED, SLOW, Process, Server, alive, connect, cpu_seconds,
                      proc_children, proc_state, recv_exact, wait_until)

GDB = shutil.which("gdb")


def pool_pids(srv):
    return [k for k in proc_children(srv.pid) if alive(k)]


@pytest.mark.skipif(GDB is None, reason="gdb is not installed")
@pytest.mark.skipif(SANITIZED, reason="gdb and the sanitizers' interceptors")
def test_pool_process_signalled_between_its_check_and_its_wait_leaves(tmp_path):
    srv = Server(["-p", "0", "-b", "127.0.0.1", "--no-store", "--prefork", "-c", "1",
                  "--min-spare", "1", "--max-spare", "1"])
    gdb = None
    try:
        srv.wait_ready()
        (pid,) = wait_until(lambda: (lambda p: p if len(p) == 1 else None)(pool_pids(srv)), 10,
                            what="the one pool process")
        # Stops at the wait's entry the next time round the loop, sends SIGUSR1 while the
        # process is stopped there, and lets it go.
        gdb = Process([GDB, "-p", str(pid), "-batch", "-nx",
                       "-ex", "handle SIGUSR1 SIGUSR2 SIGPIPE SIGALRM SIGTERM nostop noprint pass",
                       "-ex", "break epoll_wait", "-ex", "break epoll_pwait",
                       "-ex", "echo READY\\n", "-ex", "continue",
                       "-ex", f"shell kill -USR1 {pid}", "-ex", "detach"],
                      read=("stdout", "stderr"))
        gdb.wait_lines(gdb.out, lambda l: "READY" in l, 1, 30, "gdb attached")
        # The attach itself may end the wait it was in (the loop then tests its flags and stops
        # at the next wait); if not, one connection served takes it round the loop.
        try:
            gdb.wait_lines(gdb.out, lambda l: l.startswith("Breakpoint "), 1, 2, "the wait")
        except AssertionError:
            s = connect(srv.port)
            s.sendall(b"x")
            s.shutdown(socket.SHUT_WR)
            assert recv_exact(s, 1) == b"x"
            s.close()
        # No connection comes after the signal: only the signal can end the wait.
        assert gdb.finish(30) == 0, gdb.output()
        wait_until(lambda: not alive(pid), 10, what=f"pool process {pid} to leave after SIGUSR1")
        assert srv.stop() == 0
    finally:
        if gdb is not None:
            gdb.cleanup()
        srv.cleanup()


def few_processes():
    # Enough for the master and the processes it starts first; a fork beyond fails with EAGAIN.
    resource.setrlimit(resource.RLIMIT_NPROC, (3, 3))


@pytest.mark.skipif(os.geteuid() != 0, reason="RLIMIT_NPROC is checked as a user: needs root to "
                    "switch to one")
@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_master_pauses_while_fork_fails(mode, tmp_path):
    """Under RLIMIT_NPROC the forks fail; the master must wait between attempts, not spin."""
    uid = 65534
    os.chmod(tmp_path, 0o777)

    def as_nobody():
        os.setgid(uid)
        os.setuid(uid)
        few_processes()

    srv = Server(["-p", "0", "-b", "127.0.0.1", "--no-store"] +
                 (["--prefork", "--min-spare", "8", "--max-spare", "16"] if mode == "prefork"
                  else []), preexec_fn=as_nobody)
    clients = []
    try:
        srv.wait_ready()
        # Two connections take the two processes the limit allows; the third waits for a
        # fork (a session, or a pool process: none is idle) that fails, and the master keeps
        # trying.
        for _ in range(3):
            c = socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW)
            c.sendall(b"x")
            clients.append(c)
        srv.wait_line("fork failed", timeout=10)
        cpu0, t0 = cpu_seconds(srv.pid), time.monotonic()
        time.sleep(2)
        used, passed = cpu_seconds(srv.pid) - cpu0, time.monotonic() - t0
        # Pausing 100 ms between attempts costs next to nothing; spinning costs it all.
        assert used < 0.25 * passed, f"the master used {used:.2f} s of CPU in {passed:.2f} s"
    finally:
        for c in clients:
            c.close()
        srv.cleanup()


STRACE = shutil.which("strace")


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
@pytest.mark.fork_only("connections are put aside by the fork mode's master")
def test_put_aside_connections_filling_the_limit_do_not_spin(tmp_path):
    """Connections put aside fill -c while more wait in the listen queue: the master can accept
    no more, so it forks those put aside at once instead of polling with a zero timeout until
    they are MASTER_DEFER_AGE_MS old.  Counted in ppoll calls (strace), not in time."""
    limit, extra = 4, 4
    srv = Server(["-p", "0", "-b", "127.0.0.1", "--no-store", "-c", str(limit)])
    trace = str(tmp_path / "ppoll.trace")
    st, clients = None, []
    try:
        srv.wait_ready()
        srv.signal(signal.SIGSTOP)
        wait_until(lambda: proc_state(srv.pid) == "T", 5, what="the master to stop")
        for _ in range(limit + extra):
            c = connect(srv.port)
            c.sendall(b"x")
            c.shutdown(socket.SHUT_WR)
            clients.append(c)
        st = Process([STRACE, "-e", "trace=ppoll", "-o", trace, "-p", str(srv.pid)])
        st.wait_lines(st.err, lambda l: "attached" in l, 1, 10, "strace attached")
        srv.signal(signal.SIGCONT)
        for c in clients:
            c.settimeout(10 * SLOW)
            assert recv_exact(c, 1) == b"x"
            assert c.recv(1) == b""
        st.proc.send_signal(signal.SIGINT)
        st.finish(10)
        with open(trace) as f:
            calls = [l for l in f if l.startswith("ppoll(")]
        # Each wakeup is a few calls (the wait, one to deliver pending signals); a spin is
        # one every few microseconds for MASTER_DEFER_AGE_MS.
        assert len(calls) < 60, f"{len(calls)} ppoll calls for {limit + extra} connections:\n" + \
            "".join(calls[:20])
        assert srv.stop() == 0
    finally:
        for c in clients:
            c.close()
        if st is not None:
            st.cleanup()
        srv.cleanup()
