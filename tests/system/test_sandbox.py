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
import signal
import socket
import subprocess

import pytest

from conftest import (MODE_ARGS, PREFORK, SANITIZED, Server, binary, connect, echo,
                      proc_children, read_store, recv_exact, store_by_conn, store_so_far,
                      wait_until)

pytestmark = pytest.mark.skipif(SANITIZED, reason="sanitizer builds run with --sandbox off: "
                                "their runtimes need /proc and ptrace-like thread stops")

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


@pytest.mark.parametrize("call", ["openat", "execve", "socket", "ptrace"])
def test_a_forbidden_call_ends_only_its_session(server, call):
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
    itself with it and closes it."""
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
        assert fds == [], k
    for s in socks:
        s.close()
    assert srv.stop() == 0
