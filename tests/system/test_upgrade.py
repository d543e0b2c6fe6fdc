"""Binary upgrade in place on SIGUSR2 (issue 26): the master checks the binary at the path it
was started from (PATH -t with its own arguments) and re-executes it, keeping its pid, its
listeners, its children and the store; the old binary's sessions finish, new connections are
served by the new binary, the store file says a new life began.

The new binary is a real second build: this tree built again into a temporary directory with
another MPECHO_VERSION (make OUT=... CFLAGS=-DMPECHO_VERSION=...), so the store's start record
and the master's log line tell the two apart.  Each server runs from a copy of the binary in a
temporary directory, replaced by rename as a package upgrade does.  Both modes
(MPECHO_SERVER_ARGS=--prefork); the rolling upgrade runs behind a real haproxy with agent
checks (test_drain.py's helpers).
"""
import json
import os
import shutil
import signal
import subprocess
import threading

import pytest

from conftest import (BIN, MODE_ARGS, PREFORK, ROOT, SLOW, Server, binary, connect, echo,
                      read_store, recv_exact, store_by_conn, wait_until)
from test_drain import agent_port, needs_haproxy, start_haproxy, wait_status

NEW_VERSION = "0.1.0+upgrade-test"


@pytest.fixture(scope="module")
def new_build(tmp_path_factory):
    """A second mpechod built from this tree with another version."""
    out = tmp_path_factory.mktemp("newbuild")
    p = subprocess.run(["make", "-C", ROOT, "-j2", f"OUT={out}",
                        f"CFLAGS=-DMPECHO_VERSION='\"{NEW_VERSION}\"'", f"{out}/bin/mpechod"],
                       capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    path = out / "bin" / "mpechod"
    v = subprocess.run([str(path), "--version"], capture_output=True, timeout=10)
    assert v.stdout.decode().strip() == f"mpechod {NEW_VERSION}"
    return path


def install(src, path):
    """Puts src at path as a package manager does: a new file renamed over the old one."""
    tmp = str(path) + ".new"
    shutil.copy(src, tmp)
    os.chmod(tmp, 0o755)
    os.rename(tmp, path)


@pytest.fixture
def start_at(tmp_path):
    """start_at(name, *args, store=True): mpechod started from its own copy of the binary under
    test, at tmp_path/name/mpechod; every one is cleaned up by pid at the end."""
    servers = []
    yield lambda name, *args, store=True: _start_at(tmp_path, servers, name, *args, store=store)
    for srv in servers:
        srv.cleanup()


def _start_at(tmp_path, servers, name, *args, store=True):
    d = tmp_path / name
    d.mkdir()
    path = d / "mpechod"
    install(os.path.join(BIN, "mpechod"), path)
    argv = ["-p", "0", "-b", "127.0.0.1"] + MODE_ARGS + list(args)
    argv += ["-s", str(d / "store.jsonl")] if store else ["--no-store"]
    srv = Server(argv, program=str(path))
    servers.append(srv)
    srv.path = path
    srv.store_path = d / "store.jsonl" if store else None
    srv.wait_ready()
    return srv


def exe_inode(pid):
    return os.stat(f"/proc/{pid}/exe").st_ino


def children_of_binary(pid, ino):
    """The children of pid that run the binary file whose inode is ino."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid == pid and exe_inode(name) == ino:
                kids.append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    return kids


def hold(port, n, tag):
    """n connections, each of which has echoed once; returns them with what each received."""
    held = []
    for i in range(n):
        s = connect(port)
        msg = b"%s %d before\n" % (tag, i)
        s.sendall(msg)
        assert recv_exact(s, len(msg)) == msg
        held.append([s, bytearray(msg)])
    return held


def echo_again(held, word):
    for i, h in enumerate(held):
        msg = b"%s %d\n" % (word, i)
        h[0].sendall(msg)
        assert recv_exact(h[0], len(msg)) == msg
        h[1] += msg


def bench(port, mode, conns, seconds, out):
    p = subprocess.run([binary("mpecho-bench"), "--json", "-d", str(seconds), "-c", str(conns),
                        "-s", "100", "-t", "10000", mode, "127.0.0.1", str(port)],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=(seconds + 60) * SLOW)
    out[mode] = (p.returncode, p.stdout.decode(), p.stderr.decode())


def bench_ok(out, what):
    for mode, (rc, stdout, stderr) in sorted(out.items()):
        r = json.loads(stdout)
        print(f"{what}, mpecho-bench {mode}: {r.get('errors')} errors "
              f"({r['error_kinds']['connect']} refused), {r.get('connects')} connects, "
              f"{r.get('requests')} requests")
        assert rc == 0 and r["errors"] == 0, (mode, r, stderr)


def check_store(path, held):
    """mpecho-store check is clean; every byte each held client received is in the store,
    in its connection; the file says a new life began with the new version."""
    p = subprocess.run([binary("mpecho-store"), "check", str(path)], capture_output=True,
                       timeout=60 * SLOW)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    recs = read_store(path)
    starts = [r for r in recs if r["ev"] == "start"]
    assert [r["version"] for r in starts][-1] == NEW_VERSION, starts
    assert len({r["life"] for r in starts}) == len(starts)
    # Conn numbers go on across the upgrade: none is used in both lives.
    opens = [r["conn"] for r in recs if r["ev"] == "open"]
    assert len(opens) == len(set(opens)), "a conn number in both lives"
    data = sorted(bytes(c["data"]) for c in store_by_conn(recs).values())
    for h in held:
        assert bytes(h[1]) in data, f"{bytes(h[1][:40])!r}... is not in the store"
    return recs


def test_upgrade_keeps_pid_connections_and_store(start_at, new_build):
    srv = start_at("a", "--grace", "60")
    try:
        pid, old_ino = srv.pid, exe_inode(srv.pid)
        held = hold(srv.port, 5, b"held")
        out = {}
        seconds = int(8 * SLOW)
        run = threading.Thread(target=bench, args=(srv.port, "connect", 4, seconds, out))
        run.start()
        wait_until(lambda: srv.stats()[0]["accepted"] >= 10, 10 * SLOW, interval=0.1,
                   what="the bench's connections")
        install(new_build, srv.path)
        srv.signal(signal.SIGUSR2)
        srv.wait_line(f"upgraded in place to {srv.path} {NEW_VERSION}", timeout=30 * SLOW)
        # The same process, now running the new file.
        assert srv.proc.poll() is None and srv.pid == pid
        assert exe_inode(pid) == os.stat(srv.path).st_ino != old_ino
        echo_again(held, b"after the upgrade")
        assert echo(srv.port, b"served by the new binary\n") == b"served by the new binary\n"
        # One upgrade at a time: the old binary's sessions still run.
        srv.signal(signal.SIGUSR2)
        srv.wait_line("upgrade refused: ", timeout=10 * SLOW)
        run.join((seconds + 90) * SLOW)
        bench_ok(out, "upgrade in place")
        # Every process of the binary before, but the held connections' (one each), has
        # ended: none goes on accepting (and numbering) after it was told to retire, however
        # late it was forked before the exec.
        wait_until(lambda: len(children_of_binary(pid, old_ino)) <= len(held), 20 * SLOW,
                   interval=0.1, what="the old binary's processes but the held connections'")
        assert len(children_of_binary(pid, old_ino)) == len(held)
        if not PREFORK:
            # Shutting down, the ports are free at once: the old binary's sessions hold no
            # listener, and the line does not wait for them (a pool process of the binary
            # before may, in a slot this one cannot see: with --prefork the line waits).
            srv.signal(signal.SIGTERM)
            srv.wait_line("listeners closed in every process: the ports are free")
            assert len(children_of_binary(pid, old_ino)) == len(held)
            echo_again(held, b"after the TERM")
        for h in held:
            h[0].close()
        srv.wait_line("the last process of the binary before has ended", timeout=30 * SLOW)
        assert children_of_binary(pid, old_ino) == []
    finally:
        # Nothing is left in hand: the shutdown takes nothing like its 60 s grace (an old
        # process still accepting would hold it for all of it).
        rc = srv.stop(timeout=30)
    assert rc == 0, "\n".join(srv.lines[-30:])
    recs = check_store(srv.store_path, held)
    # The held connections were opened in the first life and closed in it, by the new store.
    lives = [r["life"] for r in recs if r["ev"] == "start"]
    old = [r for r in recs if r.get("life") == lives[0] and r["ev"] == "close"]
    assert len(old) >= len(held)
    # The connection made after the upgrade was served in the new life (by the new binary).
    new = [c for c in store_by_conn(recs).values()
           if bytes(c["data"]) == b"served by the new binary\n"]
    assert len(new) == 1 and new[0]["open"]["life"] == lives[-1]


def test_a_binary_that_fails_its_check_is_not_executed(start_at, tmp_path):
    srv = start_at("a")
    try:
        pid, ino = srv.pid, exe_inode(srv.pid)
        held = hold(srv.port, 2, b"held")
        broken = tmp_path / "broken"
        broken.write_text("#!/bin/sh\n[ \"$1\" = -t ] && exit 1\nexec sleep 60\n")
        install(broken, srv.path)
        srv.signal(signal.SIGUSR2)
        srv.wait_line(f"upgrade refused: {srv.path} -t exited 1")
        os.unlink(srv.path)
        srv.signal(signal.SIGUSR2)
        srv.wait_line(f"upgrade refused: cannot execute {srv.path}")
        hang = tmp_path / "hang"
        hang.write_text("#!/bin/sh\nexec sleep 60\n")
        install(hang, srv.path)
        srv.signal(signal.SIGUSR2)
        srv.wait_line(f"upgrade refused: {srv.path} -t did not finish in 10 s",
                      timeout=30 * SLOW)
        # Still the old binary, serving what it had and new connections.
        assert srv.proc.poll() is None and exe_inode(pid) == ino
        echo_again(held, b"still")
        assert echo(srv.port, b"old binary\n") == b"old binary\n"
        assert not any("executing" in l for l in srv.lines)
        for h in held:
            h[0].close()
    finally:
        rc = srv.stop()
    assert rc == 0


def test_malformed_handover_is_refused(tmp_path):
    for bad in ("", "2 l=3", "1 l=1 u= m= a=-1 r=-1 w=-1 k=-1 s=0 d=0 x=0 c=1 key=0 life=0",
                "1 l=200 u= m= a=-1 r=-1 w=-1 k=-1 s=0 d=0 x=0 c=1 key=0000000000000000 "
                "life=00000000000000000000000000000000"):
        env = dict(os.environ, MPECHOD_UPGRADE=bad)
        p = subprocess.run([binary("mpechod"), "-p", "0", "-b", "127.0.0.1", "--no-store"],
                           env=env, capture_output=True, timeout=10 * SLOW)
        assert p.returncode == 64, (bad, p.stderr)
        assert b"MPECHOD_UPGRADE" in p.stderr


def test_check_refuses_what_it_cannot_take_over(tmp_path):
    """The new binary's -t, run by an upgrading master with the words it must share: another
    hand-over version or another store is refused, and so is --echo-after."""
    store = str(tmp_path / "s.jsonl")
    ours = f"proto=1 frame=40 magic={0x4d45} store={store} user="

    def check(words, *args):
        env = dict(os.environ, MPECHOD_UPGRADE_CHECK=words)
        return subprocess.run([binary("mpechod"), "-t", "-s", store] + list(args), env=env,
                              capture_output=True, timeout=10 * SLOW)
    assert check(ours).returncode == 0
    for words in (ours.replace("proto=1", "proto=2"), ours.replace(store, store + ".old"),
                  ours + "nobody",
                  ours.replace("frame=40", "frame=48")):
        p = check(words)
        assert p.returncode == 64 and b"cannot take over" in p.stderr, (words, p.stderr)
    p = check(ours, "--echo-after", "written")
    assert p.returncode == 64 and b"--echo-after" in p.stderr, p.stderr


@needs_haproxy
def test_rolling_upgrade_behind_haproxy(start_at, tmp_path, new_build):
    """Three instances behind haproxy with agent checks, each upgraded in turn while
    mpecho-bench runs connect and rr through haproxy and HELD connections are held: 0 errors,
    0 refused, every held connection still echoes after the last upgrade, every store clean."""
    n_held = 200
    insts = [start_at(f"s{i}", "--agent-port", "0", "--grace", "120")
             for i in range(3)]
    hap, front = start_haproxy(tmp_path, [(s.port, agent_port(s)) for s in insts])
    out = {}
    try:
        wait_status(tmp_path, hap, {"s0": "UP", "s1": "UP", "s2": "UP"}, "three instances UP")
        held = hold(front, n_held, b"held")
        seconds = int(20 * SLOW)
        runs = [threading.Thread(target=bench, args=(front, m, c, seconds, out))
                for m, c in (("connect", 4), ("rr", 8))]
        for t in runs:
            t.start()
        for i, s in enumerate(insts):
            install(new_build, s.path)
            s.signal(signal.SIGUSR2)
            s.wait_line(f"upgraded in place to {s.path} {NEW_VERSION}", timeout=30 * SLOW)
            wait_status(tmp_path, hap, {f"s{i}": "UP"}, f"s{i} UP after its upgrade")
        upgraded = all(t.is_alive() for t in runs)
        echo_again(held, b"after the last upgrade")
        for t in runs:
            t.join((seconds + 90) * SLOW)
        for h in held:
            h[0].close()
    finally:
        hap.cleanup()
    assert upgraded, "the bench ended before the three instances were upgraded"
    bench_ok(out, f"rolling upgrade, {n_held} held")
    for s in insts:
        assert s.stop(timeout=60) == 0, "\n".join(s.lines[-30:])
        p = subprocess.run([binary("mpecho-store"), "check", str(s.store_path)],
                           capture_output=True, timeout=60 * SLOW)
        assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
        print(f"{s.store_path}: {p.stdout.decode().strip() or p.stderr.decode().strip()}")
