"""mpecho-store against stores written by the real mpechod.

Random binary sessions go through a real server; then dump gives back what each client
received, check passes, and list agrees with the clients.  Corrupted copies make check fail
with the right message at the right line; gzip-rotated files, several instances, server
restarts, re-serialised JSON, raw stores, bad arguments, and follow across a rotation.
Every subprocess runs under a deadline; follow is killed by pid at the end.
"""
import gzip
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import SAN_MARKERS, SLOW, binary, connect, store_so_far, wait_until

TOOL = binary("mpecho-store")


def tool(*args, stdin=None, timeout=60):
    """Runs mpecho-store; returns (status, stdout bytes, stderr text)."""
    p = subprocess.run([TOOL] + [str(a) for a in args], input=stdin, capture_output=True,
                       timeout=timeout * SLOW)
    err = p.stderr.decode("utf-8", "replace")
    assert not any(m in err for m in SAN_MARKERS), err
    return p.returncode, p.stdout, err


def session(port, data, chunks=1):
    """Sends data in chunks, half-closes, reads the echo to the end.
    Returns (local port, received bytes)."""
    with connect(port) as s:
        def send():
            step = max(1, len(data) // chunks)
            for i in range(0, len(data), step):
                s.sendall(data[i:i + step])
            s.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=send)
        t.start()
        got = b"".join(iter(lambda: s.recv(1 << 20), b""))
        t.join(10 * SLOW)
        return s.getsockname()[1], got


def random_payload(rng):
    """Never empty: mpechod may close a connection that sent nothing before it forks a session
    for it (culling dead connections), and then it is not in the store."""
    kind = rng.randrange(4)
    n = rng.choice([1, 17, 255, 4096, 70000, 1 + rng.randrange(200000)])
    if kind == 0:
        return bytes(range(256)) * (n // 256 + 1)
    if kind == 1:
        return bytes(rng.randrange(32, 127) for _ in range(min(n, 5000))) + b"\n"
    return rng.randbytes(n)


def run_sessions(port, payloads, parallel=4):
    """Runs the sessions, parallel at a time; returns [(local port, sent, received)]."""
    out = [None] * len(payloads)

    def one(i):
        local, got = session(port, payloads[i], chunks=1 + i % 5)
        out[i] = (local, payloads[i], got)

    for start in range(0, len(payloads), parallel):
        ts = [threading.Thread(target=one, args=(i,))
              for i in range(start, min(start + parallel, len(payloads)))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60 * SLOW)
    assert all(o is not None for o in out), "a session did not finish"
    return out


def list_json(*args):
    rc, out, err = tool("list", "--json", *args)
    assert rc == 0, err
    return [json.loads(l) for l in out.decode().splitlines()]


def conn_of(listing, local_port):
    found = [c for c in listing if c["peer"] == f"127.0.0.1:{local_port}"]
    assert len(found) == 1, (local_port, listing)
    return found[0]


@pytest.fixture
def store(start_server):
    """A store of 8 random sessions, the server stopped: (path, [(port, sent, received)])."""
    srv = start_server()
    rng = random.Random(7)
    done = run_sessions(srv.port, [random_payload(rng) for _ in range(8)])
    assert srv.stop() == 0
    return srv.store_path, done


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dump_check_and_list_agree_with_the_clients(start_server, seed):
    srv = start_server()
    rng = random.Random(seed)
    done = run_sessions(srv.port, [random_payload(rng) for _ in range(12)])
    assert srv.stop() == 0
    for _, sent, got in done:
        assert got == sent
    listing = list_json(srv.store_path)
    assert len(listing) == len(done)
    for local, sent, got in done:
        c = conn_of(listing, local)
        assert (c["bytes"], c["reason"], c["life"], c["inst"]) == (len(got), "eof", 1, 1)
        assert c["opened"] <= c["closed"] and c["duration"] >= 0
        rc, out, err = tool("dump", c["id"], srv.store_path)
        assert rc == 0, err
        assert out == got, f"conn {c['id']}: dump gives {len(out)} bytes, client got {len(got)}"
    rc, out, err = tool("check", srv.store_path)
    assert (rc, out) == (0, b""), err
    assert f"{len(done)} connections" in err and "0 violations" in err


def test_dump_several_and_both(store):
    path, done = store
    listing = list_json(path)
    ids = [conn_of(listing, local)["id"] for local, _, _ in done[:3]]
    rc, out, err = tool("dump", *ids, path)
    assert rc == 0, err
    assert out == b"".join(got for _, _, got in done[:3])
    rc, out, err = tool("dump", "--both", ids[0], path)
    assert rc == 0, err
    lines = out.split(b"\n")
    assert lines[0].startswith(f"=== conn {ids[0]} open ".encode())
    assert out.rstrip(b"\n").split(b"\n")[-1].startswith(f"=== conn {ids[0]} close ".encode())
    assert b"reason eof bytes %d" % len(done[0][2]) in out
    rc, out, err = tool("dump", "999", path)
    assert rc == 1 and "no connection 999" in err


def test_from_standard_input_and_reserialised_json(store, tmp_path):
    path, done = store
    raw = open(path, "rb").read()
    local, _, got = done[1]
    cid = conn_of(list_json(path), local)["id"]
    rc, out, err = tool("dump", cid, "-", stdin=raw)
    assert (rc, out) == (0, got), err
    # Another tool's JSON: keys sorted, every non-ASCII character escaped, spaces.
    other = tmp_path / "other.jsonl"
    with open(other, "w") as f:
        for line in raw.decode("utf-8").split("\n")[:-1]:
            f.write(json.dumps(json.loads(line), sort_keys=True, ensure_ascii=True) + "\n")
    rc, out, err = tool("dump", cid, other)
    assert (rc, out) == (0, got), err
    rc, out, err = tool("check", other)
    assert rc == 0, out.decode() + err


def corrupt(path, tmp_path, name, edit):
    lines = open(path, "rb").read().split(b"\n")[:-1]
    lines = edit(lines)
    bad = tmp_path / name
    bad.write_bytes(b"".join(l + b"\n" for l in lines))
    return str(bad)


def line_of(lines, pred):
    return next(i for i, l in enumerate(lines) if pred(json.loads(l)))


def check_fails(path, expect):
    rc, out, err = tool("check", path)
    out = out.decode()
    assert rc == 1, f"check passed ({err})"
    for line_no, text in expect:
        assert any(l.startswith(f"{path}:{line_no}: ") and text in l for l in out.splitlines()), \
            f"no '{path}:{line_no}: ...{text}...' in:\n{out}"
    return out


def test_check_catches_each_corruption(store, tmp_path):
    path, _ = store
    lines = open(path, "rb").read().split(b"\n")[:-1]
    data_i = line_of(lines, lambda r: r["ev"] == "data")
    close_i = line_of(lines, lambda r: r["ev"] == "close")
    close_conn = json.loads(lines[close_i])["conn"]
    open_i = line_of(lines, lambda r: r["ev"] == "open" and r["conn"] == close_conn)

    def cut(ls):
        ls[data_i] = ls[data_i][:len(ls[data_i]) // 2]
        return ls
    check_fails(corrupt(path, tmp_path, "cut.jsonl", cut), [(data_i + 1, "not JSON")])

    def no_close(ls):
        del ls[close_i]
        return ls
    check_fails(corrupt(path, tmp_path, "noclose.jsonl", no_close),
                [(open_i + 1, f"conn {close_conn} opened here was never closed")])

    def count(ls):
        r = json.loads(ls[close_i])
        r["bytes"] += 1
        ls[close_i] = json.dumps(r).encode()
        return ls
    check_fails(corrupt(path, tmp_path, "count.jsonl", count),
                [(close_i + 1, "the close says")])

    # A conn number used twice in one life: an open written again, once right after itself
    # (the connection still open), once at the end (after its close).  Conn 1 again would be a
    # new server life, so the last connection opened is copied.
    top_i = max(range(len(lines)), key=lambda i: json.loads(lines[i]).get("conn", 0))
    top = json.loads(lines[top_i])["conn"]
    top_i = line_of(lines, lambda r: r.get("conn") == top)
    assert top > 1 and json.loads(lines[top_i])["ev"] == "open"

    # The life's stop record stays last: after it, the life is over.
    assert json.loads(lines[-1])["ev"] == "stop"

    def dup(ls):
        return ls[:top_i + 1] + [ls[top_i]] + ls[top_i + 1:-1] + [ls[top_i], ls[-1]]
    check_fails(corrupt(path, tmp_path, "dup.jsonl", dup),
                [(top_i + 2, f"conn {top} opened again in the same server life "
                  f"(first open at {tmp_path}/dup.jsonl:{top_i + 1})"),
                 (len(lines) + 1, f"conn {top} opened after its close")])

    def tail(ls):
        ls[-1] = ls[-1][:-5]
        return ls
    bad = corrupt(path, tmp_path, "tail.jsonl", tail)
    with open(bad, "r+b") as f:  # and no newline at the end
        f.truncate(os.path.getsize(bad) - 1)
    check_fails(bad, [(len(lines), "cut short")])
    # The others read past a bad line with a warning.
    rc, out, err = tool("list", corrupt(path, tmp_path, "cut2.jsonl", cut))
    assert rc == 0 and f"cut2.jsonl:{data_i + 1}: not JSON" in err and "(skipped)" in err


def test_gaps_are_reported_not_violations(store, tmp_path):
    path, _ = store
    lines = open(path, "rb").read().split(b"\n")[:-1]
    data_i = line_of(lines, lambda r: r["ev"] == "data")
    conn = json.loads(lines[data_i])["conn"]
    rec = json.loads(lines[data_i])
    # The server's own gap records carry their life, as every line of format 2 does.
    gap = json.dumps({"ts": rec["ts"], "life": rec["life"], "ev": "gap", "dropped_bytes": 123,
                      "dropped_records": 1, "conns": [conn]}).encode()
    # The data record was dropped and the gap says so; it comes after the close (and before the
    # life's stop record, the store's last line).
    bad = corrupt(path, tmp_path, "gap.jsonl",
                  lambda ls: ls[:data_i] + ls[data_i + 1:-1] + [gap, ls[-1]])
    rc, out, err = tool("check", bad)
    out = out.decode()
    assert rc == 0, out + err
    assert f"{bad}:{len(lines) - 1}: gap: 123 bytes in 1 records were dropped; conns {conn}" in out
    assert f"gap: conn {conn}: the close says" in out and "1 gaps" in err


def test_a_real_gap_from_a_full_file(start_server):
    """The store hits a file size limit and drops data; after mv + HUP the new file takes writes
    again and begins with the gap record.  check reports the gap and the connections it names
    that lost bytes, and passes."""
    limit = 64 * 1024

    def small_files():
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    srv = start_server(preexec_fn=small_files)
    rng = random.Random(5)
    run_sessions(srv.port, [rng.randbytes(100 * 1024) for _ in range(3)], parallel=1)
    srv.wait_line("cannot write")
    os.rename(srv.store_path, srv.store_path + ".1")
    srv.signal(signal.SIGHUP)
    srv.wait_line("reopened")
    session(srv.port, b"after the rotation")
    assert srv.stop() == 0
    files = [srv.store_path + ".1", srv.store_path]
    rc, out, err = tool("check", *files)
    lines = out.decode().splitlines()
    assert rc == 0, out.decode() + err
    assert lines and all(": gap: " in l for l in lines), lines
    assert any("bytes in" in l and "records were dropped" in l for l in lines), lines
    assert "0 violations" in err
    listing = list_json(*files)
    assert [c["reason"] for c in listing] == ["eof"] * 4


def test_gzip_rotated_files_read_in_order(start_server, tmp_path):
    srv = start_server()
    rng = random.Random(11)
    first = run_sessions(srv.port, [rng.randbytes(3000) for _ in range(3)])
    os.rename(srv.store_path, srv.store_path + ".1")
    srv.signal(signal.SIGHUP)
    srv.wait_line("reopened")
    second = run_sessions(srv.port, [rng.randbytes(3000) for _ in range(3)])
    assert srv.stop() == 0
    with open(srv.store_path + ".1", "rb") as f, gzip.open(srv.store_path + ".1.gz", "wb") as g:
        g.write(f.read())
    os.unlink(srv.store_path + ".1")
    # The live file named first: still read after the rotated one.
    files = [srv.store_path, srv.store_path + ".1.gz"]
    listing = list_json(*files)
    # Listed as they close: the rotated file's three first.
    assert sorted(c["conn"] for c in listing[:3]) == [1, 2, 3]
    assert sorted(c["conn"] for c in listing[3:]) == [4, 5, 6]
    for local, _, got in first + second:
        rc, out, err = tool("dump", conn_of(listing, local)["id"], *files)
        assert (rc, out) == (0, got), err
    rc, out, err = tool("check", *files)
    assert (rc, out) == (0, b""), err
    # The live file alone holds whole connections too.
    rc, out, err = tool("check", srv.store_path)
    assert (rc, out) == (0, b""), err
    # A gzip file cut short (still being compressed, a copy interrupted) is said, and fails.
    cut = str(tmp_path / "cut.jsonl.1.gz")
    with open(srv.store_path + ".1.gz", "rb") as f, open(cut, "wb") as g:
        g.write(f.read()[:-100])
    rc, out, err = tool("check", cut)
    assert rc == 1 and "the gzip data ends early" in out.decode(), out.decode() + err


def test_check_of_the_live_file_alone_after_a_rotation(start_server):
    """A connection open across mv + HUP has its open in the rotated file: checking the live
    file alone counts it as begun before the files given, and is not a violation."""
    srv = start_server()
    with connect(srv.port) as s:
        s.sendall(b"before|")
        assert s.recv(100) == b"before|"
        wait_until(lambda: b"before|" in open(srv.store_path, "rb").read(), 10,
                   what="the first chunk in the store")
        os.rename(srv.store_path, srv.store_path + ".1")
        srv.signal(signal.SIGHUP)
        srv.wait_line("reopened")
        s.sendall(b"after")
        s.shutdown(socket.SHUT_WR)
        assert b"".join(iter(lambda: s.recv(100), b"")) == b"after"
    session(srv.port, b"another")
    assert srv.stop() == 0
    rc, out, err = tool("check", srv.store_path)
    assert (rc, out) == (0, b""), out.decode() + err
    assert "1 connections began in a file before the first given" in err
    rc, out, err = tool("check", srv.store_path, srv.store_path + ".1")
    assert (rc, out) == (0, b""), out.decode() + err
    assert "began" not in err
    rc, out, err = tool("dump", "1", srv.store_path + ".1", srv.store_path)
    assert (rc, out) == (0, b"before|after")


def test_two_instances_merged_by_time(start_server):
    a, b = start_server(), start_server()
    sent = {}
    for i in range(6):
        srv = (a, b)[i % 2]
        local, got = session(srv.port, b"%d" % i * 100)
        sent[(i % 2 + 1, local)] = got
    assert a.stop() == 0 and b.stop() == 0
    listing = list_json(a.store_path, b.store_path)
    assert sorted(c["id"] for c in listing) == ["1:1", "1:2", "1:3", "2:1", "2:2", "2:3"]
    for (inst, local), got in sent.items():
        c = conn_of([c for c in listing if c["inst"] == inst], local)
        rc, out, err = tool("dump", c["id"], a.store_path, b.store_path)
        assert (rc, out) == (0, got), err
    rc, out, err = tool("check", a.store_path, b.store_path)
    assert (rc, out) == (0, b""), err
    rc, out, err = tool("stats", a.store_path, b.store_path)
    assert rc == 0 and out.decode().startswith("connections 6, bytes 600\n"), out


def test_a_restart_is_a_new_server_life(start_server, tmp_path):
    path = str(tmp_path / "shared.jsonl")
    for _ in range(2):
        srv = start_server(store=path)
        session(srv.port, b"x" * 10)
        session(srv.port, b"y" * 20)
        assert srv.stop() == 0
    ids = [c["id"] for c in list_json(path)]
    assert ids == ["1", "2", "2.1", "2.2"], ids
    rc, out, err = tool("check", path)
    assert (rc, out) == (0, b""), err
    assert "2 server lives" in err
    rc, out, err = tool("dump", "2.2", path)
    assert (rc, out) == (0, b"y" * 20)


def test_list_filters(store):
    path, done = store
    listing = list_json(path)
    assert len(list_json("--peer", "127.0.0.0/8", path)) == len(done)
    assert list_json("--peer", "10.0.0.0/8", path) == []
    assert list_json("--peer", "::1", path) == []
    assert [c["id"] for c in list_json("--conn", "3", "--conn", "5", path)] == ["3", "5"]
    assert list_json("--reason", "reset", path) == []
    assert len(list_json("--since", "2000-01-01", "--until", "now", path)) == len(done)
    assert list_json("--until", "2000-01-01", path) == []
    rc, out, err = tool("list", path)
    assert rc == 0 and out.decode().splitlines()[0].split()[:3] == ["CONN", "PEER", "OPENED"]
    assert len(out.decode().splitlines()) == len(listing) + 1


def test_stats(store):
    path, done = store
    rc, out, err = tool("stats", "--interval", "1h", "--top", "1", path)
    lines = out.decode().splitlines()
    assert rc == 0, err
    # One hour (or two, across an hour's end), every connection in them, one peer address.
    heads = [l for l in lines if not l.startswith("  ")]
    assert 1 <= len(heads) <= 2, lines
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:00:00\.000000Z  connections ", h) for h in heads)
    assert sum(int(h.split("connections ")[1].split(",")[0]) for h in heads) == len(done)
    assert sum(int(h.split("bytes ")[1]) for h in heads) == sum(len(g) for _, _, g in done)
    assert any(l == f"  top peers: 127.0.0.1 {len(done)}" for l in lines) or len(heads) == 2
    rc, out, err = tool("stats", "--reason", "eof", "--peer", "10.0.0.0/8", path)
    assert (rc, out.decode()) == (0, "connections 0, bytes 0\n  reasons:\n  top peers:\n"), err


def test_raw_store_refused(start_server):
    srv = start_server("--store-format", "raw")
    session(srv.port, b'{"not":"a record"}\nhello\n')
    assert srv.stop() == 0
    for cmd in ("list", "check"):
        rc, out, err = tool(cmd, srv.store_path)
        assert rc == 65 and out == b"", (cmd, rc, err)
        assert len(err.splitlines()) == 1 and "raw store" in err, err


@pytest.mark.parametrize("args,needle", [
    ((), "no command"),
    (("frobnicate", "x"), "unknown command"),
    (("list",), "no store file"),
    (("list", "--bogus", "x"), "unknown option"),
    (("dump", "x.jsonl"), "needs a connection"),
    (("dump", "1", "2", "-"), "standard input can be read once"),
    (("list", "--peer", "300.1.1.1", "x"), "is not an IPv4 or IPv6 address"),
    (("list", "--peer", "10.1.2.3/8", "x"), "has address bits set past its prefix"),
    (("list", "--since", "tomorrow", "x"), "not a time"),
    (("list", "--since", "now", "--until", "-1h", "x"), "--since is not before"),
    (("stats", "--interval", "1y", "x"), "not a duration"),
    (("follow", "a", "b"), "exactly one file"),
    (("follow", "--poll", "1", "a"), "--poll"),
    (("check", "--json", "x"), "not an option of check"),
])
def test_bad_arguments(args, needle):
    rc, out, err = tool(*args)
    assert rc == 64 and out == b"", (rc, err)
    assert len(err.splitlines()) == 1 and needle in err, err


def test_missing_file(tmp_path):
    rc, out, err = tool("list", tmp_path / "nope.jsonl")
    assert rc == 66 and "nope.jsonl" in err and len(err.splitlines()) == 1


class Follow:
    """mpecho-store follow as a subprocess, its output collected by a thread."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([TOOL, "follow"] + [str(a) for a in args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = bytearray()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            b = self.proc.stdout.read1(1 << 16)
            if not b:
                return
            with self.lock:
                self.out += b

    def output(self):
        with self.lock:
            return bytes(self.out)

    def records(self):
        return [json.loads(l) for l in self.output().split(b"\n")[:-1]]

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        rc = self.proc.wait(10 * SLOW)
        self.reader.join(10 * SLOW)
        return rc

    def cleanup(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def follow():
    started = []

    def start(*args):
        f = Follow(*args)
        started.append(f)
        return f

    yield start
    for f in started:
        f.cleanup()


def following_one_session(start_server, follow):
    """A server that has served one session ("before"), and follow --from-start showing it."""
    srv = start_server()
    session(srv.port, b"before")
    f = follow("--from-start", "--poll", "20", srv.store_path)
    wait_until(lambda: any(r["ev"] == "close" and r["conn"] == 1 for r in f.records()), 10,
               what="the first session in follow's output")
    return srv, f


def follow_saw_the_rotation(srv, f):
    """follow printed the sessions before, during and after a rotation, in order, once each."""
    wait_until(lambda: any(r["ev"] == "close" and r["conn"] == 3 for r in f.records()), 10,
               what="the session after the rotation in follow's output")
    assert f.stop() == 0
    data = [(r["conn"], r["data"]) for r in f.records() if r["ev"] == "data"]
    assert data == [(1, "before"), (2, "between"), (3, "after")]
    assert srv.stop() == 0


def test_follow_across_mv_and_hup(start_server, follow):
    srv, f = following_one_session(start_server, follow)
    os.rename(srv.store_path, srv.store_path + ".1")
    session(srv.port, b"between")  # written to the old file, after the mv
    srv.signal(signal.SIGHUP)
    srv.wait_line("reopened")
    session(srv.port, b"after")
    follow_saw_the_rotation(srv, f)


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
def test_follow_reads_the_old_file_to_its_end_after_seeing_the_new_one(start_server, follow,
                                                                      tmp_path):
    """The hard moment of a rotation: follow has read the old file to its end and is about to
    look at the path (stopped by gdb in stat(2)); meanwhile mpechod writes one more session
    to the old file and opens the new one.  What went to the old file after follow's last
    read must still come out, before the new file's records."""
    srv, f = following_one_session(start_server, follow)
    go = tmp_path / "go"
    # Stopped at its next look at the path; released when the test has made the rotation.
    g = subprocess.Popen([shutil.which("gdb"), "-nx", "-batch", "-p", str(f.proc.pid),
                          "-ex", "break stat", "-ex", "continue",
                          "-ex", f"shell i=0; while [ ! -e {go} ] && [ $i -lt 3000 ]; "
                                 "do sleep 0.02; i=$((i+1)); done",
                          "-ex", "detach"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(g.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any(re.match(r"Breakpoint 1(\.\d+)?, ", l) for l in lines), 30 * SLOW,
                   what="follow stopped in stat(2)")
        os.rename(srv.store_path, srv.store_path + ".1")
        session(srv.port, b"between")
        wait_until(lambda: any(r["ev"] == "close" and r.get("conn") == 2
                               for r in store_so_far(srv.store_path + ".1")), 10,
                   what="the second session's close in the old file")
        srv.signal(signal.SIGHUP)
        srv.wait_line("reopened")
        session(srv.port, b"after")
        go.touch()
        g.wait(30 * SLOW)
    finally:
        if g.poll() is None:
            g.kill()
            g.wait()
    follow_saw_the_rotation(srv, f)


def syscalls_read(pid):
    with open(f"/proc/{pid}/io") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("syscr:"))


def test_follow_stays_on_the_old_file_while_the_new_one_is_empty(start_server, follow):
    """The other hard moment of a rotation: the new file is there before the old one has its
    last lines.  The master creates it at the SIGHUP (logrotate's "create" does the same before
    it), while the store, stopped here, has yet to drain what a session wrote before the signal
    into the old file.  follow polls the empty new file many times meanwhile."""
    srv, f = following_one_session(start_server, follow)
    store = wait_until(srv.store_pid, 10, what="the store")
    os.kill(store, signal.SIGSTOP)
    try:
        session(srv.port, b"between")  # in the pipe, not yet in any file
        os.rename(srv.store_path, srv.store_path + ".1")
        srv.signal(signal.SIGHUP)
        wait_until(lambda: os.path.exists(srv.store_path), 10, what="the new file")
        # follow looks at the empty new file a few times (each look is a read of the old one).
        seen = syscalls_read(f.proc.pid)
        wait_until(lambda: syscalls_read(f.proc.pid) >= seen + 10, 10,
                   what="follow to poll the new file")
    finally:
        os.kill(store, signal.SIGCONT)
    srv.wait_line("reopened")
    session(srv.port, b"after")
    follow_saw_the_rotation(srv, f)


def test_follow_one_connection_ends_at_its_close(start_server, follow):
    srv = start_server()
    with connect(srv.port) as s:
        s.sendall(b"first part|")
        got = b""
        while len(got) < 11:
            got += s.recv(100)
        f = follow("--from-start", "--poll", "20", "1", srv.store_path)
        wait_until(lambda: f.output() == b"first part|", 10, what="the first part")
        s.sendall(bytes(range(256)))
        s.shutdown(socket.SHUT_WR)
        while s.recv(1 << 16):
            pass
    f.proc.wait(10 * SLOW)
    assert f.proc.returncode == 0
    f.reader.join(10 * SLOW)
    assert f.output() == b"first part|" + bytes(range(256))
    assert srv.stop() == 0


def test_follow_starts_at_the_end_by_default(start_server, follow):
    srv = start_server()
    session(srv.port, b"old")
    wait_until(lambda: b'"ev":"close"' in open(srv.store_path, "rb").read(), 10,
               what="the old session's close in the store")
    f = follow("--poll", "20", srv.store_path)
    # Nothing of the old session; a new one is printed.  Sessions go on until follow, which
    # may still be starting, shows one.
    deadline = time.monotonic() + 10 * SLOW
    while not f.records():
        assert time.monotonic() < deadline, "follow printed nothing"
        session(srv.port, b"new")
        time.sleep(0.05)
    assert f.stop() == 0
    assert all(r["conn"] != 1 for r in f.records())
    assert srv.stop() == 0


LIFE_A, LIFE_B = "a" * 32, "b" * 32


def line2(life, ev, conn=None, **fields):
    """One format 2 line as mpechod writes it."""
    rec = {"ts": "2026-12-07T10:00:00.000001Z", "life": life}
    if conn is not None:
        rec["conn"] = conn
    rec["ev"] = ev
    rec.update(fields)
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n"


def start2(life):
    return line2(life, "start", format=2, version="0.1.0", host="h", pid=1, fsync="everysec",
                 store_full="drop", inetd=True)


def interleaved_lives():
    """Two --inetd lives writing one file at once, each with its conn 1, lines interleaved."""
    return "".join([
        start2(LIFE_A), start2(LIFE_B),
        line2(LIFE_A, "open", 1, pid=10, peer="127.0.0.1:1000"),
        line2(LIFE_B, "open", 1, pid=11, peer="127.0.0.1:1001"),
        line2(LIFE_A, "data", 1, data="a1|"),
        line2(LIFE_B, "data", 1, data="b1|"),
        line2(LIFE_A, "data", 1, data="a2"),
        line2(LIFE_A, "close", 1, reason="eof", bytes=5),
        line2(LIFE_A, "stop"),
        line2(LIFE_B, "data", 1, data="b2"),
        line2(LIFE_B, "close", 1, reason="eof", bytes=5),
        line2(LIFE_B, "stop"),
    ])


def test_check_keeps_interleaved_lives_apart(tmp_path):
    """check's per-life state: one life's close and stop say nothing of another's conn 1, opened
    after that close, its lines among and after the first life's; a real fault in one of them
    is still found."""
    lines = [start2(LIFE_A), start2(LIFE_B),
             line2(LIFE_A, "open", 1, pid=10, peer="127.0.0.1:1000"),
             line2(LIFE_A, "data", 1, data="a1"),
             line2(LIFE_A, "close", 1, reason="eof", bytes=2),
             line2(LIFE_B, "open", 1, pid=11, peer="127.0.0.1:1001"),
             line2(LIFE_B, "data", 1, data="b1"),
             line2(LIFE_A, "stop"),
             line2(LIFE_B, "data", 1, data="b2"),
             line2(LIFE_B, "close", 1, reason="eof", bytes=4),
             line2(LIFE_B, "stop")]
    path = tmp_path / "inetd.jsonl"
    path.write_text("".join(lines))
    rc, out, err = tool("check", path)
    assert rc == 0 and out == b"" and "2 connections, 2 server lives: 0 violations" in err, \
        out.decode() + err
    lines.insert(10, line2(LIFE_B, "data", 1, data="late"))
    path.write_text("".join(lines))
    rc, out, err = tool("check", path)
    assert rc == 1 and out.decode().splitlines() == [
        f"{path}:11: data for conn 1 after its close"], out.decode() + err


def test_check_finds_a_datagram_cut_short(tmp_path):
    """A datagram in parts: its parts one after the other, 1 to N; a missing part is found."""
    parts = [line2(LIFE_A, "datagram", peer="127.0.0.1:9", part=i, parts=3, data=f"p{i}")
             for i in (1, 2, 3)]
    path = tmp_path / "dg.jsonl"
    path.write_text(start2(LIFE_A) + "".join(parts) + line2(LIFE_A, "stop"))
    rc, out, err = tool("check", path)
    assert rc == 0 and "1 datagrams" in err, out.decode() + err
    path.write_text(start2(LIFE_A) + parts[0] + parts[2] + line2(LIFE_A, "stop"))
    rc, out, err = tool("check", path)
    assert rc == 1 and "ends after part 1" in out.decode(), out.decode() + err


@pytest.mark.parametrize("conn,want", [("1", b"a1|a2"), ("2.1", b"b1|b2"), ("1.1", b"a1|a2")])
def test_follow_a_connection_in_one_life(tmp_path, follow, conn, want):
    """follow CONN keeps to the life the connection first turns up in (L.N names the life, in
    the order follow sees them): the other life's conn 1 is never mixed in, and it ends at the
    close in that life."""
    path = tmp_path / "inetd.jsonl"
    path.write_text(interleaved_lives())
    f = follow("--from-start", "--poll", "20", conn, path)
    assert f.proc.wait(10 * SLOW) == 0
    f.reader.join(10 * SLOW)
    assert f.output() == want


def test_follow_a_connection_of_a_later_life(start_server, follow):
    """A restart on the same file: follow 2.1, started before the second life exists, waits for
    it and gives only its conn 1's bytes."""
    srv = start_server()
    session(srv.port, b"first life")
    f = follow("--from-start", "--poll", "20", "2.1", srv.store_path)
    assert srv.stop() == 0
    srv2 = start_server(store=srv.store_path)
    session(srv2.port, b"second life")
    f.proc.wait(10 * SLOW)
    f.reader.join(10 * SLOW)
    assert f.proc.returncode == 0 and f.output() == b"second life"
    assert srv2.stop() == 0
