"""Tests for examples/: each walkthrough program does what it says it does.

The programs are examples/bin/<name>, built by `make examples`.  Each test starts one in a
process group of its own, reads its output line by line with a deadline on every wait, checks
the behaviour through /proc, exit statuses and the bytes that crossed the pipes, and kills the
group at teardown if it is still there.
"""
import os
import re
import secrets
import signal

import pytest

from conftest import ROOT, Process, caught_signals, proc_children, proc_stat

EXAMPLES_BIN = os.path.join(ROOT, "examples", "bin")
DEADLINE = 15  # seconds (times SLOW) that any one program may take; each runs for 3 s at most


def example_path(name):
    path = os.path.join(EXAMPLES_BIN, name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: build the examples first with `make examples`",
                    pytrace=False)
    return path


class Example(Process):
    """One running example in a session of its own; its stdout lines are in self.lines, its
    stderr lines in self.err."""

    def __init__(self, name, *args):
        super().__init__([example_path(name), *args], read=("stdout", "stderr"),
                         new_session=True)
        self.name = name
        self.lines = self.out

    def expect(self, pattern, timeout=DEADLINE):
        """Waits for a stdout line matching the regular expression; returns the match."""
        rx = re.compile(pattern)
        return self.wait_lines(self.lines, rx.search, 1, timeout,
                               f"line matching {pattern!r}")[0]

    def all(self, pattern):
        rx = re.compile(pattern)
        with self.cond:
            return [m for m in map(rx.search, self.lines) if m]

    def finish(self, timeout=DEADLINE):
        """Waits for the program to end by itself; returns its exit status."""
        return super().finish(timeout)


@pytest.fixture
def run():
    started = []

    def start(name, *args):
        ex = Example(name, *args)
        started.append(ex)
        return ex

    yield start
    for ex in started:
        ex.cleanup()


def finish_ok(ex, timeout=DEADLINE):
    rc = ex.finish(timeout)
    assert rc == 0, f"{ex.name} exited with {rc}, expected 0; output:\n{ex.output()}"
    # Built with CFLAGS='-fsanitize=address,undefined', a report would land on stderr.
    assert not ex.sanitizer_reports(), ex.output()


def test_fork_returns_child_pid_in_parent_and_zero_in_child(run):
    ex = run("fork")
    finish_ok(ex)
    m = ex.expect(r"parent: fork returned (\d+) .* my pid is (\d+)")
    returned, parent = int(m[1]), int(m[2])
    c = ex.expect(r"child: fork returned 0; my pid is (\d+), my parent is (\d+)")
    child, childs_parent = int(c[1]), int(c[2])
    assert parent == ex.pid, f"parent pid {parent}, expected the process we started, {ex.pid}"
    assert returned == child, f"fork returned {returned} in the parent, child's pid is {child}"
    assert child != parent
    assert childs_parent == parent, f"child's getppid() {childs_parent}, parent {parent}"
    assert ex.expect(r"child: changed my copies to counter (\d+), local (\d+)").groups() == \
        ("11", "21")
    assert ex.expect(r"parent: after the child exited: counter (\d+), local (\d+)").groups() == \
        ("10", "20"), "the child's change leaked into the parent"


def test_zombie_is_in_state_z_until_reaped_then_gone(run):
    ex = run("zombie")
    child = int(ex.expect(r"child (\d+) is now a zombie")[1])
    st = proc_stat(child)
    assert st is not None, f"child {child} not in /proc while it should be a zombie"
    assert st[:2] == ("Z", ex.pid), \
        f"child {child}: (state, ppid) {st[:2]}, expected ('Z', {ex.pid})"
    assert child in proc_children(ex.pid)

    ex.expect(rf"reaped {child}\b")
    parent = proc_stat(ex.pid)
    assert parent is not None and parent[0] != "Z", "the parent should still run after reaping"
    assert child not in proc_children(ex.pid), f"child {child} still a child after reaping"
    st = proc_stat(child)
    assert st is None or st[1] != ex.pid, f"child {child} still in /proc after reaping: {st}"
    finish_ok(ex)


@pytest.mark.parametrize("code,sig", [(None, None), (42, signal.SIGUSR1), (0, signal.SIGKILL)])
def test_wait_reports_exit_status_and_killing_signal(run, code, sig):
    args = [] if code is None else [str(code), str(int(sig))]
    code = 3 if code is None else code
    sig = signal.SIGTERM if sig is None else sig
    ex = run("wait", *args)
    finish_ok(ex)
    exiter = int(ex.expect(rf"child (\d+) calls _exit\({code}\)")[1])
    victim = int(ex.expect(rf"child (\d+) waits to be killed with signal {int(sig)}\b")[1])
    m = ex.expect(rf"child {exiter} exited normally: WIFEXITED true, WEXITSTATUS (\d+)")
    assert int(m[1]) == code, f"WEXITSTATUS {m[1]}, expected {code}"
    m = ex.expect(rf"child {victim} was killed: WIFSIGNALED true, WTERMSIG (\d+)")
    assert int(m[1]) == sig, f"WTERMSIG {m[1]}, expected {int(sig)}"
    ex.expect(r"ECHILD")


@pytest.mark.parametrize("code", [0, 42])
def test_waitpid_polls_then_reports_exit_value(run, code):
    ex = run("waitpid", str(code))
    child = int(ex.expect(r"forked child (\d+)")[1])
    ex.expect(rf"poll 1: child {child} still running")
    # WNOHANG returned 0 while the child was really alive: it runs 0.6 s after this line.
    st = proc_stat(child)
    assert st is not None and st[0] != "Z" and st[1] == ex.pid, f"child {child}: {st}"
    finish_ok(ex)
    m = ex.expect(rf"child {child} exited after (\d+) polls: WEXITSTATUS (\d+)")
    assert int(m[2]) == code, f"WEXITSTATUS {m[2]}, expected {code}"
    polls = len(ex.all(rf"child {child} still running"))
    assert int(m[1]) == polls >= 2, f"{m[1]} polls reported, {polls} poll lines"
    assert child not in proc_children(ex.pid)


@pytest.mark.parametrize("argv", [["wait", "256"], ["wait", "1", "19"], ["waitpid", "-1"],
                                  ["waitpid", "x"], ["sigchld", "0"], ["pipe_store", "1", "0"]])
def test_bad_arguments_are_refused(run, argv):
    ex = run(*argv)
    rc = ex.finish()
    assert rc == 2, f"{argv}: exit status {rc}, expected 2 (usage)"
    assert any("usage:" in l for l in ex.err), ex.output()


def test_signal_handles_sigalrm_and_sigint_and_ends_by_itself(run):
    alone = run("signal")         # nobody sends it anything
    poked = run("signal")         # gets one SIGINT
    poked.expect(r"SIGALRM handler ran \(1 of 3\)")
    assert signal.SIGINT in caught_signals(poked.pid), "SIGINT has no handler installed"
    os.kill(poked.pid, signal.SIGINT)
    poked.expect(r"SIGINT handler ran \(1\)", timeout=5)
    finish_ok(poked, timeout=10)
    finish_ok(alone, timeout=10)
    for ex, ints in ((poked, 1), (alone, 0)):
        m = ex.expect(r"done after (\d+) alarms and (\d+) interrupts")
        assert (int(m[1]), int(m[2])) == (3, ints), f"{ex.output()}"
        assert len(ex.all(r"SIGALRM handler ran")) == 3


def test_sigaction_handler_stays_and_read_gets_eintr(run):
    ex = run("sigaction")
    ex.expect(r"previous action was SIG_DFL")
    assert signal.SIGALRM in caught_signals(ex.pid)
    # Default SIGALRM would end the process: surviving three of them (exit status 0, not -14)
    # shows the handler stayed installed after each delivery.
    finish_ok(ex, timeout=10)
    assert len(ex.all(r"SIGALRM \d handled")) == 2
    ex.expect(r"failed with EINTR")
    assert int(ex.expect(r"the handler ran (\d+) times")[1]) >= 3


def test_sigchld_handler_reaps_every_child_that_exits_at_once(run):
    n = 8
    ex = run("sigchld", str(n))
    last = ex.expect(r"all (\d+) children reaped.*parent (\d+) stays")
    assert (int(last[1]), int(last[2])) == (n, ex.pid)
    # The parent is still running: it has no children left, zombie or otherwise.
    assert proc_stat(ex.pid)[0] != "Z"
    kids = proc_children(ex.pid)
    zombies = [k for k in kids if (proc_stat(k) or ("?",))[0] == "Z"]
    assert not zombies, f"zombie children of {ex.pid}: {zombies}"
    assert kids == [], f"children of {ex.pid} left: {kids}"
    forked = {int(m[1]): int(m[2]) for m in ex.all(r"forked child (\d+); it will exit with (\d+)")}
    reaped = {int(m[1]): int(m[2]) for m in ex.all(r"reaped child (\d+), exit status (\d+)")}
    assert len(forked) == n
    assert reaped == forked, f"forked (pid: exit code) {forked}\nreaped {reaped}"
    runs = int(ex.expect(r"handler ran (\d+) time")[1])
    assert 1 <= runs <= n
    finish_ok(ex)


def test_pipe_carries_the_childs_message_to_the_parent(run):
    msg = "hello " + secrets.token_hex(16)
    ex = run("pipe", msg)
    finish_ok(ex)
    child = int(ex.expect(rf"child (\d+) wrote {len(msg)} bytes")[1])
    m = ex.expect(r'parent (\d+) read (\d+) bytes from child (\d+), then end of file: "(.*)"$')
    assert int(m[1]) == ex.pid and int(m[3]) == child and child != ex.pid
    assert (int(m[2]), m[4]) == (len(msg), msg), f"expected {msg!r}, got {m[4]!r}"


def test_pipe2way_exchanges_both_messages_both_ways(run):
    up, down = "question " + secrets.token_hex(8), "answer " + secrets.token_hex(8)
    ex = run("pipe2way", up, down)
    finish_ok(ex)
    c = ex.expect(r'child (\d+) sent "(.*)" and received "(.*)"$')
    p = ex.expect(r'parent (\d+) sent "(.*)" and received "(.*)"$')
    assert int(p[1]) == ex.pid and int(c[1]) != ex.pid
    assert (c[2], c[3]) == (up, down), f"child sent/received {c[2]!r}/{c[3]!r}"
    assert (p[2], p[3]) == (down, up), f"parent sent/received {p[2]!r}/{p[3]!r}"


def test_one_pipe_lets_the_child_read_back_its_own_message(run):
    ex = run("pipe2way", "--one-pipe")
    finish_ok(ex)
    m = ex.expect(r'child (\d+) wrote "(.*)" and read back "(.*)"')
    assert m[2] == m[3], f"child wrote {m[2]!r} but read {m[3]!r}"
    ex.expect(rf"parent {ex.pid} found the pipe empty")


def test_pipe_store_records_arrive_whole_from_many_writers(run):
    writers, records = 8, 200
    ex = run("pipe_store", str(writers), str(records))
    finish_ok(ex)
    m = ex.expect(r"(\d+) whole records, (\d+) broken, (\d+) stray bytes")
    assert tuple(map(int, m.groups())) == (writers * records, 0, 0), ex.output()
    per = {int(m[1]): int(m[2]) for m in ex.all(r"writer (\d+): (\d+) whole records")}
    assert per == {w: records for w in range(writers)}
    ex.expect(r"read end of file")
