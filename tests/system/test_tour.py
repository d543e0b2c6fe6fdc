"""Runs the commands of docs/tour.md (and checks docs/tour.ko.md against it), so the tour cannot
rot.

The tour marks each command it shows the reader with a comment before a ```sh block:

    <!-- tour:server -->         how the reader starts the server (once, at the start)
    <!-- tour:run NAME -->       a command the reader runs, NAME unique in the file

Each test below is one scenario of the tour.  It starts mpechod exactly as the tour's server
block does, with port 0 for $PORT and a temporary store for /tmp/tour.jsonl, and runs the named
blocks with /bin/sh, with PORT and SRV (the master's pid) in the environment and bin/... turned
into the binaries under test (MPECHO_BIN).  Between the commands it plays the reader's part
(a client connected, a line typed, the client ended), waits for what it can observe, never for
time to pass, and checks that the output shows what the tour says it shows.  Every block must
belong to a scenario, the Korean tour must carry the same blocks, and every function the tours
name as `name()` must be defined in src/ (in the file they name with it).

Everything runs on 127.0.0.1; every command has a deadline and runs in a process group of its
own, killed at the end with everything the server forked.
"""
import glob
import json
import os
import re
import shlex
import signal
import subprocess

import pytest

from conftest import (ROOT, SANITIZED, SLOW, Process, Server, binary, proc_children, proc_state,
                      read_store, store_so_far, wait_until)

DOCS = {"en": os.path.join(ROOT, "docs", "tour.md"), "ko": os.path.join(ROOT, "docs", "tour.ko.md")}
BLOCK = re.compile(r"<!-- tour:(server|run)(?: ([a-z0-9-]+))? -->\n```sh\n(.*?)```", re.S)
STORE_TOKEN = "/tmp/tour.jsonl"
DEADLINE = 30  # seconds (times SLOW) for any one command or wait; only a hang reaches it
ENV = {"LC_ALL": "C"}


def doc_blocks(path):
    """[(kind, name, text)] of the marked ```sh blocks of a tour file, in order."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    found = [(m[1], m[2], m[3]) for m in BLOCK.finditer(text)]
    assert len(found) == len(re.findall(r"^```sh$", text, re.M)), \
        f"{path}: a ```sh block without a <!-- tour:run NAME --> comment right before it"
    return found


def run_blocks(path=DOCS["en"]):
    blocks = {}
    for kind, name, text in doc_blocks(path):
        if kind == "run":
            assert name not in blocks, f"{path}: two blocks named {name}"
            blocks[name] = text
    return blocks


def server_block(path=DOCS["en"]):
    servers = [text for kind, _, text in doc_blocks(path) if kind == "server"]
    assert len(servers) == 1, f"{path}: expected one tour:server block, found {len(servers)}"
    return servers[0]


def substitute(cmd, store):
    """The reader's command as the test runs it: bin/ programs are the ones under test, the
    store file is the test's own."""
    cmd = re.sub(r"(?<![\w./-])bin/(mpechod|mpecho-bench|mpecho)\b",
                 lambda m: shlex.quote(binary(m[1])), cmd)
    return cmd.replace(STORE_TOKEN, shlex.quote(store))


# --- reading what the commands print ----------------------------------------------------------

def parse_ps(out):
    """{pid: (ppid, stat, cmd)} from `ps -o pid,ppid,stat,cmd` output."""
    lines = out.splitlines()
    assert lines and lines[0].split()[:3] == ["PID", "PPID", "STAT"], out
    rows = {}
    for l in lines[1:]:
        pid, ppid, stat, cmd = l.split(None, 3)
        rows[int(pid)] = (int(ppid), stat, cmd)
    return rows


def parse_ls_fds(out, default_pid=None):
    """{pid: {fd: (mode, target)}} from `ls -l /proc/PID/fd ...` output."""
    tabs, cur = {}, default_pid
    if cur is not None:
        tabs[cur] = {}
    for l in out.splitlines():
        m = re.match(r"/proc/(\d+)/fd:$", l)
        if m:
            cur = int(m[1])
            tabs[cur] = {}
            continue
        m = re.match(r"(l\S+)\s.*\s(\d+) -> (.*)$", l)
        if m:
            tabs[cur][int(m[2])] = (m[1], m[3])
    return tabs


def targets(tab, prefix):
    return {t for _, t in tab.values() if t.startswith(prefix)}


def modes_of(tab, target):
    return {mode for mode, t in tab.values() if t == target}


def sigmask_bits(hexmask):
    v = int(hexmask, 16)
    return {s for s in range(1, 65) if v & (1 << (s - 1))}


# --- the tour, run ------------------------------------------------------------------------------

SCENARIOS = {}


def uses(*names):
    """Declares the tour blocks a scenario runs (checked against the tour by
    test_every_block_is_run).  The tour's server is the one its server block starts, in fork
    mode, whatever MPECHO_SERVER_ARGS says: the prefork pass of the suite skips the scenarios
    rather than run them twice."""
    def deco(f):
        SCENARIOS[f.__name__] = names
        f.tour_blocks = names
        return pytest.mark.fork_only("the tour runs its own server, as the reader does")(f)
    return deco


class Tour:
    def __init__(self, tmp_path, names):
        self.blocks = run_blocks()
        self.allowed = set(names)
        self.store = str(tmp_path / "tour.jsonl")
        self.procs = []
        line = [l for l in server_block().splitlines() if l.startswith("bin/mpechod ")]
        assert len(line) == 1, "the server block has no (or several) bin/mpechod lines"
        argv = shlex.split(line[0].split("&", 1)[0])
        assert argv[argv.index("-b") + 1] == "127.0.0.1", "the tour's server must bind 127.0.0.1"
        args = ["0" if a == "$PORT" else self.store if a == STORE_TOKEN else a for a in argv[1:]]
        self.srv = Server(args, env=ENV)
        self.srv.wait_ready()
        self.srv.store_path = self.store
        self.env = dict(ENV, PORT=str(self.srv.port), SRV=str(self.srv.pid))

    def command(self, name):
        assert name in self.allowed, f"scenario runs block {name} it did not declare"
        return substitute(self.blocks[name], self.store)

    def start(self, name, env=None, **popen):
        """Starts a block in the background, in a process group of its own."""
        p = Process(["/bin/sh", "-c", self.command(name)], read=("stdout", "stderr"),
                    env=dict(self.env, **(env or {})), new_session=True, **popen)
        self.procs.append(p)
        return p

    def sh(self, name, env=None):
        """Runs a block to its end; returns (exit status, stdout, stderr)."""
        p = self.start(name, env)
        rc = p.finish(DEADLINE)
        with p.cond:
            return rc, "\n".join(p.out), "\n".join(p.err)

    def hold(self, line=b"hello\n"):
        """The `hold` client, connected, with one line typed and echoed; .session is its
        session's pid."""
        before = set(self.srv.sessions())
        h = self.start("hold", stdin=subprocess.PIPE)
        h.proc.stdin.write(line)
        h.proc.stdin.flush()
        h.wait_lines(h.out, lambda l: l == line.decode().rstrip("\n"), 1, DEADLINE, "the echo")
        new = wait_until(lambda: set(self.srv.sessions()) - before, DEADLINE,
                         what="the hold client's session")
        assert len(new) == 1, new
        h.session = new.pop()
        return h

    @staticmethod
    def end(client):
        """Ends a client as the reader would with a line q: the end of its input."""
        client.proc.stdin.close()

    def stop_strace(self, p):
        """Ctrl-C for a strace attached with -p: it detaches and exits."""
        os.killpg(p.pid, signal.SIGINT)
        p.finish(DEADLINE)
        with p.cond:
            return "\n".join(p.err)

    def cleanup(self):
        for p in self.procs:
            p.cleanup()
        self.srv.cleanup()
        self.srv.check_sanitizers()
        for p in self.procs:
            assert not p.sanitizer_reports(), p.output()


@pytest.fixture
def tour(request, tmp_path):
    t = Tour(tmp_path, getattr(request.function, "tour_blocks", ()))
    yield t
    t.cleanup()


def strace_attached(p):
    p.wait_lines(p.err, lambda l: "attached" in l, 1, DEADLINE, "strace attached")


def strace_calls(text, default_pid):
    """[(pid, "call(args) = result")] from strace -f output: calls split by other processes'
    (<unfinished ...>, <... call resumed>) joined, strace's own messages (which may cut a line
    in two) removed, lines without [pid N] given to default_pid, spaces around = made one."""
    text = re.sub(r"strace: Process \d+ (?:attached|detached)\n?", "", text)
    pending, calls = {}, []
    for line in text.splitlines():
        m = re.match(r"\[pid +(\d+)\] (.*)$", line)
        pid, rest = (int(m[1]), m[2]) if m else (default_pid, line)
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest[:-len("<unfinished ...>")].rstrip()
            continue
        m = re.match(r"<\.\.\. (\w+) resumed>(.*)$", rest)
        if m:
            if pid not in pending:  # the other processes have gone: no prefix any more
                pid = next((p for p, c in pending.items() if c.startswith(m[1] + "(")), pid)
            rest = pending.pop(pid, m[1] + "(") + m[2]
        calls.append((pid, re.sub(r"\s+=\s+", " = ", rest)))
    return calls


# --- the scenarios, in the tour's order ---------------------------------------------------------

@uses("hold", "ps-tree")
def test_processes_master_store_and_session(tour):
    h = tour.hold()
    store = tour.srv.store_pid()
    rc, out, err = tour.sh("ps-tree")
    assert rc == 0, err
    rows = parse_ps(out)
    assert set(rows) == {tour.srv.pid, store, h.session}, out
    assert rows[store][0] == tour.srv.pid and rows[h.session][0] == tour.srv.pid, out
    assert all("mpechod" in cmd and not stat.startswith("Z") for _, stat, cmd in rows.values()), out


def closed_in(calls, pid, fd):
    """Whether pid closed descriptor fd: by close, by a close_range from fd or below (what a
    child does not keep), or by moving a descriptor it keeps onto fd (dup2, dup3)."""
    for p, c in calls:
        m = re.match(r"(close|close_range|dup2|dup3)\((\d+)(?:, (\d+))?.*\) = \d+$", c)
        if p != pid or not m:
            continue
        if (m[1] == "close" and int(m[2]) == fd) or (m[1] == "close_range" and int(m[2]) <= fd) \
                or (m[1] in ("dup2", "dup3") and m[3] is not None and int(m[3]) == fd):
            return True
    return False


@uses("strace-fork", "client")
def test_fork_is_clone_and_each_side_closes_what_it_does_not_use(tour):
    st = tour.start("strace-fork")
    strace_attached(st)
    rc, out, err = tour.sh("client")
    assert (rc, out) == (0, "hello"), err
    srv = tour.srv.pid

    def accepted():
        """(listener, connection) once the master accepted, closed the connection and the
        session exited."""
        with st.cond:
            text = "\n".join(st.err)
        calls = strace_calls(text, srv)
        acc = [re.match(r"accept4\((\d+), \{sa_family=AF_INET, .*\) = (\d+)$", c)
               for p, c in calls if p == srv]
        acc = [a for a in acc if a]
        done = (acc and (srv, f"close({acc[0][2]}) = 0") in calls and
                re.search(r"\[pid +\d+\] \+\+\+ exited with 0 \+\+\+", text))
        return done and (acc[0][1], acc[0][2])

    lfd, cfd = wait_until(accepted, DEADLINE, what="the accept, fork and closes in strace")
    text = tour.stop_strace(st)
    calls = strace_calls(text, srv)
    child = int(re.search(r"\[pid +(\d+)\] \+\+\+ exited with 0", text)[1])
    assert child != srv
    assert (srv, f"clone = {child}") in [(p, re.sub(r"\(.*\)", "", c)) for p, c in calls], \
        f"no clone returning {child}:\n{text}"
    # The child keeps its connection and store pipe at 3 and 4 (dup3) and closes everything else
    # with one close_range (proc_fork), as the tour shows; test_fds.py checks what every child
    # holds.
    assert any(p == child and c.startswith("close_range(") for p, c in calls), \
        f"the session did not close_range what it does not own:\n{text}"
    assert closed_in(calls, child, int(lfd)), f"the session did not close the listener:\n{text}"
    assert closed_in(calls, child, int(cfd)), text
    assert (srv, f"close({cfd}) = 0") in calls, f"the master did not close the connection:\n{text}"
    assert (srv, f"close({lfd}) = 0") not in calls, text


@uses("hold", "stop", "ps-children", "cont")
def test_zombie_while_the_master_is_stopped_then_reaped(tour):
    srv = tour.srv
    h = tour.hold()
    rc, _, err = tour.sh("stop")
    assert rc == 0, err
    wait_until(lambda: proc_state(srv.pid) == "T", DEADLINE, what="the master stopped")
    tour.end(h)
    assert h.finish(DEADLINE) == 0, h.output()
    wait_until(lambda: proc_state(h.session) == "Z", DEADLINE, what="the session a zombie")
    rc, out, err = tour.sh("ps-children")
    rows = parse_ps(out)
    assert rows[h.session][0] == srv.pid and rows[h.session][1].startswith("Z"), out
    assert "<defunct>" in rows[h.session][2], out

    rc, _, err = tour.sh("cont")
    assert rc == 0, err
    srv.wait_line(f"session {h.session} conn 1 exited 0 (eof) after 6 bytes", timeout=DEADLINE)
    wait_until(lambda: h.session not in proc_children(srv.pid), DEADLINE, what="the zombie reaped")
    rc, out, err = tour.sh("ps-children")
    rows = parse_ps(out)
    assert h.session not in rows and srv.store_pid() in rows, out
    assert not [r for r in rows.values() if r[1].startswith("Z")], out


@uses("hold", "kill-session", "store-tail")
def test_killed_session_status_and_close_record_on_its_behalf(tour):
    srv = tour.srv
    h = tour.hold()
    rc, _, err = tour.sh("kill-session")
    assert rc == 0, err
    srv.wait_line(f"session {h.session} conn 1 killed by signal 9 after 6 bytes", timeout=DEADLINE)
    assert h.finish(DEADLINE) == 1
    assert any("server closed the connection" in l for l in h.err), h.output()
    wait_until(lambda: [r for r in store_so_far(tour.store) if r["ev"] == "close"], DEADLINE,
               what="the close record in the store")
    rc, out, err = tour.sh("store-tail")
    recs = [json.loads(l) for l in out.splitlines()]
    assert [r["ev"] for r in recs] == ["open", "data", "close"], out
    assert recs[0]["pid"] == h.session and recs[1]["data"] == "hello\n", out
    assert (recs[2]["reason"], recs[2]["bytes"]) == ("signal 9", 6), out


@uses("hold", "sigmasks")
def test_signal_dispositions_of_master_and_session(tour):
    h = tour.hold()
    rc, out, err = tour.sh("sigmasks")
    assert rc == 0, err
    masks = {}
    for l in out.splitlines():
        m = re.match(r"/proc/(\d+)/status:(Sig\w+):\s+([0-9a-f]+)$", l)
        assert m, out
        masks.setdefault(int(m[1]), {})[m[2]] = sigmask_bits(m[3])
    assert set(masks) == {tour.srv.pid, h.session}, out
    master, session = masks[tour.srv.pid], masks[h.session]
    handled = {signal.SIGHUP, signal.SIGINT, signal.SIGUSR1, signal.SIGTERM, signal.SIGCHLD}
    assert handled <= master["SigCgt"] and signal.SIGPIPE in master["SigIgn"], out
    # Blocked but inside ppoll, where the master sleeps; caught between two calls, all blocked.
    assert master["SigBlk"] in (set(), handled) or handled <= master["SigBlk"], out
    assert session["SigBlk"] == set(), out
    assert {signal.SIGUSR2, signal.SIGALRM, signal.SIGTERM} <= session["SigCgt"], out
    assert signal.SIGCHLD not in session["SigCgt"], out
    assert {signal.SIGHUP, signal.SIGINT, signal.SIGUSR1, signal.SIGPIPE} <= session["SigIgn"], out


@uses("strace-reap", "clients")
def test_sigchld_then_waitpid_until_zero_in_the_loop(tour):
    st = tour.start("strace-reap")
    strace_attached(st)
    rc, out, err = tour.sh("clients")
    assert rc == 0 and out.split() == ["hello"] * 3, (out, err)

    def reaped():
        with st.cond:
            rets = [int(x) for l in st.err for x in
                    re.findall(r"wait4\(-1, .*, WNOHANG, NULL\) = (-?\d+)", l)]
        pids = [r for r in rets if r > 0]
        return len(pids) == 3 and rets[-1] == 0 and pids

    pids = wait_until(reaped, DEADLINE, what="three sessions reaped in strace")
    text = tour.stop_strace(st)
    assert "--- SIGCHLD {si_signo=SIGCHLD" in text, text
    assert re.search(r"ppoll\(\[.*\], \d+, .*, \[\], 8\)", text), \
        f"the master does not sleep in ppoll with every signal unblocked:\n{text}"
    for pid in pids:
        tour.srv.wait_line(f"session {pid} conn", timeout=DEADLINE)
    # Every positive return is followed, before the next ppoll, by more wait4 until 0.
    after = text[text.index("--- SIGCHLD"):]
    calls = re.findall(r"^(ppoll|wait4)\(.*?= (-?\d+|\?)", after, re.M)
    for i, (call, ret) in enumerate(calls):
        if call == "wait4" and ret not in ("0", "-1"):
            assert i + 1 < len(calls) and calls[i + 1][0] == "wait4", after


@uses("hold", "fds")
def test_master_keeps_the_listener_and_the_session_its_connection(tour):
    srv = tour.srv
    h = tour.hold()
    rc, out, err = tour.sh("fds")
    assert rc == 0, err
    tabs = parse_ls_fds(out)
    master, session = tabs[srv.pid], tabs[h.session]
    listeners = targets(master, "socket:")
    assert len(listeners) == 1, f"the master holds {listeners}, expected its listener only:\n{out}"
    conns = targets(session, "socket:")
    assert len(conns) == 1 and not conns & listeners, out
    pipe = srv.store_pipe()[1]
    assert modes_of(session, pipe) == {"l-wx------"}, out
    assert modes_of(master, pipe) == {"lr-x------", "l-wx------"}, out
    assert tour.store in {t for _, t in master.values()}, out
    assert tour.store not in {t for _, t in session.values()}, out


@uses("client-strace")
def test_client_is_a_writer_child_and_a_reader_parent(tour):
    # LeakSanitizer cannot run in a process that strace traces, and fails its exit.
    nolsan = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"}
    rc, out, err = tour.sh("client-strace", env=nolsan if SANITIZED else None)
    assert rc == 0 and out.splitlines() == ["hello"], (out, err)
    calls = strace_calls(err, None)
    clones = [re.search(r"\) = (\d+)$", c) for _, c in calls if c.startswith("clone(")]
    assert len(clones) == 1 and clones[0], err
    writer = int(clones[0][1])
    assert any(p == writer and re.fullmatch(r"shutdown\(\d+, SHUT_WR\) = 0", c) for p, c in calls), err
    assert any(p != writer and c.startswith(f"wait4({writer},") and
               re.search(rf"WEXITSTATUS\(s\) == 0\}}\], 0, NULL\) = {writer}$", c)
               for p, c in calls), err
    assert re.search(r"^\+\+\+ exited with 0 \+\+\+$", err, re.M), err


@uses("store-fds", "hold", "stats")
def test_store_holds_the_read_end_and_sessions_report_through_the_scoreboard(tour):
    srv = tour.srv
    rc, out, err = tour.sh("store-fds")
    assert rc == 0, err
    store = srv.store_pid()
    tab = parse_ls_fds(out, default_pid=store)[store]
    pipe = srv.store_pipe()[1]
    assert modes_of(tab, pipe) == {"lr-x------"}, out
    assert modes_of(tab, tour.store) == {"l-wx------"}, out
    assert not targets(tab, "socket:"), out
    assert [t for fd, (_, t) in tab.items() if fd > 2 and t.startswith("pipe:") and t != pipe] \
        == [], out

    tour.hold()
    rc, _, err = tour.sh("stats")
    assert rc == 0, err
    line = srv.wait_line("stats:", timeout=DEADLINE)[-1]
    assert "active 1, accepted 1, bytes echoed 6," in line, line


@uses("client", "store-tail")
def test_the_store_has_open_data_and_close(tour):
    rc, out, err = tour.sh("client")
    assert (rc, out) == (0, "hello"), err
    wait_until(lambda: [r for r in store_so_far(tour.store) if r["ev"] == "close"], DEADLINE,
               what="the close record in the store")
    rc, out, err = tour.sh("store-tail")
    recs = [json.loads(l) for l in out.splitlines()]
    assert [(r["ev"], r["conn"]) for r in recs] == [("open", 1), ("data", 1), ("close", 1)], out
    assert recs[1]["data"] == "hello\n" and (recs[2]["reason"], recs[2]["bytes"]) == ("eof", 6), out


@uses("second-server")
def test_a_second_server_on_the_same_store_is_refused(tour):
    rc, out, err = tour.sh("second-server")
    assert rc == 0 and out == "exit status 73", (out, err)
    assert "another mpechod is writing it" in err, err
    assert tour.srv.store_pid() is not None


@uses("hold", "kill-master", "ps-all")
def test_master_death_orphans_finish_by_themselves(tour):
    srv = tour.srv
    h = tour.hold()
    store = srv.store_pid()
    srv.remember()  # so that cleanup finds the orphans
    rc, _, err = tour.sh("kill-master")
    assert rc == 0, err
    assert srv.proc.wait(DEADLINE * SLOW) == -signal.SIGKILL
    srv.wait_line("the master died", timeout=DEADLINE)
    rc, out, err = tour.sh("ps-all")
    session_alive = proc_state(h.session) not in (None, "Z")
    rows = parse_ps(out)
    assert srv.pid not in rows, out
    for pid in (store, h.session):
        if pid in rows:
            assert rows[pid][0] != srv.pid, out
    if session_alive:  # still alive after ps: ps saw both, adopted
        assert store in rows and h.session in rows, out
    assert h.finish(DEADLINE) == 1
    assert any("server closed the connection" in l for l in h.err), h.output()
    wait_until(lambda: all(proc_state(p) in (None, "Z") for p in (store, h.session)), DEADLINE,
               what="the store and the session to end")
    closes = [r for r in read_store(tour.store) if r["ev"] == "close"]
    assert [(r["conn"], r["reason"]) for r in closes] == [(1, "shutdown")], closes


# --- the tours themselves -----------------------------------------------------------------------

def test_every_block_is_run_by_a_scenario():
    names = set(run_blocks())
    used = {n for ns in SCENARIOS.values() for n in ns}
    assert names - used == set(), f"tour blocks no test runs: {sorted(names - used)}"
    assert used - names == set(), f"blocks the tests run that the tour lacks: {sorted(used - names)}"


def test_korean_tour_has_the_same_commands():
    assert doc_blocks(DOCS["ko"]) == doc_blocks(DOCS["en"])


def test_commands_stay_on_loopback_and_name_no_host():
    for kind, name, text in doc_blocks(DOCS["en"]):
        for m in re.finditer(r"\bbin/mpecho\s+(\S+)", text):
            assert m[1] in ("127.0.0.1", "::1", "[::1]"), f"{name}: client to {m[1]}"
        for m in re.finditer(r"\bbin/mpechod\b(.*)", text):
            assert re.search(r"-b (127\.0\.0\.1|::1)\b", m[1]), f"{name}: {m[0]}"
        assert "localhost" not in text, name


def src_definitions():
    """{function name: {files}} for every function defined in src/ (name at the start of a
    line, as the code's style puts it)."""
    defs = {}
    for path in glob.glob(os.path.join(ROOT, "src", "*", "*.c")):
        with open(path, encoding="utf-8") as f:
            for m in re.finditer(r"^([a-z_][a-z0-9_]*)\(", f.read(), re.M):
                defs.setdefault(m[1], set()).add(os.path.relpath(path, os.path.join(ROOT, "src")))
    return defs


@pytest.mark.parametrize("lang", sorted(DOCS))
def test_functions_named_exist_in_src(lang):
    with open(DOCS[lang], encoding="utf-8") as f:
        text = f.read()
    defs = src_definitions()
    names = set(re.findall(r"`([a-z_][a-z0-9_]*)\(\)`", text))
    assert len(names) >= 40, f"only {len(names)} functions named in {DOCS[lang]}"
    missing = sorted(n for n in names if n not in defs)
    assert not missing, f"{DOCS[lang]} names functions src/ does not define: {missing}"
    # "`name()` in `src/file.c`", and the Korean "`src/file.c`의 `name()`".
    pairs = re.findall(r"`([a-z_][a-z0-9_]*)\(\)`\s+in\s+`src/([a-z-]+/[a-z_]+\.c)`", text) + \
        [(n, p) for p, n in re.findall(r"`src/([a-z-]+/[a-z_]+\.c)`의\s+`([a-z_][a-z0-9_]*)\(\)`", text)]
    assert len(pairs) >= 10, pairs
    files = set(re.findall(r"`(src/[a-z-]+/[a-z_]+\.[ch])`", text))
    gone = sorted(f for f in files if not os.path.exists(os.path.join(ROOT, f)))
    assert not gone, f"{DOCS[lang]} names files src/ does not have: {gone}"
    for name, path in pairs:
        assert path in defs.get(name, ()), f"{name}() is not defined in src/{path}"
