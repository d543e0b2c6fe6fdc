"""Faults, abuse and bad input: each test injects the fault and checks mpechod's answer."""
import fcntl
import os
import random
import resource
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (SLOW, binary, connect, cpu_seconds, echo, fd_count, kill_tree,
                      proc_children, read_store, recv_exact, rst_close, store_by_conn, wait_until,
                      zombies_of)


def conn_of_port(records, port):
    """The conn number whose open record came from 127.0.0.1:port."""
    for r in records:
        if r["ev"] == "open" and r["peer"] == f"127.0.0.1:{port}":
            return r["conn"]
    return None


def drained(srv):
    wait_until(lambda: len(srv.sessions()) <= (1 if srv.store_path else 0), 20,
               what="sessions to end")
    wait_until(lambda: zombies_of(srv.pid) == [], 5, what="no zombies")


def test_write_timeout_ends_a_peer_that_never_reads(start_server):
    srv = start_server("--idle-timeout", "1")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", srv.port))
    s.setblocking(False)
    chunk = b"z" * 65536
    deadline = time.monotonic() + 20 * SLOW
    while time.monotonic() < deadline:  # fill both directions until the kernel says stop
        try:
            s.send(chunk)
        except BlockingIOError:
            break
        except OSError:
            break
    srv.wait_line("exited 3 (write-timeout)", timeout=15)
    s.close()
    assert srv.stop() == 0
    (c,) = store_by_conn(read_store(srv.store_path)).values()
    assert c["close"][0]["reason"] == "write-timeout"


def test_max_per_source_refuses_without_forking(start_server):
    srv = start_server("--max-per-source", "2")
    a, b = connect(srv.port), connect(srv.port)
    for s in (a, b):
        s.sendall(b"k")
        assert recv_exact(s, 1) == b"k"
    c = connect(srv.port)
    c.settimeout(5 * SLOW)
    try:
        got = c.recv(10)
    except ConnectionResetError:
        got = b""
    assert got == b"", "a refused connection gets nothing but its close"
    c.close()
    srv.wait_line("--max-per-source 2 reached")
    a.close()
    wait_until(lambda: len(srv.wait_line(" exited ", count=1)) >= 1, 5)
    assert echo(srv.port, b"again") == b"again"
    b.close()
    srv.signal(signal.SIGUSR1)
    stats = srv.wait_line("stats:")[0]
    assert "accepted 3," in stats and "refused 1 per source" in stats, stats
    assert srv.stop() == 0


def test_max_rate_refuses_the_excess(start_server):
    srv = start_server("--max-rate", "5", store=False)
    ok = refused = 0
    for _ in range(20):
        s = connect(srv.port)
        try:
            s.sendall(b"r")
            s.settimeout(5 * SLOW)
            if s.recv(1) == b"r":
                ok += 1
            else:
                refused += 1
        except OSError:
            refused += 1
        finally:
            s.close()
    assert 5 <= ok <= 8, (ok, refused)
    assert ok + refused == 20
    refusal_lines = [l for l in srv.lines if "--max-rate 5 reached" in l]
    assert 1 <= len(refusal_lines) <= 3, "refusals are logged at most once a second"
    assert srv.stop() == 0


def test_out_of_descriptors_backs_off_and_recovers(start_server):
    srv = start_server(store=False)
    soft, hard = resource.prlimit(srv.pid, resource.RLIMIT_NOFILE)
    # With the limit at the master's descriptor count, accept(2) fails with EMFILE.
    resource.prlimit(srv.pid, resource.RLIMIT_NOFILE, (fd_count(srv.pid), hard))
    s = connect(srv.port)  # completes in the backlog
    s.sendall(b"wait for me")
    srv.wait_line("accept failed")
    cpu0 = cpu_seconds(srv.pid)
    time.sleep(1.0)
    assert cpu_seconds(srv.pid) - cpu0 < 0.2, "the master spins on EMFILE"
    assert len([l for l in srv.lines if "accept failed" in l]) <= 3
    resource.prlimit(srv.pid, resource.RLIMIT_NOFILE, (soft, hard))
    s.settimeout(10 * SLOW)
    assert recv_exact(s, 11) == b"wait for me"
    s.close()
    assert srv.stop() == 0


def test_flood_keeps_master_responsive(start_server):
    srv = start_server(store=False)
    base_fds = fd_count(srv.pid)
    stop = threading.Event()
    half_open = []

    def flood():
        for i in range(1500 // SLOW):
            if stop.is_set():
                break
            try:
                s = socket.socket()
                s.connect(("127.0.0.1", srv.port))
                if i % 10 == 0:
                    s.sendall(b"x" * 100000)  # reset mid-stream
                rst_close(s)
            except OSError:
                pass

    floods = [threading.Thread(target=flood) for _ in range(3)]
    for t in floods:
        t.start()
    for _ in range(20):  # half-open peers that never send
        half_open.append(connect(srv.port))
    worst = 0.0
    for _ in range(5):
        t0 = time.monotonic()
        assert echo(srv.port, b"fresh") == b"fresh"
        worst = max(worst, time.monotonic() - t0)
    # Signals reach the master while its listeners stay ready (ppoll alone would starve them).
    srv.signal(signal.SIGUSR1)
    srv.wait_line("stats:", timeout=2)
    stop.set()
    for t in floods:
        t.join(60 * SLOW)
    assert worst < 1.0 * SLOW, f"a fresh client waited {worst:.2f}s during the flood"
    for s in half_open:
        s.close()
    drained(srv)
    assert fd_count(srv.pid) == base_fds
    assert srv.stop() == 0


def test_store_killed_is_restarted_and_nothing_after_is_lost(start_server):
    srv = start_server()
    (store_pid,) = proc_children(srv.pid)
    a = connect(srv.port)
    a.sendall(b"before")
    assert recv_exact(a, 6) == b"before"
    os.kill(store_pid, signal.SIGKILL)
    srv.wait_line(f"store {store_pid} killed by signal 9")
    srv.wait_line("restarted the store")
    a.sendall(b"after")  # the session kept running across the restart
    assert recv_exact(a, 5) == b"after"
    a.close()
    assert echo(srv.port, b"new session") == b"new session"
    assert srv.stop() == 0
    conns = store_by_conn(read_store(srv.store_path))
    assert bytes(conns[1]["data"]).endswith(b"after")
    assert bytes(conns[2]["data"]) == b"new session"
    assert [r["reason"] for r in conns[2]["close"]] == ["eof"]


def test_store_file_size_limit_keeps_echoing_and_counts_drops(start_server):
    limit = 64 * 1024

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    srv = start_server(preexec_fn=small_files)
    payload = os.urandom(100 * 1024)
    for _ in range(3):
        assert echo(srv.port, payload) == payload
    srv.wait_line("cannot write")
    assert srv.stop() == 0
    assert len([l for l in srv.lines if "cannot write" in l]) == 1, "diagnosed once"
    srv.wait_line("bytes of records were dropped")
    assert os.path.getsize(srv.store_path) <= limit
    read_store(srv.store_path)  # every line whole and valid


def streamer(port, total, results, idx, chunk=32768):
    """Sends total random bytes in chunks, reading each echo back; records what came back."""
    rnd = random.Random(idx)
    block = rnd.randbytes(65536)
    data = (block * (total // len(block) + 1))[:total]
    got = bytearray()
    try:
        with connect(port) as s:
            results[idx] = (data, got, s.getsockname()[1])
            for off in range(0, total, chunk):
                part = data[off:off + chunk]
                s.sendall(part)
                got += recv_exact(s, len(part))
                if len(got) < off + len(part):
                    break
    except OSError:
        pass


def run_streamers(port, n, total):
    results = [None] * n
    threads = [threading.Thread(target=streamer, args=(port, total, results, i))
               for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


def test_signal_storm_loses_nothing(start_server):
    srv = start_server()
    threads, results = run_streamers(srv.port, 4, 2 << 20)
    for i in range(200):
        srv.signal(signal.SIGHUP if i % 2 else signal.SIGUSR1)
        time.sleep(0.001)
    for t in threads:
        t.join(60 * SLOW)
    for data, got, _ in results:
        assert bytes(got) == data
    assert srv.stop() == 0
    records = read_store(srv.store_path)
    conns = store_by_conn(records)
    for data, _, port in results:
        c = conns[conn_of_port(records, port)]
        assert bytes(c["data"]) == data and c["close"][0]["reason"] == "eof"
    assert not [l for l in srv.lines if "Interrupted" in l or "exited 1 " in l]


def looper(port, block, stop, out, idx):
    """Echoes block again and again until stop is set (at most 60 s); out[idx] = (count, port)."""
    count = 0
    with connect(port) as s:
        out[idx] = (0, s.getsockname()[1])
        deadline = time.monotonic() + 60 * SLOW
        while not stop.is_set() and time.monotonic() < deadline:
            s.sendall(block)
            assert recv_exact(s, len(block)) == block
            count += 1
            out[idx] = (count, s.getsockname()[1])


def test_sighup_rotation_under_load_splits_no_record(start_server, tmp_path):
    srv = start_server()
    block = random.Random(3).randbytes(65536)
    stop, out = threading.Event(), [None] * 4
    threads = [threading.Thread(target=looper, args=(srv.port, block, stop, out, i))
               for i in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: all(o is not None and o[0] > 10 for o in out), 10,
                   what="the load to flow")
        rotated = str(tmp_path / "rotated.jsonl")
        os.rename(srv.store_path, rotated)
        srv.signal(signal.SIGHUP)
        # The store must not wait for a pause in the load to rotate.
        srv.wait_line("reopened", timeout=20)
        before = [o[0] for o in out]
        wait_until(lambda: all(o[0] > b for o, b in zip(out, before)), 10,
                   what="the load to go on after the reopen")
    finally:
        stop.set()
        for t in threads:
            t.join(60 * SLOW)
    assert srv.stop() == 0
    old, new = read_store(rotated), read_store(srv.store_path)  # whole lines only
    assert new, "nothing went to the new file"
    records = old + new
    conns = store_by_conn(records)
    for count, port in out:
        assert bytes(conns[conn_of_port(records, port)]["data"]) == block * count


def test_shutdown_under_load_stores_everything_received(start_server):
    srv = start_server("--grace", "1", "-c", "200")
    threads, results = run_streamers(srv.port, 100, 16 << 20)
    wait_until(lambda: all(r is not None and len(r[1]) > 0 for r in results), 30,
               what="all 100 streams to flow")
    rc = srv.stop()
    for t in threads:
        t.join(60 * SLOW)
    assert rc == 0
    records = read_store(srv.store_path)
    conns = store_by_conn(records)
    assert len(conns) == 100
    for data, got, port in results:
        stored = bytes(conns[conn_of_port(records, port)]["data"])
        assert len(stored) >= len(got)
        assert stored == data[:len(stored)], "the store holds exactly what was sent"
    for c in conns.values():
        assert len(c["close"]) == 1


def test_zero_byte_and_multi_mib(start_server):
    srv = start_server()
    with connect(srv.port):
        pass
    big = os.urandom(16 << 20)
    assert echo(srv.port, big) == big
    assert srv.stop() == 0
    conns = store_by_conn(read_store(srv.store_path))
    assert conns[1]["close"][0]["bytes"] == 0 and conns[1]["data"] == b""
    assert bytes(conns[2]["data"]) == big


def test_store_down_at_shutdown_is_restarted_to_drain(start_server):
    srv = start_server()
    (first,) = proc_children(srv.pid)
    os.kill(first, signal.SIGKILL)
    line = srv.wait_line("restarted the store as ")[0]
    second = int(line.rsplit(" ", 1)[1])
    os.kill(second, signal.SIGKILL)  # the next restart is throttled for a second
    srv.wait_line(f"store {second} killed")
    assert echo(srv.port, b"this-was-echoed") == b"this-was-echoed"
    assert srv.stop() == 0
    conns = store_by_conn(read_store(srv.store_path))
    assert [bytes(c["data"]) for c in conns.values()] == [b"this-was-echoed"]
    assert [r["reason"] for c in conns.values() for r in c["close"]] == ["eof"]


def test_a_stalled_stderr_never_stalls_the_master(tmp_path):
    """stderr is a full pipe nobody reads: log lines are dropped and counted, and neither the
    master nor the store (whose stall would block every session) waits for it."""
    r, w = os.pipe()
    p = subprocess.Popen([binary("mpechod"), "-p", "0", "-b", "127.0.0.1", "-s",
                          str(tmp_path / "s.jsonl")], stdin=subprocess.DEVNULL, stderr=w)
    os.close(w)
    try:
        first = b""
        while b"\n" not in first:
            first += os.read(r, 4096)
        port = int(first.split(b"\n")[0].decode().rsplit(":", 1)[1])
        # Fill the pipe to the last byte through a descriptor of our own, nonblocking, so the
        # server's own stderr stays blocking.
        filler = os.open(f"/proc/self/fd/{r}", os.O_WRONLY | os.O_NONBLOCK)
        for size in (65536, 4096, 1):
            while True:
                try:
                    os.write(filler, b"f" * size)
                except BlockingIOError:
                    break
        os.close(filler)
        os.kill(p.pid, signal.SIGHUP)  # the store logs its reopen
        for _ in range(20):
            assert echo(port, b"s") == b"s"  # the master logs each one
        big = os.urandom(2 << 20)  # more than the store pipe holds: the store must drain it
        assert echo(port, big) == big
        os.kill(p.pid, signal.SIGTERM)
        out = b""
        deadline = time.monotonic() + 20 * SLOW
        while time.monotonic() < deadline:
            if not select.select([r], [], [], 1)[0]:
                continue
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            out += chunk
        assert p.wait(20 * SLOW) == 0
        assert b"log lines dropped)" in out, out[-500:]
    finally:
        if p.poll() is None:
            kill_tree(p.pid)
            p.wait(5)
        os.close(r)


def test_sessions_stuck_on_a_stopped_store_end_as_shutdown(start_server):
    """At shutdown a session waiting for room in the store pipe gives up before the master's
    SIGKILL, and the master writes its close record."""
    srv = start_server("--grace", "0")
    (store_pid,) = proc_children(srv.pid)
    os.kill(store_pid, signal.SIGSTOP)
    try:
        socks = [connect(srv.port) for _ in range(4)]
        for s in socks:
            s.setblocking(False)
            try:
                s.send(os.urandom(512 * 1024))  # 2 MiB in all: more than the pipe holds
            except BlockingIOError:
                pass
        wait_until(lambda: len(srv.sessions()) == 5, 5, what="four sessions")
        time.sleep(0.5)
        srv.signal(signal.SIGTERM)
        srv.wait_line("exited 5 (shutdown)", count=4, timeout=10)
        assert not [l for l in srv.lines if "killed by signal" in l], srv.lines
    finally:
        os.kill(store_pid, signal.SIGCONT)
    assert srv.stop() == 0
    for s in socks:
        s.close()
    conns = store_by_conn(read_store(srv.store_path))
    assert len(conns) == 4
    for c in conns.values():
        assert [r["reason"] for r in c["close"]] == ["shutdown"]
        assert c["close"][0]["bytes"] == len(c["data"])
