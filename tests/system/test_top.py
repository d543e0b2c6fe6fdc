"""mpecho-top against a running server: under tmux (send-keys, capture-pane) a session appears
with its peer and disappears after the client leaves; --once for scripts; its figures are the
stats line's."""
import os
import shutil
import socket
import subprocess

import pytest

from conftest import SLOW, alive, binary, proc_children, spawner_of, wait_until

TMUX = shutil.which("tmux")


class Tmux:
    """A tmux server of our own (its own socket), one window running argv."""

    def __init__(self, tmp_path, argv):
        self.sock = str(tmp_path / "tmux.sock")
        self.run("new-session", "-d", "-s", "top", "-x", "132", "-y", "40", " ".join(argv))

    def run(self, *args):
        return subprocess.run([TMUX, "-S", self.sock] + list(args), capture_output=True,
                              text=True, timeout=10 * SLOW)

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "top").stdout

    def alive(self):
        return self.run("has-session", "-t", "top").returncode == 0

    def close(self):
        self.run("kill-server")


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
def test_a_session_appears_with_its_peer_and_goes(start_server, tmp_path):
    srv = start_server()
    tmux = Tmux(tmp_path, [binary("mpecho-top"), str(srv.pid)])
    try:
        wait_until(lambda: "ROLE" in tmux.screen(), 10 * SLOW, interval=0.1,
                   what="mpecho-top's first screen")
        c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        peer = "%s:%d" % c.getsockname()
        c.sendall(b"hello")
        assert c.recv(5) == b"hello"
        line = wait_until(lambda: next((l for l in tmux.screen().splitlines() if peer in l),
                                       None), 10 * SLOW, interval=0.1,
                          what=f"a line with the peer {peer}")
        assert "busy" in line and line.split()[-2] == "5", line
        c.close()
        wait_until(lambda: peer not in tmux.screen(), 10 * SLOW, interval=0.1,
                   what="the session's line to go")
        (tmp_path / "top.txt").write_text(tmux.screen())
        tmux.run("send-keys", "-t", "top", "C-c")
        wait_until(lambda: not tmux.alive(), 10 * SLOW, interval=0.1, what="mpecho-top to quit")
    finally:
        tmux.close()


def test_once_prints_the_stats_line_figures(start_server):
    srv = start_server()
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
            c.sendall(b"abc")
            c.shutdown(socket.SHUT_WR)
            while c.recv(10):
                pass
    counts, line = srv.wait_stats(lambda c: c["active"] == 0 and c["bytes echoed"] == 6)
    p = subprocess.run([binary("mpecho-top"), "--once", str(srv.port)], capture_output=True,
                       text=True, timeout=10 * SLOW)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0].startswith(f"mpechod {srv.pid}, port {srv.port}, "), out
    # The pool's part may move between the two reads (its upkeep starts and retires
    # processes); the session figures are still once no client is left.
    assert out[1].split(", pool ")[0] == line.split("stats: ", 1)[1].split(", pool ")[0], \
        (out[1], line)
    assert out[3].split() == ["ROLE", "PID", "STATE", "CONN", "PEER", "BYTES", "AGE"]
    assert any(l.split()[:2] == ["store", str(srv.store_pid())] for l in out[4:]), out
    # Fork mode's spawner, with the sandbox on (not in sanitizer builds, nor in prefork mode).
    sp = spawner_of(srv.pid)
    assert (sp is None) == (not any(l.split()[:1] == ["spawner"] for l in out[4:])), out
    if sp is not None:
        assert any(l.split()[:2] == ["spawner", str(sp)] for l in out[4:]), out


def test_the_object_is_private_and_removed_at_exit(start_server):
    srv = start_server()
    path = f"/dev/shm/mpechod.{srv.pid}"
    st = os.stat(path)
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == os.getuid()
    assert srv.stop() == 0
    assert not os.path.exists(path)


def test_every_process_maps_the_object_once(start_server):
    """The shared state is one mapping of the object in the master and in every child, not one
    a piece: each fork and each exit takes the object's mapping lock once (a soak of 1,000
    clients in fork mode found forks and exits queued on it)."""
    srv = start_server("--echo-after", "written", "--metrics", "127.0.0.1:0")
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10 * SLOW)
    try:
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        kids = wait_until(lambda: (lambda k: k if len(k) >= 3 else None)(
            [k for k in proc_children(srv.pid) if alive(k)]), 10, what="the children")
        path = f"/dev/shm/mpechod.{srv.pid}"
        for pid in [srv.pid] + kids:
            with open(f"/proc/{pid}/maps") as f:
                maps = [l for l in f if l.rstrip().endswith(path)]
            # The pieces in one readable mapping; the rest of the reservation inaccessible.
            assert [l.split()[1] for l in maps] in (["rw-s"], ["rw-s", "---s"]), (pid, maps)
    finally:
        s.close()
    assert srv.stop() == 0


def test_no_server_and_bad_usage():
    p = subprocess.run([binary("mpecho-top"), "--once", "1"], capture_output=True, text=True,
                       timeout=10 * SLOW)
    assert p.returncode == 69 and "no running mpechod 1 found" in p.stderr, p.stderr
    p = subprocess.run([binary("mpecho-top"), "-n", "0"], capture_output=True, text=True,
                       timeout=10 * SLOW)
    assert p.returncode == 64, p.stderr
