"""Black-box tests of mpechod: the real binary on 127.0.0.1, port 0."""
import os
import random
import resource
import signal
import socket
import subprocess
import threading

import pytest

from conftest import (PREFORK, SLOW, SPAWNER, Server, binary, connect, echo, fd_count,
                      proc_children, proc_comm, read_store, recv_exact, scaled, signal_set,
                      spawner_of, store_by_conn, store_so_far, wait_until, zombies_of)


def run_mpechod(args, timeout=10):
    p = subprocess.run([binary("mpechod")] + args, capture_output=True, timeout=timeout * SLOW,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def listening(port):
    """Whether any socket listens on 127.0.0.1:port (a connect could self-connect instead)."""
    with open("/proc/net/tcp") as f:
        rows = [l.split() for l in f.readlines()[1:]]
    return any(r[1] == f"0100007F:{port:04X}" and r[3] == "0A" for r in rows)


def test_help_and_version():
    rc, out, _ = run_mpechod(["--help"])
    assert rc == 0 and "--max-clients" in out and "--idle-timeout" in out
    rc, out, _ = run_mpechod(["-V"])
    assert rc == 0 and out.startswith("mpechod ")


BAD = [
    ["-p", "65536"], ["-p", "-1"], ["-p", ""], ["-p", "abc"], ["--port", "99999999999999999999"],
    ["-c", "0"], ["-c", "-3"], ["--max-clients", "1e3"], ["--idle-timeout", "-1"],
    ["--grace", "x"], ["--store-format", "xml"], ["--store-format", ""], ["--fsync", "sometimes"],
    ["-s", ""], ["-b", ""], ["-b", "not-an-address"], ["-b", "999.1.1.1"], ["--nope"], ["-Z"],
    ["-p"], ["stray-argument"],
]


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) or "empty" for a in BAD])
def test_bad_option_exits_64_with_one_line(args, tmp_path):
    rc, out, err = run_mpechod(["-s", str(tmp_path / "s.jsonl")] + args)
    assert rc == 64, (rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert out == ""


def test_port_in_use_exits_64(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        rc, _, err = run_mpechod(["-p", str(port), "-b", "127.0.0.1", "-s",
                                  str(tmp_path / "s.jsonl")])
    assert rc == 64, err
    assert len(err.strip().splitlines()) == 1 and "in use" in err


def test_unopenable_store_exits_73_and_leaves_nothing(tmp_path):
    srv = Server(["-p", "0", "-b", "127.0.0.1", "-s", str(tmp_path / "no" / "such" / "dir")])
    try:
        rc = srv.proc.wait(10 * SLOW)
        srv.reader.join(5)
        assert rc == 73  # EX_CANTCREAT, as --inetd's
        assert len(srv.lines) == 1 and "store" in srv.lines[0], srv.lines
        assert proc_children(srv.pid) == []
    finally:
        srv.cleanup()


def test_readiness_lines_and_dual_stack(start_server):
    srv = start_server("-b", "::1", ready=False)
    srv.wait_ready(nsockets=2)
    assert srv.addrs[0] == f"127.0.0.1:{srv.ports[0]}"
    assert srv.addrs[1] == f"[::1]:{srv.ports[0]}", "both sockets share the port"
    assert echo(srv.port, b"v4\n") == b"v4\n"
    assert echo(srv.port, b"v6\n", host="::1") == b"v6\n"
    assert srv.stop() == 0


def test_wildcard_bind_by_default(start_server):
    srv = start_server(bind=False, ready=False)
    srv.wait_ready(nsockets=1)
    assert any(a.startswith("0.0.0.0:") or a.startswith("[::]:") for a in srv.addrs)
    assert echo(srv.port, b"x") == b"x"
    assert srv.stop() == 0


def test_concurrent_binary_clients_and_store(start_server):
    srv = start_server()
    rnd = random.Random(7)
    payloads = [rnd.randbytes(rnd.choice([0, 1, 100, 4063, 4064, 4065, 65536, 300000]))
                for _ in range(32)]
    results = [None] * len(payloads)

    def client(i):
        results[i] = echo(srv.port, payloads[i])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * SLOW)
    for i, p in enumerate(payloads):
        assert results[i] == p, f"client {i}: sent {len(p)} bytes, got {len(results[i] or b'')}"
    srv.signal(signal.SIGUSR1)
    culled = int(srv.wait_line("stats:")[0].split("culled ")[1].split()[0])
    assert srv.stop() == 0
    conns = store_by_conn(read_store(srv.store_path))
    # A client that half-closed with nothing sent before the master accepted it is culled: no
    # session, nothing in the store, counted in the stats.  Every other one is stored.
    assert len(conns) + culled == len(payloads)
    assert culled <= payloads.count(b"")
    stored = sorted(bytes(c["data"]) for c in conns.values())
    assert stored == sorted(payloads)[culled:]
    for n, c in conns.items():
        assert c["opens"] == 1 and len(c["close"]) == 1, (n, c["close"])
        assert c["open"]["peer"].startswith("127.0.0.1:")
        assert c["close"][0]["reason"] == "eof"
        assert c["close"][0]["bytes"] == len(c["data"])
    # Each reaped session was logged with its pid, conn number and how it ended.
    reaped = [l for l in srv.lines if " exited 0 (eof)" in l]
    assert len(reaped) == len(conns)


def test_every_byte_value_and_split_frames(start_server):
    srv = start_server()
    data = bytes(range(256)) * 64
    assert echo(srv.port, data) == data
    assert srv.stop() == 0
    (c,) = store_by_conn(read_store(srv.store_path)).values()
    assert bytes(c["data"]) == data


def test_raw_store_format(start_server):
    srv = start_server("--store-format", "raw")
    assert echo(srv.port, b"one\n") == b"one\n"
    assert echo(srv.port, b"\x00two\xff") == b"\x00two\xff"
    assert srv.stop() == 0
    with open(srv.store_path, "rb") as f:
        assert f.read() == b"one\n\x00two\xff"


def test_half_close_at_once_gets_everything(start_server):
    srv = start_server()
    with connect(srv.port) as s:
        s.sendall(b"abc" * 1000)
        s.shutdown(socket.SHUT_WR)
        assert recv_exact(s, 3001) == b"abc" * 1000  # then EOF
    with connect(srv.port) as s:
        s.shutdown(socket.SHUT_WR)
        assert s.recv(10) == b""
    assert srv.stop() == 0


def test_no_zombie_no_fd_leak_after_thousands(start_server, conn_rate):
    srv = start_server("-c", "64", store=False)
    base_fds = fd_count(srv.pid)
    # About three seconds' worth of connections at the rate this machine serves them one at a
    # time (eight at a time get through sooner), up to 2000.
    total = scaled(conn_rate, 3, 200, 2000, multiple=8)
    errors = []

    def worker(n):
        for _ in range(n):
            try:
                if echo(srv.port, b"ping") != b"ping":
                    errors.append("bad echo")
            except OSError as e:
                errors.append(str(e))

    threads = [threading.Thread(target=worker, args=(total // 8,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120 * SLOW)
    assert not errors, errors[:5]
    wait_until(srv.quiet, 10, what="sessions to end")
    wait_until(lambda: zombies_of(srv.pid) == [], 5, what="no zombies")
    wait_until(lambda: fd_count(srv.pid) == base_fds, 10, what=f"{base_fds} descriptors again")
    srv.signal(signal.SIGUSR1)
    stats = srv.wait_line("stats:")[-1]
    assert f"accepted {total}," in stats, (total, stats)
    assert "active 0," in stats
    assert srv.stop() == 0


@pytest.mark.fork_only("counts the session processes reaped")
def test_stats_line(start_server):
    srv = start_server()
    echo(srv.port, b"12345")
    s = connect(srv.port)
    s.sendall(b"abc")
    assert recv_exact(s, 3) == b"abc"
    srv.wait_line(" exited ")  # the first session is reaped: it counts as reaped, not active
    srv.signal(signal.SIGUSR1)
    line = srv.wait_line("stats:")[0]
    assert "active 1, accepted 2, bytes echoed 8, reaped 1 by exit, 0 by signal" in line, line
    s.close()
    assert srv.stop() == 0


def test_max_clients_waits_in_backlog(start_server):
    srv = start_server("-c", "2")
    a, b = connect(srv.port), connect(srv.port)
    for s in (a, b):
        s.sendall(b"x")
        assert recv_exact(s, 1) == b"x"
    c = connect(srv.port)  # completes in the kernel's backlog
    c.sendall(b"waiting")
    # Letting half a second pass is the test: nothing may answer c while two sessions run.
    c.settimeout(0.5)
    with pytest.raises(socket.timeout):
        c.recv(10)
    assert len(srv.sessions()) == 2, "forked past -c 2"
    a.close()
    c.settimeout(10 * SLOW)
    assert recv_exact(c, 7) == b"waiting"
    b.close()
    c.close()
    assert srv.stop() == 0


def test_sigterm_drains_and_ends_sessions_after_grace(start_server):
    srv = start_server("--grace", "1")
    s = connect(srv.port)
    s.sendall(b"held")
    assert recv_exact(s, 4) == b"held"
    rc = srv.stop()  # within its deadline: the grace and the SIGTERM, not a hang
    assert rc == 0
    # The session ended on the SIGTERM after the grace, not on the SIGKILL after that.
    assert [l for l in srv.lines if "sending signal 15 to 1 sessions" in l], srv.lines
    assert not [l for l in srv.lines if "sending signal 9" in l or "killed by" in l], srv.lines
    s.settimeout(10 * SLOW)
    assert s.recv(10) == b""  # the session closed the connection
    s.close()
    assert proc_children(srv.pid) == []
    (c,) = store_by_conn(read_store(srv.store_path)).values()
    assert bytes(c["data"]) == b"held"
    assert [r["reason"] for r in c["close"]] == ["shutdown"]


def test_sigterm_lets_session_finish_within_grace(start_server):
    srv = start_server("--grace", "20")
    s = connect(srv.port)
    s.sendall(b"a")
    assert recv_exact(s, 1) == b"a"
    srv.signal(signal.SIGTERM)
    srv.wait_line("shutting down")
    # Said once no process of the server holds a listener (a busy session never does).
    srv.wait_line("listeners closed in every process: the ports are free")
    assert not listening(srv.port)
    s.sendall(b"b")
    assert recv_exact(s, 1) == b"b"
    s.shutdown(socket.SHUT_WR)
    assert s.recv(1) == b""
    s.close()
    assert srv.stop() == 0
    (c,) = store_by_conn(read_store(srv.store_path)).values()
    assert bytes(c["data"]) == b"ab" and c["close"][0]["reason"] == "eof"


def assert_split_at_the_reopen(srv, rotated):
    """Stops srv; conn 1 ("before") must be whole in the rotated file, conn 2 ("after") whole in
    the new one."""
    assert srv.stop() == 0

    def summary(path):
        return {n: (bytes(c["data"]), c["opens"], [r["reason"] for r in c["close"]])
                for n, c in store_by_conn(read_store(path)).items()}

    assert summary(rotated) == {1: (b"before", 1, ["eof"])}
    assert summary(srv.store_path) == {2: (b"after", 1, ["eof"])}


def test_sighup_reopens_store(start_server, tmp_path):
    """Every record of a session that ended before the SIGHUP is in the old file, even when the
    store had not read them all from its pipe yet; everything after the reopen is in the new."""
    srv = start_server()
    # The session writes its close record before it closes the connection: once the echo has
    # ended, all of conn 1 is in the store pipe, if not yet in the file.
    assert echo(srv.port, b"before") == b"before"
    os.rename(srv.store_path, str(tmp_path / "rotated.jsonl"))
    srv.signal(signal.SIGHUP)
    srv.wait_line("reopened")
    assert echo(srv.port, b"after") == b"after"
    assert_split_at_the_reopen(srv, str(tmp_path / "rotated.jsonl"))


def test_sighup_drains_the_pipe_into_the_old_file(start_server, tmp_path):
    """The records are still in the store pipe when the SIGHUP arrives (the store is stopped
    until then): the store writes them to the old file before it reopens."""
    srv = start_server()
    store = wait_until(srv.store_pid, 10, what="the store")
    os.kill(store, signal.SIGSTOP)
    try:
        assert echo(srv.port, b"before") == b"before"
        os.rename(srv.store_path, str(tmp_path / "rotated.jsonl"))
        srv.signal(signal.SIGHUP)
        wait_until(lambda: signal.SIGHUP in signal_set(store, "ShdPnd"), 10,
                   what="the master to pass the SIGHUP on to the stopped store")
    finally:
        os.kill(store, signal.SIGCONT)
    srv.wait_line("reopened")
    assert echo(srv.port, b"after") == b"after"
    assert_split_at_the_reopen(srv, str(tmp_path / "rotated.jsonl"))


def test_killed_session_is_reaped_logged_and_closed_in_store(start_server):
    srv = start_server()
    s = connect(srv.port)
    s.sendall(b"doomed")
    assert recv_exact(s, 6) == b"doomed"
    other = connect(srv.port)
    other.sendall(b"ok")
    assert recv_exact(other, 2) == b"ok"
    # The open record names the session's pid; the store writes it as soon as it reads it.
    opened = wait_until(lambda: [r for r in store_so_far(srv.store_path)
                                 if r["ev"] == "open" and r["conn"] == 1], 5, what="open record")
    victim = opened[0]["pid"]
    assert victim in srv.sessions()
    os.kill(victim, signal.SIGKILL)
    srv.wait_line(f"session {victim} conn 1 killed by signal 9")
    other.sendall(b"still")
    assert recv_exact(other, 5) == b"still"
    other.close()
    s.close()
    wait_until(lambda: zombies_of(srv.pid) == [], 5, what="no zombies")
    assert srv.stop() == 0
    conns = store_by_conn(read_store(srv.store_path))
    assert [r["reason"] for r in conns[1]["close"]] == ["signal 9"]
    assert conns[1]["close"][0]["bytes"] == 6
    assert [r["reason"] for r in conns[2]["close"]] == ["eof"]


def test_idle_timeout(start_server):
    srv = start_server("--idle-timeout", "1")
    s = connect(srv.port)
    s.sendall(b"hi")
    assert recv_exact(s, 2) == b"hi"
    s.settimeout(10 * SLOW)
    assert s.recv(10) == b""
    s.close()
    srv.wait_line("exited 2 (idle)")
    assert srv.stop() == 0
    (c,) = store_by_conn(read_store(srv.store_path)).values()
    assert c["close"][0]["reason"] == "idle"


def test_second_server_on_the_same_store_exits_73(start_server):
    srv = start_server()
    rc, _, err = run_mpechod(["-p", "0", "-b", "127.0.0.1", "-s", srv.store_path])
    assert rc == 73 and "another mpechod" in err, err
    assert echo(srv.port, b"first") == b"first"
    assert srv.stop() == 0


def test_socket_failure_has_a_reason(tmp_path):
    def few_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (4, 4))

    p = subprocess.run([binary("mpechod"), "-p", "0", "-b", "127.0.0.1", "-b", "::1", "-s",
                        str(tmp_path / "s.jsonl")], capture_output=True, timeout=10 * SLOW,
                       preexec_fn=few_fds, stdin=subprocess.DEVNULL)
    err = p.stderr.decode()
    assert p.returncode == 64 and "Too many open files" in err, err


def nice_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])


def test_fork_master_outranks_its_children(start_server):
    """Fork mode's master, which accepts and forks for every client (its spawner forks, with the
    sandbox on), takes twenty nice steps over its children where it may (root here;
    RLIMIT_NICE elsewhere): a session, the store, run at the nice the server was started with.
    In prefork mode the pool accepts for itself and the master keeps its nice."""
    n0 = os.getpriority(os.PRIO_PROCESS, 0)
    want = max(-20, n0 - 20)
    may = os.geteuid() == 0 or 20 - resource.getrlimit(resource.RLIMIT_NICE)[0] <= want
    srv = start_server()
    s = connect(srv.port)
    s.sendall(b"ranked")
    assert recv_exact(s, 6) == b"ranked"
    kids = [k for k in proc_children(srv.pid) if proc_comm(k) != SPAWNER]
    assert len(kids) >= 2, kids  # the store and this connection's session or pool process
    assert nice_of(srv.pid) == (n0 if PREFORK or not may else want)
    assert [nice_of(k) for k in kids] == [n0] * len(kids)
    # Fork mode's spawner forks on the master's behalf: it takes the master's nice, when the
    # server started at 0 (its sessions then start at 0 again).
    sp = spawner_of(srv.pid)
    if sp is not None:
        assert nice_of(sp) == (want if may and n0 == 0 else n0)
    s.close()
    assert srv.stop() == 0
