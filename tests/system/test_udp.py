"""UDP echo (--udp): the datagram process echoes, records, drops what could loop or flood, and
is supervised like the store."""
import os
import signal
import socket
import subprocess

import pytest

from conftest import (SLOW, SPAWNER, Server, alive, binary, proc_children, proc_comm, read_store,
                      record_bytes, store_datagrams, wait_until)


def udp_socket(family=socket.AF_INET, port=0):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", port))
    s.settimeout(5 * SLOW)
    return s


def udp_echo(port, data, family=socket.AF_INET):
    with udp_socket(family) as s:
        s.sendto(data, ("127.0.0.1" if family == socket.AF_INET else "::1", port))
        got, _ = s.recvfrom(70000)
        return got, s.getsockname()[1]


def replies(sock, wait=0.5):
    """Datagrams that arrive on sock until none comes for wait seconds."""
    out = []
    sock.settimeout(wait * SLOW)
    try:
        while True:
            out.append(sock.recvfrom(70000)[0])
    except socket.timeout:
        return out


def udp_stats(srv):
    """The stats line's UDP figures."""
    st = srv.stats()[0]
    return {"udp echoed": st["udp echoed"], "source port": st["udp dropped for source port"],
            "source rate": st["over source rate"], "global rate": st["over global rate"],
            "store": st["for store"]}


@pytest.fixture
def udp_server(start_server):
    """start_server with --udp, ready once its UDP socket is announced."""
    def start(*args):
        srv = start_server("--udp", *args)
        srv.wait_line("serving UDP on")
        return srv
    return start


def test_echo_of_every_size_is_recorded(udp_server):
    """Every size up to the largest UDP payload, each line of the store within 8 KB: a datagram
    over 4 KiB is written in parts, which give back its bytes in file order."""
    srv = udp_server("--udp-per-source", "0")
    assert srv.wait_line("serving UDP on 127.0.0.1:")[0].endswith(f":{srv.port}")
    sizes = [0, 1, 100, 4000, 4096, 4097, 4100, 12289, 65507]
    sent = []
    for n in sizes:
        data = os.urandom(n)
        got, src = udp_echo(srv.port, data)
        assert got == data, n
        sent.append((data, src))
    text = ("안녕하세요 echo " * 4000).encode()[:60000]  # parts cut between characters
    got, src = udp_echo(srv.port, text)
    assert got == text
    sent.append((text, src))
    assert srv.stop() == 0
    raw = open(srv.store_path, "rb").read().split(b"\n")[:-1]
    assert max(len(line) + 1 for line in raw) <= 8192
    dgs = store_datagrams(read_store(srv.store_path))
    assert [d for _, d, _ in dgs] == [d for d, _ in sent]
    assert [p for p, _, _ in dgs] == [f"127.0.0.1:{p}" for _, p in sent]
    assert [n for _, _, n in dgs][:len(sizes)] == [1, 1, 1, 1, 1, 2, 2, 4, 16]
    text_parts = [r for r in read_store(srv.store_path) if r.get("parts") == dgs[-1][2]]
    assert all("data" in r for r in text_parts), "a text datagram's part went to base64"
    p = subprocess.run([binary("mpecho-store"), "check", srv.store_path], capture_output=True,
                       timeout=60 * SLOW)
    assert p.returncode == 0 and f"{len(sent)} datagrams" in p.stderr.decode(), p


def test_ipv6_and_ipv4_on_the_same_port(start_server):
    srv = start_server("--udp", bind=False)
    srv.wait_line("serving UDP on [::]:")
    for fam in (socket.AF_INET, socket.AF_INET6):
        got, _ = udp_echo(srv.port, b"both", fam)
        assert got == b"both"
    assert srv.stop() == 0


def test_no_reply_to_a_reserved_source_port(udp_server):
    srv = udp_server("--udp-per-source", "0", "--udp-rate", "0")
    try:
        s = udp_socket(port=999)  # a privileged port: needs root
    except PermissionError:
        pytest.skip("binding port 999 needs root")
    with s:
        for i in range(200):
            s.sendto(b"loop %d" % i, ("127.0.0.1", srv.port))
        assert replies(s) == []
    # The server still answers a good source, and counted every drop.
    assert udp_echo(srv.port, b"fine")[0] == b"fine"
    st = udp_stats(srv)
    assert st["source port"] == 200 and st["udp echoed"] == 1, st
    drops = [l for l in srv.lines if "dropped a datagram from 127.0.0.1:999" in l]
    assert 1 <= len(drops) < 200, "logged, and rate-limited"
    assert srv.stop() == 0
    assert [r["data"] for r in read_store(srv.store_path) if r["ev"] == "datagram"] == ["fine"]


@pytest.mark.parametrize("opt,counter", [("--udp-per-source", "source rate"),
                                         ("--udp-rate", "global rate")])
def test_rate_limits_drop_the_excess(udp_server, opt, counter):
    other = "--udp-rate" if opt == "--udp-per-source" else "--udp-per-source"
    srv = udp_server(opt, "5", other, "0")
    with udp_socket() as s:
        for i in range(50):
            s.sendto(b"%d" % i, ("127.0.0.1", srv.port))
        # Every datagram echoed or dropped, as counted; then every echo counted is received
        # (each is counted just before it is sent).  A quiet spell is not the end: a busy
        # machine may hold the datagram process for longer than any spell.
        wait_until(lambda: (lambda st: st[counter] + st["udp echoed"] == 50)(udp_stats(srv)),
                   10, interval=0.05, what="all 50 datagrams counted")
        echoed = udp_stats(srv)["udp echoed"]
        got = []
        s.settimeout(10 * SLOW)
        while len(got) < echoed:
            got.append(s.recvfrom(70000)[0])
        got += replies(s, wait=0.2)
    assert 1 <= len(got) < 50, len(got)
    st = udp_stats(srv)
    assert st[counter] == 50 - len(got) and st["udp echoed"] == len(got), st
    assert srv.stop() == 0
    assert len([r for r in read_store(srv.store_path) if r["ev"] == "datagram"]) == len(got)


@pytest.mark.fork_only("tells the datagram process apart by counting the master's children")
def test_datagram_process_is_restarted_and_stopped(udp_server):
    srv = udp_server()
    kids = [k for k in proc_children(srv.pid) if alive(k) and proc_comm(k) != SPAWNER]
    dgram = [k for k in kids if k != srv.store_pid()]
    assert len(dgram) == 1, kids
    os.kill(dgram[0], signal.SIGKILL)
    srv.wait_line("killed by signal 9")
    srv.wait_line("restarted the datagram process as", timeout=10)
    assert udp_echo(srv.port, b"again")[0] == b"again"
    assert srv.stop() == 0
    assert not [k for k in proc_children(srv.pid) if alive(k)]


def test_datagram_process_ends_with_its_master(tmp_path):
    srv = Server(["-p", "0", "-b", "127.0.0.1", "--udp", "-s", str(tmp_path / "s.jsonl")])
    try:
        srv.wait_ready()
        srv.wait_line("serving UDP on")
        kids = wait_until(lambda: (lambda k: k if len(k) == 2 else None)(
            [p for p in proc_children(srv.pid) if alive(p) and proc_comm(p) != SPAWNER]), 10, what="store and datagram")
        os.kill(srv.pid, signal.SIGKILL)
        # The datagram process goes at once; then the store, which it was keeping open.
        wait_until(lambda: not any(alive(p) for p in kids), 10, what="both to end")
    finally:
        srv.cleanup()
