"""Scale-out behind HAProxy (docs/scale-out.md): mpechod --proxy-protocol behind a real haproxy
in TCP mode, and the PROXY header, --proxy-from, --allow and --deny driven by hand.

The balancer test starts three mpechod --proxy-protocol (forking, or --prefork), each with
its own store, and one haproxy with a private configuration: its listening socket is made here
and inherited (`bind fd@N`), so no port is guessed; its resolvers section is empty, so it opens
no socket towards the system's nameserver; its stats socket is a Unix socket in tmp_path,
through which the test waits until every server has passed a health check.  Then 300
connections at once carry random bytes through it, and each store must say, for each of them,
the client's own address as peer and one of haproxy's sockets as via.

HAProxy 2.6's health checks with check-send-proxy: with send-proxy-v2 a check sends a v2 LOCAL
header (the store shows the real peer and no via); with send-proxy (v1) it sends a TCP4 line
with the check connection's own addresses, so the store shows peer and via equal.  Both close
with a reset at once, so the master may cull them before a session starts.  Either way a check
carries no data.
"""
import csv
import io
import os
import random
import selectors
import shutil
import socket
import struct
import subprocess
import time

import pytest

from conftest import (SLOW, Process, binary, connect, read_store, recv_exact, store_by_conn,
                      wait_until)

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def _mpechod_help():
    try:
        r = subprocess.run([binary("mpechod"), "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10 * SLOW)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.decode("utf-8", "replace")


HELP = _mpechod_help()
needs_proxy = pytest.mark.skipif(
    not all(o in HELP for o in ("--proxy-protocol", "--proxy-timeout", "--proxy-from")),
    reason="needs --proxy-protocol (not in mpechod --help yet)")
needs_rules = pytest.mark.skipif(
    not all(o in HELP for o in ("--proxy-protocol", "--allow", "--deny")),
    reason="needs --proxy-protocol, --allow and --deny (not in mpechod --help yet)")
needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None,
                                   reason="haproxy is not installed (scripts/deps.sh installs it)")


# --- headers made by hand ------------------------------------------------------------------------

def v1(src, sport, dst="192.0.2.254", dport=7007):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(cmd=1, src=None, sport=0, dst=None, dport=0, tlvs=b"", fam=None):
    """A v2 header: cmd 1 PROXY, 0 LOCAL; TCP over the family of src (none: UNSPEC)."""
    if src is None:
        body = b""
        fam = 0x00 if fam is None else fam
    elif ":" in src:
        body = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
                + struct.pack("!HH", sport, dport))
        fam = 0x21 if fam is None else fam
    else:
        body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
        fam = 0x11 if fam is None else fam
    body += tlvs
    return V2_SIG + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(body)) + body


def addr_text(sockaddr):
    host, port = sockaddr[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def exchange(port, data, half_close=True):
    """Sends data (half-closing after it unless told not to) and returns (our address as the
    store writes it, everything received until the server closed; b"" for a reset)."""
    with connect(port) as s:
        me = addr_text(s.getsockname())
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # closed by the server before it had it all: what it sent still counts
        out = []
        try:
            while True:
                b = s.recv(1 << 16)
                if not b:
                    break
                out.append(b)
        except ConnectionResetError:
            pass
        return me, b"".join(out)


def settled_store(path, pred, what, timeout=60):
    """The store's connections (store_by_conn) once pred(conns) holds."""
    def look():
        try:
            conns = store_by_conn(read_store(path))
        except (OSError, ValueError, AssertionError):
            return None  # not there yet, or caught in the middle of a write
        return conns if pred(conns) else None
    return wait_until(look, timeout, interval=0.05, what=what)


def closed(c):
    return c["open"] is not None and len(c["close"]) == 1


# --- haproxy -----------------------------------------------------------------------------------

def haproxy_config(tmp_path, listen_fd, ports, send, balance, servers=None):
    """servers: the backend's server lines, if not the ones made of ports and send."""
    servers = servers or "".join(f"    server s{i} 127.0.0.1:{p} {send} check check-send-proxy "
                                 f"inter 200ms\n" for i, p in enumerate(ports))
    text = f"""global
    maxconn 2000
    stats socket {tmp_path}/haproxy.sock mode 600 level operator

# Empty: without it HAProxy 2.6 makes a "default" section from /etc/resolv.conf and opens a
# socket towards its nameserver at startup.
resolvers default

defaults
    mode tcp
    timeout connect 10s
    timeout client 2m
    timeout server 2m

frontend echo
    bind fd@{listen_fd}
    default_backend mpechod

backend mpechod
    balance {balance}
{servers}"""
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    return path


def haproxy_stat(sock_path):
    """HAProxy's `show stat` as a list of dicts, one per proxy or server."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5 * SLOW)
        s.connect(str(sock_path))
        s.sendall(b"show stat\n")
        raw = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            raw += b
    text = raw.decode()
    assert text.startswith("# "), f"unexpected answer to show stat: {text[:200]!r}"
    return list(csv.DictReader(io.StringIO(text[2:])))


def servers_checked(sock_path, n):
    """Whether n servers of backend mpechod are UP with a passed layer-4 check."""
    try:
        rows = haproxy_stat(sock_path)
    except OSError:
        return False  # haproxy not listening on its stats socket yet
    ok = [r for r in rows if r["pxname"] == "mpechod" and r["svname"] not in ("BACKEND",)
          and r["status"] == "UP" and r["check_status"] == "L4OK"]
    return len(ok) == n


def tcp_local_ports(pid, remote_ports):
    """{remote port: the local 127.0.0.1 ports of pid's TCP sockets connected to it} for each
    of remote_ports (from /proc: the sockets' inodes among pid's descriptors, their ends in
    /proc/net/tcp).  One local port may serve connections to several remote ports."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = {p: set() for p in remote_ports}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            rport = int(remote.split(":")[1], 16)
            if inode in inodes and rport in ports:
                assert local.split(":")[0] == "0100007F", f"haproxy socket not on 127.0.0.1: {line}"
                ports[rport].add(int(local.split(":")[1], 16))
    return ports


class Conn:
    def __init__(self, sock, payload):
        self.sock = sock
        self.payload = payload
        self.sent = 0
        self.got = bytearray()
        self.eof = False
        self.me = addr_text(sock.getsockname())


def echo_at_once(port, payloads, while_held):
    """Opens one connection per payload, sends them all at once and reads every echo; once
    every connection has its whole echo back, and before any is half-closed, calls
    while_held(); then half-closes them all and reads each to its end.  Returns the Conns."""
    conns = []
    sel = selectors.DefaultSelector()
    try:
        for p in payloads:
            s = connect(port)
            s.setblocking(False)
            conns.append(Conn(s, p))
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, conns[-1])
        deadline = 120 * SLOW

        def pump(done, what):
            left = [c for c in conns if not done(c)]
            end = time.monotonic() + deadline
            while left:
                assert time.monotonic() < end, (f"timed out after {deadline:.0f}s: {len(left)} "
                                                f"connections still waiting for {what}")
                for key, ev in sel.select(1):
                    c = key.data
                    if ev & selectors.EVENT_WRITE and c.sent < len(c.payload):
                        try:
                            c.sent += c.sock.send(c.payload[c.sent:c.sent + 65536])
                        except BlockingIOError:
                            pass
                        if c.sent == len(c.payload):
                            sel.modify(c.sock, selectors.EVENT_READ, c)
                    if ev & selectors.EVENT_READ:
                        try:
                            b = c.sock.recv(1 << 16)
                        except BlockingIOError:
                            continue
                        assert b or len(c.got) == len(c.payload), \
                            f"{c.me}: closed after {len(c.got)} of {len(c.payload)} bytes"
                        if not b:
                            c.eof = True
                            sel.unregister(c.sock)
                        c.got += b
                        assert len(c.got) <= len(c.payload), f"{c.me}: more bytes than sent"
                left = [c for c in conns if not done(c)]

        pump(lambda c: len(c.got) == len(c.payload), "their echo")
        while_held()
        for c in conns:
            c.sock.shutdown(socket.SHUT_WR)
        pump(lambda c: c.eof, "the server's close")
    finally:
        sel.close()
        for c in conns:
            c.sock.close()
    return conns


@needs_proxy
@needs_haproxy
@pytest.mark.parametrize("send,balance,mode", [("send-proxy-v2", "roundrobin", ()),
                                               ("send-proxy", "leastconn", ()),
                                               ("send-proxy-v2", "leastconn", ("--prefork",))])
def test_three_instances_behind_haproxy(start_server, tmp_path, send, balance, mode):
    if mode and not all(o in HELP for o in mode):
        pytest.skip(f"needs {' '.join(mode)}")
    servers = [start_server("--proxy-protocol", *mode) for _ in range(3)]
    ports = [srv.port for srv in servers]
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1024)
    front = lsock.getsockname()[1]
    cfg = haproxy_config(tmp_path, lsock.fileno(), ports, send, balance)
    hap = Process(["haproxy", "-db", "-f", cfg], pass_fds=(lsock.fileno(),))
    try:
        lsock.close()  # haproxy has it now
        wait_until(lambda: hap.proc.poll() is not None or
                   servers_checked(tmp_path / "haproxy.sock", 3), 60, interval=0.05,
                   what="haproxy's health checks to pass on the 3 servers")
        assert hap.proc.poll() is None, f"haproxy exited:\n{hap.output()}"

        rng = random.Random(os.urandom(8))
        payloads = [rng.randbytes(rng.randint(1, 16384)) for _ in range(300)]
        via_ports = {}
        conns = echo_at_once(front, payloads,
                             lambda: via_ports.update(tcp_local_ports(hap.pid, ports)))
        for c in conns:
            assert bytes(c.got) == c.payload, f"{c.me}: echo differs from what was sent"
        held = sum(map(len, via_ports.values()))
        assert held >= len(conns), (f"haproxy held {held} connections to the servers for "
                                    f"{len(conns)} clients")
        clients = {c.me: c.payload for c in conns}
        assert len(clients) == len(conns)

    finally:
        hap.cleanup()  # no more health checks: the stores can settle
    assert not [l for l in hap.err if "ALERT" in l], hap.output()

    def everyone_stored():
        try:
            stores = [store_by_conn(read_store(srv.store_path)) for srv in servers]
        except (OSError, ValueError, AssertionError):
            return None  # caught in the middle of a write
        if not all(closed(c) for st in stores for c in st.values()):
            return None
        peers = [c["open"]["peer"] for st in stores for c in st.values() if c["data"]]
        return stores if len(set(clients) & set(peers)) == len(clients) else None
    stores = wait_until(everyone_stored, 60, interval=0.05,
                        what="every client's connection in a store, every connection closed")

    # Every payload is at least one byte, and a health check sends none: a connection with data
    # is a client's (a check's own port may be the same number as a client's).
    found = {}
    for i, store in enumerate(stores):
        for n, c in store.items():
            o, what = c["open"], f"instance {i} conn {n}"
            assert c["opens"] == 1 and len(c["close"]) == 1, f"{what}: {c}"
            assert c["close"][0]["reason"] != "proxy-error", \
                f"{what}: a header haproxy sent was refused: {c}"
            if c["data"]:
                assert o["peer"] in clients, f"{what}: data from {o['peer']}, not a client: {o}"
                assert o["peer"] not in found, f"{what}: {o['peer']} served twice"
                found[o["peer"]] = i
                host, port = o.get("via", ":0").rsplit(":", 1)
                assert host == "127.0.0.1" and int(port) in via_ports[ports[i]], \
                    f"{what}: via of {o} is not one of haproxy's sockets to this server"
                assert c["data"] == clients[o["peer"]], \
                    f"{what} ({o['peer']}): stored data differs from the payload"
                assert c["close"][0]["reason"] == "eof", f"{what}: {c}"
            elif send == "send-proxy-v2":
                assert "via" not in o, f"{what}: a v2 health check is LOCAL, without via: {o}"
            else:
                assert o.get("via") == o["peer"], \
                    f"{what}: a v1 health check names its own socket as the client: {o}"
    per = [list(found.values()).count(i) for i in range(3)]
    assert all(per), f"connections per instance {per}: an instance was never used"
    for srv in servers:
        stats, line = srv.stats()
        assert stats.get("proxy errors") == 0, line


# --- the header by hand --------------------------------------------------------------------------

@needs_proxy
def test_valid_headers_give_the_client_address(start_server):
    """v1 and v2, IPv4 and IPv6, LOCAL and UNKNOWN: the header is neither echoed nor stored;
    the open record's peer is the header's client and via our own socket, or, when the header
    names no TCP client (LOCAL, UNKNOWN, UNSPEC, UDP), our own socket as peer and no via.  What follows the header is data even when it
    looks like another header."""
    srv = start_server("--proxy-protocol")
    again = v1("192.0.2.99", 1) + bytes(range(256))
    cases = [
        (v1("192.0.2.1", 40001), "192.0.2.1:40001"),
        (v1("2001:db8::1", 40002, "2001:db8::2"), "[2001:db8::1]:40002"),
        (b"PROXY UNKNOWN\r\n", None),
        (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", None),
        (v2(1, "198.51.100.9", 40003, "192.0.2.254", 7007), "198.51.100.9:40003"),
        # With TLVs after the addresses (an authority and a NOOP), as haproxy can add them.
        (v2(1, "2001:db8::9", 40004, "2001:db8::a", 7007,
            tlvs=b"\x02\x00\x0bexample.com" + b"\x04\x00\x02\x00\x00"), "[2001:db8::9]:40004"),
        (v2(0), None),
        (v2(0, "203.0.113.1", 1, "203.0.113.2", 2), None),  # LOCAL: the block is discarded
        (v2(1), None),  # PROXY with family UNSPEC: no client named
        (v2(1, "203.0.113.3", 3, "203.0.113.4", 4, fam=0x12), None),  # UDP: taken as UNSPEC
    ]
    mine = {}
    for header, peer in cases:
        me, got = exchange(srv.port, header + again)
        assert got == again, f"{header!r}: echoed {got[:80]!r}..., expected what followed it"
        mine[me] = (header, peer)

    def by_socket(conns):
        return {(c["open"].get("via") or c["open"]["peer"]): c
                for c in conns.values() if c["open"] is not None and closed(c)}
    conns = by_socket(settled_store(srv.store_path,
                                    lambda cs: set(mine) <= set(by_socket(cs)),
                                    "the store to close every connection"))
    for me, (header, peer) in mine.items():
        c = conns[me]
        if peer is None:
            assert c["open"]["peer"] == me and "via" not in c["open"], f"{header!r}: {c['open']}"
        else:
            assert (c["open"]["peer"], c["open"].get("via")) == (peer, me), \
                f"{header!r}: {c['open']}, expected peer {peer} via {me}"
        assert c["data"] == again, f"{header!r}: stored {bytes(c['data'][:80])!r}..."
        assert c["close"][0]["reason"] == "eof" and c["close"][0]["bytes"] == len(again), c
    stats, line = srv.stats()
    assert stats["proxy errors"] == 0, line


@needs_proxy
def test_a_header_in_pieces(start_server):
    """A header that arrives a few bytes at a time is read whole, and not a byte past it."""
    srv = start_server("--proxy-protocol")
    for header in (v1("192.0.2.7", 7), v2(1, "192.0.2.8", 8, "192.0.2.254", 7007)):
        with connect(srv.port) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(header), 5):
                s.sendall(header[i:i + 5])
            s.sendall(b"after")
            assert recv_exact(s, 5) == b"after"
            s.shutdown(socket.SHUT_WR)
            assert s.recv(10) == b""


# Headers mpechod must refuse, each closed with nothing sent.  The last two are cut short: one
# by the client's end of input, one by --proxy-timeout while the connection stays open.
BROKEN = [
    ("not a header", b"GET / HTTP/1.0\r\n\r\n", True),
    ("v1, bad address", b"PROXY TCP4 192.0.2.300 192.0.2.2 1 2\r\nhello", True),
    ("v1, IPv6 as TCP4", b"PROXY TCP4 ::1 ::1 1 2\r\nhello", True),
    ("v1, port out of range", b"PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\nhello", True),
    ("v1, no CR", b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\nhello", True),
    ("v1, over 107 bytes", b"PROXY UNKNOWN " + b"x" * 200 + b"\r\n", True),
    ("v2, version 1", V2_SIG + b"\x11\x11\x00\x0c" + bytes(12), True),
    ("v2, unknown command", V2_SIG + b"\x2f\x11\x00\x0c" + bytes(12), True),
    ("v2, unknown family", V2_SIG + b"\x21\x41\x00\x0c" + bytes(12), True),
    ("v2, block too short for TCP4", V2_SIG + b"\x21\x11\x00\x08" + bytes(8), True),
    ("v2, oversized", V2_SIG + b"\x21\x11\xff\xff" + bytes(4096), True),
    ("v2, TLV past the block", v2(1, "192.0.2.1", 1, "192.0.2.2", 2, tlvs=b"\x04\x00\x09x"),
     True),
    ("v2, bad CRC32C", v2(1, "192.0.2.1", 1, "192.0.2.2", 2, tlvs=b"\x03\x00\x04\x00\x00\x00\x00"),
     True),
    ("truncated", b"PROXY TCP4 192.0.2.1 19", True),
    ("late", V2_SIG[:7], False),
]


@needs_proxy
def test_broken_headers_are_closed_with_nothing_sent(start_server):
    srv = start_server("--proxy-protocol", "--proxy-timeout", "1")
    mine = {}
    for name, data, half_close in BROKEN:
        me, got = exchange(srv.port, data, half_close=half_close)
        assert got == b"", f"{name}: the server sent {got[:80]!r}"
        mine[me] = name
    conns = settled_store(
        srv.store_path,
        lambda cs: set(mine) <= {c["open"]["peer"] for c in cs.values() if closed(c)},
        f"{len(mine)} closed connections in the store")
    for c in conns.values():
        name = mine.get(c["open"]["peer"], c["open"]["peer"])
        assert "via" not in c["open"], f"{name}: {c['open']}"
        assert c["data"] == b"", f"{name}: stored {bytes(c['data'])!r}"
        assert c["close"][0]["reason"] == "proxy-error", f"{name}: {c['close'][0]}"
    assert len(conns) == len(BROKEN)
    stats, line = srv.stats()
    assert stats["proxy errors"] == len(BROKEN), line
    srv.wait_line("PROXY header")  # logged, at most once a second
    assert srv.stop() == 0


@needs_proxy
def test_a_sender_outside_proxy_from_is_refused_unread(start_server):
    """Only 127.0.0.1 is ours to connect from, so mpechod trusts 10.0.0.0/8 alone.  A
    connection that sends nothing is closed at once (the header may take an hour: it is not
    awaited), and one that sends a valid header and data gets nothing back."""
    hour = start_server("--proxy-protocol", "--proxy-from", "10.0.0.0/8",
                        "--proxy-timeout", "3600")
    with connect(hour.port) as s:
        s.settimeout(30 * SLOW)
        try:
            assert s.recv(10) == b"", "the server sent something"
        except ConnectionResetError:
            pass
    me, got = exchange(hour.port, v1("192.0.2.1", 1) + b"hello")
    assert got == b"", f"echoed {got!r} from outside --proxy-from"
    stats, line = hour.stats()
    assert (stats["denied"], stats["accepted"], stats["proxy errors"]) == (2, 0, 0), line
    hour.wait_line("refused 127.0.0.1:")
    assert hour.stop() == 0
    assert [r["ev"] for r in read_store(hour.store_path)] == ["start", "stop"], \
        "a refused connection is not in the store"
    # The same header from inside the default --proxy-from is served.
    srv = start_server("--proxy-protocol")
    assert exchange(srv.port, v1("192.0.2.1", 1) + b"hello")[1] == b"hello"


@needs_rules
def test_deny_and_allow_apply_to_the_address_in_the_header(start_server):
    deny = start_server("--proxy-protocol", "--deny", "203.0.113.0/24")
    allow = start_server("--proxy-protocol", "--allow", "198.51.100.0/24",
                         "--deny", "198.51.100.128/25")
    cases = [(deny, "203.0.113.7", False), (deny, "198.51.100.7", True),
             (deny, "2001:db8::7", True),
             (allow, "198.51.100.7", True), (allow, "198.51.100.200", False),
             (allow, "203.0.113.7", False), (allow, "2001:db8::7", False)]
    for srv, client, served in cases:
        header = v1(client, 4000, "2001:db8::1" if ":" in client else "192.0.2.254")
        me, got = exchange(srv.port, header + b"payload")
        assert got == (b"payload" if served else b""), \
            f"{client} on server {srv.argv[3:]}: got {got!r}"
    # LOCAL is the balancer speaking for itself (a health check): no client, no rule applies.
    assert exchange(allow.port, v2(0) + b"x")[1] == b"x"
    for srv, denied in ((deny, 1), (allow, 3)):
        stats, line = srv.stats()
        assert (stats["denied"], stats["proxy errors"]) == (denied, 0), line
        srv.wait_line("refused ")  # the first; more within a second are counted
    # A refused client leaves no record: the served ones are all the store holds.
    for srv, served in ((deny, {"198.51.100.7:4000", "[2001:db8::7]:4000"}),
                        (allow, {"198.51.100.7:4000", "127.0.0.1"})):
        conns = settled_store(
            srv.store_path, lambda cs: len(cs) == len(served) and all(map(closed, cs.values())),
            f"{len(served)} connections in the store")
        peers = {c["open"]["peer"] for c in conns.values()}
        assert {"127.0.0.1" if p.startswith("127.0.0.1:") else p for p in peers} == served


@needs_proxy
def test_max_per_source_counts_the_address_in_the_header(start_server):
    """All connections come from 127.0.0.1; the limit applies to the clients in the headers."""
    srv = start_server("--proxy-protocol", "--max-per-source", "1")
    with connect(srv.port) as held:
        held.sendall(v1("192.0.2.1", 1) + b"first")
        assert recv_exact(held, 5) == b"first"
        assert exchange(srv.port, v1("192.0.2.1", 2) + b"second")[1] == b""
        assert exchange(srv.port, v1("192.0.2.2", 3) + b"third")[1] == b"third"
    stats, line = srv.stats()
    assert stats["refused per source"] == 1, line
