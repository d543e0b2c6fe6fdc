"""--echo-after written|synced: the echo is the store's receipt.  The order is traced (strace -f:
no echo before the write, or the fdatasync, of its record), sampled on a full disk (nothing
received is missing from the file, at every sample), and kept through SIGKILLs of the store and
of the master (every byte any client received is in the file)."""
import atexit
import os
import re
import shutil
import subprocess
import signal
import socket
import threading
import time

import pytest

from conftest import (BIN, MODE_ARGS, SLOW, Server, alive, connect, proc_children,
                      proc_descendants, read_store, record_bytes, recv_exact, store_by_conn,
                      store_datagrams, store_so_far, wait_until)
from test_faults import Streamer, roomy_fs  # noqa: F401 (a fixture)

MODES = ["written", "synced"]


def server(tmp_path, *args, wrapper=(), store="store.jsonl"):
    path = str(tmp_path / store)
    srv = Server(["-p", "0", "-b", "127.0.0.1", "-s", path] + MODE_ARGS + list(args),
                 wrapper=wrapper)
    # Not a fixture: a test that fails before its srv.stop() would leave the server running
    # (seen: a store held stopped kept its master alive).  Stopped by pid at the latest when
    # pytest exits; cleanup() signals only processes that are still the ones it started.
    atexit.register(srv.cleanup)
    return srv.wait_ready(), path


def stop_traced(srv):
    """SIGTERM for the master under strace (strace itself would only detach), then strace's end."""
    (master,) = proc_children(srv.pid)
    os.kill(master, signal.SIGTERM)
    srv.proc.wait(30 * SLOW)


def by_port(recs):
    """local port of a client -> that connection's stored bytes."""
    out = {}
    for c in store_by_conn(recs).values():
        if c["open"] is not None:
            out[int(c["open"]["peer"].split()[0].rsplit(":", 1)[1])] = bytes(c["data"])
    return out


# 1234 1700000000.123456 write(5, "..."..., 8) = 8 <0.000010>
CALL = re.compile(r'^(\d+)\s+(\d+\.\d+) (\w+)\((\d+)(?:, (.*?))?'
                  r'(?: <unfinished \.\.\.>|\) += (-?\d+).*?<(\d+\.\d+)>)$')
RESUMED = re.compile(r'^(\d+)\s+(\d+\.\d+) <\.\.\. (\w+) resumed>.*= (-?\d+).*?<(\d+\.\d+)>$')


def strace_calls(path):
    """[(pid, name, fd, args, start, end, ret)] of every finished call in an strace -f -ttt -T
    log."""
    calls, pending = [], {}
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = CALL.match(line)
            if m:
                pid, ts, name, fd, args, ret, dur = m.groups()
                args = args or ""
                if ret is None:
                    pending[(pid, name)] = (float(ts), int(fd), args)
                else:
                    calls.append((pid, name, int(fd), args, float(ts), float(ts) + float(dur),
                                  int(ret)))
                continue
            m = RESUMED.match(line)
            if m and (m.group(1), m.group(3)) in pending:
                start, fd, args = pending.pop((m.group(1), m.group(3)))
                calls.append((m.group(1), m.group(3), fd, args, start, start + float(m.group(5)),
                              int(m.group(4))))
    return calls


@pytest.mark.parametrize("mode", MODES)
def test_strace_no_echo_before_its_record_is_written_or_synced(tmp_path, mode):
    if shutil.which("strace") is None:
        pytest.skip("no strace")
    log = str(tmp_path / "strace.log")
    srv, path = server(tmp_path, "--echo-after", mode, wrapper=(
        "strace", "-f", "-ttt", "-T", "-s", "65536", "-o", log,
        "-e", "trace=write,writev,sendto,fdatasync"))
    markers = [f"mk{i:04d}{os.urandom(4).hex()}".encode() for i in range(20)]
    s = connect(srv.port)
    for m in markers:
        s.sendall(m)
        assert recv_exact(s, len(m)) == m
    s.close()
    stop_traced(srv)
    calls = strace_calls(log)
    for m in markers:
        text = m.decode()
        stored = [c for c in calls if c[1] == "write" and '\\"data\\":\\"' + text in c[3]]
        echoed = [c for c in calls if c[1] in ("write", "sendto") and c[3].startswith(f'"{text}"')]
        assert stored and echoed, (text, stored, echoed)
        store_pid, written = stored[0][0], stored[0][5]
        echo_at = echoed[0][4]
        assert written <= echo_at, f"{text}: echoed at {echo_at}, its record written at {written}"
        if mode == "synced":
            syncs = [c for c in calls if c[1] == "fdatasync" and c[0] == store_pid and
                     c[4] >= written and c[5] <= echo_at]
            assert syncs, f"{text}: no fdatasync between its write ({written}) and echo ({echo_at})"
    recs = read_store(path)
    assert [m for m in markers] == [record_bytes(r) for r in recs if r["ev"] == "data"]


def test_off_costs_no_syscall(tmp_path):
    """Without --echo-after a session never waits on a futex; with it, it does (the session is
    the process that writes the echo).  Not on every chunk: a receipt already there when the
    session looks needs no sleep, so the test asks for at least one wait in twenty."""
    if shutil.which("strace") is None:
        pytest.skip("no strace")
    counts = {}
    for on in (False, True):
        log = str(tmp_path / f"strace{on}.log")
        srv, _ = server(tmp_path, *(["--echo-after", "written"] if on else []),
                        store=f"s{on}.jsonl", wrapper=("strace", "-f", "-o", log, "-e",
                                                       "trace=futex,write"))
        s = connect(srv.port)
        for i in range(20):
            s.sendall(b"x" * 100)
            recv_exact(s, 100)
        s.close()
        stop_traced(srv)
        with open(log) as f:
            lines = f.read().splitlines()
        (session,) = {l.split()[0] for l in lines if '"' + "x" * 32 in l and "write(" in l}
        counts[on] = sum(1 for l in lines if l.split()[0] == session and "futex(" in l)
    assert counts[False] == 0 and counts[True] >= 1, counts


def test_idle_timeout_bounds_the_wait_for_a_receipt(tmp_path):
    srv, path = server(tmp_path, "--echo-after", "written", "--idle-timeout", "1")
    store = srv.store_pid()
    os.kill(store, signal.SIGSTOP)
    try:
        s = connect(srv.port)
        s.sendall(b"never echoed")
        srv.wait_line("(receipt-timeout)", timeout=10 * SLOW)
        s.settimeout(5 * SLOW)
        assert s.recv(100) == b"", "echoed without a receipt"
    finally:
        os.kill(store, signal.SIGCONT)
    assert srv.stop() == 0
    (c,) = store_by_conn(read_store(path)).values()
    assert bytes(c["data"]) == b"never echoed" and c["close"][0]["reason"] == "receipt-timeout"


def test_udp_datagram_is_echoed_only_after_its_record(tmp_path):
    srv, path = server(tmp_path, "--echo-after", "written", "--udp")
    srv.wait_line("serving UDP")
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(10 * SLOW)
    u.sendto(b"first", ("127.0.0.1", srv.port))
    assert u.recvfrom(100)[0] == b"first"
    store = srv.store_pid()
    os.kill(store, signal.SIGSTOP)
    try:
        big = os.urandom(20000)
        u.sendto(big, ("127.0.0.1", srv.port))
        u.settimeout(0.5)
        with pytest.raises(socket.timeout):
            u.recvfrom(65536)
    finally:
        os.kill(store, signal.SIGCONT)
    u.settimeout(10 * SLOW)
    assert u.recvfrom(65536)[0] == big
    assert srv.stop() == 0
    dgs = [data for _, data, _ in store_datagrams(read_store(path))]
    assert dgs == [b"first", big]


@pytest.mark.parametrize("mode", MODES)
def test_full_disk_block_nothing_received_is_missing_at_any_moment(tmp_path, roomy_fs, mode):
    srv, path = server(roomy_fs, "--store-full", "block", "--echo-after", mode)
    data = os.urandom(1 << 20)
    st = Streamer(srv.port, data)
    st.start()
    samples = 0
    try:
        def sample():
            got = st.got  # first what the client has, then what the file holds
            stored = sum(len(c["data"]) for c in store_by_conn(store_so_far(path)).values())
            assert got <= stored, f"client received {got} bytes, the file holds {stored}"
            return got
        deadline = time.monotonic() + 30 * SLOW
        while not any("holding sessions back" in l for l in srv.lines):
            sample()
            samples += 1
            assert time.monotonic() < deadline, "the disk never filled"
        for _ in range(50):
            sample()
            samples += 1
        assert st.got < len(data)
        os.unlink(roomy_fs / "filler")
        while st.is_alive() and time.monotonic() < deadline:
            sample()
            samples += 1
        st.join(30 * SLOW)
        assert b"".join(st.out) == data
    finally:
        st.sock.close()
    assert samples > 50
    assert srv.stop() == 0
    (c,) = store_by_conn(read_store(path)).values()
    assert bytes(c["data"]) == data


class Pinger(threading.Thread):
    """Sends random chunks and reads each echo until told to stop; keeps what it received."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = connect(port)
        self.sock.settimeout(20 * SLOW)
        self.port = self.sock.getsockname()[1]
        self.got = bytearray()
        self.stop = threading.Event()

    def run(self):
        try:
            while not self.stop.is_set():
                chunk = os.urandom(int.from_bytes(os.urandom(2), "little") % 9000 + 1)
                self.sock.sendall(chunk)
                self.got += recv_exact(self.sock, len(chunk))
        except (OSError, AssertionError):
            pass


@pytest.mark.parametrize("mode", MODES)
def test_store_session_and_master_killed_every_byte_received_is_stored(tmp_path, mode):
    srv, path = server(tmp_path, "--echo-after", mode, "--idle-timeout", "2", "--grace", "3")
    pingers = [Pinger(srv.port) for _ in range(4)]
    for p in pingers:
        p.start()
    wait_until(lambda: all(len(p.got) > 10000 for p in pingers), 20 * SLOW, what="traffic")
    os.kill(srv.store_pid(), signal.SIGKILL)
    srv.wait_line("restarted the store", timeout=10 * SLOW)
    # A session whose frames the killed store had read but not written never gets their
    # receipt (it ends at its idle timeout): new clients show that the new store answers.
    fresh = [Pinger(srv.port) for _ in range(2)]
    for p in fresh:
        p.start()
    pingers += fresh
    wait_until(lambda: all(len(p.got) > 0 for p in fresh), 20 * SLOW,
               what="echoes after the store's restart")
    # One session (or pool process) too, in the middle of whatever it was doing.
    store = srv.store_pid()
    victim = next(q for q in srv.sessions() if q != store)
    os.kill(victim, signal.SIGKILL)
    family = proc_descendants(srv.pid)
    os.kill(srv.pid, signal.SIGKILL)
    srv.proc.wait(10 * SLOW)
    time.sleep(0.3)
    for p in pingers:
        p.stop.set()
    for p in pingers:
        p.join(30 * SLOW)
        p.sock.close()
    wait_until(lambda: not any(alive(q) for q in family), 30 * SLOW, what="the server's end")
    stored = by_port(read_store(path))
    for p in pingers:
        assert len(p.got) > 0
        assert stored[p.port][:len(p.got)] == bytes(p.got), \
            f"client {p.port} received {len(p.got)} bytes, not all in the file"


def test_inetd_echo_is_a_receipt_too(tmp_path):
    """--inetd has a store of its own, and the same receipts: traced as above."""
    if shutil.which("strace") is None:
        pytest.skip("no strace")
    log, path = str(tmp_path / "strace.log"), str(tmp_path / "inetd.jsonl")
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(1)
    c = socket.create_connection(lsn.getsockname())
    s, _ = lsn.accept()
    lsn.close()
    p = subprocess.Popen(["strace", "-f", "-ttt", "-T", "-s", "65536", "-o", log, "-e",
                          "trace=write,writev,fdatasync",
                          os.path.join(BIN, "mpechod"), "--inetd", "-s", path,
                          "--echo-after", "synced"], stdin=s, stdout=s,
                         stderr=subprocess.DEVNULL,
                         # LeakSanitizer cannot run under ptrace: it would fail the exit.
                         env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
    s.close()
    try:
        markers = [f"in{i:04d}{os.urandom(4).hex()}".encode() for i in range(5)]
        for m in markers:
            c.sendall(m)
            assert recv_exact(c, len(m)) == m
        c.close()
        assert p.wait(30 * SLOW) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    calls = strace_calls(log)
    for m in markers:
        text = m.decode()
        (stored,) = [x for x in calls if x[1] == "write" and '\\"data\\":\\"' + text in x[3]]
        (echoed,) = [x for x in calls if x[1] == "write" and x[3].startswith(f'"{text}"')]
        assert [x for x in calls if x[1] == "fdatasync" and x[0] == stored[0] and
                x[4] >= stored[5] and x[5] <= echoed[4]], f"{text}: echoed before its fdatasync"
