"""mpecho-bench against a real mpechod, and against broken servers it must catch.

Each run is short (-d 0.5 to 1 s); every subprocess has a deadline, and the broken servers are
threads on 127.0.0.1 port 0 that the test closes at teardown.
"""
import json
import socket
import subprocess
import threading

import pytest

from conftest import SLOW, binary


def bench(*args, timeout=30):
    """Runs mpecho-bench --json; returns (exit status, parsed JSON or None, stderr)."""
    p = subprocess.run([binary("mpecho-bench"), "--json"] + [str(a) for a in args],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout * SLOW)
    out = p.stdout.decode()
    return p.returncode, (json.loads(out) if out.strip() else None), p.stderr.decode()


@pytest.mark.parametrize("args, key", [
    (["-c", "4", "connect"], "conn_per_sec"),
    (["-c", "4", "--rst", "connect"], "conn_per_sec"),
    (["-c", "2", "rr"], "req_per_sec"),
    (["-c", "2", "stream"], "mib_per_sec"),
])
def test_modes_against_mpechod(start_server, args, key):
    srv = start_server(store=False)
    rc, r, err = bench("-d", "1", *args[:-1], args[-1], "127.0.0.1", srv.port)
    assert rc == 0, f"exit {rc}: {r} {err}"
    assert r["errors"] == 0, r
    assert r["mode"] == args[-1]
    assert r[key] > 0, r
    assert r["server_pid"] == srv.pid, "the listener's owner should be found through /proc"
    if args[-1] in ("connect", "rr"):
        lat = r["latency_us"]
        assert set(lat) >= {"p50", "p90", "p99", "p999", "max"}, lat
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"], lat


def test_rr_with_store(start_server):
    srv = start_server()
    rc, r, err = bench("-d", "0.5", "-c", "2", "-s", "300", "rr", "127.0.0.1", srv.port)
    assert rc == 0 and r["errors"] == 0, f"exit {rc}: {r} {err}"
    assert r["requests"] > 0 and r["size"] == 300


@pytest.mark.fork_only("counts one server process per held connection")
def test_hold_reports_memory_per_connection(start_server):
    srv = start_server(store=False)
    rc, r, err = bench("-d", "1", "-c", "20", "--pid", srv.pid, "hold", "127.0.0.1", srv.port)
    assert rc == 0, f"exit {rc}: {r} {err}"
    assert r["errors"] == 0 and r["held"] == 20, r
    # The master alone before; the master and 20 sessions while held.
    assert r["server_procs"] - r["server_procs_baseline"] == 20, r
    assert r["pss_kib_per_conn"] > 0, r
    assert r["pss_kib_total"] == pytest.approx(r["pss_kib_per_conn"] * 20, abs=20), r


class BrokenServer:
    """A threaded TCP server on 127.0.0.1 whose handler misbehaves on purpose."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.conns = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            c.settimeout(10 * SLOW)
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            self.handler(c)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@pytest.fixture
def broken():
    """broken(handler) starts a BrokenServer; broken(answer, BrokenUdpServer) a UDP one."""
    servers = []

    def start(handler, kind=None):
        s = (kind or BrokenServer)(handler)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def flips_a_byte(c):
    """Echoes, but the 100th byte of the stream comes back wrong."""
    seen = 0
    while True:
        b = bytearray(c.recv(65536))
        if not b:
            return
        if seen <= 100 < seen + len(b):
            b[100 - seen] ^= 0x01
        seen += len(b)
        c.sendall(b)


def echoes_half_then_closes(c):
    b = c.recv(65536)
    c.sendall(b[:len(b) // 2])


def never_answers(c):
    while c.recv(65536):
        pass


def echoes_twice(c):
    while True:
        b = c.recv(65536)
        if not b:
            return
        c.sendall(b + b)


@pytest.mark.parametrize("handler, mode, kind", [
    (flips_a_byte, "rr", "mismatch"),
    (flips_a_byte, "stream", "mismatch"),
    (echoes_half_then_closes, "connect", "eof"),
    (never_answers, "rr", "timeout"),
    (echoes_twice, "rr", "extra"),
])
def test_errors_from_a_broken_server_are_reported(broken, handler, mode, kind):
    srv = broken(handler)
    rc, r, err = bench("-d", "0.5", "-t", "300", "-c", "2", mode, "127.0.0.1", srv.port)
    assert rc == 1, f"a broken server must fail the run: exit {rc}: {r} {err}"
    assert r["errors"] > 0 and r["error_kinds"][kind] > 0, r
    assert r["first_error"], r


def test_refused_connections_are_errors():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # bound, never listening: the port refuses
    rc, r, err = bench("-d", "0.3", "connect", "127.0.0.1", port)
    assert rc == 1 and r["error_kinds"]["connect"] > 0, (rc, r, err)
    assert r["conn_per_sec"] == 0, r


@pytest.mark.parametrize("args, needle", [
    (["-c", "0", "rr"], "connections"),
    (["-d", "x", "rr"], "duration"),
    (["fly"], "unknown mode"),
    (["rr", "example.com"], "not an IP address"),
    (["rr", "127.0.0.1", "70000"], "port"),
    (["--bogus", "rr"], "unknown option"),
    ([], "no MODE"),
])
def test_bad_usage_exits_64_with_one_line(args, needle):
    p = subprocess.run([binary("mpecho-bench")] + args, capture_output=True, timeout=10 * SLOW)
    err = p.stderr.decode()
    assert p.returncode == 64, (p.returncode, err)
    assert needle in err and err.count("\n") == 1, err
    assert p.stdout == b""


def test_help_and_version():
    p = subprocess.run([binary("mpecho-bench"), "--help"], capture_output=True, timeout=10 * SLOW)
    assert p.returncode == 0
    text = p.stdout.decode()
    for word in ("connect", "rr", "stream", "hold", "--rst", "--json", "share the CPUs"):
        assert word in text, word
    p = subprocess.run([binary("mpecho-bench"), "-V"], capture_output=True, timeout=10 * SLOW)
    assert p.returncode == 0 and p.stdout.startswith(b"mpecho-bench ")


FLOOD_KEYS = {"flood_conn_per_sec", "flood_connections", "probe_latency_us", "probe_errors",
              "probes", "errors", "error_kinds"}


@pytest.mark.parametrize("close", ["rst", "fin"])
def test_flood_against_mpechod(start_server, close):
    srv = start_server()
    rc, r, err = bench("-d", "1", "-c", "4", "--flood-close", close, "flood", "127.0.0.1",
                       srv.port)
    assert rc == 0, f"exit {rc}: {r} {err}"
    assert r["mode"] == "flood" and set(r) >= FLOOD_KEYS, r
    assert r["flood_close"] == close and r["rst"] == (close == "rst"), r
    assert r["errors"] == 0 and r["probe_errors"] == 0, r
    assert r["flood_connections"] > 0 and r["flood_conn_per_sec"] > 0, r
    # One probe at the start of the window at least; more on any machine that keeps up.
    assert r["probes"] >= 1, r
    lat = r["probe_latency_us"]
    assert set(lat) == {"p50", "p90", "p99", "max"}, lat
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat
    assert r["server_pid"] == srv.pid, r


def test_flood_probes_catch_a_server_that_never_echoes(broken):
    srv = broken(never_answers)
    rc, r, err = bench("-d", "1", "-t", "300", "-c", "2", "-w", "1", "flood", "127.0.0.1",
                       srv.port)
    assert rc == 1, f"probes that get no echo must fail the run: exit {rc}: {r} {err}"
    assert r["probe_errors"] > 0, r
    # No echo within the timeout; or, when the flood keeps this slow server's backlog full, no
    # connection within it: a timeout either way.
    assert r["probe_error_kinds"]["timeout"] > 0, r
    assert r["probe_first_error"].startswith("timeout, probe "), r


def test_flood_text_report_and_help(start_server):
    srv = start_server(store=False)
    p = subprocess.run([binary("mpecho-bench"), "-d", "0.5", "-c", "2", "flood", "127.0.0.1",
                        str(srv.port)], capture_output=True, timeout=30 * SLOW)
    out = p.stdout.decode()
    assert p.returncode == 0, (p.returncode, out, p.stderr.decode())
    for word in ("flood", "probes", "probe errors 0", "closed with a reset"):
        assert word in out, (word, out)
    p = subprocess.run([binary("mpecho-bench"), "--help"], capture_output=True, timeout=10 * SLOW)
    assert b"flood" in p.stdout and b"--flood-close" in p.stdout, p.stdout
    p = subprocess.run([binary("mpecho-bench"), "--flood-close", "maybe", "flood"],
                       capture_output=True, timeout=10 * SLOW)
    assert p.returncode == 64 and b"flood-close" in p.stderr, (p.returncode, p.stderr)


# --- udp ----------------------------------------------------------------------------------------

UDP_KEYS = {"mode", "requests", "req_per_sec", "latency_us", "lost", "late", "errors",
            "error_kinds", "first_error"}


def udp_mpechod(start_server, *args, store=True):
    srv = start_server("--udp", *args, store=store)
    srv.wait_line("serving UDP on")
    return srv


def test_udp_against_mpechod(start_server):
    srv = udp_mpechod(start_server, "--udp-per-source", "0", "--udp-rate", "0")
    rc, r, err = bench("-d", "0.5", "-c", "4", "-s", "300", "--pid", srv.pid, "udp", "127.0.0.1",
                       srv.port)
    assert rc == 0, f"exit {rc}: {r} {err}"
    assert r["mode"] == "udp" and set(r) >= UDP_KEYS, r
    assert r["errors"] == 0 and r["first_error"] is None, r
    assert r["requests"] > 0 and r["req_per_sec"] > 0 and r["size"] == 300, r
    lat = r["latency_us"]
    assert set(lat) >= {"p50", "p90", "p99", "max"}, lat
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat
    assert r["server_pid"] == srv.pid, r


def test_udp_text_report_and_the_largest_datagram(start_server):
    srv = udp_mpechod(start_server, "--udp-per-source", "0", "--udp-rate", "0", store=False)
    p = subprocess.run([binary("mpecho-bench"), "-d", "0.3", "-s", "65507", "udp", "127.0.0.1",
                        str(srv.port)], capture_output=True, timeout=30 * SLOW)
    out = p.stdout.decode()
    assert p.returncode == 0, (p.returncode, out, p.stderr.decode())
    for word in ("udp 127.0.0.1:", "1 client,", "65507-byte datagrams", "requests", "lost",
                 "errors       0"):
        assert word in out, (word, out)


def test_udp_losses_to_a_rate_limit_are_not_errors(start_server):
    # 5 replies a second to our address: most requests go unanswered, which UDP allows.
    srv = udp_mpechod(start_server, "--udp-per-source", "5", "--udp-rate", "0", store=False)
    rc, r, err = bench("-d", "1", "-c", "4", "-t", "100", "udp", "127.0.0.1", srv.port)
    assert rc == 0, f"losses alone must not fail the run: exit {rc}: {r} {err}"
    assert r["errors"] == 0, r
    assert r["lost"] > 0 and r["requests"] > 0, r


class BrokenUdpServer:
    """A UDP server on 127.0.0.1 whose answer(data) returns [(delay in s, datagram), ...]."""

    def __init__(self, answer):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.stop = threading.Event()
        self.timers = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _send(self, data, peer):
        try:
            self.sock.sendto(data, peer)
        except OSError:
            pass

    def _serve(self):
        while not self.stop.is_set():
            try:
                data, peer = self.sock.recvfrom(70000)
            except OSError:
                continue
            for delay, out in self.answer(data):
                if delay:
                    t = threading.Timer(delay, self._send, (out, peer))
                    t.daemon = True
                    self.timers.append(t)
                    t.start()
                else:
                    self._send(out, peer)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for t in self.timers:
            t.cancel()
        self.sock.close()


def udp_seq(data):
    """The request number mpecho-bench puts first in each datagram (host order)."""
    return int.from_bytes(data[:8], "little")


def flips_the_last_byte(data):
    return [(0, data[:-1] + bytes([data[-1] ^ 0x01]))]


def answers_short(data):
    return [(0, data[:len(data) // 2])]


def answers_twice(data):
    return [(0, data), (0, data)]


def answers_another_request(data):
    n = udp_seq(data)
    return [(0, (n + 1).to_bytes(8, "little") + data[8:])]


@pytest.mark.parametrize("answer, kind", [
    (flips_the_last_byte, "mismatch"),
    (answers_short, "mismatch"),
    (answers_another_request, "mismatch"),
    (answers_twice, "extra"),
])
def test_udp_errors_from_a_broken_server_are_reported(broken, answer, kind):
    srv = broken(answer, BrokenUdpServer)
    rc, r, err = bench("-d", "0.5", "-t", "100", "-c", "2", "udp", "127.0.0.1", srv.port)
    assert rc == 1, f"a broken server must fail the run: exit {rc}: {r} {err}"
    assert r["errors"] > 0 and r["error_kinds"][kind] > 0, r
    assert r["first_error"], r


def test_udp_late_echoes_are_losses_not_errors(broken):
    # One request in four is answered 0.3 s late, past the 100 ms timeout: lost, then late.
    srv = broken(lambda d: [(0.3 if udp_seq(d) % 4 == 1 else 0, d)], BrokenUdpServer)
    rc, r, err = bench("-d", "1", "-t", "100", "-c", "2", "udp", "127.0.0.1", srv.port)
    assert rc == 0, f"exit {rc}: {r} {err}"
    assert r["errors"] == 0, r
    assert r["lost"] > 0 and r["late"] > 0 and r["late"] <= r["lost"], r
    assert r["requests"] > 0, r


def test_udp_fails_when_nothing_is_answered_or_nothing_serves(broken):
    srv = broken(lambda d: [], BrokenUdpServer)
    rc, r, err = bench("-d", "0.3", "-t", "100", "udp", "127.0.0.1", srv.port)
    assert rc == 1, f"a server that answers nothing must fail the run: exit {rc}: {r} {err}"
    assert r["errors"] == 0 and r["lost"] > 0 and r["requests"] == 0, r
    assert "no request was answered" in r["first_error"], r
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing serves the port: ICMP port unreachable
    rc, r, err = bench("-d", "0.3", "-t", "100", "udp", "127.0.0.1", port)
    assert rc == 1 and r["error_kinds"]["connect"] > 0, (rc, r, err)


@pytest.mark.parametrize("args", [["-s", "11", "udp"], ["-s", "65508", "udp"]])
def test_udp_bad_size_exits_64(args):
    p = subprocess.run([binary("mpecho-bench")] + args, capture_output=True, timeout=10 * SLOW)
    assert p.returncode == 64 and b"size" in p.stderr, (p.returncode, p.stderr)
    p = subprocess.run([binary("mpecho-bench"), "--help"], capture_output=True, timeout=10 * SLOW)
    assert b"udp" in p.stdout, p.stdout
