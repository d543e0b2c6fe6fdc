"""The Debian package under a real systemd as PID 1: a Debian 12 root (scripts/nspawn-root.sh,
made once with debootstrap from this machine's apt source and cached) booted with
`systemd-nspawn -b`, each test in a fresh container whose writes go to a tmpfs
(--volatile=overlay) and whose only network is its own loopback (--private-network).  The
package is built from the tree (scripts/package-check.sh --deb) and installed with apt inside;
systemctl, apt and dpkg run inside through nsenter, and the clients' sockets are made inside the
container's network namespace (setns, as `nsenter -n` does) and driven from here.  The store is
read through /proc/PID/root.

Scenarios: install, socket activation, reload, restart after kill -9 of the master with nothing
lost (22.14, fork and prefork), stop, upgrade in place (USR2 from the postinst), purge with nothing left running (22.13), the
journal's lines (22.15), and mpechod-inetd.socket's per-source limit (22.16).

Needs root, systemd-nspawn (package systemd-container) and debootstrap; the first run makes the
root (2 to 6 minutes here, most of it the mirror), later ones reuse it.  MPECHO_DEB: a built
.deb instead of building one; MPECHO_NSPAWN_ROOT: a root instead of scripts/nspawn-root.sh's;
MPECHO_NSPAWN_CACHE: where that script keeps its roots.
"""
import contextlib
import ctypes
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import PREFORK, ROOT, SANITIZED, SLOW, record_bytes, wait_until

NSPAWN = shutil.which("systemd-nspawn")
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (systemd-nspawn, debootstrap)"),
    pytest.mark.skipif(NSPAWN is None, reason="systemd-nspawn is not installed (Debian package "
                       "systemd-container; scripts/deps.sh installs it)"),
    pytest.mark.skipif(shutil.which("debootstrap") is None and "MPECHO_NSPAWN_ROOT" not in
                       os.environ, reason="debootstrap is not installed (scripts/deps.sh "
                       "installs it)"),
    pytest.mark.skipif(shutil.which("nsenter") is None, reason="nsenter (util-linux) is missing"),
    # The package builds its own binaries from the tree: nothing here depends on the sanitized
    # build, so the sanitized pass does not run it again.
    pytest.mark.skipif(SANITIZED, reason="builds and tests the package, not MPECHO_BIN"),
    pytest.mark.skipif(PREFORK, reason="the package's two modes are parameters here, in the "
                       "normal pass"),
]

STORE = "/var/lib/mpecho/echomsg.jsonl"
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture(scope="session")
def nspawn_root():
    if "MPECHO_NSPAWN_ROOT" in os.environ:
        return os.environ["MPECHO_NSPAWN_ROOT"]
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(ROOT, "scripts", "nspawn-root.sh")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=2400)
    assert r.returncode == 0, r.stderr
    print(f"nspawn root {r.stdout.strip()} ready in {time.monotonic() - t0:.1f}s")
    return r.stdout.strip()


@pytest.fixture(scope="session")
def deb(tmp_path_factory):
    if "MPECHO_DEB" in os.environ:
        return pathlib.Path(os.environ["MPECHO_DEB"])
    out = tmp_path_factory.mktemp("deb")
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(ROOT, "scripts", "package-check.sh"), "--deb", str(out)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout
    print(f"package built in {time.monotonic() - t0:.1f}s")
    return pathlib.Path(r.stdout.strip().splitlines()[-1])


def _cgroup_dirs(name):
    """Where the container gets a cgroup of its own (in each hierarchy that nspawn uses), under
    this process's, so that two containers never share one and nothing is left after."""
    dirs = []
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrl, path = line.rstrip("\n").split(":", 2)
            own[ctrl] = path
    if os.path.exists("/sys/fs/cgroup/unified/cgroup.procs"):
        dirs.append(f"/sys/fs/cgroup/unified{own.get('', '/')}")
        dirs.append(f"/sys/fs/cgroup/systemd{own.get('name=systemd', '/')}")
    elif os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        dirs.append(f"/sys/fs/cgroup{own.get('', '/')}")
    return [os.path.join(d.rstrip("/") or "/", name) for d in dirs]


def _rmdir_tree(top):
    for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)


class Machine:
    """One booted container."""
    count = 0

    def __init__(self, root, deb, log):
        Machine.count += 1
        self.name = f"mpecho-{os.getpid()}-{Machine.count}"
        self.deb = "/mnt/deb/" + deb.name
        self.cgroups = _cgroup_dirs(self.name)
        self.logpath = log
        self.leader = None
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(
            [NSPAWN, "-q", "-D", root, "--volatile=overlay", "--private-network",
             "--register=no", "--keep-unit", "-M", self.name, f"--bind-ro={deb.parent}:/mnt/deb",
             "--console=passive",
             # nspawn's own filter (systemd 252) refuses Landlock to the whole container, which
             # a booted host does not: let it through, so the units' filters are what is tested.
             "--system-call-filter=landlock_create_ruleset landlock_add_rule "
             "landlock_restrict_self", "-b"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=self._child_setup)

    def _child_setup(self):
        """In nspawn before its exec: a cgroup of its own, and TERM (nspawn then halts the
        container) if this test process dies without its teardown."""
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        for d in self.cgroups:
            try:
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write("0")
            except OSError:
                pass

    def _find_leader(self):
        """The container's PID 1: nspawn's child whose pid in its own namespace is 1."""
        assert self.proc.poll() is None, f"systemd-nspawn exited:\n{self.output()}"
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                status = pathlib.Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            fields = dict(l.split(":\t", 1) for l in status.splitlines() if ":\t" in l)
            if (fields.get("PPid") == str(self.proc.pid) and
                    fields.get("NSpid", "").split()[-1:] == ["1"]):
                return int(pid)
        return None

    def boot(self):
        self.leader = wait_until(self._find_leader, 60, 0.05, "the container's PID 1")
        wait_until(lambda: self.path("/run/systemd/private").exists(), 60, 0.05,
                   "systemd's private socket in the container")
        r = self.run("systemctl is-system-running --wait", timeout=120, check=False)
        assert r.stdout.strip() in ("running", "degraded"), (
            r.stdout + self.run("systemctl --failed --no-legend", check=False).stdout)
        return self

    def output(self):
        return pathlib.Path(self.logpath).read_text(errors="replace")

    def run(self, cmd, timeout=120, check=True):
        """A shell command inside (every namespace, the container's root), with a clean
        environment."""
        r = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", "-r", "-w", "env", "-i", PATH,
             "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", "SYSTEMD_PAGER=", "sh", "-c", cmd],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout * SLOW)
        if check:
            assert r.returncode == 0, f"{cmd!r} exited {r.returncode}:\n{r.stdout}"
        return r

    def prop(self, unit, name):
        return self.run(f"systemctl show -P {name} {unit}").stdout.strip()

    def install(self):
        self.run(f"apt-get install -y -q --no-install-recommends {self.deb}", timeout=300)

    @contextlib.contextmanager
    def netns(self):
        """This thread in the container's network namespace for the block: sockets made in it
        stay there."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/proc/{self.leader}/ns/net", os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the container")
            yield
        finally:
            back = _libc.setns(own, CLONE_NEWNET)
            os.close(target)
            os.close(own)
            assert back == 0, "could not return to the host's network namespace"

    def connect(self, port=7, timeout=10):
        with self.netns():
            return socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)

    def path(self, p):
        return pathlib.Path(f"/proc/{self.leader}/root{p}")

    def store(self, path=STORE):
        """The store's records, whole lines only (a line being written is not read)."""
        try:
            raw = self.path(path).read_bytes()
        except FileNotFoundError:
            return []
        lines = raw.decode("utf-8").split("\n")[:-1]
        return [json.loads(l) for l in lines]

    def mpechod_pids(self):
        """Every process inside running mpechod (by its executable, even a deleted one)."""
        out = self.run("for p in /proc/[0-9]*; do case $(readlink $p/exe 2>/dev/null) in "
                       "*/mpechod|*/mpechod\\ \\(deleted\\)) echo ${p#/proc/};; esac; done",
                       check=False).stdout
        return [int(x) for x in out.split()]

    def stop(self):
        if self.proc.poll() is None:
            # nspawn asks the container's systemd to halt, and exits when it has.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60 * SLOW)
            except subprocess.TimeoutExpired:
                if self.leader:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.leader, signal.SIGKILL)  # ends its whole pid namespace
                self.proc.kill()
                self.proc.wait(30)
        if self.leader:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.leader, signal.SIGKILL)
            wait_until(lambda: not os.path.exists(f"/proc/{self.leader}"), 30, 0.05,
                       "the container's PID 1 to be gone")
        self.log.close()
        for d in self.cgroups:
            _rmdir_tree(d)
        with contextlib.suppress(OSError):
            os.rmdir(f"/run/systemd/nspawn/propagate/{self.name}")


@pytest.fixture
def machine(nspawn_root, deb, tmp_path):
    m = Machine(nspawn_root, deb, tmp_path / "console.log")
    try:
        m.boot()
        yield m
    finally:
        m.stop()


@pytest.fixture
def served(machine):
    """The package installed and mpechod.socket enabled and listening; mpechod not started."""
    machine.install()
    machine.run("systemctl enable --now mpechod.socket")
    return machine


def set_mode(m, mode):
    """mpechod.service in fork mode as shipped, or in prefork mode through a drop-in."""
    if mode == "prefork":
        m.run("mkdir -p /etc/systemd/system/mpechod.service.d && printf '[Service]\\nExecStart="
              "\\nExecStart=/usr/sbin/mpechod --prefork -s %s\\n' >"
              " /etc/systemd/system/mpechod.service.d/prefork.conf && systemctl daemon-reload"
              % STORE)
        assert "--prefork" in m.prop("mpechod.service", "ExecStart")


def echo_in(m, data, port=7):
    """One connection: sends data, half-closes, returns what came back and the local port."""
    with m.connect(port) as c:
        lport = c.getsockname()[1]
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := c.recv(65536):
            got += chunk
    return bytes(got), lport


def by_port(records):
    """local port of the client -> its connection's records ({"open", "data", "close"}).  A
    new master numbers its connections from 1 again, so a conn number means the connection most
    recently opened with it (the old master's store has finished before the new one writes).
    A connection is known by (life, conn): each --inetd process numbers its one connection 1."""
    out, current = {}, {}
    for r in records:
        key = (r.get("life"), r.get("conn"))
        if r["ev"] == "open":
            current[key] = c = {"open": r, "data": bytearray(), "close": []}
            out[int(r["peer"].rsplit(":", 1)[1])] = c
        elif key not in current:
            continue
        elif r["ev"] == "data":
            current[key]["data"] += record_bytes(r)
        elif r["ev"] == "close":
            current[key]["close"].append(r)
    return out


def wait_stored(m, ports, timeout=30, settle=False):
    """Waits for an open and a close record for each local port; returns by_port.  With
    settle, a timeout returns what is there, for the caller to say what is missing."""
    def done():
        conns = by_port(m.store())
        return conns if all(p in conns and conn_closed(conns[p]) for p in ports) else None
    try:
        return wait_until(done, timeout, 0.2, f"open and close records of ports {sorted(ports)}")
    except AssertionError:
        if not settle:
            raise
        return by_port(m.store())


def conn_closed(c):
    return len(c["close"]) > 0


class Streamer:
    """A client that sends a pattern without pause on one thread, up to limit bytes (then it
    holds the connection open), and counts what comes back on another, until the connection
    ends.  The limit keeps the store small: a tmpfs, read whole by each check."""

    def __init__(self, m, n, limit=1 << 20):
        self.limit = limit
        self.sock = m.connect()
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(None)
        self.pattern = bytes((i * 7 + n) & 0xFF for i in range(65536))
        self.got = bytearray()
        self.ended = threading.Event()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True),
                        threading.Thread(target=self._recv, daemon=True)]
        for t in self.threads:
            t.start()

    def _send(self):
        try:
            sent = 0
            while sent < self.limit and not self.stop.is_set() and not self.ended.is_set():
                self.sock.sendall(self.pattern[:16384])
                self.pattern = self.pattern[16384:] + self.pattern[:16384]
                sent += 16384
        except OSError:
            pass

    def _recv(self):
        try:
            while chunk := self.sock.recv(65536):
                self.got += chunk
        except OSError:
            pass
        self.ended.set()

    def close(self):
        self.stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for t in self.threads:
            t.join(10 * SLOW)


def assert_has_all_received(conns, clients):
    """Every byte each client received is in the store, in order, and its close is there."""
    for c in clients:
        assert c.port in conns, f"no open record for the client on port {c.port}"
        stored = bytes(conns[c.port]["data"])
        got = bytes(c.got)
        assert len(stored) >= len(got), (
            f"port {c.port}: the client received {len(got)} bytes, the store has {len(stored)}")
        assert stored[:len(got)] == got, f"port {c.port}: the stored bytes differ"
        assert conn_closed(conns[c.port]), f"port {c.port}: no close record"


# --- the scenarios -------------------------------------------------------------------------------

def test_install_and_socket_activation(machine):
    """apt installs the package: the user, the store's directory, the units known and not
    enabled; once mpechod.socket is enabled, the first connection starts mpechod.service."""
    machine.install()
    assert machine.run("getent passwd mpecho").stdout.strip().endswith(
        ":/var/lib/mpecho:/usr/sbin/nologin")
    assert machine.run("stat -c %U:%G /var/lib/mpecho").stdout.strip() == "mpecho:mpecho"
    for unit in ("mpechod.socket", "mpechod.service", "mpechod-inetd.socket"):
        assert machine.prop(unit, "LoadState") == "loaded", unit
        assert machine.prop(unit, "ActiveState") == "inactive", unit
    assert machine.run("systemctl is-enabled mpechod.socket", check=False).stdout.strip() == \
        "disabled"
    machine.run("systemctl enable --now mpechod.socket")
    assert machine.prop("mpechod.socket", "ActiveState") == "active"
    assert machine.prop("mpechod.service", "ActiveState") == "inactive"
    got, port = echo_in(machine, b"activated\n")
    assert got == b"activated\n"
    assert machine.prop("mpechod.service", "ActiveState") == "active"
    assert machine.prop("mpechod.service", "StatusText").startswith("active ")
    conns = wait_stored(machine, [port])
    assert bytes(conns[port]["data"]) == b"activated\n"
    assert machine.run(f"stat -c %U {STORE}").stdout.strip() == "mpecho"


def test_reload_reopens_the_store(served):
    """systemctl reload: the same master, the store reopens its path after a mv."""
    m = served
    got, p1 = echo_in(m, b"before\n")
    assert got == b"before\n"
    wait_stored(m, [p1])
    pid = m.prop("mpechod.service", "MainPID")
    m.run(f"mv {STORE} {STORE}.1 && systemctl reload mpechod.service")
    assert m.prop("mpechod.service", "MainPID") == pid
    got, p2 = echo_in(m, b"after\n")
    assert got == b"after\n"
    conns = wait_stored(m, [p2])
    assert p1 not in conns
    assert bytes(by_port(m.store(STORE + ".1"))[p1]["data"]) == b"before\n"
    # The store says so in the journal under its role and pid (22.15).
    msgs = m.run("journalctl -q -o cat -u mpechod.service -t mpechod").stdout.splitlines()
    assert any(l.startswith("store[") and f"]: reopened {STORE}" in l for l in msgs), msgs


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_kill9_of_the_master_loses_nothing(served, mode):
    """22.14: kill -9 of the master while 8 clients stream.  Every byte the clients were sent
    back is in the store, every connection has its close record, and systemd starts a new
    master, which serves; nothing of the old one is left running."""
    m = served
    set_mode(m, mode)
    echo_in(m, b"start\n")
    clients = [Streamer(m, n) for n in range(8)]
    try:
        wait_until(lambda: all(len(c.got) >= 256 * 1024 for c in clients), 60, 0.05,
                   "every client to be echoed 256 KB")
        old = m.prop("mpechod.service", "MainPID")
        old_pids = set(m.mpechod_pids())
        m.run("systemctl kill --kill-whom=main --signal=KILL mpechod.service")
        for c in clients:
            assert c.ended.wait(60 * SLOW), f"the connection of port {c.port} did not end"
    finally:
        for c in clients:
            c.close()
    wait_until(lambda: m.prop("mpechod.service", "ActiveState") == "active" and
               m.prop("mpechod.service", "MainPID") not in ("0", old), 60, 0.1,
               "mpechod.service to be restarted")
    conns = wait_stored(m, [c.port for c in clients], settle=True)
    assert_has_all_received(conns, clients)
    assert not old_pids & set(m.mpechod_pids()), "a process of the killed master is left"
    got, port = echo_in(m, b"after the restart\n")
    assert got == b"after the restart\n"
    wait_stored(m, [port])


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_stop_ends_everything_and_loses_nothing(served, mode):
    """systemctl stop with a client connected: the session ends within the grace, its records
    are all there, and no mpechod process is left."""
    m = served
    set_mode(m, mode)
    c = Streamer(m, 1)
    try:
        wait_until(lambda: len(c.got) >= 64 * 1024, 60, 0.05, "the client to be echoed 64 KB")
        m.run("systemctl stop mpechod.socket mpechod.service", timeout=90)
        assert c.ended.wait(30 * SLOW), "the connection did not end"
    finally:
        c.close()
    assert m.prop("mpechod.service", "ActiveState") == "inactive"
    assert m.mpechod_pids() == []
    assert_has_all_received(wait_stored(m, [c.port], settle=True), [c])


def _status(m, pid):
    """The fields of /proc/PID/status inside."""
    text = m.run(f"cat /proc/{pid}/status").stdout
    return dict(l.split(":", 1) for l in text.splitlines() if ":" in l)


@pytest.mark.parametrize("mode", ["fork", "prefork"])
def test_children_are_confined_under_the_unit(served, mode):
    """Under the unit's own SystemCallFilter= (which refuses with EPERM what it does not
    list) every child of the master installs its own filter on top of systemd's: one filter
    more than the master, NoNewPrivs, and no child that could not enter the sandbox; Landlock
    is not refused by the unit."""
    m = served
    set_mode(m, mode)
    c = m.connect()
    try:
        c.sendall(b"held\n")
        assert c.recv(16) == b"held\n"
        main = int(m.prop("mpechod.service", "MainPID"))
        kids = [p for p in m.mpechod_pids() if p != main]
        # The store and the held session (fork), or the pool processes (prefork).
        assert len(kids) >= 2, kids
        master = _status(m, main)

        def nice(pid):
            return int(m.run(f"cat /proc/{pid}/stat").stdout.rsplit(")", 1)[1].split()[16])
        # The fork-mode master raises itself as far as its RLIMIT_NICE lets it (the unit's
        # LimitNICE=-20, where the machine lets systemd raise the hard limit; a container
        # without CAP_SYS_RESOURCE cannot); every child is back at 0.
        limits = m.run(f"cat /proc/{main}/limits").stdout
        soft = int(next(l for l in limits.splitlines() if l.startswith("Max nice")).split()[3])
        assert nice(main) == (max(-20, 20 - soft) if mode == "fork" and soft > 20 else 0), (
            nice(main), soft)
        assert [nice(p) for p in kids] == [0] * len(kids)
        for pid in kids:
            st = _status(m, pid)
            assert st["Seccomp"].strip() == "2" and st["NoNewPrivs"].strip() == "1", (pid, st)
            assert int(st["Seccomp_filters"]) == int(master["Seccomp_filters"]) + 1, (
                pid, st["Seccomp_filters"], master["Seccomp_filters"])
    finally:
        c.close()
    log = m.run("journalctl -q -o cat -u mpechod.service").stdout
    assert "cannot enter the sandbox" not in log and "cannot confine" not in log, log
    assert "is refused here" not in log, log


def test_inetd_session_is_confined_under_the_unit(machine):
    """mpechod-inetd@.service, with the sandbox on: the session echoes while its process and
    its store each carry one filter more than the same unit's processes with --sandbox off."""
    m = machine
    m.install()
    m.run("systemctl enable --now mpechod-inetd.socket")

    def filters():
        c = m.connect()
        try:
            c.sendall(b"inetd\n")
            assert c.recv(16) == b"inetd\n"
            pids = wait_until(lambda: (p if len(p := m.mpechod_pids()) == 2 else None), 30,
                              0.05, "the session and its store")
            out = []
            for pid in pids:
                st = _status(m, pid)
                assert st["Seccomp"].strip() == "2" and st["NoNewPrivs"].strip() == "1", st
                out.append(int(st["Seccomp_filters"]))
            return out
        finally:
            c.close()
            wait_until(lambda: m.mpechod_pids() == [], 30, 0.05, "the session to end")

    on = filters()
    m.run("mkdir -p /etc/systemd/system/mpechod-inetd@.service.d && printf '[Service]\\n"
          "ExecStart=\\nExecStart=-/usr/sbin/mpechod --inetd --sandbox off -s %s\\n' > "
          "/etc/systemd/system/mpechod-inetd@.service.d/off.conf && systemctl daemon-reload"
          % STORE)
    off = filters()
    assert len(set(off)) == 1 and on == [off[0] + 1] * 2, (on, off)
    log = m.run("journalctl -q -o cat _COMM=mpechod").stdout
    assert "cannot enter the sandbox" not in log and "cannot confine" not in log, log


def test_upgrade_in_place_keeps_the_running_server(served):
    """Installing the package again over itself (dpkg's upgrade path) while mpechod runs and a
    client is connected: the postinst upgrades the master in place (USR2): the same MainPID,
    the socket never stopped (no client is refused meanwhile), the held connection still
    echoes, the store keeps every record and says a new life began."""
    m = served
    got, p1 = echo_in(m, b"old\n")
    assert got == b"old\n"
    held = m.connect()
    held.sendall(b"held before\n")
    assert held.recv(64) == b"held before\n"
    old = m.prop("mpechod.service", "MainPID")
    since = m.prop("mpechod.socket", "ActiveEnterTimestampMonotonic")
    m.run(f"dpkg -i {m.deb}", timeout=180)
    assert m.prop("mpechod.socket", "ActiveState") == "active"
    assert m.prop("mpechod.socket", "ActiveEnterTimestampMonotonic") == since, \
        "the upgrade restarted mpechod.socket (clients were refused meanwhile)"
    wait_until(lambda: "upgraded in place" in m.run(
        "journalctl -q -o cat -u mpechod.service -t mpechod").stdout, 60, 0.2,
        "the master to say it upgraded in place")
    assert m.prop("mpechod.service", "MainPID") == old
    assert m.prop("mpechod.service", "ActiveState") == "active"
    held.sendall(b"held after\n")
    assert held.recv(64) == b"held after\n"
    held.close()
    got, p2 = echo_in(m, b"new\n")
    assert got == b"new\n"
    conns = wait_stored(m, [p1, p2])
    assert bytes(conns[p1]["data"]) == b"old\n" and bytes(conns[p2]["data"]) == b"new\n"
    starts = [r for r in m.store() if r.get("ev") == "start"]
    assert len(starts) >= 2 and starts[-1]["life"] != starts[-2]["life"]


@pytest.mark.parametrize("socket_unit", ["mpechod.socket", "mpechod-inetd.socket"])
def test_purge_while_serving_leaves_nothing_running(machine, socket_unit):
    """22.13: apt purge while the units serve a client: every unit is stopped (no
    'not-found active'), no mpechod is left (not even on the deleted binary), port 7 is closed,
    and /var/lib/mpecho is gone only after its store has stopped."""
    m = machine
    m.install()
    m.run(f"systemctl enable --now {socket_unit}")
    c = m.connect()
    c.sendall(b"x\n")
    assert c.recv(16) == b"x\n"
    assert m.mpechod_pids() != []
    try:
        m.run("apt-get purge -y -q mpecho", timeout=180)
        units = m.run("systemctl list-units --all --plain --no-legend 'mpechod*'",
                      check=False).stdout
        assert units.strip() == "", f"units left after the purge:\n{units}"
        assert m.mpechod_pids() == [], "mpechod is still running after the purge"
        with pytest.raises(ConnectionRefusedError):
            m.connect().close()
        assert not m.path("/var/lib/mpecho").exists()
        assert c.recv(16) == b"", "the client's connection is still open"
    finally:
        c.close()


def test_purge_keeps_the_directory_of_a_live_store(machine):
    """22.13: a purge does not delete /var/lib/mpecho under a store still writing it (an
    mpechod started by hand, not by the package's units): it says so and keeps it."""
    m = machine
    m.install()
    m.run(f"systemd-run --unit=byhand -p User=mpecho /usr/sbin/mpechod -b 127.0.0.1 -p 7007 "
          f"-s {STORE}")
    wait_until(lambda: m.path(STORE).exists(), 30, 0.05, "the hand-started store")
    got, p1 = echo_in(m, b"by hand\n", 7007)
    assert got == b"by hand\n"
    try:
        out = m.run("apt-get purge -y -q mpecho", timeout=180).stdout
        assert "/var/lib/mpecho is kept" in out, out
        assert m.path(STORE).exists()
        wait_stored(m, [p1])
    finally:
        m.run("systemctl stop byhand.service", check=False)


def test_journal_lines_are_prefixed_once(served):
    """22.15: under systemd stderr is the journal, which shows mpechod[PID]: itself; the
    lines do not repeat it (nor any other process's prog[pid]), and they keep their text."""
    m = served
    echo_in(m, b"journal\n")
    m.run("systemctl stop mpechod.socket mpechod.service", timeout=90)
    msgs = m.run("journalctl -q -o cat -u mpechod.service -t mpechod").stdout.splitlines()
    assert any(l.startswith("listening on ") for l in msgs), msgs
    doubled = [l for l in msgs if l.startswith("mpechod[")]
    assert doubled == [], f"lines with the journal's prefix repeated: {doubled}"
    # The <N> before each line is the journal's level, not text.
    assert not [l for l in msgs if l.startswith("<")], msgs
    info = m.run("journalctl -q -o cat -p info..info -u mpechod.service -t mpechod").stdout
    assert "listening on " in info, info
    short = m.run("journalctl -q -o short -u mpechod.service -t mpechod").stdout
    assert "]: mpechod[" not in short, short


def test_inetd_socket_limits_connections_per_source(machine):
    """22.16: mpechod-inetd.socket's MaxConnectionsPerSource=8: eight concurrent connections
    from one address are served, systemd itself closes the ninth with nothing echoed; the
    limit is in the unit's comments and the man page."""
    m = machine
    m.install()
    m.run("systemctl enable --now mpechod-inetd.socket")
    unit = m.path("/lib/systemd/system/mpechod-inetd.socket").read_text()
    assert "MaxConnectionsPerSource=8" in unit
    comments = " ".join(l for l in unit.splitlines() if l.startswith("#"))
    assert "ninth" in comments and "per_source" in comments, comments
    man = (pathlib.Path(ROOT) / "man" / "mpechod.8").read_text()
    assert "MaxConnectionsPerSource=8" in man, "the man page does not document the limit"
    held = []
    try:
        for i in range(8):
            c = m.connect()
            c.sendall(b"%d\n" % i)
            assert c.recv(16) == b"%d\n" % i
            held.append(c)
        ninth = m.connect()
        held.append(ninth)
        with contextlib.suppress(OSError):
            ninth.sendall(b"9\n")
        try:
            got = ninth.recv(16)
        except ConnectionResetError:
            got = b""
        assert got == b"", "the ninth connection from one address was served"
        assert "Too many incoming connections (9) from source 127.0.0.1" in m.run(
            "journalctl -q -o cat -u mpechod-inetd.socket").stdout
    finally:
        for c in held:
            c.close()
