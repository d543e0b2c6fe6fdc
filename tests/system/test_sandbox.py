"""The sandbox (sandbox.c): every child of the master runs under its role's seccomp filter with
no new privileges, the master does not, and a forbidden call ends only the process that made it,
with SIGSYS, which the master logs and records.

The forbidden calls are made through the test build's hook (bin/mpechod-hooks, built with
-DMPECHO_TEST_HOOKS): a process that reads "MPECHO-TEST-SANDBOX <its role> <call>" makes that
call.  The release build has no such hook (test_release_build_has_no_hook).  Sanitizer builds
default to --sandbox off (the ASan and LeakSanitizer runtimes read /proc and stop threads at
exit), so these tests are skipped there.
"""
import ctypes
import errno
import os
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import (MODE_ARGS, PREFORK, SANITIZED, SLOW, Server, binary, connect, echo,
                      proc_children, proc_comm, proc_state, read_store, recv_exact, spawner_of,
                      store_by_conn, store_so_far, wait_until)

pytestmark = pytest.mark.skipif(SANITIZED, reason="sanitizer builds run with --sandbox off: "
                                "their runtimes need /proc and ptrace-like thread stops")

GDB = shutil.which("gdb")
SIGSYS_NOTE = f"signal {int(signal.SIGSYS)} (SIGSYS: sandbox)"
MAGIC = b"MPECHO-TEST-SANDBOX "


@pytest.fixture
def server(tmp_path):
    started = []

    def start(*args, program="mpechod-hooks", store=True, preexec_fn=None):
        argv = ["-p", "0", "-b", "127.0.0.1"] + MODE_ARGS
        path = str(tmp_path / f"store{len(started)}.jsonl") if store else None
        argv += ["-s", path] if path else ["--no-store"]
        srv = Server(argv + list(args), program=program, preexec_fn=preexec_fn)
        srv.store_path = path
        started.append(srv)
        srv.wait_ready()
        return srv

    yield start
    for srv in started:
        srv.cleanup()


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def confined(pid):
    """pid's status once it runs under a filter (or has gone: None is not an answer)."""
    try:
        st = status(pid)
    except FileNotFoundError:
        return {"Seccomp": "2", "NoNewPrivs": "1", "gone": True}
    return st if st["Seccomp"] != "0" else None


def held(port, n=1):
    """n open connections, each past its first echo (so its session or pool process is busy)."""
    socks = []
    for i in range(n):
        s = connect(port)
        s.sendall(b"hold")
        assert recv_exact(s, 4) == b"hold"
        socks.append(s)
    return socks


def session_role():
    return b"pool" if PREFORK else b"session"


@pytest.mark.parametrize("program", ["mpechod", "mpechod-hooks"])
def test_every_role_but_the_master_is_confined(server, program):
    srv = server("--udp", "--metrics", "127.0.0.1:0", program=program)
    socks = held(srv.port, 2)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.settimeout(5)
    udp.sendto(b"u", ("127.0.0.1", srv.port))
    assert udp.recvfrom(16)[0] == b"u"
    kids = wait_until(lambda: (lambda k: k if len(k) >= 5 else None)(proc_children(srv.pid)), 10,
                      what="the store, the datagram and metrics processes and two sessions")
    assert status(srv.pid)["Seccomp"] == "0"
    for k in kids:
        # A pool process just forked (--prefork keeps spares) enters its sandbox after its
        # setup: it is waited for, bounded.
        st = wait_until(lambda: confined(k), 10, what=f"child {k} confined")
        assert (st["Seccomp"], st["NoNewPrivs"]) == ("2", "1"), (k, st)
    for s in socks:
        s.close()
    udp.close()
    assert srv.stop() == 0


def test_sandbox_off_leaves_children_unconfined(server):
    srv = server("--sandbox", "off")
    socks = held(srv.port)
    kids = wait_until(lambda: (lambda k: k if len(k) >= 2 else None)(proc_children(srv.pid)), 10,
                      what="the store and a session")
    for k in kids:
        assert status(k)["Seccomp"] == "0"
    socks[0].close()
    assert srv.stop() == 0


@pytest.mark.parametrize("call", ["openat", "execve", "socket", "ptrace", "fork", "clone"])
def test_a_forbidden_call_ends_only_its_session(server, call):
    """fork is the C library's (clone with its own flags); clone is the spawner's own call,
    flags and all, with a guessed secret: both kill a session, which fork mode's spawner
    would otherwise have let fork."""
    srv = server()
    other = held(srv.port)[0]
    victim = connect(srv.port)
    victim.sendall(MAGIC + session_role() + b" " + call.encode() + b"\n")
    # The session dies before it records or echoes a byte: the peer sees the end.
    victim.settimeout(10)
    assert victim.recv(100) in (b"",)
    line = srv.wait_line(SIGSYS_NOTE)[0]
    assert "conn 2 killed by signal" in line, line
    other.sendall(b"still")
    assert recv_exact(other, 5) == b"still"
    assert echo(srv.port, b"and new ones") == b"and new ones"
    other.close()
    victim.close()
    assert srv.stop() == 0
    conns = store_by_conn(read_store(srv.store_path))
    assert [r["reason"] for r in conns[2]["close"]] == [SIGSYS_NOTE]
    assert [r["reason"] for r in conns[1]["close"]] == ["eof"]


def test_a_forbidden_call_ends_the_store_which_is_restarted(server):
    srv = server()
    first = wait_until(srv.store_pid, 10, what="the store")
    other = held(srv.port)[0]
    assert echo(srv.port, MAGIC + b"store execve\n") == MAGIC + b"store execve\n"
    srv.wait_line(f"store {first} killed by {SIGSYS_NOTE}")
    srv.wait_line("restarted the store as", timeout=15)
    other.sendall(b"still")
    assert recv_exact(other, 5) == b"still"
    other.close()
    assert srv.stop() == 0


def test_a_forbidden_call_ends_the_datagram_process_which_is_restarted(server):
    srv = server("--udp")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.settimeout(5)
    udp.sendto(MAGIC + b"datagram execve", ("127.0.0.1", srv.port))
    srv.wait_line(f"killed by {SIGSYS_NOTE}")
    assert "datagram process" in srv.wait_line(SIGSYS_NOTE)[0]
    srv.wait_line("restarted the datagram process as", timeout=15)
    assert echo(srv.port, b"tcp goes on") == b"tcp goes on"

    def answered():
        udp.sendto(b"again", ("127.0.0.1", srv.port))
        try:
            return udp.recvfrom(16)[0] == b"again"
        except socket.timeout:
            return False
    wait_until(answered, 15, interval=0.2, what="the new datagram process to answer")
    udp.close()
    assert srv.stop() == 0


def test_release_build_has_no_hook(server):
    srv = server(program="mpechod")
    msg = MAGIC + session_role() + b" openat\n"
    assert echo(srv.port, msg) == msg
    assert srv.stop() == 0
    assert not [l for l in srv.lines if "SIGSYS" in l], srv.lines


def test_store_rotates_inside_its_landlock_domain(server, tmp_path):
    srv = server()
    assert echo(srv.port, b"before") == b"before"
    wait_until(lambda: any(r.get("ev") == "close" for r in store_so_far(srv.store_path)), 10,
               what="the first connection's close record")
    os.rename(srv.store_path, str(tmp_path / "rotated.jsonl"))
    srv.signal(signal.SIGHUP)
    srv.wait_line("reopened")
    assert echo(srv.port, b"after") == b"after"
    assert srv.stop() == 0
    assert any(r.get("ev") == "data" for r in read_store(srv.store_path))
    assert not [l for l in srv.lines if "cannot reopen" in l or "SIGSYS" in l], srv.lines


# x86_64 numbers of the calls a filter over mpechod may refuse (systemd 252's @system-service
# lists none of them).
NR_SECCOMP = 317
NR_LANDLOCK = (444, 445, 446)


def refusing(*nrs):
    """A preexec_fn that puts mpechod under a filter of its own, as systemd's SystemCallFilter=
    does: the calls nrs fail with EPERM, every other one is allowed."""
    class Insn(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Insn))]

    insns = [Insn(0x20, 0, 0, 0)]  # A = nr
    for nr in nrs:
        insns += [Insn(0x15, 0, 1, nr), Insn(0x06, 0, 0, 0x00050000 | errno.EPERM)]
    insns.append(Insn(0x06, 0, 0, 0x7FFF0000))
    arr = (Insn * len(insns))(*insns)
    prog = Prog(len(insns), arr)
    libc = ctypes.CDLL(None, use_errno=True)

    def pre():
        assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
        assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0  # PR_SET_SECCOMP, FILTER
    pre.keep = (arr, prog)
    return pre


def test_a_filter_that_refuses_seccomp_stops_the_start(tmp_path):
    """Under a filter that refuses seccomp(2) (systemd 252's @system-service without the
    units' extra line) no child could be confined: the master says so at its start and exits
    71, rather than starting and losing every connection."""
    argv = [binary("mpechod"), "-p", "0", "-b", "127.0.0.1", "-s",
            str(tmp_path / "s.jsonl")] + MODE_ARGS
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30,
                       preexec_fn=refusing(NR_SECCOMP))
    assert r.returncode == 71, (r.returncode, r.stderr)
    assert "cannot confine its children: seccomp(2) is refused here" in r.stderr, r.stderr
    assert "--sandbox off" in r.stderr, r.stderr
    # The same filter with --sandbox off: it serves (unconfined, as asked).
    off = Server(argv[1:] + ["--sandbox", "off"], preexec_fn=refusing(NR_SECCOMP))
    try:
        off.wait_ready()
        assert echo(off.port, b"off") == b"off"
        assert off.stop() == 0
    finally:
        off.cleanup()


def test_a_filter_that_refuses_landlock_is_said_once(server):
    """Landlock refused with EPERM (a filter over mpechod) is like a kernel without it: said
    once by the master, and every child is still under its seccomp filter."""
    srv = server(preexec_fn=refusing(*NR_LANDLOCK))
    socks = held(srv.port, 2)
    kids = wait_until(lambda: (lambda k: k if len(k) >= 3 else None)(proc_children(srv.pid)), 10,
                      what="the store and two sessions")
    for k in kids:
        st = wait_until(lambda: confined(k), 10, what=f"child {k} confined")
        assert (st["Seccomp"], st["NoNewPrivs"]) == ("2", "1"), (k, st)
    for s in socks:
        s.close()
    assert echo(srv.port, b"more") == b"more"
    assert srv.stop() == 0
    said = [l for l in srv.lines if "Landlock is refused here" in l]
    assert len(said) == 1 and "confined by seccomp only" in said[0], srv.lines
    assert not [l for l in srv.lines if "cannot enter" in l], srv.lines


def ruleset_fds(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[landlock-ruleset]":
                out.append(int(fd))
        except FileNotFoundError:
            pass
    return out


def test_children_do_not_keep_the_masters_landlock_ruleset(server):
    """The master makes the sessions' Landlock ruleset once and keeps it; a child restricts
    itself with it and closes it.  Fork mode's spawner keeps it too: each session it forks
    enters a domain of its own with it, and closes it."""
    srv = server()
    if not ruleset_fds(srv.pid):
        pytest.skip("no Landlock here")
    socks = held(srv.port, 2)
    kids = wait_until(lambda: (lambda k: k if len(k) >= 3 else None)(proc_children(srv.pid)), 10,
                      what="the store and two sessions")
    for k in kids:
        wait_until(lambda: confined(k), 10, what=f"child {k} confined")
        try:
            fds = ruleset_fds(k)
        except FileNotFoundError:  # a pool process retired meanwhile
            continue
        assert len(fds) == (1 if proc_comm(k) == "mpechod-spawn" else 0), (k, fds)
    for s in socks:
        s.close()
    assert srv.stop() == 0


def ppid(pid):
    return int(status(pid)["PPid"])


@pytest.mark.fork_only("the spawner is fork mode's")
def test_sessions_are_forked_by_the_confined_spawner(server):
    """The spawner (spawner.h) is confined like a session and forks every session as a child of
    the master: the session's parent is the master, it has one filter (the spawner's, inherited;
    a session that installed its own would have two) and no new privileges."""
    srv = server()
    sp = wait_until(lambda: spawner_of(srv.pid), 10, what="the spawner")
    st = wait_until(lambda: confined(sp), 10, what="the spawner confined")
    assert (st["Seccomp"], st["NoNewPrivs"], st["Seccomp_filters"]) == ("2", "1", "1"), st
    socks = held(srv.port, 2)
    for k in srv.sessions():
        st = status(k)
        assert ppid(k) == srv.pid
        assert (st["Seccomp"], st["NoNewPrivs"], st["Seccomp_filters"]) == ("2", "1", "1"), st
        assert proc_comm(k) == proc_comm(srv.pid)
    for s in socks:
        s.close()
    assert srv.stop() == 0


@pytest.mark.fork_only("the spawner is fork mode's")
def test_a_spawner_that_dies_is_started_again_and_no_connection_is_refused(server):
    """Killed, the spawner is logged and started again; meanwhile the master forks sessions
    itself (they confine themselves, as without a spawner), and the sessions it had forked go
    on."""
    srv = server()
    first = wait_until(lambda: spawner_of(srv.pid), 10, what="the spawner")
    other = held(srv.port)[0]
    os.kill(first, signal.SIGKILL)
    srv.wait_line(f"the spawner {first} was killed by signal 9")
    assert echo(srv.port, b"meanwhile") == b"meanwhile"
    assert not [l for l in srv.lines if "accept failed" in l], srv.lines
    second = wait_until(lambda: (lambda p: p if p not in (None, first) else None)(
        spawner_of(srv.pid)), 15, what="a new spawner")
    wait_until(lambda: confined(second), 10, what="the new spawner confined")
    later = held(srv.port)[0]
    assert [ppid(k) for k in srv.sessions()] == [srv.pid, srv.pid]
    other.sendall(b"still")
    assert recv_exact(other, 5) == b"still"
    for s in (other, later):
        s.close()
    assert srv.stop() == 0


def gdb_stop_after_clone(pid):
    """Stops pid (the spawner) at the return of its next clone(2), in the parent, and leaves it
    stopped (SIGSTOP, then gdb detaches): the session is running, its name not yet sent."""
    cmds = ["set pagination off", "catch syscall clone", "continue", "continue",
            f"shell kill -STOP {pid}", "detach"]
    gdb = subprocess.Popen([GDB, "-nx", "-batch", "-p", str(pid)] +
                           [x for c in cmds for x in ("-ex", c)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Attached (a tracer), and running again: the catchpoint was set before the continue.
    wait_until(lambda: status(pid)["TracerPid"] != "0" and proc_state(pid) in ("S", "R"), 30,
               what="gdb attached and waiting for the clone")
    return gdb


@pytest.mark.skipif(GDB is None, reason="gdb is not installed")
@pytest.mark.fork_only("the spawner is fork mode's")
def test_a_session_that_ends_before_the_spawner_names_it(server):
    """The hard moment of the handover: the spawner is stopped right after its clone returned,
    before it answers with the pid.  The session serves its client and ends, and the master
    reaps a pid it does not know yet: it holds it until the spawner's answer names it, then
    ends the session as any other (its line, its close record, its slot)."""
    srv = server()
    sp = wait_until(lambda: spawner_of(srv.pid), 10, what="the spawner")
    gdb = gdb_stop_after_clone(sp)
    try:
        c = connect(srv.port)
        wait_until(lambda: proc_state(sp) == "T" and gdb.poll() is not None, 30,
                   what="the spawner stopped after its clone")
        c.sendall(b"unnamed")
        assert recv_exact(c, 7) == b"unnamed"
        c.close()
        # The session has ended and been reaped (no child of the master but the store and the
        # stopped spawner), while its name is still unsent.
        wait_until(lambda: len(proc_children(srv.pid)) == 2, 10, what="the session reaped")
        assert not [l for l in srv.lines if "conn 1 exited" in l]
    finally:
        os.kill(sp, signal.SIGCONT)
    line = srv.wait_line("conn 1 exited 0 (eof)")[0]
    assert echo(srv.port, b"next") == b"next"
    assert srv.stop() == 0
    conns = store_by_conn(read_store(srv.store_path))
    assert bytes(conns[1]["data"]) == b"unnamed" and conns[1]["close"][-1]["reason"] == "eof"
    assert not [l for l in srv.lines if "no spawner named" in l or "not answered" in l], line


@pytest.mark.skipif(GDB is None, reason="gdb is not installed")
@pytest.mark.fork_only("the spawner is fork mode's")
def test_a_spawner_killed_between_its_clone_and_its_answer(server):
    """The spawner dies after a clone and before its answer: the master names the session from
    the pid the kernel wrote in its slot (CLONE_PARENT_SETTID), so it serves its client to the
    end and is reaped and logged like any other; a new spawner takes the next connections, and
    the server stops cleanly."""
    srv = server()
    sp = wait_until(lambda: spawner_of(srv.pid), 10, what="the spawner")
    gdb = gdb_stop_after_clone(sp)
    c = connect(srv.port)
    wait_until(lambda: proc_state(sp) == "T" and gdb.poll() is not None, 30,
               what="the spawner stopped after its clone")
    os.kill(sp, signal.SIGKILL)
    # The kernel wrote the session's pid into its slot before the clone returned.
    srv.wait_line("the spawner had not answered for 1 connections: 1 sessions named from "
                  "their slots, 0 connections never served")
    c.sendall(b"orphan")
    assert recv_exact(c, 6) == b"orphan"
    wait_until(lambda: (lambda p: p not in (None, sp))(spawner_of(srv.pid)), 15,
               what="a new spawner")
    assert echo(srv.port, b"next") == b"next"
    c.close()
    srv.wait_line("conn 1 exited 0 (eof) after 6 bytes")
    assert srv.stop() == 0
    conns = store_by_conn(read_store(srv.store_path))
    assert bytes(conns[1]["data"]) == b"orphan"
    assert [r["reason"] for r in conns[1]["close"]] == ["eof"]


@pytest.mark.fork_only("the spawner is fork mode's")
def test_a_reload_replaces_the_spawner(server, tmp_path):
    """SIGHUP with -f: a new spawner takes the connections from then on, the one before serves
    what it was handed and leaves, and the sessions in progress go on."""
    conf = tmp_path / "mpechod.conf"
    conf.write_text("allow 127.0.0.0/8\n")
    srv = server("-f", str(conf))
    first = wait_until(lambda: spawner_of(srv.pid), 10, what="the spawner")
    held_ = held(srv.port)[0]
    # Several times: the spawner before leaves (its end closes, its SIGCHLD comes) in the same
    # wakeup as often as not, which must not make the master take its end for a listener.
    for n in range(1, 6):
        srv.signal(signal.SIGHUP)
        srv.wait_line("applied", count=n)
        second = wait_until(lambda: (lambda p: p if p not in (None, first) else None)(
            spawner_of(srv.pid)), 15, what="a new spawner")
        wait_until(lambda: first not in proc_children(srv.pid), 10,
                   what="the spawner before to leave")
        assert confined(second)
        assert echo(srv.port, b"after") == b"after"
        first = second
    held_.sendall(b"still")
    assert recv_exact(held_, 5) == b"still"
    held_.close()
    assert srv.stop() == 0
    assert not [l for l in srv.lines if "spawner" in l or "accept failed" in l], srv.lines


@pytest.mark.fork_only("the spawner is fork mode's")
def test_a_stuck_spawner_is_killed_and_its_connections_closed(server):
    """A spawner that does not answer (stopped here) holds the connections handed to it for a
    bounded time only: after 10 s the master kills it, closes them, says so and starts a new
    one; new connections are served meanwhile by the master's own forks once 64 wait."""
    srv = server()
    sp = wait_until(lambda: spawner_of(srv.pid), 10, what="the spawner")
    os.kill(sp, signal.SIGSTOP)
    try:
        stuck = connect(srv.port)
        stuck.sendall(b"waiting")
        srv.wait_line(f"the spawner {sp} left conn 1 unanswered for 10 s; killing it",
                      timeout=30)
    finally:
        try:
            os.kill(sp, signal.SIGCONT)
        except ProcessLookupError:  # killed and reaped already
            pass
    stuck.settimeout(10 * SLOW)
    try:
        got = stuck.recv(16)
    except ConnectionResetError:  # closed with its bytes unread: a reset
        got = b""
    assert got == b"", srv.output(last=30)
    srv.wait_line("0 sessions named from their slots, 1 connections never served (closed)")
    wait_until(lambda: (lambda p: p not in (None, sp))(spawner_of(srv.pid)), 15,
               what="a new spawner")
    assert echo(srv.port, b"next") == b"next"
    stuck.close()
    assert srv.stop() == 0, srv.output(last=30)
