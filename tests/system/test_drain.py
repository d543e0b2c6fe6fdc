"""Drain for balancers (issue 26): --agent-port speaks HAProxy's agent-check protocol, --drain
keeps an instance serving for its seconds after SIGTERM while the agent says "drain".

Against a real haproxy 2.6 (as test_haproxy.py runs it: its listening socket made here and
inherited, no resolvers, a private stats socket): the agent check moves new traffic off a
draining instance while it still serves what it has, and a rolling restart of two instances
under mpecho-bench (connect and rr through haproxy) costs no client an error.  Both modes.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import threading

import pytest

from conftest import SLOW, Process, binary, connect, echo, recv_exact, wait_until
from test_haproxy import haproxy_config, haproxy_stat

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None,
                                   reason="haproxy is not installed (scripts/deps.sh installs it)")


def agent_port(srv):
    line = srv.wait_line("agent check on ")[0]
    return int(line.rsplit(":", 1)[1])


def agent(port):
    """The agent's one line, read to the server's close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW) as s:
        out = b""
        while True:
            b = s.recv(100)
            if not b:
                return out.decode()
            out += b


def test_agent_ready_weight_and_drain(start_server):
    srv = start_server("--agent-port", "0", "--drain", "60", "-c", "4")
    ap = agent_port(srv)
    assert agent(ap) == "ready 100%\n"
    held = connect(srv.port)
    held.sendall(b"x")
    assert recv_exact(held, 1) == b"x"
    # One slot of four in use.
    wait_until(lambda: agent(ap) == "ready 75%\n", 10, interval=0.05, what="ready 75%")

    srv.signal(signal.SIGTERM)
    srv.wait_line("draining: serving 60 s more")
    assert agent(ap) == "drain\n"
    # Draining, it still serves: the connection it has, and a new one.
    held.sendall(b"y")
    assert recv_exact(held, 1) == b"y"
    assert echo(srv.port, b"new while draining\n") == b"new while draining\n"
    held.close()
    # A second TERM ends the drain at once.
    srv.signal(signal.SIGTERM)
    srv.wait_line("shutting down")
    assert srv.stop() == 0


def test_agent_down_while_the_store_holds_sessions_back(start_server):
    """--store-full block with the store stopped (SIGSTOP: it reads nothing, as on a full
    disk): the store pipe fills as a client streams, and the agent says down; once the store
    reads again, ready."""
    srv = start_server("--agent-port", "0", "--store-full", "block")
    ap = agent_port(srv)
    assert agent(ap) == "ready 100%\n"
    store = srv.store_pid()
    os.kill(store, signal.SIGSTOP)
    s = connect(srv.port)
    stop = threading.Event()

    def pump():
        # Sends and reads the echo as it comes, until the session stops echoing.
        s.settimeout(0.2)
        chunk = os.urandom(65536)
        while not stop.is_set():
            try:
                s.send(chunk)
            except (socket.timeout, BlockingIOError):
                pass
            except OSError:
                return
            try:
                while s.recv(1 << 20):
                    pass
            except (socket.timeout, BlockingIOError):
                pass
            except OSError:
                return
    t = threading.Thread(target=pump)
    t.start()
    try:
        wait_until(lambda: agent(ap) == "down\n", 30, interval=0.1,
                   what="the agent to say down with the store pipe full")
    finally:
        os.kill(store, signal.SIGCONT)
        stop.set()
        t.join(10 * SLOW)
    s.close()
    wait_until(lambda: agent(ap).startswith("ready "), 30, interval=0.1,
               what="the agent to say ready once the store reads again")


def test_agent_options(tmp_path):
    # --agent-address needs --agent-port; --inetd takes neither.
    for args in (["--agent-address", "127.0.0.1"], ["--inetd", "--agent-port", "7"],
                 ["--inetd", "--drain", "3"], ["--drain", "-1"], ["--agent-port", "65536"]):
        p = subprocess.run([binary("mpechod"), "-t"] + args, capture_output=True,
                           timeout=10 * SLOW)
        assert p.returncode == 64, (args, p.stderr)


def haproxy_cfg(tmp_path, listen_fd, servers):
    """servers: [(port, agent port)]; agent checks every 200 ms, no redispatch: a connection
    sent to an instance that refuses it is a client's error.  Weight 100: the agent's "ready N%"
    scales the configured weight, and of HAProxy's default weight 1 any N below 100 leaves 0."""
    lines = "".join(f"    server s{i} 127.0.0.1:{p} weight 100 check inter 200ms agent-check "
                    f"agent-port {a} agent-inter 200ms\n" for i, (p, a) in enumerate(servers))
    return haproxy_config(tmp_path, listen_fd, None, None, "roundrobin", servers=lines)


def server_status(tmp_path):
    """{server name: status} of backend mpechod, {} before haproxy answers."""
    try:
        rows = haproxy_stat(tmp_path / "haproxy.sock")
    except OSError:
        return {}
    return {r["svname"]: r["status"] for r in rows
            if r["pxname"] == "mpechod" and r["svname"] != "BACKEND"}


def start_haproxy(tmp_path, servers):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1024)
    front = lsock.getsockname()[1]
    hap = Process(["haproxy", "-db", "-f", haproxy_cfg(tmp_path, lsock.fileno(), servers)],
                  pass_fds=(lsock.fileno(),))
    lsock.close()
    return hap, front


def wait_status(tmp_path, hap, want, what):
    def look():
        assert hap.proc.poll() is None, f"haproxy exited:\n{hap.output()}"
        st = server_status(tmp_path)
        # "DRAIN (agent)": haproxy says why.
        return st if all(st.get(k, "").split(" (")[0] == v for k, v in want.items()) else None
    return wait_until(look, 20, interval=0.05, what=what)


@needs_haproxy
def test_drain_moves_new_traffic_to_the_other_instance(start_server, tmp_path):
    a = start_server("--agent-port", "0", "--drain", "60", store=False)
    b = start_server("--agent-port", "0", store=False)
    hap, front = start_haproxy(tmp_path, [(a.port, agent_port(a)), (b.port, agent_port(b))])
    try:
        wait_status(tmp_path, hap, {"s0": "UP", "s1": "UP"}, "both instances UP")
        # A connection held through haproxy on each instance.
        held = [connect(front) for _ in range(2)]
        for i, s in enumerate(held):
            s.sendall(b"held%d" % i)
            assert recv_exact(s, 5) == b"held%d" % i
        wait_until(lambda: a.stats()[0]["accepted"] >= 1 and b.stats()[0]["accepted"] >= 1, 10,
                   interval=0.05, what="a held connection on each instance")

        a.signal(signal.SIGTERM)
        a.wait_line("draining: serving 60 s more")
        wait_status(tmp_path, hap, {"s0": "DRAIN", "s1": "UP"}, "haproxy to see s0 DRAIN")
        before = a.stats()[0]["accepted"]
        for i in range(20):
            assert echo(front, b"after %d\n" % i) == b"after %d\n" % i
        assert a.stats()[0]["accepted"] == before, "a draining instance got new traffic"
        # It still serves the connection it has, and a client that comes to it directly.
        for i, s in enumerate(held):
            s.sendall(b"again")
            assert recv_exact(s, 5) == b"again"
        assert echo(a.port, b"direct\n") == b"direct\n"
        for s in held:
            s.close()
    finally:
        hap.cleanup()
    a.signal(signal.SIGTERM)
    assert a.stop() == 0


def bench(port, mode, conns, seconds, out):
    p = subprocess.run([binary("mpecho-bench"), "--json", "-d", str(seconds), "-c", str(conns),
                        "-s", "100", "-t", "10000", mode, "127.0.0.1", str(port)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=(seconds + 60) * SLOW)
    out[mode] = (p.returncode, p.stdout.decode(), p.stderr.decode())


@needs_haproxy
def test_rolling_restart_behind_haproxy_costs_no_client_an_error(start_server, tmp_path):
    """Each instance in turn: TERM (with --drain, the agent says drain and haproxy sends it
    nothing new), a new one on the same ports once the old one has closed its listeners; the old
    one's connections finish within its --grace.  mpecho-bench connect (new connections all the
    time) and rr (held connections) through haproxy: 0 errors."""
    args = ("--drain", "1", "--grace", "120")
    first = [start_server("--agent-port", "0", *args, store=tmp_path / f"s{i}.0.jsonl")
             for i in range(2)]
    ports = [(s.port, agent_port(s)) for s in first]
    hap, front = start_haproxy(tmp_path, ports)
    out = {}
    try:
        wait_status(tmp_path, hap, {"s0": "UP", "s1": "UP"}, "both instances UP")
        seconds = int(20 * SLOW)
        runs = [threading.Thread(target=bench, args=(front, m, c, seconds, out))
                for m, c in (("connect", 4), ("rr", 8))]
        for t in runs:
            t.start()
        wait_until(lambda: all(s.stats()[0]["accepted"] >= 4 for s in first), 10,
                   interval=0.1, what="the bench's connections on both instances")
        for i, old in enumerate(first):
            name = f"s{i}"
            old.signal(signal.SIGTERM)
            wait_status(tmp_path, hap, {name: "DRAIN"}, f"haproxy to see {name} DRAIN")
            # The port is free once every process has closed its listeners: with --prefork
            # the pool processes close theirs after the master's "shutting down".
            old.wait_line("the ports are free")
            new = start_server("-p", str(ports[i][0]), "--agent-port", str(ports[i][1]), *args,
                               store=tmp_path / f"s{i}.1.jsonl")
            wait_status(tmp_path, hap, {name: "UP"}, f"haproxy to see the new {name} UP")
            wait_until(lambda: new.stats()[0]["accepted"] > 0, 10, interval=0.1,
                       what=f"the new {name} to get traffic")
        restarted = all(t.is_alive() for t in runs)
        for t in runs:
            t.join((seconds + 90) * SLOW)
    finally:
        hap.cleanup()
    assert restarted, "the bench ended before both instances were restarted"
    for mode in ("connect", "rr"):
        rc, stdout, stderr = out[mode]
        r = json.loads(stdout)
        print(f"rolling restart, mpecho-bench {mode}: {r.get('errors')} errors, "
              f"{r.get('connects')} connects, {r.get('requests')} requests")
        assert rc == 0 and r["errors"] == 0, (mode, r, stderr)
