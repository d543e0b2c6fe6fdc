"""Shared fixtures for the system tests: start the real binaries on 127.0.0.1 with port 0.

Every process a test starts is tracked by pid and killed (with its descendants) at teardown;
every wait has a deadline.  Readiness is the server's own "listening on" line, never a sleep.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPECHO_BIN", os.path.join(ROOT, "build", "bin"))
SANITIZED = os.environ.get("MPECHO_SANITIZED") == "1"
# Sanitized binaries are several times slower; deadlines scale with them.
SLOW = 4 if SANITIZED else 1
SAN_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def binary(name):
    return os.path.join(BIN, name)


def wait_until(pred, timeout, interval=0.01, what="condition"):
    """Polls pred until it returns a true value or timeout seconds pass."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout * SLOW:.1f}s waiting for {what}")
        time.sleep(interval)


def proc_children(pid):
    """Direct children of pid, from /proc."""
    kids = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def proc_descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for k in proc_children(p):
            out.append(k)
            todo.append(k)
    return out


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def zombies_of(pid):
    return [k for k in proc_children(pid) if proc_state(k) == "Z"]


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def alive(pid):
    st = proc_state(pid)
    return st is not None and st != "Z"


def kill_tree(pid):
    for p in [pid] + proc_descendants(pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Server:
    """One mpechod process, its stderr collected line by line."""

    def __init__(self, args, env=None, preexec_fn=None, wrapper=(), program="mpechod"):
        self.lines = []
        self.cond = threading.Condition()
        e = dict(os.environ)
        if env:
            e.update(env)
        self.proc = subprocess.Popen(list(wrapper) + [binary(program)] + list(args), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                                     preexec_fn=preexec_fn)
        self.pid = self.proc.pid
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.ports = []
        self.addrs = []

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_line(self, needle, timeout=10, count=1):
        """Waits for count stderr lines containing needle; returns them."""
        deadline = time.monotonic() + timeout * SLOW
        with self.cond:
            while True:
                found = [l for l in self.lines if needle in l]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError(f"no line with {needle!r}; stderr so far:\n"
                                         + "\n".join(self.lines[-30:]))
                self.cond.wait(min(left, 0.1))

    def wait_ready(self, nsockets=1):
        for l in self.wait_line("listening on ", count=nsockets):
            addr = l.split("listening on ", 1)[1]
            self.addrs.append(addr)
            self.ports.append(int(addr.rsplit(":", 1)[1]))
        self.port = self.ports[0]
        return self

    def signal(self, sig):
        os.kill(self.pid, sig)

    def sessions(self):
        """Live children that are sessions (everything but the store)."""
        return [k for k in proc_children(self.pid) if proc_state(k) not in (None, "Z")]

    def stop(self, sig=None, timeout=20):
        """Signals the master (SIGTERM by default) and waits for it; returns the exit status."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM if sig is None else sig)
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            kill_tree(self.pid)
            self.proc.wait(5)
            raise AssertionError("server did not stop in time:\n" + "\n".join(self.lines[-30:]))
        self.reader.join(5)
        return rc

    def check_sanitizers(self):
        bad = [l for l in self.lines if any(m in l for m in SAN_MARKERS)]
        assert not bad, "sanitizer report:\n" + "\n".join(self.lines)

    def cleanup(self):
        if self.proc.poll() is None:  # never signal a pid that may have been reused
            kill_tree(self.pid)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.reader.join(5)  # before closing the pipe it reads
        for s in (self.proc.stdout, self.proc.stderr):
            try:
                s.close()
            except Exception:
                pass


@pytest.fixture
def start_server(tmp_path):
    """Starts mpechod on 127.0.0.1 port 0 and returns a ready Server.

    start_server(*extra_args, store=True|False|path, bind=True, ready=True, env=None,
    preexec_fn=None)."""
    servers = []

    def start(*args, store=True, bind=True, ready=True, env=None, preexec_fn=None):
        argv = ["-p", "0"] + (["-b", "127.0.0.1"] if bind else [])
        if store is True:
            store = str(tmp_path / f"store{len(servers)}.jsonl")
        if store:
            argv += ["-s", str(store)]
        else:
            argv += ["--no-store"]
        srv = Server(argv + list(args), env=env, preexec_fn=preexec_fn)
        srv.store_path = store or None
        servers.append(srv)
        if ready:
            srv.wait_ready()
        return srv

    yield start
    for srv in servers:
        srv.cleanup()
        srv.check_sanitizers()


def connect(port, host="127.0.0.1", timeout=10):
    s = socket.create_connection((host, port), timeout=timeout * SLOW)
    return s


def cpu_seconds(pid):
    """User plus system CPU time of pid so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rst_close(sock):
    """Closes with a reset instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def recv_exact(sock, n):
    chunks, got = [], 0
    while got < n:
        b = sock.recv(min(1 << 20, n - got))
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def echo(port, data, host="127.0.0.1"):
    """Sends data, half-closes, and returns everything the server sent back before it closed."""
    with connect(port, host) as s:
        out = []
        sender = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
        sender.start()
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            out.append(b)
        sender.join(10 * SLOW)
        return b"".join(out)


def read_store(path):
    with open(path, "rb") as f:
        raw = f.read()
    assert raw == b"" or raw.endswith(b"\n"), "store ends in a partial line"
    # Split on newlines only: str.splitlines() would also break at U+2028 and friends.
    return [json.loads(l) for l in raw.decode("utf-8").split("\n")[:-1]]


def store_by_conn(records):
    """conn -> {"open": rec, "data": bytes, "close": [recs]}"""
    conns = {}
    for r in records:
        c = conns.setdefault(r["conn"], {"open": None, "data": bytearray(), "close": [], "opens": 0})
        if r["ev"] == "open":
            c["open"] = r
            c["opens"] += 1
        elif r["ev"] == "data":
            c["data"] += r["data"].encode("latin-1")
        elif r["ev"] == "close":
            c["close"].append(r)
    return conns
