"""Black-box tests of the echo client mpecho, against the real mpechod on 127.0.0.1 (or ::1)
and, for the failures a real server does not produce on demand, a listener in the test.

Every client is started through the `clients` fixture, which kills it (and anything it left)
by pid at teardown; every wait has a deadline scaled by SLOW.  Readiness is the server having a
session and the client having its writer child, never a sleep.
"""
import os
import signal
import socket
import struct
import subprocess
import time

import pytest

from conftest import (ROOT, SLOW, Process, alive, binary, proc_children, proc_state, read_store,
                      read_until, store_by_conn, wait_until)


class Client(Process):
    """One mpecho process; stdin, stdout and stderr are pipes unless given."""

    def __init__(self, args, **kw):
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        super().__init__([binary("mpecho")] + list(args), read=(), **kw)
        self.writer = None

    def wait_writer(self, srv=None):
        """Waits until the client is connected (the server has a session) and has forked its
        writer; returns the writer's pid."""
        if srv is not None:
            wait_until(srv.sessions, 10, what="a server session")
        kids = wait_until(lambda: proc_children(self.pid), 10, what="the writer process")
        self.writer = kids[0]
        self.remember()  # so that cleanup finds the writer even once it is an orphan
        return self.writer

    def finish(self, timeout=10, stdin_input=None, keep_stdin=False):
        """Waits for the client; returns (status, stdout, stderr lines).  With keep_stdin, the
        client's stdin pipe stays open (communicate would close it), so the client must end by
        itself; its output must then be small."""
        if keep_stdin:
            self.proc.wait(timeout * SLOW)
            out = self.proc.stdout.read() if self.proc.stdout else b""
            err = self.proc.stderr.read() if self.proc.stderr else b""
        else:
            out, err = self.proc.communicate(stdin_input, timeout=timeout * SLOW)
        err = (err or b"").decode("utf-8", "replace")
        self.err = err.splitlines()
        assert not self.sanitizer_reports(), "sanitizer report:\n" + err
        return self.proc.returncode, out, self.err

    def assert_no_process_left(self):
        """Neither the reader nor the writer survives, not even as a zombie."""
        assert self.proc.poll() is not None, "the reader is still running"
        if self.writer is not None:
            wait_until(lambda: proc_state(self.writer) is None, 5,
                       what=f"writer {self.writer} to be gone (state {proc_state(self.writer)})")


@pytest.fixture
def clients():
    started = []

    def start(*args, **kw):
        c = Client(args, **kw)
        started.append(c)
        return c

    yield start
    for c in started:
        c.cleanup()


def conn_data(srv):
    """The server must have stopped: then its store file is complete."""
    return store_by_conn(read_store(srv.store_path))


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# --- arguments -------------------------------------------------------------------------------

def test_help_and_version(clients):
    rc, out, err = clients("--help").finish()
    assert rc == 0 and err == []
    assert out.startswith(b"usage: mpecho [HOST [PORT]]\n") and b"--version" in out
    for args in (["-V"], ["--version"]):
        rc, out, err = clients(*args).finish()
        assert (rc, out, err) == (0, b"mpecho 0.1.0\n", [])


def test_help_matches_the_man_page(clients):
    """Every option and every exit status in --help is in man/mpecho.1."""
    _, out, _ = clients("-h").finish()
    with open(os.path.join(ROOT, "man", "mpecho.1")) as f:
        man = f.read().replace("\\-", "-")
    for word in ("--help", "--version", "localhost", "7007", "65535", "q or Q", "64",
                 "half-closes", "INT, TERM and HUP"):
        assert word in out.decode(), word
        assert word in " ".join(man.split()), word


BAD = [["-x"], ["--nope"], ["a", "7007", "c"], ["localhost", "0"], ["localhost", "65536"],
       ["localhost", "abc"], ["localhost", "7007x"], ["localhost", "+7007"], ["localhost", ""],
       ["localhost", "99999999999999999999"], [""]]


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) or "empty" for a in BAD])
def test_bad_arguments_exit_64_with_one_line(clients, args):
    rc, out, err = clients(*args).finish()
    assert rc == 64, (rc, err)
    assert len(err) == 1 and err[0].startswith("mpecho: "), err
    assert out == b""


# --- the echo -------------------------------------------------------------------------------

def test_large_binary_file_round_trip(start_server, clients, tmp_path):
    srv = start_server()
    data = os.urandom(8 << 20)
    src, dst = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(data)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        c = clients("127.0.0.1", srv.port, stdin=fin, stdout=fout)
        rc, _, err = c.finish(timeout=60)
    assert (rc, err) == (0, [])
    got = dst.read_bytes()
    assert len(got) == len(data) and got == data, "the echo differs from the input"
    assert srv.stop() == 0
    conns = conn_data(srv)
    assert len(conns) == 1
    (conn,) = conns.values()
    assert bytes(conn["data"]) == data, "the store does not hold the input"
    assert [r["reason"] for r in conn["close"]] == ["eof"]


def test_piped_q_line_is_data(start_server, clients):
    srv = start_server()
    data = b"first\nq\nQ\nq\n\x00\xff last line without newline"
    rc, out, err = clients("127.0.0.1", srv.port, stdin=subprocess.PIPE).finish(stdin_input=data)
    assert (rc, err) == (0, [])
    assert out == data


def test_empty_input(start_server, clients):
    srv = start_server()
    rc, out, err = clients("127.0.0.1", srv.port).finish()
    assert (rc, out, err) == (0, b"", [])


def test_localhost_by_name(start_server, clients):
    srv = start_server()
    rc, out, err = clients("localhost", srv.port, stdin=subprocess.PIPE).finish(
        stdin_input=b"by name\n")
    assert (rc, out, err) == (0, b"by name\n", [])


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_ipv6_address(start_server, clients, host):
    srv = start_server("-b", "::1", bind=False)
    rc, out, err = clients(host, srv.port, stdin=subprocess.PIPE).finish(stdin_input=b"v6\n")
    assert (rc, out, err) == (0, b"v6\n", [])


def test_terminal_session(start_server, clients):
    """On a terminal, lines go out as typed and a line q (or Q) ends the session cleanly."""
    srv = start_server()
    master, slave = os.openpty()
    try:
        c = clients("127.0.0.1", srv.port, stdin=slave, start_new_session=True)
        os.close(slave)
        c.wait_writer(srv)
        out_fd = c.proc.stdout.fileno()
        os.write(master, b"hi\n")
        assert read_until(out_fd, b"hi\n") == b"hi\n"
        os.write(master, b"qq\n")
        assert read_until(out_fd, b"qq\n") == b"qq\n"
        os.write(master, b"Q\n")
        rc, rest, err = c.finish()
    finally:
        os.close(master)
    assert rc == 0, err
    assert rest == b""
    assert len(err) == 1 and "a line q ends the input" in err[0], err
    c.assert_no_process_left()
    assert srv.stop() == 0
    (conn,) = conn_data(srv).values()
    assert bytes(conn["data"]) == b"hi\nqq\n", "q was sent to the server"


# --- failures -------------------------------------------------------------------------------

def test_connection_refused(clients):
    # A bound socket that does not listen refuses connections, and holding it keeps the port
    # from being taken by anyone else while the client tries it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        t0 = time.monotonic()
        rc, out, err = clients("127.0.0.1", port).finish(timeout=10)
        elapsed = time.monotonic() - t0
    assert rc == 1, err
    assert len(err) == 1 and "refused" in err[0], err
    assert out == b""
    assert elapsed < 5 * SLOW, "a refused connection is reported at once, not retried"


def nss_is_files_and_dns():
    try:
        with open("/etc/nsswitch.conf") as f:
            for line in f:
                if line.startswith("hosts:"):
                    return line.split()[1:] in (["files"], ["files", "dns"])
    except OSError:
        pass
    return False


@pytest.mark.skipif(not nss_is_files_and_dns(),
                    reason="only glibc's files and dns modules are known not to query for it")
def test_unknown_host(clients):
    # Not a valid host name: glibc's DNS module rejects it before sending any query, and
    # /etc/hosts cannot hold it, so the look-up fails without touching the network.
    rc, out, err = clients("no such host!", 7007).finish(timeout=10)
    assert rc == 1, err
    assert len(err) == 1 and "cannot resolve" in err[0], err


def test_server_closes_while_client_waits(start_server, clients):
    """The server ends the idle session; the client, its input still open, stops both processes
    and says why."""
    srv = start_server("--idle-timeout", "1")
    c = clients("127.0.0.1", srv.port, stdin=subprocess.PIPE)
    c.wait_writer(srv)
    # The bound: a second of idleness, then the close reaching the client, within finish's
    # deadline (10 s, times SLOW).
    rc, out, err = c.finish(timeout=10, keep_stdin=True)
    assert rc == 1
    assert len(err) == 1 and "server closed the connection" in err[0], err
    c.assert_no_process_left()


def test_server_resets_connection(listener, clients):
    c = clients("127.0.0.1", listener.getsockname()[1], stdin=subprocess.PIPE)
    conn, _ = listener.accept()
    c.wait_writer()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    rc, _, err = c.finish(timeout=10, keep_stdin=True)
    assert rc == 1
    assert len(err) == 1 and "reset" in err[0], err
    c.assert_no_process_left()


def test_server_closes_mid_transfer(listener, clients, tmp_path):
    """The server goes away while the writer is blocked sending a large input: one line, exit
    1, no process left, whichever process notices first."""
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(16 << 20))
    with open(src, "rb") as fin:
        c = clients("127.0.0.1", listener.getsockname()[1], stdin=fin,
                    stdout=subprocess.DEVNULL)
        conn, _ = listener.accept()
        c.wait_writer()
        conn.settimeout(10 * SLOW)
        conn.recv(65536)
        conn.close()
        rc, _, err = c.finish(timeout=10)
    assert rc == 1
    assert len(err) == 1, err
    assert "server closed the connection" in err[0] or "reset" in err[0], err
    c.assert_no_process_left()


def test_closed_stdout_is_reported(start_server, clients):
    srv = start_server()
    c = clients("127.0.0.1", srv.port, stdin=subprocess.PIPE)
    c.proc.stdout.close()
    c.proc.stdin.write(b"nobody reads this\n")
    c.proc.stdin.close()
    rc = c.proc.wait(10 * SLOW)
    err = c.proc.stderr.read().decode().splitlines()
    assert rc == 1
    assert len(err) == 1 and "cannot write to standard output" in err[0], err


# --- signals and process hygiene ------------------------------------------------------------

def test_ctrl_c_ends_both_processes(start_server, clients):
    srv = start_server()
    c = clients("127.0.0.1", srv.port, stdin=subprocess.PIPE, start_new_session=True)
    writer = c.wait_writer(srv)
    os.killpg(c.pid, signal.SIGINT)
    rc, _, err = c.finish(keep_stdin=True)
    assert rc in (-signal.SIGINT, 130), rc
    assert err == []
    c.assert_no_process_left()
    assert not alive(writer)


def test_sigterm_to_the_reader_stops_the_writer(start_server, clients):
    srv = start_server()
    c = clients("127.0.0.1", srv.port, stdin=subprocess.PIPE)
    c.wait_writer(srv)
    os.kill(c.pid, signal.SIGTERM)
    rc, _, err = c.finish(keep_stdin=True)
    assert rc == -signal.SIGTERM, rc
    assert err == []
    c.assert_no_process_left()


def test_killed_reader_takes_the_writer_along(start_server, clients):
    srv = start_server()
    c = clients("127.0.0.1", srv.port, stdin=subprocess.PIPE)
    writer = c.wait_writer(srv)
    os.kill(c.pid, signal.SIGKILL)
    assert c.proc.wait(10 * SLOW) == -signal.SIGKILL
    wait_until(lambda: not alive(writer), 5, what="the orphaned writer to die")


def test_killed_writer_is_reported(start_server, clients):
    srv = start_server()
    c = clients("127.0.0.1", srv.port, stdin=subprocess.PIPE)
    writer = c.wait_writer(srv)
    os.kill(writer, signal.SIGKILL)
    rc, _, err = c.finish(keep_stdin=True)
    assert rc == 1
    assert len(err) == 1 and "killed by signal 9" in err[0], err
    c.assert_no_process_left()


def test_each_process_closes_what_it_does_not_own(start_server, clients):
    srv = start_server()
    c = clients("127.0.0.1", srv.port, stdin=subprocess.PIPE)
    writer = c.wait_writer(srv)
    # The reader's stdin and the writer's stdout are closed once each process is set up.
    wait_until(lambda: not os.path.exists(f"/proc/{c.pid}/fd/0"), 5, what="reader closes stdin")
    wait_until(lambda: not os.path.exists(f"/proc/{writer}/fd/1"), 5,
               what="writer closes stdout")
    rc, out, err = c.finish(stdin_input=b"x\n")
    assert (rc, out, err) == (0, b"x\n", [])
    c.assert_no_process_left()
