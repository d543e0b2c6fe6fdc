"""Counts shared between processes that a death at one instruction must not tear (issue 22,
faults 7 and 8): the pool's idle and starting counts, and the per-source admissions.

Each test stops a process with gdb at the hard moment (a watchpoint stops it right
after the store that changes its state, a breakpoint at a function's entry or, with "finish",
right after it returns), SIGKILLs it there, and checks that what the master and the other
processes count afterwards is what is true: the pool holds --min-spare, and an address that no
longer has a session is admitted again while --max-per-source still holds.  The points are
named by function and variable, not by line, so the same test runs against any version."""
import os
import re
import shutil
import socket
import subprocess
import threading

import pytest

from conftest import SLOW, alive, connect, echo, read_store, recv_exact, wait_until

GDB = shutil.which("gdb")
needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb is not installed")

# enum pool_state (src/mpechod/pool.h)
POOL_IDLE, POOL_BUSY = 2, 3


class Gdb:
    """gdb attached to pid: runs the commands (stops, and the continue to each) and then
    kills the process with SIGKILL where it stands."""

    def __init__(self, pid, cmds):
        # Software watchpoints: gdb steps the process and compares after each instruction (the
        # hardware ones do not fire under every hypervisor).  The processes watched here sleep
        # until the test acts, so the steps are few.
        argv = [GDB, "-nx", "-batch", "-p", str(pid)]
        for c in ["set can-use-hw-watchpoints 0"] + list(cmds) + ["kill"]:
            argv += ["-ex", c]
        self.pid = pid
        self.lines = []
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        # Stopped, and every stop set: the process runs on only from here.
        wait_until(lambda: any("atchpoint 1:" in l or "Breakpoint 1 at" in l
                               for l in self.lines), 30 * SLOW, what="gdb to set its stop")

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def killed(self, timeout=30):
        """Waits for the process to die at the stop; returns gdb's output."""
        try:
            self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("gdb did not stop the process:\n" + "\n".join(self.lines))
        self.reader.join(5)
        wait_until(lambda: not alive(self.pid), 10, what=f"process {self.pid} to die")
        return "\n".join(self.lines)

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def gdb():
    started = []

    def attach(pid, cmds):
        g = Gdb(pid, cmds)
        started.append(g)
        return g

    yield attach
    for g in started:
        g.cleanup()


def pool_stats(srv):
    """(processes, idle, starting) from a fresh stats line (a torn count may be negative)."""
    m = re.search(r"pool (-?\d+) processes, (-?\d+) idle, (-?\d+) starting", srv.stats()[1])
    return tuple(int(x) for x in m.groups())


def settled(srv, want):
    """Waits for the stats line's pool counts to be want, (processes, idle, starting)."""
    wait_until(lambda: pool_stats(srv) == want, 20 * SLOW,
               what=f"pool (processes, idle, starting) == {want}; last: {pool_stats(srv)}")


def the_idle_pool_process(srv):
    settled(srv, (1, 1, 0))
    [pid] = srv.sessions()
    return pid


def served_by(srv, sock):
    """The pid that serves sock: the open record naming its local address."""
    me = "%s:%d" % sock.getsockname()[:2]
    return wait_until(lambda: next((r["pid"] for r in read_store(srv.store_path)
                                    if r["ev"] == "open" and r["peer"].startswith(me)), None),
                      10, what=f"the open record of {me}")


def gone(sock):
    """The connection is over (closed or reset): the server did not serve it, or died in it."""
    sock.settimeout(10 * SLOW)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def refused(port, src="127.0.0.1", header=b""):
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    try:
        s.sendall(header + b"x")
    except OSError:
        pass
    with s:
        return gone(s)


def held(port, src="127.0.0.1", header=b""):
    """A connection from src that the server serves (it echoes)."""
    s = socket.socket()
    s.settimeout(10 * SLOW)
    s.bind((src, 0))
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(header + b"held")
        assert recv_exact(s, 4) == b"held"
    except BaseException:
        s.close()
        raise
    return s


def try_held(port, header=b"", src="127.0.0.1"):
    try:
        return held(port, src, header)
    except (OSError, AssertionError):
        return None


# Right after the store that changes the pool process's state: the watchpoint is set at the
# state change's entry, so that gdb steps a few instructions, not a whole session.
STATE_STORED = ["break pool_set_state", "continue", "watch -l pool_self->slot->state",
                "continue"]


# --- 7: the pool's idle and starting counts ---------------------------------------------------

@needs_gdb
def test_pool_process_killed_just_as_it_went_busy_leaves_the_pool_its_spare(start_server, gdb):
    srv = start_server("--prefork", *POOL_OF_ONE)
    pid = the_idle_pool_process(srv)
    g = gdb(pid, STATE_STORED)
    c = connect(srv.port)
    c.sendall(b"x")
    out = g.killed()
    assert f"New value = {POOL_BUSY}" in out, out
    assert gone(c)
    c.close()
    # The master counts no idle process that is not there: it starts one, which serves.
    assert echo(srv.port, b"after") == b"after"
    settled(srv, (1, 1, 0))


@needs_gdb
def test_pool_process_killed_just_as_it_went_idle_leaves_no_extra_process(start_server, gdb):
    srv = start_server("--prefork", *POOL_OF_ONE)
    the_idle_pool_process(srv)
    c = connect(srv.port)
    c.sendall(b"abc")
    assert recv_exact(c, 3) == b"abc"
    pid = served_by(srv, c)
    g = gdb(pid, STATE_STORED)
    c.close()
    out = g.killed()
    assert f"New value = {POOL_IDLE}" in out, out
    # One idle process, counted once: not two, one of them uncounted and never retired.
    settled(srv, (1, 1, 0))
    assert echo(srv.port, b"after") == b"after"


# --- 8: per-source admissions --------------------------------------------------------------------

# With --prefork (asked for, or the suite's prefork pass): one pool process, idle.
POOL_OF_ONE = ["--min-spare", "1", "--max-spare", "1"]


def mode_of(srv):
    return "prefork" if "--prefork" in srv.argv else "fork"


PROXY_CLIENT = "10.9.8.7"


def proxy_header(port=40000):
    return b"PROXY TCP4 %s 127.0.0.1 %d 7\r\n" % (PROXY_CLIENT.encode(), port)


@needs_gdb
@pytest.mark.parametrize("proxy", [False, True], ids=["accept", "proxy"])
@pytest.mark.parametrize("moment", ["in", "after"])
def test_killed_between_admission_and_its_record_leaks_no_count(start_server, gdb, proxy,
                                                                 moment):
    """Killed holding the lock with the count taken (in), or just after it let go (after):
    the count goes back with the process.  In fork mode the master admits at accept and
    cannot die alone: there only the PROXY path runs in a process that may, so the accept
    case runs with --prefork in both passes."""
    args = ["--max-per-source", "1"] + (["--proxy-protocol"] if proxy else ["--prefork"])
    srv = start_server(*args, *POOL_OF_ONE)
    header = proxy_header() if proxy else b""
    cmds = ["break shared_unlock", "continue"] + (["finish"] if moment == "after" else [])
    # The process that will admit: the pool's only idle one, or the session forked for c.
    if mode_of(srv) == "prefork":
        g = gdb(the_idle_pool_process(srv), cmds)
        c = connect(srv.port)
    else:
        c = connect(srv.port)
        g = gdb(wait_until(lambda: (lambda k: k[0] if len(k) == 1 else None)(srv.sessions()),
                           10, what="the session"), cmds)
    c.sendall(header + b"x")
    out = g.killed()
    assert re.search(r"Breakpoint 1[.0-9]*, ", out), out
    assert gone(c)
    c.close()
    # The address has no session now: it is served, and once only.
    a = wait_until(lambda: try_held(srv.port, header), 10,
                   what="a new connection from the address to be served")
    assert refused(srv.port, header=header)
    a.close()


def admit_home(addr, max_clients):
    """The home slot of an IPv4 source in the admission table (src/lib/htab.c's hash, 64-bit
    FNV-1a then its high bits folded in, over the 17-byte key of src/mpechod/admit.c: the
    family and the address; a table of the first power of two >= 2 * max_clients)."""
    h = 14695981039346656037
    for b in bytes([socket.AF_INET]) + socket.inet_aton(addr) + bytes(12):
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    h ^= (h >> 29) ^ (h >> 47)
    cap = 1
    while cap < 2 * max_clients:
        cap <<= 1
    return h & (cap - 1)


def colliding(prefix, max_clients):
    """Two addresses prefix.N with one home slot: the second sits after the first, and moves
    back when the first is removed."""
    homes = {}
    for n in range(2, 250):
        a = f"{prefix}.{n}"
        homes.setdefault(admit_home(a, max_clients), []).append(a)
        if len(homes[admit_home(a, max_clients)]) == 2:
            return homes[admit_home(a, max_clients)], admit_home(a, max_clients)
    raise AssertionError("no collision")


@needs_gdb
@pytest.mark.parametrize("proxy", [False, True], ids=["accept", "proxy"])
def test_killed_inside_a_removal_from_the_admission_table_leaves_no_stale_entry(start_server, gdb,
                                                                                 proxy):
    """The suspected duplicate: a removal moves the next entry back into the hole (a copy,
    then the old place emptied); a death between the two leaves the entry twice, and the stale
    copy would count its address for ever."""
    max_clients = 4
    args = ["--max-per-source", "1", "--max-clients", str(max_clients), "--min-spare", "2",
            "--max-spare", "3"]
    srv = start_server(*(args + (["--proxy-protocol"] if proxy else ["--prefork"])))
    (x, y), home = colliding("10.0.0" if proxy else "127.0.0", max_clients)

    def conn(addr, port):
        if proxy:
            hdr = b"PROXY TCP4 %s 127.0.0.1 %d 7\r\n" % (addr.encode(), port)
            return held(srv.port, header=hdr), f"{addr}:{port} "
        s = held(srv.port, src=addr)
        return s, "%s:%d " % s.getsockname()[:2]

    a, a_peer = conn(x, 40001)
    b, _ = conn(y, 40002)
    pid = wait_until(lambda: next((r["pid"] for r in read_store(srv.store_path)
                                   if r["ev"] == "open" and (r["peer"] + " ").startswith(a_peer)),
                                  None), 10, what="the open record of the first connection")
    # The table as the process sees it: through its pool arguments, or (a forked session)
    # through the master's memory that it was forked with.
    expr = "pool_self->gate->admit" if mode_of(srv) == "prefork" else "master->gate.admit"
    g = gdb(pid, ["break admit_release", "continue",
                  f"watch -l {expr}->tab[{home}].count", "continue", "continue"])
    a.close()
    out = g.killed()
    assert "Old value = 0\nNew value = 1" in out, out
    srv.wait_lines(srv.lines, lambda l: l if f" {pid} " in l and "killed by signal 9" in l
                   else None, 1, 10, f"the master to reap {pid}")
    b.close()
    # Both addresses are served again, and each once only.
    for addr, port in ((y, 40003), (x, 40004)):
        s = wait_until(lambda: try_conn(conn, addr, port), 10, what=f"{addr} to be served again")
        if proxy:
            assert refused(srv.port, header=b"PROXY TCP4 %s 127.0.0.1 9 7\r\n" % addr.encode())
        else:
            assert refused(srv.port, src=addr)
        s.close()


def try_conn(conn, addr, port):
    try:
        return conn(addr, port)[0]
    except (OSError, AssertionError):
        return None


@needs_gdb
@pytest.mark.parametrize("proxy", [False, True], ids=["accept", "proxy"])
def test_killed_just_after_giving_its_count_back_does_not_give_it_twice(start_server, gdb, proxy):
    """The reverse window: the count given back, the record of it not yet cleared; the
    master must not give it back again (that would admit one more than --max-per-source)."""
    args = ["--max-per-source", "2", "--min-spare", "3", "--max-spare", "4"]
    srv = start_server(*(args + (["--proxy-protocol"] if proxy else ["--prefork"])))
    hdr = (lambda port: proxy_header(port)) if proxy else (lambda port: b"")
    first = held(srv.port, header=hdr(40001))
    second = held(srv.port, header=hdr(40002))
    me = f"{PROXY_CLIENT}:40002 " if proxy else "%s:%d " % second.getsockname()[:2]
    pid = wait_until(lambda: next((r["pid"] for r in read_store(srv.store_path)
                                   if r["ev"] == "open" and (r["peer"] + " ").startswith(me)),
                                  None), 10, what="the open record of the second connection")
    g = gdb(pid, ["break gate_release", "continue", "finish"])
    second.close()
    out = g.killed()
    assert re.search(r"Breakpoint 1[.0-9]*, gate_release", out), out
    srv.wait_lines(srv.lines, lambda l: l if f" {pid} " in l and "killed by signal 9" in l
                   else None, 1, 10, f"the master to reap {pid}")
    # The first still holds one of the two places: one more is served, and no third.
    third = wait_until(lambda: try_held(srv.port, hdr(40003)), 10, what="a second place")
    assert refused(srv.port, header=hdr(40004))
    for s in (first, third):
        s.close()
