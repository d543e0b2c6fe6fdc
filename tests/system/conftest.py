"""Shared fixtures and helpers for the system tests: start the real binaries on 127.0.0.1 with
port 0.

Every process a test starts is a Process (Server for mpechod), tracked by pid and killed with its
descendants at teardown; every wait has a deadline.  Readiness is the server's own "listening
on" line, never a sleep, and a test waits for what it can observe (a log line, a /proc state, a
socket event) rather than for time to pass.  Tests that generate load scale it from conn_rate,
what this machine serves, rather than use a count tuned on a fast one.
"""
import fcntl
import json
import os
import select
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MPECHO_BIN", os.path.join(ROOT, "build", "bin"))
SANITIZED = os.environ.get("MPECHO_SANITIZED") == "1"
# Every deadline and every bound on time in these tests is an upper bound that only a hang
# should reach, set far above what a slow machine (fork in 700 us, both cores shared) needs.
# Sanitized binaries are several times slower, so deadlines scale with them; MPECHO_TIME_FACTOR
# scales them all again, for a machine slower or busier still.
SLOW = (4 if SANITIZED else 1) * float(os.environ.get("MPECHO_TIME_FACTOR", "1"))

# The processes the tests start get SIGINT as a terminal would give it: a shell that starts the
# suite in the background (`make flake &`, nohup) ignores SIGINT for it, and an ignored signal
# is inherited through fork and exec (a handler is not), so a client's Ctrl-C test would hang.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# Extra options for every server that start_server starts: "--prefork" runs the suite in the
# pool mode.  A test that does not apply to it is marked fork_only.
MODE_ARGS = os.environ.get("MPECHO_SERVER_ARGS", "").split()
PREFORK = "--prefork" in MODE_ARGS


def pytest_configure(config):
    config.addinivalue_line("markers", "fork_only(why): the test is about fork mode's processes "
                            "(one per connection), not the contract; skipped with --prefork")


def pytest_collection_modifyitems(config, items):
    if not PREFORK:
        return
    for item in items:
        m = item.get_closest_marker("fork_only")
        if m is not None:
            item.add_marker(pytest.mark.skip(reason="fork mode only: " + (m.args[0] if m.args
                                                                            else "")))


SAN_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def binary(name):
    return os.path.join(BIN, name)


def wait_until(pred, timeout, interval=0.01, what="condition"):
    """Polls pred until it returns a true value or timeout seconds (times SLOW) pass."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout * SLOW:.1f}s waiting for {what}")
        time.sleep(interval)


# --- processes, from /proc ---------------------------------------------------------------------

def proc_stat(pid):
    """(state, ppid, starttime) of pid from /proc/<pid>/stat, or None when there is no such
    process.  starttime tells a process from a later one that got the same pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), int(fields[19])


def proc_state(pid):
    st = proc_stat(pid)
    return st[0] if st else None


# Fork mode's spawner with the sandbox on (src/mpechod/spawner.h): the process that forks the
# sessions, a child of the master beside them.
SPAWNER = "mpechod-spawn"


def proc_comm(pid):
    """pid's process name, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().rstrip("\n")
    except OSError:
        return None


def spawner_of(pid):
    """The pid of the master pid's spawner, or None."""
    return next((k for k in proc_children(pid) if proc_comm(k) == SPAWNER), None)


def proc_children(pid):
    """Direct children of pid, from /proc."""
    kids = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def proc_descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for k in proc_children(p):
            out.append(k)
            todo.append(k)
    return out


def zombies_of(pid):
    return [k for k in proc_children(pid) if proc_state(k) == "Z"]


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def alive(pid):
    st = proc_state(pid)
    return st is not None and st != "Z"


def signal_set(pid, field):
    """The signals in a mask of /proc/<pid>/status: "SigCgt" (caught), "ShdPnd" (pending for the
    process), "SigBlk" (blocked)..."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                mask = int(line.split()[1], 16)
                return {s for s in range(1, 65) if mask & (1 << (s - 1))}
    return set()


def caught_signals(pid):
    """The signals pid has a handler for."""
    return signal_set(pid, "SigCgt")


def pipe_fds(pid):
    """[(fd, "pipe:[inode]", access mode)] for the pipes pid holds at descriptors 3 and up (0-2
    are the test's own pipes); the mode is os.O_RDONLY for a read end, os.O_WRONLY for a write
    end.  Reading /proc is not atomic: a child just forked, moving its descriptors into place,
    can be listed before it closes what it inherited and read after, so that it seems to hold
    one end it never keeps (a datagram process once looked like the store).  So the listing is
    read until two reads in a row agree."""
    last = _pipe_fds_once(pid)
    for _ in range(1000):
        now = _pipe_fds_once(pid)
        if now == last:
            return now
        last = now
    raise AssertionError(f"the descriptors of {pid} kept changing: {last}")


def _pipe_fds_once(pid):
    out = []
    try:
        fds = [int(fd) for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return out
    for fd in fds:
        if fd < 3:
            continue
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if not target.startswith("pipe:["):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                flags = [int(l.split()[1], 8) for l in f if l.startswith("flags:")][0]
        except (OSError, IndexError):
            continue  # closed meanwhile
        out.append((fd, target, flags & os.O_ACCMODE))
    return out


F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def traced(pid):
    """Whether a debugger (gdb) is attached to pid."""
    with open(f"/proc/{pid}/status") as f:
        return any(l.startswith("TracerPid:") and l.split()[1] != "0" for l in f)


def pipe_size(pid, fd):
    """The capacity of the pipe at pid's descriptor fd (F_GETPIPE_SZ, through /proc)."""
    ours = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
    try:
        return fcntl.fcntl(ours, F_GETPIPE_SZ)
    finally:
        os.close(ours)


def pipe_ends(pid, pipe):
    """The access modes with which pid holds pipe ("pipe:[inode]"): a subset of {os.O_RDONLY,
    os.O_WRONLY}."""
    return {mode for _, p, mode in pipe_fds(pid) if p == pipe}


def kill_tree(pid):
    for p in [pid] + proc_descendants(pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Process:
    """One program a test started, with everything it forked tracked by pid.

    The pipes named in `read` ("stdout", "stderr") are read line by line by threads into
    self.out and self.err; the wait_* methods wait for lines with a deadline.  cleanup() kills
    the process, its descendants, its process group when it has one of its own, and every
    descendant seen by remember() that has since been orphaned (the same pid and start time)."""

    def __init__(self, argv, read=("stderr",), env=None, new_session=False, **popen):
        e = dict(os.environ)
        if env:
            e.update(env)
        popen.setdefault("stdin", subprocess.DEVNULL)
        for name in read:
            popen[name] = subprocess.PIPE
        new_session = popen.pop("start_new_session", new_session)
        self.argv = [str(a) for a in argv]
        self.name = os.path.basename(self.argv[0])
        self.new_session = new_session
        self.proc = subprocess.Popen(self.argv, env=e, start_new_session=new_session, **popen)
        self.pid = self.proc.pid
        self.out, self.err = [], []
        self.cond = threading.Condition()
        self.known = {}  # pid -> starttime of descendants seen
        self.readers = [threading.Thread(target=self._read, args=(getattr(self.proc, name),
                                                                  getattr(self, name[3:])),
                                         daemon=True) for name in read]
        for t in self.readers:
            t.start()

    def _read(self, stream, into):
        for raw in stream:
            with self.cond:
                into.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def output(self, last=None):
        with self.cond:  # an RLock: the waits call this while holding it
            return "\n".join(self.out[-last if last else 0:] + ["-- stderr --"]
                             + self.err[-last if last else 0:])

    def wait_lines(self, lines, match, count, timeout, what):
        """Waits for count lines of `lines` (self.out or self.err) for which match(line) is
        true; returns their match results.  Fails at the deadline or when the pipe ends."""
        deadline = time.monotonic() + timeout * SLOW
        with self.cond:
            while True:
                found = [m for m in map(match, lines) if m]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or not any(t.is_alive() for t in self.readers):
                    raise AssertionError(f"{self.name}: no {what} after {timeout * SLOW:.1f}s; "
                                         f"output so far:\n{self.output(last=30)}")
                self.cond.wait(min(left, 0.1))

    def remember(self):
        """Notes the pids of the current descendants, so cleanup() finds them even once they
        are orphans (reparented away from this tree)."""
        for p in proc_descendants(self.pid):
            st = proc_stat(p)
            if st:
                self.known.setdefault(p, st[2])
        return self.known

    def finish(self, timeout):
        """Waits for the process to end by itself; returns its exit status."""
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not end within {timeout * SLOW:.1f}s; "
                                 f"output:\n{self.output(last=30)}")
        for t in self.readers:
            t.join(5 * SLOW)
        return rc

    def sanitizer_reports(self):
        with self.cond:
            return [l for l in self.out + self.err if any(m in l for m in SAN_MARKERS)]

    def cleanup(self):
        # Signal the tree and the group only while the leader is unreaped: until then its pid
        # (and its group id) cannot have been reused.
        if self.proc.poll() is None:
            self.remember()
            kill_tree(self.pid)
            if self.new_session:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p, start in self.known.items():
            st = proc_stat(p)
            if st and st[2] == start and st[0] != "Z":
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for t in self.readers:
            t.join(5)  # before closing the pipe it reads
        for s in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass


class Server(Process):
    """One mpechod process, its stderr collected line by line in self.lines."""

    def __init__(self, args, env=None, preexec_fn=None, wrapper=(), program="mpechod"):
        # stdout is a pipe too, so that a stray write to it cannot reach the terminal; mpechod
        # writes nothing there, so nobody needs to read it.
        super().__init__(list(wrapper) + [binary(program)] + list(args), env=env,
                         preexec_fn=preexec_fn, stdout=subprocess.PIPE)
        self.lines = self.err
        self.reader = self.readers[0]
        self.ports = []
        self.addrs = []
        self._store_pipe = None

    def wait_line(self, needle, timeout=10, count=1):
        """Waits for count stderr lines containing needle; returns them."""
        return self.wait_lines(self.lines, lambda l: l if needle in l else None, count, timeout,
                               f"line with {needle!r}")

    def wait_ready(self, nsockets=1, timeout=10):
        for l in self.wait_line("listening on ", timeout=timeout, count=nsockets):
            addr = l.split("listening on ", 1)[1]
            self.addrs.append(addr)
            self.ports.append(int(addr.rsplit(":", 1)[1]))
        self.port = self.ports[0]
        return self

    def signal(self, sig):
        os.kill(self.pid, sig)

    # How the store is told from the sessions, from outside.  The master logs no line naming
    # the first store's pid, and "the first child" or "the child holding the store file" break
    # after a restart or a rotation, so the pipes decide: the master holds the read end of the
    # store pipe for as long as it runs (to hand it to a restarted store); the store holds
    # that read end and closes the write end; a session holds the write end and closes the
    # read end.  A child holding both ends has just been forked and not yet closed what it
    # inherited, so it is neither yet.
    def store_pipe(self):
        """(the master's descriptor of its read end, "pipe:[inode]") for the store pipe, or
        None without a store."""
        if self._store_pipe is None:
            reads = [(fd, p) for fd, p, mode in pipe_fds(self.pid) if mode == os.O_RDONLY]
            if len(reads) > 1:
                # --prefork: the master also reads the pool's wake pipe, a plain 64 KiB one;
                # the store pipe is the one it enlarged (1 MiB).
                reads.sort(key=lambda r: pipe_size(self.pid, r[0]), reverse=True)
                assert pipe_size(self.pid, reads[0][0]) > pipe_size(self.pid, reads[1][0]), \
                    f"the master reads {len(reads)} pipes of one size: {reads}"
            self._store_pipe = reads[0] if reads else False
        return self._store_pipe or None

    def _children_by_role(self):
        """(store pid or None, session pids, pids not settled yet) among the live children."""
        pipe = self.store_pipe()
        store, sessions, unsettled = None, [], []
        for k in proc_children(self.pid):
            if proc_state(k) in (None, "Z") or proc_comm(k) == SPAWNER:
                continue
            modes = pipe_ends(k, pipe[1]) if pipe else set()
            if modes == {os.O_RDONLY}:
                store = k
            elif len(modes) == 2:
                unsettled.append(k)
            else:
                sessions.append(k)
        return store, sessions, unsettled

    def _settled(self):
        return wait_until(lambda: (lambda r: r if not r[2] else None)(self._children_by_role()),
                          10, interval=0.001, what="a forked child to close what it inherited")

    def store_pid(self):
        """The pid of the running store, or None when none runs (see store_pipe)."""
        return self._settled()[0]

    def active(self):
        """Sessions in progress: the session processes (fork mode), or the busy pool processes
        (--prefork, from the stats line)."""
        if "--prefork" in self.argv:
            return self.stats()[0]["active"]
        return len(self.sessions())

    def quiet(self):
        """No session in progress."""
        return self.active() == 0

    def sessions(self):
        """Live children that are sessions: everything but the store (see store_pipe)."""
        return self._settled()[1]

    def store_pipe_full(self):
        """Whether the store pipe has no room left, so that every session writing to it waits:
        poll(2) on a write end of our own (opened through /proc and closed at once) reports it
        writable while one page is free.  (The byte count says less: frames leave pages part
        empty.)"""
        ours = os.open(f"/proc/{self.pid}/fd/{self.store_pipe()[0]}", os.O_WRONLY | os.O_NONBLOCK)
        try:
            p = select.poll()
            p.register(ours, select.POLLOUT)
            return not p.poll(0)
        finally:
            os.close(ours)

    def stats(self):
        """({"accepted": n, "refused per source": n, "over rate": n, ...}, the line) from a
        fresh stats line (SIGUSR1): each comma-separated part holding one number, named by its
        other words."""
        before = len([l for l in self.lines if "stats:" in l])
        self.signal(signal.SIGUSR1)
        line = self.wait_line("stats:", count=before + 1)[-1]
        out = {}
        for part in line.split("stats:", 1)[1].split(","):
            words = part.split()
            nums = [w for w in words if w.isdigit()]
            if len(nums) == 1:
                out[" ".join(w for w in words if not w.isdigit())] = int(nums[0])
        return out, line

    def wait_stats(self, pred, timeout=10, what="the stats expected"):
        """(counts, line) from the first fresh stats line whose counts satisfy pred.  A figure
        can lag what a client sees by an instant (a process counts a refusal or a cull, or adds
        up its bytes, as it closes the connection), so a test waits for the figure it expects
        instead of reading one line at a moment."""
        last = []

        def look():
            last[:] = [self.stats()]
            return last[0] if pred(last[0][0]) else None
        try:
            return wait_until(look, timeout, interval=0.05, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}; the last stats line: {last[0][1] if last else None}")

    def stop(self, sig=None, timeout=20):
        """Signals the master (SIGTERM by default) and waits for it; returns the exit status."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM if sig is None else sig)
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            kill_tree(self.pid)
            self.proc.wait(5)
            raise AssertionError("server did not stop in time:\n" + "\n".join(self.lines[-30:]))
        self.reader.join(5)
        return rc

    def check_sanitizers(self):
        assert not self.sanitizer_reports(), "sanitizer report:\n" + "\n".join(self.lines)


@pytest.fixture
def start_server(tmp_path):
    """Starts mpechod on 127.0.0.1 port 0 and returns a ready Server.

    start_server(*extra_args, store=True|False|path, bind=True, ready=True, env=None,
    preexec_fn=None).  MPECHO_SERVER_ARGS (e.g. "--prefork") is added to every server: the
    suite runs again in prefork mode that way (see the Makefile)."""
    servers = []

    def start(*args, store=True, bind=True, ready=True, env=None, preexec_fn=None):
        argv = ["-p", "0"] + (["-b", "127.0.0.1"] if bind else []) + MODE_ARGS
        if store is True:
            store = str(tmp_path / f"store{len(servers)}.jsonl")
        if store:
            argv += ["-s", str(store)]
        else:
            argv += ["--no-store"]
        srv = Server(argv + list(args), env=env, preexec_fn=preexec_fn)
        srv.store_path = store or None
        servers.append(srv)
        if ready:
            srv.wait_ready()
        return srv

    yield start
    for srv in servers:
        srv.cleanup()
        srv.check_sanitizers()


def connect(port, host="127.0.0.1", timeout=10):
    s = socket.create_connection((host, port), timeout=timeout * SLOW)
    return s


def cpu_seconds(pid):
    """User plus system CPU time of pid so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rst_close(sock):
    """Closes with a reset instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def recv_exact(sock, n):
    chunks, got = [], 0
    while got < n:
        b = sock.recv(min(1 << 20, n - got))
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def echo(port, data, host="127.0.0.1"):
    """Sends data, half-closes, and returns everything the server sent back before it closed."""
    with connect(port, host) as s:
        out, failed = [], []

        def send():
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except OSError as e:  # the server reset or closed: the reader sees it too
                failed.append(e)

        sender = threading.Thread(target=send)
        sender.start()
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            out.append(b)
        sender.join(10 * SLOW)
        if failed and len(b"".join(out)) < len(data):
            raise failed[0]
        return b"".join(out)


def read_store(path):
    with open(path, "rb") as f:
        raw = f.read()
    assert raw == b"" or raw.endswith(b"\n"), "store ends in a partial line"
    # Split on newlines only: str.splitlines() would also break at U+2028 and friends.
    return [json.loads(l) for l in raw.decode("utf-8").split("\n")[:-1]]


def record_bytes(r):
    """The bytes of a data or datagram record: "data" is text (format 2: UTF-8; format 1, whose
    lines carry no "life": each code point one byte), "b64" base64 (format 2 only)."""
    import base64
    if "b64" in r:
        assert "data" not in r, f"both data and b64 in {r}"
        return base64.b64decode(r["b64"], validate=True)
    return r["data"].encode("utf-8" if "life" in r else "latin-1")


def store_so_far(path):
    """The records of a store that is still being written: its whole lines only, since a read
    may meet the line a store process is writing (read_store is for a store that has stopped).
    No file yet is no record yet."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return []
    return [json.loads(l.decode("utf-8")) for l in raw.split(b"\n")[:-1]]


def store_by_conn(records, by_life=False):
    """conn -> {"open": rec, "data": bytes, "close": [recs]} (records of no connection, such as
    start, stop, gap and datagram records, are left out); by_life: keyed by (life, conn), for a
    store of several lives at once (--inetd processes each number their connection 1)"""
    conns = {}
    for r in records:
        if "conn" not in r:
            continue
        key = (r.get("life"), r["conn"]) if by_life else r["conn"]
        c = conns.setdefault(key, {"open": None, "data": bytearray(), "close": [], "opens": 0})
        if r["ev"] == "open":
            c["open"] = r
            c["opens"] += 1
        elif r["ev"] == "data":
            c["data"] += record_bytes(r)
        elif r["ev"] == "close":
            c["close"].append(r)
    return conns


def read_until(fd, want, timeout=10):
    """Reads descriptor fd until the bytes read end with want; returns them all."""
    got = b""
    deadline = time.monotonic() + timeout * SLOW
    while not got.endswith(want):
        left = deadline - time.monotonic()
        assert left > 0, f"expected output ending in {want!r}, got {got!r}"
        r, _, _ = select.select([fd], [], [], left)
        if r:
            b = os.read(fd, 65536)
            assert b, f"EOF before {want!r}; got {got!r}"
            got += b
    return got


@pytest.fixture
def listener():
    """A plain listening socket on 127.0.0.1, for servers that misbehave on purpose."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    s.settimeout(10 * SLOW)
    yield s
    s.close()


def echo_rate(port, window=0.5):
    """Connections a second that the server on port opens, echoes and closes one after another,
    measured over `window` seconds (letting that time pass is the measurement).  Load tests
    scale their counts from it, so that a slow or busy machine gets a load in proportion."""
    n, t0 = 0, time.monotonic()
    while True:
        assert echo(port, b"c") == b"c"
        n += 1
        elapsed = time.monotonic() - t0
        if elapsed >= window:
            return n / elapsed


@pytest.fixture(scope="session")
def conn_rate():
    """Connections a second that this machine serves one after another (see echo_rate),
    measured once per run on a server of its own, without a store."""
    srv = Server(["-p", "0", "-b", "127.0.0.1", "--no-store"])
    try:
        srv.wait_ready()
        rate = echo_rate(srv.port)
        assert srv.stop() == 0
    finally:
        srv.cleanup()
    srv.check_sanitizers()
    return rate


def scaled(rate, seconds, lo, hi, multiple=1):
    """How many of something done `rate` times a second fit in `seconds`, within [lo, hi] and
    rounded down to a multiple of `multiple`."""
    n = int(min(max(rate * seconds, lo), hi))
    return max(n - n % multiple, multiple)


def store_datagrams(recs):
    """The datagram records put together: [(peer, bytes, parts)].  A datagram written in parts
    has them one after the other, 1 to N, each with the same peer."""
    out = []
    for r in recs:
        if r["ev"] != "datagram":
            continue
        part, parts = r.get("part"), r.get("parts")
        if part is None or part == 1:
            assert not out or out[-1][3] == out[-1][2], f"a datagram's parts cut short: {r}"
            out.append([r["peer"], record_bytes(r), parts or 1, part or 1])
        else:
            last = out[-1]
            assert (r["peer"], parts, part) == (last[0], last[2], last[3] + 1), r
            last[1] += record_bytes(r)
            last[3] = part
    return [(peer, data, parts) for peer, data, parts, _ in out]
