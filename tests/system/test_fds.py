"""A child holds only what it owns (issue 22: put-aside connections and the NOTIFY_SOCKET
descriptor leaked into other processes).

Every process role's descriptors are taken from /proc/PID/fd, with everything a child could
inherit present at once: systemd's notify socket (a unix datagram socket this test binds),
--udp, a restarted store, and connections put aside by the master (batch clients that send and
half-close at once, queued while the master is stopped so that one accept burst meets them
beside an interactive client).  Each descriptor is named by what it is (a TCP listener or
connection, a UDP or unix socket, the store pipe's read or write end, the store file, the wake
pipe, an epoll set) and each role may hold only its own kinds."""
import os
import signal
import socket
import time

import pytest

from conftest import (SANITIZED, SLOW, SPAWNER, Server, alive, connect, pipe_fds,
                      proc_children, proc_comm, proc_state, recv_exact, wait_until)

MODES = {"fork": [], "prefork": ["--prefork"]}

# What each role may hold at descriptors 3 and up, by kind (a count: at most that many).
ALLOWED = {
    "session": {"tcp": 1, "store-pipe-w": 1},
    "pool": {"listen": 99, "tcp": 1, "store-pipe-w": 1, "pipe-w": 1, "epoll": 1},
    "store": {"store-pipe-r": 1, "store-file": 1},
    "datagram": {"udp": 99, "store-pipe-w": 1},
    # fork mode with the sandbox on: its end of the pair with the master, the pipe it passes on
    # and the Landlock ruleset each session it forks enters a domain of its own with
    "spawner": {"unix": 1, "store-pipe-w": 1, "anon_inode:[landlock-ruleset]": 1},
}


def socket_kinds():
    """{inode: "listen" | "tcp" | "udp" | "unix"} for every socket of this network namespace."""
    kinds = {}
    for name in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(f"/proc/net/{name}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if name.startswith("udp"):
                kinds[f[9]] = "udp"
            else:
                kinds[f[9]] = "listen" if f[3] == "0A" else "tcp"
    with open("/proc/net/unix") as f:
        for row in f.read().splitlines()[1:]:
            kinds[row.split()[6]] = "unix"
    return kinds


def inventory(pid, store_pipe, store_path):
    """{fd: kind} for pid's descriptors 3 and up."""
    kinds = socket_kinds()
    modes = {fd: mode for fd, _, mode in pipe_fds(pid)}
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        fd = int(name)
        if fd < 3:
            continue
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            kind = kinds.get(target[8:-1], "socket " + target)
        elif target.startswith("pipe:["):
            end = "r" if modes.get(fd) == os.O_RDONLY else "w"
            kind = ("store-pipe-" if target == store_pipe else "pipe-") + end
        elif target == "anon_inode:[eventpoll]":
            kind = "epoll"
        elif target == store_path:
            kind = "store-file"
        else:
            kind = target
        out[fd] = kind
    return out


def role_of(inv):
    kinds = set(inv.values())
    if "store-pipe-r" in kinds:
        return "store"
    if "epoll" in kinds:
        return "pool"
    if "udp" in kinds:
        return "datagram"
    return "session"


def unexpected(role, inv):
    """The descriptors of inv that role may not hold, as "fd kind" strings."""
    allowed, seen, bad = ALLOWED[role], {}, []
    for fd, kind in sorted(inv.items()):
        seen[kind] = seen.get(kind, 0) + 1
        if seen[kind] > allowed.get(kind, 0):
            bad.append(f"{fd} {kind}")
    return bad


def batch_client(port):
    """A client that sends and half-closes at once, as `printf x | nc -N` does."""
    s = connect(port)
    s.sendall(b"x")
    s.shutdown(socket.SHUT_WR)
    return s


def queue_beside_interactive(srv, nbatch):
    """Stops the master, queues nbatch batch clients and then one interactive client (sent
    data, stays open) in its listen queue, and lets it go: one accept burst puts the batch
    clients aside and forks the interactive session while they are still aside."""
    srv.signal(signal.SIGSTOP)
    wait_until(lambda: proc_state(srv.pid) == "T", 5, what="the master to stop")
    try:
        batch = [batch_client(srv.port) for _ in range(nbatch)]
        live = connect(srv.port)
        live.sendall(b"hi")
    finally:
        srv.signal(signal.SIGCONT)
    assert recv_exact(live, 2) == b"hi"
    return batch, live


def read_to_eof(s, timeout):
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return data
        data += chunk


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    yield path
    s.close()


@pytest.mark.parametrize("mode", list(MODES))
def test_every_role_holds_only_its_own_descriptors(mode, tmp_path, notify_socket):
    store = str(tmp_path / "store.jsonl")
    env = dict(os.environ, NOTIFY_SOCKET=notify_socket)
    srv = Server(["-p", "0", "-b", "127.0.0.1", "--udp", "-s", store] + MODES[mode], env=env)
    clients = []
    try:
        srv.wait_ready()
        # A restarted store is forked while the notify socket and every listener are open.
        first = srv.store_pid()
        os.kill(first, signal.SIGKILL)
        srv.wait_line("restarted the store as", timeout=10)
        batch, live = queue_beside_interactive(srv, 8)
        clients += batch + [live]
        pipe = srv.store_pipe()[1]
        roles, bad = {}, []
        wait_until(lambda: len(proc_children(srv.pid)) >= 3, 10, what="the children")
        for pid in proc_children(srv.pid):
            if not alive(pid):
                continue
            try:
                inv = inventory(pid, pipe, store)
            except FileNotFoundError:
                continue  # a batch session that ended meanwhile
            role = "spawner" if proc_comm(pid) == SPAWNER else role_of(inv)
            roles.setdefault(role, []).append(pid)
            bad += [f"{role} {pid}: {b}" for b in unexpected(role, inv)]
        assert not bad, "descriptors a role should not hold:\n" + "\n".join(bad)
        # Fork mode's spawner runs with the sandbox on (sanitizer builds default to off).
        want = {"store", "datagram"} | ({"pool"} if mode == "prefork" else
                                         {"session"} | (set() if SANITIZED else {"spawner"}))
        assert want <= set(roles), (want, roles)
        master = set(inventory(srv.pid, pipe, store).values())
        assert "unix" in master, ("the master holds the notify socket", master)
        assert srv.stop() == 0
    finally:
        for c in clients:
            c.close()
        srv.cleanup()


@pytest.mark.parametrize("mode", list(MODES))
def test_batch_clients_beside_a_live_session_get_their_eof(mode, tmp_path):
    """A batch client gets its echo and its EOF without waiting for an unrelated session: no
    other process holds a copy of its connection."""
    srv = Server(["-p", "0", "-b", "127.0.0.1", "-s", str(tmp_path / "s.jsonl")] + MODES[mode])
    clients = []
    try:
        srv.wait_ready()
        batch, live = queue_beside_interactive(srv, 6)
        clients += batch + [live]
        for s in batch:
            assert read_to_eof(s, 5 * SLOW) == b"x"
        live.sendall(b"still here")
        assert recv_exact(live, 10) == b"still here"
        assert srv.stop() == 0
    finally:
        for c in clients:
            c.close()
        srv.cleanup()
