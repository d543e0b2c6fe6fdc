"""Store format 2, as any JSON tool reads it: text as text (Hangul, emoji, combining marks), other
bytes as base64, a UTF-8 character cut between two reads kept whole, every line with its server
life; restarts on one file and concurrent --inetd processes as lives of their own; format 1 files
still read by mpecho-store; and the jq recipes of mpecho-store(1), run as printed there."""
import json
import os
import random
import re
import shutil
import socket
import subprocess
import threading

import pytest

from conftest import (ROOT, SLOW, Process, binary, connect, echo, read_store, record_bytes,
                      recv_exact, store_by_conn, store_datagrams)

TOOL = binary("mpecho-store")
MAN = os.path.join(ROOT, "man", "mpecho-store.1")
# A data line is at most the base64 of a whole frame (and a carry) plus its fields.
LINE_MAX = 5540
TEXTS = [
    "안녕하세요 echo\n".encode(),
    "😀🇰🇷 family: 👨‍👩‍👧 done\n".encode(),
    "e\u0301 a\u0308 \u1100\u1161\u11a8 combining\n".encode(),
    "tab\tquote\"backslash\\ del\x7f nel\u0085 ls\u2028 ps\u2029\n".encode(),
]

# The recipes of mpecho-store(1), with LIFE and CONN filled in.  Text only, jq alone; any
# bytes, jq and base64(1).
JQ_TEXT = ("jq -j --arg life LIFE --argjson conn CONN 'select(.life == $life and .conn == $conn "
           "and .ev == \"data\") | .data // (.b64 | @base64d)' store.jsonl")
JQ_BYTES = ("jq -r --arg life LIFE --argjson conn CONN 'select(.life == $life and .conn == $conn "
            "and .ev == \"data\") | .b64 // (.data | @base64)' store.jsonl | base64 -d")
JQ_CONNS = ("jq -r 'select(.ev == \"open\") | \"\\(.life) \\(.conn) \\(.peer)\"' store.jsonl")


def tool(*args):
    p = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, timeout=60 * SLOW)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def lines_of(path):
    raw = open(path, "rb").read()
    assert raw.endswith(b"\n")
    return raw.split(b"\n")[:-1]


def recipe(cmd, store, life, conn):
    """Runs a man page recipe on store for (life, conn); returns its stdout bytes."""
    cmd = cmd.replace("store.jsonl", str(store)).replace("LIFE", life).replace("CONN", str(conn))
    p = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=60 * SLOW)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout


def opens_by_peer(recs):
    return {r["peer"]: r for r in recs if r["ev"] == "open"}


def test_the_recipes_are_the_man_pages():
    man = open(MAN).read().replace("\\-", "-").replace("\\e", "\\")
    for r in (JQ_TEXT, JQ_BYTES, JQ_CONNS):
        assert r in man, f"mpecho-store(1) does not show: {r}"


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_text_in_several_scripts_is_text_for_json_and_jq(start_server):
    srv = start_server()
    ports = []
    for t in TEXTS:
        with connect(srv.port) as s:
            ports.append(s.getsockname()[1])
            s.sendall(t)
            assert recv_exact(s, len(t)) == t
    assert srv.stop() == 0
    recs = read_store(srv.store_path)
    opens = opens_by_peer(recs)
    for t, port in zip(TEXTS, ports):
        o = opens[f"127.0.0.1:{port}"]
        data = [r for r in recs if r.get("conn") == o["conn"] and r["ev"] == "data"]
        assert [r["data"] for r in data] == [t.decode()], data
        assert recipe(JQ_TEXT, srv.store_path, o["life"], o["conn"]) == t
        assert recipe(JQ_BYTES, srv.store_path, o["life"], o["conn"]) == t
    conns = recipe(JQ_CONNS, srv.store_path, "", 0).decode().splitlines()
    assert sorted(conns) == sorted(f"{opens[p]['life']} {opens[p]['conn']} {p}" for p in opens)


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_binary_is_base64_and_lines_stay_bounded(start_server):
    srv = start_server()
    rng = random.Random(3)
    payloads = [rng.randbytes(200 * 1024), bytes(range(256)) * 64, b"\x01" * 5000,
                b"\n" * 3000 + b"text"]
    for p in payloads:
        assert echo(srv.port, p) == p
    assert srv.stop() == 0
    lines = lines_of(srv.store_path)
    assert max(len(l) + 1 for l in lines) <= LINE_MAX
    recs = [json.loads(l) for l in lines]
    conns = store_by_conn(recs)
    stored = [bytes(c["data"]) for c in conns.values() if c["data"]]
    assert sorted(stored) == sorted(payloads)
    for r in recs:
        if r["ev"] == "data":
            assert ("data" in r) != ("b64" in r), r
    # Random bytes and control bytes are base64; the random stream's lines are at most 4/3 of
    # its bytes and their fields.
    for n, c in conns.items():
        if bytes(c["data"]) == payloads[0]:
            size = sum(len(l) + 1 for l in lines if json.loads(l).get("conn") == n
                       and json.loads(l)["ev"] == "data")
            assert size <= 1.4 * len(payloads[0]), size
            life = c["open"]["life"]
            assert recipe(JQ_BYTES, srv.store_path, life, n) == payloads[0]


def test_utf8_split_across_reads_stays_text(start_server):
    """One character's bytes in two writes, the second sent only once the echo of the first is
    back (so the session read them apart): the store keeps the cut bytes for the next record."""
    srv = start_server()
    han, emoji = "한".encode(), "😀".encode()
    parts = [b"ab" + han[:1], han[1:] + b"cd" + emoji[:2], emoji[2:3], emoji[3:] + b"\n"]
    with connect(srv.port) as s:
        for p in parts:
            s.sendall(p)
            assert recv_exact(s, len(p)) == p
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1) == b""
    # A character whose end never comes is written, as base64, before the close.
    with connect(srv.port) as s:
        s.sendall(b"x" + emoji[:3])
        assert recv_exact(s, 4) == b"x" + emoji[:3]
    assert srv.stop() == 0
    recs = read_store(srv.store_path)
    conns = store_by_conn(recs)
    assert bytes(conns[1]["data"]) == b"".join(parts)
    data1 = [r for r in recs if r.get("conn") == 1 and r["ev"] == "data"]
    assert all("data" in r for r in data1), data1
    assert "".join(r["data"] for r in data1) == "ab한cd😀\n"
    assert bytes(conns[2]["data"]) == b"x" + emoji[:3]
    tail = [r["ev"] for r in recs if r.get("conn") == 2]
    assert tail[-2:] == ["data", "close"] and "b64" in [r for r in recs
                                                        if r.get("conn") == 2][-2]
    rc, out, err = tool("check", srv.store_path)
    assert rc == 0, out.decode() + err
    rc, out, err = tool("dump", "1", srv.store_path)
    assert (rc, out) == (0, b"".join(parts)), err


def test_datagrams_text_and_binary(start_server):
    srv = start_server("--udp", "--udp-per-source", "0")
    srv.wait_line("serving UDP on")
    sent = ["한국어 datagram".encode(), os.urandom(3000), os.urandom(65507)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(10 * SLOW)
        for d in sent:
            u.sendto(d, ("127.0.0.1", srv.port))
            assert u.recv(65535) == d
    assert srv.stop() == 0
    recs = [r for r in read_store(srv.store_path) if r["ev"] == "datagram"]
    assert [d for _, d, _ in store_datagrams(recs)] == sent
    assert recs[0]["data"] == "한국어 datagram" and "b64" in recs[1]
    assert [r.get("part") for r in recs[2:]] == list(range(1, 17))


def test_every_line_says_its_life_and_a_restart_is_a_new_one(start_server, tmp_path):
    path = str(tmp_path / "same.jsonl")
    got = []
    for text in (b"first life\n", "두 번째\n".encode()):
        srv = start_server(store=path)
        assert echo(srv.port, text) == text
        assert srv.stop() == 0
        got.append((srv.pid, text))
    recs = read_store(path)
    starts = [r for r in recs if r["ev"] == "start"]
    assert [r["pid"] for r in starts] == [p for p, _ in got]
    assert len({r["life"] for r in starts}) == 2
    for s in starts:
        assert re.fullmatch(r"[0-9a-f]{32}", s["life"]) and s["format"] == 2
        assert s["host"] == socket.gethostname() and s["version"] and not s["inetd"]
        assert s["fsync"] == "everysec" and s["store_full"] == "drop"
    assert [r["ev"] for r in recs].count("stop") == 2
    assert all("life" in r for r in recs)
    # Each life's lines lie between its start and its stop.
    for s in starts:
        mine = [i for i, r in enumerate(recs) if r["life"] == s["life"]]
        assert recs[mine[0]]["ev"] == "start" and recs[mine[-1]]["ev"] == "stop"
    rc, out, err = tool("check", path)
    assert rc == 0 and "2 server lives" in err, out.decode() + err
    rc, out, err = tool("list", "--json", path)
    listing = [json.loads(l) for l in out.decode().splitlines()]
    assert [(c["life"], c["conn"]) for c in listing] == [(1, 1), (2, 1)]
    for c, (_, text) in zip(listing, got):
        assert tool("dump", c["id"], path)[1] == text


def test_concurrent_inetd_processes_are_lives_of_their_own(tmp_path):
    """--inetd processes started at once on one store: each a life with its start and stop, their
    lines interleaved; mpecho-store keeps them apart by life id."""
    store = tmp_path / "inetd.jsonl"
    n = 6
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(n)
    clients, procs = [], []
    try:
        for i in range(n):
            c = socket.create_connection(lsock.getsockname(), timeout=10 * SLOW)
            a, _ = lsock.accept()
            procs.append(Process([binary("mpechod"), "--inetd", "-s", store], stdin=a,
                                 stdout=a))
            a.close()
            clients.append(c)
        texts = [f"inetd {i}: 안녕 {'x' * i}\n".encode() for i in range(n)]

        def run(c, t):
            c.sendall(t[:5])
            assert recv_exact(c, 5) == t[:5]
            c.sendall(t[5:])
            assert recv_exact(c, len(t) - 5) == t[5:]
            c.shutdown(socket.SHUT_WR)
            assert c.recv(1) == b""

        ts = [threading.Thread(target=run, args=(c, t)) for c, t in zip(clients, texts)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30 * SLOW)
        for p in procs:
            assert p.finish(30) == 0, p.output()
    finally:
        for c in clients:
            c.close()
        for p in procs:
            p.cleanup()
        lsock.close()
    recs = read_store(str(store))
    starts = [r for r in recs if r["ev"] == "start"]
    assert len(starts) == n and len({r["life"] for r in starts}) == n
    assert all(r["inetd"] for r in starts)
    assert sorted(r["life"] for r in recs if r["ev"] == "stop") == sorted(r["life"]
                                                                         for r in starts)
    by_life = {}
    for r in recs:
        if r["ev"] == "data":
            by_life[r["life"]] = by_life.get(r["life"], b"") + record_bytes(r)
    assert sorted(by_life.values()) == sorted(texts)
    # Each process numbers its one connection 1: the life id tells them apart.
    assert {r["conn"] for r in recs if "conn" in r} == {1}
    rc, out, err = tool("check", store)
    assert rc == 0 and f"{n} server lives" in err, out.decode() + err
    rc, out, err = tool("list", "--json", store)
    listing = [json.loads(l) for l in out.decode().splitlines()]
    assert len(listing) == n and len({c["life"] for c in listing}) == n
    dumped = sorted(tool("dump", c["id"], store)[1] for c in listing)
    assert dumped == sorted(texts)


FORMAT1 = [
    {"ts": "2026-11-21T10:00:00.000001Z", "conn": 1, "pid": 10, "ev": "open",
     "peer": "127.0.0.1:1000"},
    {"ts": "2026-11-21T10:00:00.000002Z", "conn": 1, "ev": "data",
     "data": "\u00ec\u0095\u0088 \u0000\u00ff\n"},
    {"ts": "2026-11-21T10:00:00.000003Z", "conn": 1, "ev": "close", "reason": "eof",
     "bytes": 8},
    {"ts": "2026-11-21T10:00:00.000004Z", "conn": 2, "pid": 11, "ev": "open",
     "peer": "127.0.0.1:1001"},
    {"ts": "2026-11-21T10:00:00.000005Z", "conn": 2, "ev": "data", "data": "never closed"},
]


def write_format1(path, recs):
    # As mpechod wrote format 1: its own escapes, bytes 0x80 and up as two UTF-8 bytes.
    with open(path, "wb") as f:
        for r in recs:
            f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")


def test_a_format_1_file_and_a_rotation_to_format_2(start_server, tmp_path):
    path = str(tmp_path / "old.jsonl")
    write_format1(path + ".1", FORMAT1)
    rc, out, err = tool("dump", "1", path + ".1")
    assert (rc, out) == (0, "안".encode() + b" \x00\xff\n"), err
    rc, out, err = tool("list", "--json", path + ".1")
    listing = [json.loads(l) for l in out.decode().splitlines()]  # valid JSON throughout
    assert listing[-1]["conn"] == 2 and listing[-1]["closed"] is None, listing
    assert listing[-1]["reason"] is None
    # The live file, after the rotation, in format 2: one instance, two lives.
    srv = start_server(store=path)
    text = "새 파일\n".encode()
    assert echo(srv.port, text) == text
    assert srv.stop() == 0
    rc, out, err = tool("list", "--json", path, path + ".1")
    listing = [json.loads(l) for l in out.decode().splitlines()]
    assert [(c["life"], c["conn"]) for c in listing] == [(1, 1), (1, 2), (2, 1)], listing
    assert tool("dump", "2.1", path, path + ".1")[1] == text
    assert tool("dump", "1.1", path, path + ".1")[1] == "안".encode() + b" \x00\xff\n"
