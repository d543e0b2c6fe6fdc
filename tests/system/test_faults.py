"""Faults that must leave the store truthful and the service able to come back: the master
killed under load and restarted at once on the same port and store."""
import os
import signal

from conftest import (SLOW, Server, alive, connect, echo, proc_children, read_store, recv_exact,
                      store_by_conn, wait_until)


def test_master_killed_then_restarted_at_once(tmp_path):
    store = str(tmp_path / "store.jsonl")
    old = Server(["-p", "0", "-b", "127.0.0.1", "-s", store, "--grace", "2"]).wait_ready()
    orphans = []
    new = None
    try:
        held = connect(old.port)
        held.sendall(b"before")
        assert recv_exact(held, 6) == b"before"
        orphans = wait_until(lambda: (lambda k: k if len(k) == 2 else None)(
            [p for p in proc_children(old.pid) if alive(p)]), 10, what="store and session")
        os.kill(old.pid, signal.SIGKILL)
        old.proc.wait(10 * SLOW)
        # Every process of the old server notices within a second; the store says so.
        old.wait_line("the master died", timeout=5)
        # Within the grace the orphaned session still echoes.
        held.sendall(b"during")
        assert recv_exact(held, 6) == b"during"
        # A new server on the same port and store comes up at once and serves.
        new = Server(["-p", str(old.port), "-b", "127.0.0.1", "-s", store]).wait_ready()
        new.wait_line("is still writing it")
        assert echo(new.port, b"new") == b"new"
        # After the grace the old session ends as at a shutdown; its store writes its close
        # record and exits, and the new store takes the file over.
        assert recv_exact(held, 1) == b""
        held.close()
        new.wait_line("took over", timeout=15)
        wait_until(lambda: not any(alive(p) for p in orphans), 15, what="the old processes")
        assert new.stop() == 0
    finally:
        for p in orphans:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        old.cleanup()
        if new:
            new.cleanup()
    recs = read_store(store)
    starts = [i for i, r in enumerate(recs) if r["ev"] == "open" and r["conn"] == 1]
    assert len(starts) == 2, recs  # one life of conn numbers per master
    first, second = store_by_conn(recs[:starts[1]]), store_by_conn(recs[starts[1]:])
    assert bytes(first[1]["data"]) == b"beforeduring"
    assert [c["reason"] for c in first[1]["close"]] == ["shutdown"]
    assert first[1]["close"][0]["bytes"] == 12
    assert bytes(second[1]["data"]) == b"new"
    assert [c["reason"] for c in second[1]["close"]] == ["eof"]


def test_a_live_server_still_refuses_a_second_one_after_rotation(tmp_path):
    store = str(tmp_path / "store.jsonl")
    srv = Server(["-p", "0", "-b", "127.0.0.1", "-s", store]).wait_ready()
    try:
        os.rename(store, str(tmp_path / "rotated.jsonl"))
        srv.signal(signal.SIGHUP)
        srv.wait_line("reopened")
        second = Server(["-p", "0", "-b", "127.0.0.1", "-s", store])
        try:
            assert second.proc.wait(10 * SLOW) == 64
            second.wait_line("another mpechod is writing it")
        finally:
            second.cleanup()
        assert srv.stop() == 0
    finally:
        srv.cleanup()
