"""The metrics endpoint (--metrics) scraped by Debian's Prometheus, and its HTTP boundaries.

A real Prometheus on 127.0.0.1 scrapes the endpoint every second; after an mpecho-bench run the
test waits (bounded) for a scrape taken after the traffic ended, then compares what Prometheus's
query API returns with the bench's counts, `mpecho-store stats` and the USR1 stats line.
"""
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import json

import pytest

from conftest import SLOW, PREFORK, Process, binary, proc_children, wait_until

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


def metrics_addr(srv):
    """(host, port) of the endpoint, from the master's "metrics on http://H:P/metrics" line."""
    url = srv.wait_line("metrics on http://")[0].split("metrics on http://", 1)[1]
    host, port = url.split("/", 1)[0].rsplit(":", 1)
    return host, int(port)


def http(addr, request, source=None, timeout=10):
    """Sends request bytes as they are; returns everything read until the server closes."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout * SLOW)
    try:
        if source:
            s.bind((source, 0))
        s.connect(addr)
        s.sendall(request)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b
    finally:
        s.close()


def scrape(addr):
    out = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = out.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 "), head
    return body.decode()


def value(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the scrape:\n{text}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Prometheus(Process):
    def __init__(self, tmp_path, target):
        self.port = free_port()
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                       "scrape_configs:\n  - job_name: mpecho\n    static_configs:\n"
                       f"      - targets: ['{target[0]}:{target[1]}']\n")
        super().__init__([PROMETHEUS, f"--config.file={cfg}",
                          f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{self.port}"],
                         stdout=subprocess.DEVNULL)
        wait_until(self.ready, 60 * SLOW, interval=0.2, what="Prometheus to be ready")

    def ready(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, q):
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
        with urllib.request.urlopen(url, timeout=10) as r:
            data = json.load(r)
        assert data["status"] == "success", data
        return data["data"]["result"]

    def one(self, q):
        r = self.query(q)
        assert len(r) == 1, f"{q}: {r}"
        return float(r[0]["value"][1])


@pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed")
def test_prometheus_counts_what_the_bench_and_the_store_count(start_server, tmp_path):
    srv = start_server("--metrics", "127.0.0.1:0")
    addr = metrics_addr(srv)
    prom = Prometheus(tmp_path, addr)
    try:
        wait_until(lambda: prom.query('up{job="mpecho"} == 1'), 30 * SLOW, interval=0.2,
                   what="a first successful scrape")
        p = subprocess.run([binary("mpecho-bench"), "--json", "-d", "1", "-c", "4", "connect",
                            "127.0.0.1", str(srv.port)], capture_output=True,
                           timeout=60 * SLOW, check=True)
        bench = json.loads(p.stdout)
        assert bench["errors"] == 0, bench
        # The bench counts the connections it completed in its window: the ones it made after,
        # to finish, reached the server too; the exact figures are the store's and the stats
        # line's.
        counts, line = srv.wait_stats(lambda c: c["active"] == 0 and
                                      c["accepted"] >= bench["connects"],
                                      what="every bench connection ended")
        after = time.time()
        wait_until(lambda: prom.query(f'timestamp(up{{job="mpecho"}}) > {after}'), 30 * SLOW,
                   interval=0.2, what="a scrape after the traffic ended")
        accepted = prom.one("mpecho_connections_accepted_total")
        received = prom.one("mpecho_received_bytes_total")
        closed = prom.one("sum(mpecho_sessions_closed_total)")
        dur_count = prom.one("mpecho_session_duration_seconds_count")
        active = prom.one("mpecho_sessions_active")
        assert bench["connects"] <= accepted, (accepted, bench)
        assert bench["connects"] * bench["size"] <= received <= accepted * bench["size"], \
            (received, bench)
        assert (closed, dur_count, active) == (accepted, accepted, 0)
        assert (counts["accepted"], counts["bytes echoed"]) == (accepted, received), line
        # The store has written every record once the server has stopped.
        assert srv.stop() == 0
        st = subprocess.run([binary("mpecho-store"), "stats", srv.store_path],
                            capture_output=True, text=True, timeout=30 * SLOW, check=True).stdout
        first = st.splitlines()[0]
        assert first == f"connections {int(accepted)}, bytes {int(received)}", st
    finally:
        prom.cleanup()


def test_the_stats_line_and_the_endpoint_agree(start_server):
    srv = start_server("--metrics", "127.0.0.1:0")
    addr = metrics_addr(srv)
    for i in range(3):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
            c.sendall(b"x" * (i + 1))
            c.shutdown(socket.SHUT_WR)
            while c.recv(100):
                pass
    counts, line = srv.wait_stats(lambda c: c["active"] == 0 and c["bytes echoed"] == 6)
    text = scrape(addr)
    assert value(text, "mpecho_connections_accepted_total") == counts["accepted"] == 3, line
    assert value(text, "mpecho_received_bytes_total") == 6
    assert value(text, "mpecho_session_size_bytes_count") == 3
    assert value(text, 'mpecho_session_size_bytes_bucket{le="64"}') == 3
    assert ("mpecho_pool_processes" in text) == PREFORK
    wait_until(lambda: value(scrape(addr), "mpecho_store_written_bytes_total") > 0, 10 * SLOW,
               what="the store's bytes in the figures")


@pytest.mark.skipif(PROMTOOL is None, reason="Debian's prometheus (promtool) is not installed")
def test_promtool_finds_nothing(start_server):
    srv = start_server("--metrics", "127.0.0.1:0", "--udp")
    text = scrape(metrics_addr(srv))
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", (p.stdout, p.stderr)
    for name in ("mpecho_connections_accepted_total", "mpecho_connections_refused_total",
                 "mpecho_sessions_active", "mpecho_sessions_closed_total",
                 "mpecho_received_bytes_total", "mpecho_store_written_bytes_total",
                 "mpecho_session_duration_seconds", "mpecho_udp_dropped_datagrams_total"):
        assert f"# TYPE {name} " in text, name


@pytest.mark.parametrize("request_bytes, status", [
    (b"BAD\r\n\r\n", b"400"),
    (b"GET /metrics HTTP/9.9\r\n\r\n", b"400"),
    (b"GET /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", b"400"),
    (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 5000 + b"\r\n\r\n", b"400"),
    (b"GET / HTTP/1.1\r\n\r\n", b"404"),
    (b"POST /metrics HTTP/1.1\r\n\r\n", b"405"),
])
def test_bad_requests_get_their_status_and_a_close(start_server, request_bytes, status):
    srv = start_server("--metrics", "127.0.0.1:0")
    out = http(metrics_addr(srv), request_bytes)
    assert out.startswith(b"HTTP/1.1 " + status + b" "), out[:200]
    assert b"Connection: close\r\n" in out


def test_a_request_that_never_ends_is_cut_off(start_server):
    srv = start_server("--metrics", "127.0.0.1:0")
    addr = metrics_addr(srv)
    with socket.create_connection(addr, timeout=10) as s:
        s.settimeout(15 * SLOW)
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 "), "a slow request gets 400 and a close"
    # And the endpoint answers the next one.
    assert "mpecho_sessions_active" in scrape(addr)


def test_a_source_not_allowed_gets_nothing(start_server):
    srv = start_server("--metrics", "127.0.0.1:0", "--metrics-allow", "127.0.0.2/32")
    addr = metrics_addr(srv)
    try:
        got = http(addr, b"GET /metrics HTTP/1.1\r\n\r\n", source="127.0.0.1")
    except ConnectionResetError:
        got = b""  # closed unread: the request still in its buffer makes the close a reset
    assert got == b"", got[:100]
    ok = http(addr, b"GET /metrics HTTP/1.1\r\n\r\n", source="127.0.0.2")
    assert ok.startswith(b"HTTP/1.1 200 "), ok[:100]


def test_the_metrics_process_is_restarted_and_stops_with_the_server(start_server):
    srv = start_server("--metrics", "127.0.0.1:0")
    addr = metrics_addr(srv)
    scrape(addr)
    # The process that accepted on the endpoint's port: the one holding its listener.
    inode = None
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == addr[1] and f[3] == "0A":
            inode = f[9]
    assert inode
    holders = [k for k in proc_children(srv.pid) if any(
               _link(f"/proc/{k}/fd/{fd}") == f"socket:[{inode}]" for fd in _fds(k))]
    assert len(holders) == 1, holders
    os.kill(holders[0], 9)
    srv.wait_line("metrics process %d killed by signal 9" % holders[0])
    srv.wait_line("restarted the metrics process as ", timeout=10 * SLOW)
    assert "mpecho_sessions_active" in scrape(addr)
    assert srv.stop() == 0


def _link(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def _fds(pid):
    try:
        return os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []


def test_usage_errors():
    for args, words in ((["--metrics-allow", "127.0.0.1"], "--metrics-allow needs --metrics"),
                        (["--metrics", "127.0.0.1:99999"], "--metrics"),
                        (["--metrics", "127.0.0.1:0", "--metrics-allow", "10.1.2.3/8"],
                         "--metrics-allow")):
        p = subprocess.run([binary("mpechod"), "-p", "0", "--no-store"] + args,
                           capture_output=True, text=True, timeout=10 * SLOW)
        assert p.returncode == 64 and words in p.stderr, (args, p.stderr)


def test_a_session_killed_mid_connection_is_counted_once(start_server):
    """The process serving a connection is killed (SIGKILL, at whatever instruction): the
    master counts its end as "signal", and every accepted connection is closed or active."""
    srv = start_server("--metrics", "127.0.0.1:0")
    addr = metrics_addr(srv)
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    peer = "%s:%d" % c.getsockname()
    c.sendall(b"abc")
    assert c.recv(3) == b"abc"

    def serving():
        out = subprocess.run([binary("mpecho-top"), "--once", str(srv.pid)], capture_output=True,
                             text=True, timeout=10 * SLOW).stdout
        return next((int(l.split()[1]) for l in out.splitlines() if peer in l), None)
    pid = wait_until(serving, 10 * SLOW, interval=0.1, what="the process serving the client")
    os.kill(pid, 9)
    c.settimeout(10 * SLOW)
    try:
        assert c.recv(10) == b""
    except ConnectionResetError:
        pass
    c.close()

    def settled():
        t = scrape(addr)
        return t if value(t, 'mpecho_sessions_closed_total{reason="signal"}') == 1 and \
            value(t, "mpecho_sessions_active") == 0 else None
    text = wait_until(settled, 10 * SLOW, interval=0.1, what="the killed session counted")
    closed = sum(float(l.split()[1]) for l in text.splitlines()
                 if l.startswith("mpecho_sessions_closed_total{"))
    assert value(text, "mpecho_connections_accepted_total") == closed == 1
    assert value(text, 'mpecho_processes_reaped_total{how="signal"}') == 1
