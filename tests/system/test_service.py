"""Running as a system service: systemd socket activation and notification (with the real
systemd-socket-activate), --inetd (under systemd-socket-activate --inetd, several clients at
once, one store), and --user."""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

import pytest

from conftest import (SLOW, Process, alive, binary, connect, echo, proc_children,
                      proc_descendants, read_store, recv_exact, store_by_conn, store_so_far,
                      wait_until)

SSA = shutil.which("systemd-socket-activate")
needs_ssa = pytest.mark.skipif(SSA is None, reason="systemd-socket-activate (package systemd) "
                               "is not installed")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Notify:
    """A datagram socket standing in for NOTIFY_SOCKET: path or abstract."""

    def __init__(self, tmp_path, abstract):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"mpecho-test-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.addr = "@" + name
        else:
            self.addr = str(tmp_path / "notify")
            self.sock.bind(self.addr)
        self.msgs = []

    def wait(self, prefix, timeout=10):
        """Reads messages until one starts with prefix; returns it."""
        self.sock.settimeout(timeout * SLOW)
        for m in self.msgs:
            if m.startswith(prefix):
                return m
        while True:
            m = self.sock.recv(4096).decode()
            self.msgs.append(m)
            if m.startswith(prefix):
                return m


def activated(tmp_path, args, notify=None, extra=()):
    """mpechod under systemd-socket-activate on a fresh loopback port; it starts at the first
    connection (systemd 252)."""
    port = free_port()
    env = ["-E", f"NOTIFY_SOCKET={notify.addr}"] if notify else []
    p = Process([SSA, "-l", f"127.0.0.1:{port}", *env, *extra, binary("mpechod"), *args])
    wait_until(lambda: "Listening on" in p.output(), 10, what="systemd-socket-activate")
    return p, port


@needs_ssa
@pytest.mark.parametrize("abstract", [True, False])
def test_socket_activation_and_notify(tmp_path, abstract):
    notify = Notify(tmp_path, abstract)
    store = str(tmp_path / "s.jsonl")
    p, port = activated(tmp_path, ["-s", store], notify)
    try:
        assert echo(port, b"activated") == b"activated"
        p.wait_lines(p.err, lambda l: f"listening on 127.0.0.1:{port}" in l, 1, 10,
                     "the readiness line")
        ready = notify.wait("READY=1")
        assert f"MAINPID={p.pid}" in ready  # exec'd in place: the master is that pid
        notify.wait("STATUS=active ", timeout=15)
        os.kill(p.pid, signal.SIGHUP)
        notify.wait("RELOADING=1")
        assert notify.wait("READY=1") is not None
        os.kill(p.pid, signal.SIGTERM)
        notify.wait("STOPPING=1")
        assert p.finish(20) == 0
        # Only the master speaks: every message came from the readiness, status and signals.
        assert all(m.split("=")[0] in ("READY", "STATUS", "RELOADING", "STOPPING")
                   for m in notify.msgs), notify.msgs
    finally:
        p.cleanup()
    (c,) = store_by_conn(read_store(store)).values()
    assert bytes(c["data"]) == b"activated"


@needs_ssa
def test_port_with_passed_sockets_is_a_usage_error(tmp_path):
    p, port = activated(tmp_path, ["-p", "7007", "--no-store"])
    try:
        try:
            with connect(port) as s:
                s.recv(10)
        except OSError:
            pass
        assert p.finish(10) == 64
        assert "-p and -b do not apply to the sockets systemd passed" in p.output()
    finally:
        p.cleanup()


@needs_ssa
def test_inetd_mode_many_processes_one_store(tmp_path):
    store = str(tmp_path / "s.jsonl")
    p, port = activated(tmp_path, ["--inetd", "-s", store], extra=["--inetd", "-a"])
    n = 24
    payloads = [os.urandom(1000 * (i + 1)) for i in range(n)]
    results = [None] * n
    try:
        def client(i):
            results[i] = echo(port, payloads[i])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60 * SLOW)
        assert results == payloads
        # Each connection's process and its store are gone once their records are in.
        wait_until(lambda: len(store_so_far(store)) >= 3 * n, 20, what="every record")
        wait_until(lambda: proc_descendants(p.pid) == [], 20, what="the sessions to end")
    finally:
        p.cleanup()
    recs = read_store(store)  # whole lines only: no write was torn or interleaved
    conns = store_by_conn(recs, by_life=True)
    assert len(conns) == n
    # Each process is a life of its own, and its one connection is conn 1 of it.
    assert {conn for _, conn in conns} == {1}
    assert sorted(bytes(c["data"]) for c in conns.values()) == sorted(payloads)
    for c in conns.values():
        assert c["opens"] == 1 and [r["reason"] for r in c["close"]] == ["eof"]
        assert c["open"]["peer"].startswith("127.0.0.1:")
    # Nothing but the echo went to the clients: results above are exact.


def test_inetd_without_a_socket_is_a_usage_error():
    r = subprocess.run([binary("mpechod"), "--inetd", "--no-store"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10 * SLOW)
    assert r.returncode == 64
    assert b"standard input is not a connected TCP socket" in r.stderr
    r = subprocess.run([binary("mpechod"), "--inetd", "-p", "1"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10 * SLOW)
    assert r.returncode == 64 and b"do not apply" in r.stderr


def uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    return None


@pytest.fixture
def state_dir():
    """A directory the user nobody can reach and write (pytest's tmp_path is root's alone),
    removed afterwards."""
    d = tempfile.mkdtemp(prefix="mpecho-user-", dir="/tmp")
    os.chmod(d, 0o777)  # the user must be able to create the file anew after a rotation
    try:
        yield pathlib.Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")
def test_user_runs_every_process_unprivileged(start_server, state_dir):
    d = state_dir
    srv = start_server("-u", "nobody", store=str(d / "s.jsonl"))
    s = connect(srv.port)
    s.sendall(b"x")
    assert recv_exact(s, 1) == b"x"
    # The store and the session (or, with --prefork, the pool processes).
    kids = wait_until(lambda: (lambda k: k if len(k) >= 2 and srv.active() == 1 else None)(
        [k for k in proc_children(srv.pid) if alive(k)]), 10, what="store and session")
    for pid in [srv.pid] + kids:
        assert uid_of(pid) == [65534] * 4, (pid, uid_of(pid))
    s.close()
    os.rename(d / "s.jsonl", d / "old.jsonl")
    srv.signal(signal.SIGHUP)
    srv.wait_line("reopened")
    assert echo(srv.port, b"new") == b"new"
    assert srv.stop() == 0
    assert os.stat(d / "s.jsonl").st_uid == 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")
def test_inetd_user_runs_the_store_unprivileged(state_dir):
    """--inetd -u: the session and its store process run as the user, and the store file is
    the user's, as with the daemon (issue 22: the store stayed root and its file root's)."""
    store = state_dir / "s.jsonl"
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen()
        client = socket.create_connection(lst.getsockname(), timeout=10 * SLOW)
        conn, _ = lst.accept()
    p = Process([binary("mpechod"), "--inetd", "-u", "nobody", "-s", str(store)], stdin=conn,
                stdout=conn)
    conn.close()
    try:
        client.sendall(b"inetd")
        assert recv_exact(client, 5) == b"inetd"
        kids = wait_until(lambda: [k for k in proc_children(p.pid) if alive(k)], 10,
                          what="the store process")
        for pid in [p.pid] + kids:
            assert uid_of(pid) == [65534] * 4, (pid, uid_of(pid))
        client.shutdown(socket.SHUT_WR)
        assert client.recv(10) == b""
        assert p.finish(20) == 0, p.output()
    finally:
        client.close()
        p.cleanup()
    assert os.stat(store).st_uid == 65534
    (c,) = store_by_conn(read_store(str(store))).values()
    assert bytes(c["data"]) == b"inetd"


def test_unknown_user_is_a_usage_error(tmp_path):
    r = subprocess.run([binary("mpechod"), "-p", "0", "-u", "no-such-user-here", "--no-store"],
                       capture_output=True, timeout=10 * SLOW)
    assert r.returncode == 64
    assert len(r.stderr.decode().strip().splitlines()) == 1


@pytest.mark.parametrize("journal", [True, False])
def test_lines_to_the_journal_do_not_repeat_its_prefix(tmp_path, journal):
    """22.15: when stderr is the journal's stream (JOURNAL_STREAM names its device and inode),
    the journal shows mpechod[PID] itself: lines start with a <N> level instead, and a child's
    with its role and pid.  With JOURNAL_STREAM naming another file (stderr redirected), lines
    keep mpechod[PID]:.  The same under a real systemd: test_systemd.py."""
    ours, theirs = socket.socketpair()
    st = os.fstat(theirs.fileno()) if journal else os.stat(tmp_path)
    store = tmp_path / "s.jsonl"
    p = Process([binary("mpechod"), "-b", "127.0.0.1", "-p", "0", "-s", store], read=(),
                env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stderr=theirs.fileno())
    theirs.close()
    try:
        ours.settimeout(10 * SLOW)
        text = b""
        while b"listening on 127.0.0.1:" not in text:
            chunk = ours.recv(4096)
            assert chunk, f"mpechod ended before it was listening: {text!r}"
            text += chunk
        port = int(text.split(b"listening on 127.0.0.1:")[1].split(b"\n")[0])
        os.rename(store, tmp_path / "old.jsonl")
        assert echo(port, b"x") == b"x"
        p.proc.send_signal(signal.SIGHUP)
        while b"reopened " not in text:
            chunk = ours.recv(4096)
            assert chunk, f"mpechod ended before its store reopened: {text!r}"
            text += chunk
        p.proc.send_signal(signal.SIGTERM)
        while chunk := ours.recv(4096):  # EOF: every process has gone
            text += chunk
        assert p.proc.wait(10 * SLOW) == 0
    finally:
        ours.close()
        p.cleanup()
    lines = text.decode().splitlines()
    if journal:
        assert f"<6>listening on 127.0.0.1:{port}" in lines, lines
        assert not [l for l in lines if "mpechod[" in l], lines
        assert [l for l in lines if l.startswith("<6>store[") and "]: reopened " in l], lines
    else:
        assert all(l.startswith("mpechod[") for l in lines), lines
        assert f"mpechod[{p.pid}]: listening on 127.0.0.1:{port}" in lines, lines
