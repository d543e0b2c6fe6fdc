"""Keeps the documentation true: README.md and docs/*.md (the tour has test_tour.py), the file
map, the man pages and the licence.

Commands.  Every ```sh or ```console block of README.md and docs/*.md (but the tours) has a
comment right before it:

    <!-- doc:run NAME -->         a block run below by the scenario NAME
    <!-- doc:not-run REASON -->   a block no test can run (root, the host's systemd, a terminal,
                                  other machines), with the reason

A scenario runs its block's commands as the reader would, against the binaries under test
(MPECHO_BIN), in a temporary directory: a server line (`bin/mpechod ... &`) is started with
port 0 and on 127.0.0.1 only, 7007 in the other lines becomes the port it reports, %1 its pid,
and bin/PROGRAM (or PROGRAM) the program under test.  Between the commands the scenario waits
for what it can observe (a log line, a record in the store), never for time to pass, and checks
what the comments say the lines show.  In a ```console block, lines starting with "$ " are the
commands and the others their output, compared line by line once the parts that change from
run to run (times, pids, ports, durations, column widths) are masked.  Every command has a
deadline; every process started is killed by pid at the end.

The file map.  docs/internals.md names every file under src/, one table row each, under the
heading of its folder; the test names the files missing from the map and the rows whose file
does not exist.

Man pages.  Each program's --help options are the ones of its man page's SYNOPSIS and OPTIONS;
each page names the other three in SEE ALSO, has an EXIT STATUS with every status --help
names, and a COPYRIGHT section naming the MIT licence.

And what every reader meets: the MIT licence in LICENSE, the README and debian/copyright; no
doc naming a path outside the repository; links between the docs that lead somewhere; one
default port story (7007 for the programs, 7 for the package) in --help, the man pages and the
docs; one figure for how long `make bench` takes; store.md's example records in the form
mpechod writes.
"""
import glob
import json
import os
import re
import shlex
import signal
import socket
import select
import subprocess
import time

import pytest

from conftest import ROOT, SLOW, Process, Server, binary, read_store, wait_until

DEADLINE = 30  # seconds (times SLOW) for any one command or wait; only a hang reaches it
ENV = {"LC_ALL": "C"}
PROGRAMS = ("mpechod", "mpecho", "mpecho-bench", "mpecho-store", "mpecho-top")
MAN = {"mpechod": "man/mpechod.8", "mpecho": "man/mpecho.1", "mpecho-bench": "man/mpecho-bench.1",
       "mpecho-store": "man/mpecho-store.1", "mpecho-top": "man/mpecho-top.1"}
MAX_NOT_RUN = 8  # blocks that no test can run: few, and each with its reason


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def doc_files():
    """README.md and docs/*.md but the tours (test_tour.py runs theirs)."""
    docs = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
    return ["README.md"] + [d for d in docs if not os.path.basename(d).startswith("tour")]


FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
MARK = re.compile(r"<!-- doc:(run|not-run) (.+?) -->\n$")


def doc_blocks(path):
    """[(kind, name or reason, language, text)] of the command blocks of a doc."""
    text = read(path)
    found = []
    for m in FENCE.finditer(text):
        lang, body = m[1], m[2]
        mark = MARK.search(text[max(0, m.start() - 400):m.start()])
        if lang not in ("sh", "console"):
            assert mark is None, f"{path}: a doc: comment before a ```{lang} block"
            assert not re.search(r"^\$ ", body, re.M), \
                f"{path}: a ```{lang or ''} block with commands ($ ...); make it ```console " \
                f"and mark it:\n{body}"
            continue
        assert mark, f"{path}: a ```{lang} block without <!-- doc:run NAME --> or " \
                     f"<!-- doc:not-run REASON --> right before it:\n{body}"
        found.append((mark[1], mark[2], lang, body))
    return found


def all_blocks():
    return [(path, *b) for path in doc_files() for b in doc_blocks(path)]


def run_blocks():
    blocks = {}
    for path, kind, name, lang, body in all_blocks():
        if kind == "run":
            assert name not in blocks, f"two doc:run blocks named {name}"
            blocks[name] = (path, lang, body)
    return blocks


# --- running the commands -------------------------------------------------------------------

PROG = re.compile(r"(?<![\w./>-])(?:bin/)?(mpecho-store|mpecho-bench|mpechod|mpecho)(?![\w.-])")


def split_comment(line):
    """(command, comment) of one line of a ```sh block."""
    m = re.match(r"(.*?)\s+#\s(.*)$", line)
    return (m[1], m[2]) if m else (line.rstrip(), "")


class Doc:
    """The reader's shell: a directory, at most one server, the commands run in order."""

    def __init__(self, tmp_path, name):
        self.path, self.lang, self.body = run_blocks()[name]
        self.dir = str(tmp_path)
        self.srv = None
        self.procs = []

    def lines(self):
        """[(command, comment)] of a ```sh block."""
        assert self.lang == "sh"
        return [split_comment(l) for l in self.body.splitlines() if l.strip()]

    def subst(self, cmd):
        cmd = PROG.sub(lambda m: shlex.quote(binary(m[1])), cmd)
        if self.srv is not None:
            cmd = re.sub(r"\b7007\b", str(self.srv.port), cmd)
            cmd = cmd.replace("%1", str(self.srv.pid))
        return cmd

    def server(self, cmd):
        """Starts a server line (`bin/mpechod ARGS &`): port 0, 127.0.0.1, in the directory."""
        cmd = re.sub(r"\s*2>\S+", "", cmd.strip())
        assert cmd.endswith("&"), cmd
        argv = shlex.split(cmd[:-1])
        assert PROG.fullmatch(argv[0]) and PROG.fullmatch(argv[0])[1] == "mpechod", cmd
        args = argv[1:]
        if "-p" in args:
            assert args[args.index("-p") + 1] == "7007", f"the docs' port is 7007: {cmd}"
            args[args.index("-p") + 1] = "0"
        else:
            args += ["-p", "0"]
        if "-b" not in args:
            args += ["-b", "127.0.0.1"]
        assert self.srv is None, "one server at a time"
        self.srv = Server(args, env=ENV, preexec_fn=lambda: os.chdir(self.dir))
        self.srv.wait_ready()
        return self.srv

    def sh(self, cmd, merge=False):
        """Runs one command line to its end: (exit status, stdout, stderr)."""
        p = Process(["/bin/sh", "-c", self.subst(cmd)], read=("stdout",) if merge else
                    ("stdout", "stderr"), env=ENV, new_session=True, cwd=self.dir,
                    stderr=subprocess.STDOUT if merge else None)
        self.procs.append(p)
        rc = p.finish(DEADLINE)
        with p.cond:
            return rc, "\n".join(p.out), "\n".join(p.err)

    def store(self, name="echomsg.jsonl"):
        return os.path.join(self.dir, name)

    def closed(self, name="echomsg.jsonl"):
        """Waits until every connection opened in the store has its close record."""
        def done():
            recs = read_store(self.store(name)) if os.path.exists(self.store(name)) else []
            opens = {r["conn"] for r in recs if r["ev"] == "open"}
            return opens and opens == {r["conn"] for r in recs if r["ev"] == "close"} and recs
        return wait_until(done, DEADLINE, what=f"every connection closed in {name}")

    def stopped(self):
        """Waits for the server, told to stop, to exit 0."""
        assert self.srv.proc.wait(DEADLINE * SLOW) == 0, self.srv.output(last=20)

    def cleanup(self):
        for p in self.procs:
            p.cleanup()
        if self.srv is not None:
            self.srv.cleanup()
            self.srv.check_sanitizers()
        for p in self.procs:
            assert not p.sanitizer_reports(), p.output()


def mask(line):
    """A line of output with what changes from run to run masked."""
    line = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", "<time>", line)
    line = re.sub(r"(127\.0\.0\.1|\[::1?\]|0\.0\.0\.0):\d+", r"\1:<port>", line)
    line = re.sub(r"\[\d+\]", "[<pid>]", line)
    line = re.sub(r"\bpid \d+", "pid <pid>", line)
    line = re.sub(r"\b\d+\.\d{6}\b", "<secs>", line)
    return " ".join(line.split())


def transcript(doc):
    """Runs a ```console block: each "$ " command (a server line is started; a kill of the
    server waits for its exit) and compares its output, stdout and stderr together, with the
    lines that follow it in the doc."""
    steps = []
    for line in doc.body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"{doc.path}: output before the first command"
            steps[-1][1].append(line)
    for cmd, expected in steps:
        if re.match(r"(bin/)?mpechod\b.*&$", cmd):
            doc.server(cmd)
            assert not expected, cmd
            continue
        if "mpecho-store" in cmd:
            doc.closed()
        rc, out, _ = doc.sh(cmd, merge=True)
        if cmd == "kill %1":
            doc.stopped()
        assert [mask(l) for l in out.splitlines()] == [mask(l) for l in expected], \
            f"{doc.path}: `{cmd}` (exit {rc}) printed:\n{out}\nThe doc shows:\n" + \
            "\n".join(expected)


SCENARIOS = {}


def scenario(name):
    """Declares the doc:run block a test runs.  The docs' servers are started as the reader
    starts them, in fork mode, whatever MPECHO_SERVER_ARGS says: the prefork pass of the suite
    skips the scenarios rather than run them twice."""
    def deco(f):
        SCENARIOS[name] = f.__name__
        f.doc_block = name
        return pytest.mark.fork_only("the docs run their own servers, as the reader does")(f)
    return deco


@pytest.fixture
def doc(request, tmp_path):
    d = Doc(tmp_path, request.function.doc_block)
    yield d
    d.cleanup()


# --- the scenarios ----------------------------------------------------------------------------

@scenario("quickstart")
def test_readme_quickstart(doc):
    """The build's dependencies are there, and bin/mpechod alone serves and stores to
    ./echomsg.jsonl (make itself built the binaries under test; the default port, 7007, is
    checked in --help, since the test cannot take it)."""
    [(cmd, _)] = doc.lines()
    deps, make, start = [c.strip() for c in cmd.split("&&")]
    assert (deps, make, start) == ("scripts/deps.sh build", "make", "bin/mpechod"), cmd
    r = subprocess.run(["/bin/sh", "-c", deps], cwd=ROOT, capture_output=True, text=True,
                       timeout=DEADLINE * SLOW)
    assert r.returncode == 0, r.stderr
    srv = doc.server(start + " &")
    rc, out, err = doc.sh("printf 'hello\\n' | bin/mpecho 127.0.0.1 7007")
    assert (rc, out) == (0, "hello"), err
    recs = doc.closed()
    assert [r["ev"] for r in recs] == ["start", "open", "data", "close"], recs
    srv.signal(signal.SIGTERM)
    doc.stopped()
    assert "(default 7007" in subprocess.run([binary("mpechod"), "--help"], capture_output=True,
                                             text=True).stdout


@scenario("uses")
def test_readme_three_uses(doc):
    (start, _), (client, echo), (usr1, stats), (lst, _), (check, summary), (stop, _) = doc.lines()
    srv = doc.server(start)
    rc, out, err = doc.sh(client)
    assert (rc, out) == (0, echo), err
    srv.wait_line("exited 0 (eof) after 6 bytes", timeout=DEADLINE)
    assert doc.sh(usr1)[0] == 0
    shown = stats.split("stats: ", 1)[1].rstrip(". ")
    srv.wait_line("stats: " + shown, timeout=DEADLINE)
    doc.closed()
    rc, out, err = doc.sh(lst)
    rows = out.splitlines()
    assert rc == 0 and len(rows) == 2 and rows[0].startswith("CONN") and \
        rows[1].split()[-2:] == ["6", "eof"], (out, err)
    rc, out, err = doc.sh(check)
    assert rc == 0, (out, err)
    want = summary.split("...")
    assert err.startswith(want[0]) and err.rstrip().endswith(want[-1].strip()), (err, summary)
    assert doc.sh(stop)[0] == 0
    doc.stopped()


@scenario("store-jq")
def test_store_jq_recipes(doc):
    """store.md's jq-only recipes give a connection's open, its text and its exact bytes, for
    Hangul text and for bytes that are not UTF-8 (base64 in the store)."""
    (opens, _), (text, _), (exact, _) = doc.lines()
    doc.server("bin/mpechod -p 7007 -s echomsg.jsonl &")
    sent = ["안녕하세요 echo\n".encode(), b"\x00\xff\xfe binary\n"]
    for payload in sent:
        with socket.create_connection(("127.0.0.1", doc.srv.port), timeout=DEADLINE * SLOW) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            assert got == payload
    doc.closed()
    rc, out, err = doc.sh(opens)
    rows = [l.split() for l in out.splitlines()]
    assert rc == 0 and len(rows) == 2 and all(len(r) == 3 for r in rows), (out, err)
    for (life, conn, _), payload in zip(sorted(rows, key=lambda r: int(r[1])), sent):
        def fill(cmd):
            return cmd.replace("LIFE", life).replace("CONN", conn)
        p = subprocess.run(["/bin/sh", "-c", fill(exact)], cwd=doc.dir, capture_output=True,
                           timeout=DEADLINE * SLOW)
        assert (p.returncode, p.stdout) == (0, payload), p.stderr
        p = subprocess.run(["/bin/sh", "-c", fill(text)], cwd=doc.dir, capture_output=True,
                           timeout=DEADLINE * SLOW)
        assert p.returncode == 0 and p.stdout == payload.decode("utf-8", "replace").encode(), \
            (p.stdout, p.stderr)


@scenario("signals")
def test_operating_signals(doc):
    (start, _), (client, echo), (hup, _), (usr1, stats), (stop, bye) = doc.lines()
    srv = doc.server(start)
    rc, out, err = doc.sh(client)
    assert (rc, out) == (0, echo), err
    srv.wait_line("exited 0 (eof) after 6 bytes", timeout=DEADLINE)
    doc.closed()
    assert doc.sh(hup)[0] == 0
    wait_until(lambda: os.path.exists(doc.store()), DEADLINE, what="the store reopened")
    assert os.path.getsize(doc.store()) == 0
    assert [r["ev"] for r in read_store(doc.store("echomsg.jsonl.1"))] == \
        ["start", "open", "data", "close"]
    assert doc.sh(usr1)[0] == 0
    srv.wait_line("stats: " + stats.split("stats: ", 1)[1].rstrip(". "), timeout=DEADLINE)
    assert doc.sh(stop)[0] == 0
    srv.wait_line(bye.split("]: ", 1)[1], timeout=DEADLINE)
    doc.stopped()


class Terminal:
    """A pseudo-terminal: what the test types, and every line the terminal shows."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        self.seen = b""

    def type(self, line):
        os.write(self.master, line.encode() + b"\n")

    def lines(self):
        return self.seen.decode().replace("\r", "").split("\n")

    def wait_lines(self, count):
        """Waits until the terminal has shown count whole lines."""
        deadline = time.monotonic() + DEADLINE * SLOW
        while len(self.lines()) <= count:
            left = deadline - time.monotonic()
            assert left > 0, f"the terminal showed only {self.seen!r}"
            if select.select([self.master], [], [], left)[0]:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: every process on the terminal has gone
                    chunk = b""
                assert chunk, f"the terminal closed after {self.seen!r}"
                self.seen += chunk

    def close(self):
        os.close(self.master)


@scenario("interactive")
def test_client_on_a_terminal(doc):
    """The transcript typed into a pseudo-terminal: the reader's lines are the terminal's echo
    of what the test types, the others what mpecho and the server print."""
    lines = doc.body.splitlines()
    assert lines[0].startswith("$ ") and lines[-2] == "$ echo $?", lines
    cmd, shown, status = lines[0][2:], lines[1:-2], lines[-1]
    doc.server("bin/mpechod -p 7007 --no-store &")
    term = Terminal()
    try:
        p = Process(shlex.split(doc.subst(cmd)), read=(), env=ENV, new_session=True,
                    stdin=term.slave, stdout=term.slave, stderr=term.slave)
        doc.procs.append(p)
        os.close(term.slave)
        term.wait_lines(1)  # the connected line
        typed = None  # the line typed last, until the server's echo of it shows
        for i, line in enumerate(shown[1:], start=2):
            if line == typed:
                typed = None
            else:
                term.type(line)
                typed = line if line not in ("q", "Q") else None  # q is not sent
            term.wait_lines(i)
        rc = p.finish(DEADLINE)
    finally:
        term.close()
    got = term.lines()[:-1]
    assert [mask(l) for l in got] == [mask(l) for l in shown], f"{got}\nThe doc shows:\n{shown}"
    assert str(rc) == status, rc


@scenario("scripted")
def test_client_scripted(doc):
    doc.server("bin/mpechod -p 7007 --no-store &")
    transcript(doc)


@scenario("client-errors")
def test_client_errors(doc):
    transcript(doc)


@scenario("store-roundtrip")
def test_store_roundtrip(doc):
    transcript(doc)


@scenario("bench-rr")
def test_performance_one_figure(doc):
    (start, _), (bench, _), (stop, _) = doc.lines()
    doc.server(start)
    rc, out, err = doc.sh(bench.replace("-d 2", "-d 0.5"))
    assert rc == 0, (out, err)
    assert re.search(r"^\s*requests\s+[1-9]\d* \(", out, re.M), out
    assert re.search(r"^\s*latency us\s+p50 ", out, re.M) and re.search(r"^\s*errors\s+0\b", out,
                                                                        re.M), out
    assert doc.sh(stop)[0] == 0
    doc.stopped()


@pytest.mark.fork_only("the docs' server runs in fork mode, as the reader starts it")
def test_store_records_shown_are_the_ones_written(tmp_path):
    """store.md's example records have the keys, in the order, of those mpechod writes."""
    text = read("docs/store.md")
    shown = [json.loads(l) for l in re.search(r"```json\n(.*?)```", text, re.S)[1].splitlines()]
    srv = Server(["-p", "0", "-b", "127.0.0.1", "-s", str(tmp_path / "s.jsonl")], env=ENV)
    try:
        srv.wait_ready()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=DEADLINE * SLOW) as s:
            s.sendall(b"hello\n")
            s.shutdown(socket.SHUT_WR)
            got = b""
            while len(got) < 6:
                chunk = s.recv(64)
                assert chunk, got
                got += chunk
            assert got == b"hello\n"
        recs = wait_until(lambda: (lambda r: r if [x["ev"] for x in r] ==
                                   ["start", "open", "data", "close"]
                                   else None)(read_store(str(tmp_path / "s.jsonl"))),
                          DEADLINE, what="start, open, data and close in the store")
    finally:
        srv.cleanup()
    srv.check_sanitizers()
    for rec in recs:
        doc_rec = next(r for r in shown if r["ev"] == rec["ev"])
        assert list(doc_rec) == list(rec), f"store.md shows {doc_rec}, mpechod writes {rec}"
    assert (recs[2]["data"], recs[3]["reason"], recs[3]["bytes"]) == \
        (shown[2]["data"], shown[4]["reason"], shown[4]["bytes"])


# --- the blocks themselves ----------------------------------------------------------------------

def test_every_run_block_has_a_scenario():
    names = set(run_blocks())
    assert names - set(SCENARIOS) == set(), f"doc:run blocks no test runs: {sorted(names - set(SCENARIOS))}"
    assert set(SCENARIOS) - names == set(), \
        f"scenarios whose block the docs lack: {sorted(set(SCENARIOS) - names)}"


def test_blocks_not_run_are_few_and_say_why():
    blocks = all_blocks()
    skipped = [(path, why) for path, kind, why, _, _ in blocks if kind == "not-run"]
    ran = [b for b in blocks if b[1] == "run"]
    assert len(skipped) <= MAX_NOT_RUN and len(skipped) <= len(ran), \
        f"{len(skipped)} blocks not run (at most {MAX_NOT_RUN}), {len(ran)} run:\n" + \
        "\n".join(f"{p}: {w}" for p, w in skipped)
    for path, why in skipped:
        assert len(why.split()) >= 5, f"{path}: a doc:not-run block needs its reason: {why!r}"


def test_run_blocks_stay_on_loopback():
    """The blocks a test runs name no address but loopback's (the test binds 127.0.0.1)."""
    for name, (path, _, body) in run_blocks().items():
        for addr in re.findall(r"\b\d+\.\d+\.\d+\.\d+\b", body):
            assert addr == "127.0.0.1", f"{path}: {name}: {addr}"
        assert not re.search(r"\s-b\s", body), f"{path}: {name}: -b"


# --- the file map -------------------------------------------------------------------------------

def file_map_problems(text, tree):
    """What is wrong with the file map in text (docs/internals.md) for the files in tree
    (paths from the top, src/...): one line per kind of problem, naming the files."""
    named, folder, misplaced = [], None, []
    for line in text.splitlines():
        h = re.match(r"### (src/\S*/)$", line)
        if h:
            folder = h[1]
        m = re.match(r"\| `(src/[^`]+)` \|", line)
        if m:
            named.append(m[1])
            if folder is None or not m[1].startswith(folder) or "/" in m[1][len(folder):]:
                misplaced.append(f"{m[1]} (under {folder})")
    missing = sorted(set(tree) - set(named))
    stale = sorted(set(named) - set(tree))
    twice = sorted({n for n in named if named.count(n) > 1})
    return ([f"files under src/ the map does not name (add a row under their folder's "
             f"heading): {missing}"] if missing else []) + \
        ([f"rows naming files that do not exist (remove or rename them): {stale}"]
         if stale else []) + \
        ([f"files named twice: {twice}"] if twice else []) + \
        ([f"rows under another folder's heading: {misplaced}"] if misplaced else [])


def test_file_map_names_every_source_file():
    tree = [os.path.relpath(os.path.join(d, f), ROOT)
            for d, _, fs in os.walk(os.path.join(ROOT, "src")) for f in fs]
    problems = file_map_problems(read("docs/internals.md"), tree)
    assert not problems, "docs/internals.md's file map is out of step with src/:\n  " + \
        "\n  ".join(problems)


def test_file_map_check_names_what_is_wrong():
    text = "### src/lib/\n| `src/lib/a.c` | all | a |\n| `src/lib/gone.c` | all | b |\n" \
           "### src/x/\n| `src/lib/b.c` | x | c |\n| `src/x/y.c` | x | d |\n| `src/x/y.c` | x | d |\n"
    problems = file_map_problems(text, ["src/lib/a.c", "src/lib/b.c", "src/x/y.c", "src/x/new.c"])
    assert problems == [
        "files under src/ the map does not name (add a row under their folder's heading): "
        "['src/x/new.c']",
        "rows naming files that do not exist (remove or rename them): ['src/lib/gone.c']",
        "files named twice: ['src/x/y.c']",
        "rows under another folder's heading: ['src/lib/b.c (under src/x/)']"], problems


# --- man pages ----------------------------------------------------------------------------------

def help_text(program):
    r = subprocess.run([binary(program), "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout + r.stderr


def options_in(text):
    """Every option a text names: --long and -x."""
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)) | \
        set(re.findall(r"(?<![\w-])-[a-zA-Z0-9](?![\w-])", text))


def roff_plain(text):
    text = re.sub(r"\\f[BIRP]", "", text)
    text = text.replace("\\-", "-").replace("\\e", "\\").replace("\\ ", " ")
    return re.sub(r"^\.\w+ ?", "", text, flags=re.M)


def man_sections(program):
    """{section title: plain text} of a man page."""
    parts = re.split(r"^\.SH (.+)$", read(MAN[program]), flags=re.M)
    return {parts[i].strip('"'): roff_plain(parts[i + 1]) for i in range(1, len(parts), 2)}


@pytest.mark.parametrize("program", PROGRAMS)
def test_man_page_lists_every_option_of_help(program):
    text = help_text(program)
    helped = options_in(text)
    sec = man_sections(program)
    synopsis = options_in(sec["SYNOPSIS"])
    # A synopsis shows an option once: "-p port" stands for "-p, --port PORT" too.
    for short, long in re.findall(r"(?<![\w-])(-\w), (--[a-z][a-z0-9-]*)", text):
        if short in synopsis or long in synopsis:
            synopsis |= {short, long}
    described = options_in(sec.get("OPTIONS", "") + sec.get("COMMANDS", ""))
    assert helped - synopsis == set(), f"{MAN[program]}: SYNOPSIS lacks {sorted(helped - synopsis)}"
    assert synopsis - helped == set(), \
        f"{MAN[program]}: SYNOPSIS names options --help does not: {sorted(synopsis - helped)}"
    assert helped - described == set(), \
        f"{MAN[program]}: OPTIONS lacks {sorted(helped - described)}"


def test_operating_guide_lists_every_option_of_mpechod():
    text = read("docs/operating.md")
    table = text[text.index("## Options"):text.index("### Exit status")]
    missing = options_in(help_text("mpechod")) - options_in(table) - {"-h", "--help", "-V",
                                                                       "--version"}
    assert not missing, f"docs/operating.md's options table lacks {sorted(missing)}"


@pytest.mark.parametrize("program", PROGRAMS)
def test_man_page_sections(program):
    sec = man_sections(program)
    see = sec.get("SEE ALSO", "")
    for other in PROGRAMS:
        if other != program:
            sect = MAN[other].rsplit(".", 1)[1]
            assert f"{other} ({sect})" in see or f"{other}({sect})" in see.replace(" (", "("), \
                f"{MAN[program]}: SEE ALSO does not name {other}({sect}): {see!r}"
    assert "MIT" in sec.get("COPYRIGHT", ""), f"{MAN[program]}: no COPYRIGHT section with the MIT licence"
    assert "the mpecho authors" in sec["COPYRIGHT"]
    statuses = set(re.findall(r"\b(\d+)\b", sec.get("EXIT STATUS", "")))
    helped = re.search(r"[Ee]xit status[^\n]*(?:\n(?!\n)[^\n]*)*", help_text(program))
    if helped:
        named = set(re.findall(r"\b(0|1|6\d|7\d)\b", helped[0]))
        assert named <= statuses, \
            f"{MAN[program]}: EXIT STATUS lacks {sorted(named - statuses)} that --help names"


def test_mpechod_exit_statuses_are_documented():
    """Every status mpechod's master or --inetd exits with, from the code's sysexits."""
    sec = man_sections("mpechod")["EXIT STATUS"]
    for code in ("0", "64", "71", "73", "74", "77"):
        assert re.search(rf"\b{code}\b", sec), f"man/mpechod.8: exit status {code} undocumented"
    ops = read("docs/operating.md")
    for code in ("64", "71", "73", "74", "77"):
        assert f"| {code} |" in ops, f"docs/operating.md: exit status {code} undocumented"


# --- what every reader meets ----------------------------------------------------------------------

def test_licence_is_mit_and_named_everywhere():
    lic = read("LICENSE")
    assert lic.startswith("MIT License") and "Copyright (c) 2026 the mpecho authors" in lic, lic[:200]
    assert "[LICENSE](LICENSE)" in read("README.md") and "MIT" in read("README.md")
    dep5 = read("debian/copyright")
    assert dep5.startswith("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/")
    assert re.search(r"^Files: \*\nCopyright: 2026 the mpecho authors\nLicense: MIT\n", dep5, re.M), dep5
    body = " ".join(lic.split("\n\n", 2)[2].split())
    assert body in " ".join(l.strip() for l in dep5.splitlines() if l.startswith(" ") and l != " ."), \
        "debian/copyright does not carry the licence text of LICENSE"


def test_docs_point_nowhere_outside_the_repository():
    paths = (["README.md", "examples/README.md", "bench/README.md"] +
             [os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))] +
             list(MAN.values()))
    for path in paths:
        text = read(path)
        for bad in ("shared/", "seeds", "/work/"):
            assert bad not in text, f"{path} names {bad!r}: " + \
                re.search(rf".*{re.escape(bad)}.*", text)[0]


def test_links_between_docs_lead_somewhere():
    """Every relative link of README.md, docs/*.md and examples/README.md names a file of the
    repository (and, with #anchor, a heading of it)."""
    for path in ["README.md", "examples/README.md"] + \
            [os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", read(path)):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
            assert os.path.exists(os.path.join(ROOT, dest)), f"{path}: link to {target}: no {dest}"
            if anchor:
                heads = [re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
                         for h in re.findall(r"^#+ (.*)$", read(dest), re.M)]
                assert anchor in heads, f"{path}: link to {target}: no such heading in {dest}"


def test_one_port_story():
    """The programs default to 7007 and say that the packaged service listens on 7; so do the
    man pages, the README and the operating guide."""
    for program in ("mpechod", "mpecho", "mpecho-bench"):
        text = " ".join(help_text(program).split())
        assert "7007" in text and "listens on 7" in text, f"{program} --help: {text}"
        page = " ".join(roff_plain(read(MAN[program])).split())
        assert "7007" in page and re.search(r"\bport 7\b|listens on 7\b", page), MAN[program]
    for path in ("README.md", "docs/operating.md"):
        text = " ".join(read(path).split())
        assert "7007" in text and "port 7, the well-known echo port" in text, path


def test_make_bench_duration_is_stated_once():
    said = {}
    for path in ["README.md", "bench/README.md"] + \
            [os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))]:
        text = " ".join(read(path).split())
        for m in re.finditer(r"(?:make bench|compare\.sh)\W[^.]{0,120}?about (\d+) minutes", text):
            said.setdefault(m[1], []).append(path)
    assert len(said) == 1, f"make bench's duration differs: {said}"
