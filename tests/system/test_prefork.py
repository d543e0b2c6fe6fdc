"""--prefork: what only the pool mode has (its size, recycling, bursts, crashed pool processes).
The rest of the contract is the fork mode's: the whole suite runs again with --prefork
(MPECHO_SERVER_ARGS, see conftest.py and the Makefile)."""
import errno
import os
import signal
import socket
import threading
import time

import pytest

from conftest import (SLOW, Server, alive, connect, echo, proc_children, read_store,
                      recv_exact, store_by_conn, store_so_far, wait_until, zombies_of)


def pool_stats(srv):
    """(processes, idle, starting) from a fresh stats line."""
    st = srv.stats()[0]
    return st["pool processes"], st["idle"], st["starting"]


def live_children(srv):
    return [k for k in proc_children(srv.pid) if alive(k)]


def test_pool_starts_with_min_spare_and_one_process_serves_many(start_server):
    srv = start_server("--prefork", "--min-spare", "2", "--max-spare", "4")
    wait_until(lambda: pool_stats(srv)[1] == 2, 10, what="two idle pool processes")
    for i in range(100):
        assert echo(srv.port, b"msg %d" % i) == b"msg %d" % i
    assert srv.stop() == 0
    conns = store_by_conn(read_store(srv.store_path))
    assert sorted(conns) == list(range(1, 101))
    pids = {c["open"]["pid"] for c in conns.values()}
    # A pool process serves connection after connection: far fewer pids than connections,
    # and every open record names the process that served it.  Not "at most --max-spare": on
    # a loaded machine the next connection can come before the last one's process is idle
    # again, the master starts a spare, and one too many retires later (seen: 5 pids); each
    # such turn costs a pid, so the bound is what reuse means, a quarter of the connections.
    assert len(pids) <= 25, pids
    assert all(c["close"][0]["reason"] == "eof" for c in conns.values())
    served = [l for l in srv.lines if " exited 0 (eof)" in l]
    assert len(served) == 100


def test_killed_pool_process_gets_its_close_record_and_is_replaced(start_server):
    srv = start_server("--prefork", "--min-spare", "2", "--max-spare", "4")
    s = connect(srv.port)
    s.sendall(b"abc")
    assert recv_exact(s, 3) == b"abc"
    # The busy one is the pool process whose slot serves conn 1: its pid is in the open record.
    pid = wait_until(lambda: next((r["pid"] for r in store_so_far(srv.store_path)
                                   if r["ev"] == "open"), None), 10, what="the open record")
    os.kill(pid, signal.SIGKILL)
    srv.wait_line(f"session {pid} conn 1 killed by signal 9")
    assert s.recv(10) == b""
    s.close()
    wait_until(lambda: pool_stats(srv)[1] >= 2, 10, what="the pool back to its spares")
    assert echo(srv.port, b"next") == b"next"
    assert srv.stop() == 0
    conns = store_by_conn(read_store(srv.store_path))
    assert [r["reason"] for r in conns[1]["close"]] == ["signal 9"]
    assert conns[1]["close"][0]["bytes"] == 3
    assert bytes(conns[2]["data"]) == b"next"


def test_max_conns_per_child_recycles(start_server):
    srv = start_server("--prefork", "--min-spare", "1", "--max-spare", "1",
                       "--max-conns-per-child", "3")
    for i in range(9):
        assert echo(srv.port, b"%d" % i) == b"%d" % i
    assert srv.stop() == 0
    conns = store_by_conn(read_store(srv.store_path))
    per_pid = {}
    for c in conns.values():
        per_pid[c["open"]["pid"]] = per_pid.get(c["open"]["pid"], 0) + 1
    assert max(per_pid.values()) <= 3 and len(per_pid) >= 3, per_pid


def test_a_burst_is_served_by_a_growing_pool_and_it_shrinks_after(start_server):
    n = 300
    srv = start_server("--prefork", "--min-spare", "1", "--max-spare", "3", "-c", "1000")
    socks, results = [], [None] * n
    for i in range(n):
        socks.append(connect(srv.port))
    for i, s in enumerate(socks):
        s.sendall(b"burst %d" % i)

    def read(i):
        results[i] = recv_exact(socks[i], len(b"burst %d" % i))

    threads = [threading.Thread(target=read, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * SLOW)
    assert all(results[i] == b"burst %d" % i for i in range(n))
    total, idle, _ = pool_stats(srv)
    assert total >= n, (total, idle)  # every held connection has its own process
    for s in socks:
        s.close()
    # Idle processes above --max-spare are retired, one a second: allow for many seconds.
    wait_until(lambda: pool_stats(srv)[0] <= total - 3, 30, interval=0.5,
               what="the pool to shrink")
    # Retired processes go on leaving meanwhile: each is a zombie until the master reaps it.
    wait_until(lambda: not zombies_of(srv.pid), 10, what="no zombie")
    assert srv.stop() == 0


def bind_error(port):
    """None if a new listener can bind 127.0.0.1:port now (as a new server would, with
    SO_REUSEADDR), else the error's errno."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError as e:
            return e.errno
    return None


def test_ports_free_is_said_only_once_every_pool_process_has_closed_its_listeners(
        start_server):
    """The hard moment of a rolling restart: the master has closed its listeners ("shutting
    down") but a pool process has not run its SIGUSR1 handler yet, which closes its copies (held
    here by SIGSTOP: under load the delivery can come that late).  The port is still taken then,
    and "the ports are free" must not be said before it is."""
    srv = start_server("--prefork", "--min-spare", "2", "--max-spare", "2", "--grace", "30",
                       "--no-store")
    wait_until(lambda: pool_stats(srv)[1] == 2, 10, what="two idle pool processes")
    pool = live_children(srv)
    assert len(pool) == 2, pool
    for k in pool:
        os.kill(k, signal.SIGSTOP)
    try:
        srv.signal(signal.SIGTERM)
        srv.wait_line("shutting down")
        # Time for a wrong line to be said and read (the master looks every 20 ms).
        time.sleep(0.3 * SLOW)
        assert bind_error(srv.port) == errno.EADDRINUSE
        assert "ports are free" not in srv.output()
    finally:
        for k in pool:
            os.kill(k, signal.SIGCONT)
    srv.wait_line("listeners closed in every process: the ports are free")
    assert bind_error(srv.port) is None
    assert srv.proc.wait(10 * SLOW) == 0


def test_shutdown_idle_leave_at_once_busy_finish_within_grace(start_server):
    srv = start_server("--prefork", "--min-spare", "3", "--grace", "10")
    wait_until(lambda: pool_stats(srv)[1] == 3, 10, what="three idle")
    s = connect(srv.port)
    s.sendall(b"x")
    assert recv_exact(s, 1) == b"x"
    srv.signal(signal.SIGTERM)
    srv.wait_line("shutting down: 1 sessions")
    # The idle ones are gone at once; the busy one still echoes within the grace.
    wait_until(lambda: len(live_children(srv)) == 2, 10, what="idle pool processes to leave")
    s.sendall(b"y")
    assert recv_exact(s, 1) == b"y"
    s.shutdown(socket.SHUT_WR)
    assert s.recv(10) == b""
    s.close()
    assert srv.proc.wait(10 * SLOW) == 0
    conns = store_by_conn(read_store(srv.store_path))
    assert bytes(conns[1]["data"]) == b"xy" and conns[1]["close"][0]["reason"] == "eof"


def test_master_death_closes_the_port_at_once_and_busy_ones_finish(tmp_path):
    store = str(tmp_path / "s.jsonl")
    old = Server(["-p", "0", "-b", "127.0.0.1", "-s", store, "--prefork", "--grace", "2"])
    new = None
    kids = []
    try:
        old.wait_ready()
        held = connect(old.port)
        held.sendall(b"a")
        assert recv_exact(held, 1) == b"a"
        kids = live_children(old)
        os.kill(old.pid, signal.SIGKILL)
        old.proc.wait(10 * SLOW)
        # No orphan keeps the listener: each pool process closes it as soon as it learns of
        # the death (PR_SET_PDEATHSIG), so a new server binds the same port within a second.
        deadline = time.monotonic() + 1 * SLOW
        while True:
            new = Server(["-p", str(old.port), "-b", "127.0.0.1", "-s",
                          str(tmp_path / "new.jsonl")])
            try:
                new.wait_line("listening on ", timeout=5)
                break
            except AssertionError:
                new.cleanup()
                assert "Address already in use" in new.output(), new.output()
                assert time.monotonic() < deadline, "the port was still held after a second"
                time.sleep(0.02)  # the period of the retry, not a synchronisation
        new.wait_ready()
        assert echo(new.port, b"new") == b"new"
        held.sendall(b"b")
        assert recv_exact(held, 1) == b"b"
        assert held.recv(10) == b""  # ended after the grace
        held.close()
        wait_until(lambda: not any(alive(k) for k in kids), 15, what="the old processes")
        assert new.stop() == 0
    finally:
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        old.cleanup()
        if new:
            new.cleanup()
    conns = store_by_conn(read_store(store))
    assert bytes(conns[1]["data"]) == b"ab"
    assert [c["reason"] for c in conns[1]["close"]] == ["shutdown"]


def test_culled_and_refused_in_the_pool(start_server):
    srv = start_server("--prefork", "--max-per-source", "1")
    held = connect(srv.port)
    held.sendall(b"h")
    assert recv_exact(held, 1) == b"h"
    with connect(srv.port) as s:  # a second one from the same address: refused
        assert s.recv(10) == b""
    s = connect(srv.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    s.close()  # reset before anything: culled (or refused, if a process took it first)
    st = srv.stats()[0]
    assert st["refused per source"] >= 1, st
    wait_until(lambda: srv.stats()[0]["refused per source"] + srv.stats()[0]["culled dead"]
               >= 2, 10, what="both counted")
    held.close()
    assert srv.stop() == 0


def test_both_families_served_without_starving_one(start_server):
    """Every pool process waits on the IPv6 and the IPv4 listener at once (EPOLLEXCLUSIVE):
    clients of both, at the same time, are all served."""
    srv = start_server("--prefork", "--min-spare", "2", bind=False)
    try:
        socket.create_connection(("::1", srv.port), timeout=1).close()
    except OSError:
        srv.stop()
        pytest.skip("no IPv6 loopback here")
    results = {}

    def client(i, host):
        results[(i, host)] = echo(srv.port, b"%s %d" % (host.encode(), i), host=host)

    threads = [threading.Thread(target=client, args=(i, h)) for i in range(40)
               for h in ("127.0.0.1", "::1")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * SLOW)
    assert len(results) == 80
    assert all(v == b"%s %d" % (h.encode(), i) for (i, h), v in results.items())
    assert srv.stop() == 0
    # Every client's bytes are stored, under a peer of its own family.
    stored = {bytes(c["data"]): c["open"]["peer"]
              for c in store_by_conn(read_store(srv.store_path)).values() if c["data"]}
    for (i, h) in results:
        peer = stored[b"%s %d" % (h.encode(), i)]
        assert peer.startswith("127.0.0.1:" if h == "127.0.0.1" else "[::1]:"), (h, peer)


def test_pool_processes_killed_under_load_wedge_nothing(start_server):
    """Pool processes SIGKILLed at random while others take the shared lock (--max-per-source
    counts every connection under it): the service goes on, and the counts come back."""
    srv = start_server("--prefork", "--min-spare", "4", "--max-per-source", "1000")
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                echo(srv.port, b"x" * 100)
            except OSError:
                pass  # a connection whose process was killed: reset, as expected

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(20):
            kids = [k for k in live_children(srv) if k != srv.store_pid()]
            if kids:
                try:
                    os.kill(kids[len(kids) // 2], signal.SIGKILL)
                except ProcessLookupError:
                    pass
            wait_until(lambda: pool_stats(srv)[1] >= 1, 10, what="an idle pool process")
    finally:
        stop.set()
        for t in threads:
            t.join(30 * SLOW)
    assert echo(srv.port, b"after") == b"after"
    wait_until(srv.quiet, 10, what="no session in progress")
    # Every count taken was given back: as many new connections as the limit allow are served.
    held = [connect(srv.port) for _ in range(10)]
    for s in held:
        s.sendall(b"h")
        assert recv_exact(s, 1) == b"h"
    for s in held:
        s.close()
    assert srv.stop() == 0
