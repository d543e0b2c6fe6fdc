"""The data path of issue 15: with --no-store a session that streams echoes with splice(2)
through a pipe of its own; every promise of the read/write path holds there too (bytes exact,
half-close, idle and write timeouts, reset, SIGTERM, byte counts), and the pipe is gone with the
connection (a pool process serves many).  With the store on, a stream is stored whole."""
import os
import re
import signal
import socket
import threading
import time

from conftest import (SLOW, PREFORK, connect, echo, fd_count, pipe_fds, proc_children,
                      read_store, recv_exact, store_by_conn, wait_until)

CHUNK = 65536


def payload(n, seed=7):
    """n bytes of every value, not a repeating 64 KiB block (an offset error would show)."""
    out = bytearray()
    x = seed
    while len(out) < n:
        x = (x * 6364136223846793005 + 1442695040888963407) & (2 ** 64 - 1)
        out += x.to_bytes(8, "little")
    return bytes(out[:n])


def splice_pipes(srv):
    """The (pid, "pipe:[inode]") of every pipe a child of the server holds both ends of: a
    session's splice pipe (a session holds only the write end of the store pipe).  Read from
    /proc/PID/fdinfo only: opening the pipe through /proc/PID/fd would wait for the pipe's lock,
    which a splice from a socket holds while it waits for data."""
    out = []
    for k in proc_children(srv.pid):
        ends = {}
        for _, p, mode in pipe_fds(k):
            ends.setdefault(p, set()).add(mode)
        out += [(k, p) for p, modes in ends.items() if len(modes) == 2]
    return out


def exited_line(srv, count=1):
    return srv.wait_line(" exited ", count=count, timeout=15)[-1]


def test_stream_is_echoed_exactly_through_splice(start_server):
    """8 MiB in 64 KiB writes, read back while sending: every byte, in order; the session has
    its splice pipe while it streams, and not after."""
    srv = start_server(store=False)
    data = payload(8 << 20)
    with connect(srv.port) as s:
        got = bytearray()
        sender = threading.Thread(target=lambda: (s.sendall(data[:1 << 20])))
        sender.start()
        while len(got) < 1 << 20:
            b = s.recv(1 << 20)
            assert b, "closed early"
            got += b
        sender.join(10 * SLOW)
        assert wait_until(lambda: splice_pipes(srv), 10, what="the session's splice pipe")
        sender = threading.Thread(target=lambda: (s.sendall(data[1 << 20:]),
                                                  s.shutdown(socket.SHUT_WR)))
        sender.start()
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            got += b
        sender.join(10 * SLOW)
    assert len(got) == len(data) and bytes(got) == data
    line = exited_line(srv)
    assert "(eof) after %d bytes" % len(data) in line, line
    wait_until(lambda: not splice_pipes(srv), 10, what="the splice pipe to be closed")
    # A pool process adds its bytes to the total as it goes idle, after the client's end.
    srv.wait_stats(lambda c: c["bytes echoed"] == len(data), what=f"{len(data)} bytes echoed")
    assert srv.stop() == 0


def test_small_messages_after_a_stream_and_half_close(start_server):
    """After the switch to splice, a small write is echoed at once (nothing waits for more), and
    a half-close ends the session with eof after the last echo."""
    srv = start_server(store=False)
    with connect(srv.port) as s:
        s.sendall(b"\xff" * CHUNK * 4)
        assert recv_exact(s, CHUNK * 4) == b"\xff" * CHUNK * 4
        for i in range(20):
            msg = b"tiny %d\n" % i
            s.sendall(msg)
            assert recv_exact(s, len(msg)) == msg
        s.sendall(b"last")
        s.shutdown(socket.SHUT_WR)
        assert recv_exact(s, 5) == b"last"
    assert "(eof)" in exited_line(srv)
    assert srv.stop() == 0


def test_idle_timeout_while_splicing(start_server):
    srv = start_server("--idle-timeout", "1", store=False)
    with connect(srv.port) as s:
        s.sendall(b"i" * CHUNK * 2)
        assert recv_exact(s, CHUNK * 2) == b"i" * CHUNK * 2
        wait_until(lambda: splice_pipes(srv), 10, what="the session's splice pipe")
        s.settimeout(10 * SLOW)
        t0 = time.monotonic()
        assert s.recv(10) == b""
        assert time.monotonic() - t0 >= 0.5
    line = exited_line(srv)
    assert "exited 2 (idle) after %d bytes" % (CHUNK * 2) in line, line
    assert srv.stop() == 0


def test_write_timeout_while_splicing(start_server):
    """A peer that streams and never reads: the splice into its socket makes no progress for the
    idle timeout, and the session ends with write-timeout."""
    srv = start_server("--idle-timeout", "1", store=False)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", srv.port))
    s.setblocking(False)
    chunk = b"w" * CHUNK
    deadline = time.monotonic() + 20 * SLOW
    while time.monotonic() < deadline:
        try:
            s.send(chunk)
        except BlockingIOError:
            time.sleep(0.05)
            if splice_pipes(srv):
                break
        except OSError:
            break
    assert "exited 3 (write-timeout)" in exited_line(srv)
    s.close()
    assert srv.stop() == 0


def test_reset_while_splicing(start_server):
    srv = start_server(store=False)
    s = connect(srv.port)
    s.sendall(b"r" * CHUNK * 2)
    assert recv_exact(s, CHUNK * 2) == b"r" * CHUNK * 2
    wait_until(lambda: splice_pipes(srv), 10, what="the session's splice pipe")
    s.sendall(b"r" * CHUNK)  # unread echo, so the close below is a reset
    time.sleep(0.1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    s.close()
    line = exited_line(srv)
    assert re.search(r"exited [04] \((reset|eof)\)", line), line
    assert srv.stop() == 0


def test_sigterm_ends_a_splicing_session(start_server):
    """SIGTERM's shutdown(2) wakes a session blocked in splice: it ends with shutdown, and the
    master exits 0 after the grace."""
    srv = start_server("--grace", "1", store=False)
    s = connect(srv.port)
    s.sendall(b"t" * CHUNK * 2)
    assert recv_exact(s, CHUNK * 2) == b"t" * CHUNK * 2
    wait_until(lambda: splice_pipes(srv), 10, what="the session's splice pipe")
    t0 = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - t0 < 10 * SLOW
    assert any("(shutdown)" in l for l in srv.lines), "\n".join(srv.lines[-10:])
    s.settimeout(10 * SLOW)
    assert s.recv(10) == b""
    s.close()


def settled_fds(srv):
    """{pid: descriptors} of the master and its children, taken while no pool process is
    starting (one opens its epoll descriptor as it starts) and the same twice running."""
    def look():
        try:
            first = {k: fd_count(k) for k in [srv.pid] + proc_children(srv.pid)}
            if PREFORK and srv.stats()[0]["starting"] != 0:
                return None
            again = {k: fd_count(k) for k in [srv.pid] + proc_children(srv.pid)}
        except OSError:
            return None  # a process left meanwhile
        return again if again == first else None
    return wait_until(look, 10, interval=0.05, what="the processes' descriptors to settle")


def test_no_descriptor_left_after_many_streams(start_server):
    """Each streaming connection makes a splice pipe and closes it: the processes that stay
    (the master, a pool's processes) hold as many descriptors after 20 streams as before."""
    srv = start_server(store=False)
    assert echo(srv.port, b"warm") == b"warm"
    wait_until(srv.quiet, 10, what="the first session to end")
    before = settled_fds(srv)
    data = payload(CHUNK * 3)
    for _ in range(20):
        assert echo(srv.port, data) == data
    wait_until(srv.quiet, 10, what="the sessions to end")

    def same():
        after = {k: fd_count(k) for k in before if os.path.exists(f"/proc/{k}")}
        return after == {k: before[k] for k in after}
    wait_until(same, 10, what=f"the descriptor counts {before} again")
    assert not splice_pipes(srv)
    assert srv.stop() == 0


def test_stream_with_the_store_is_stored_whole(start_server):
    """The store keeps up with a stream, in both formats, and loses nothing of it."""
    srv = start_server()
    data = payload(6 << 20, seed=3)
    assert echo(srv.port, data) == data
    text = bytes(0x20 + b % 95 for b in payload(2 << 20, seed=5))
    assert echo(srv.port, text) == text
    assert srv.stop() == 0
    conns = store_by_conn(read_store(srv.store_path))
    assert bytes(conns[1]["data"]) == data and bytes(conns[2]["data"]) == text
    assert [c["close"][0]["bytes"] for c in conns.values()] == [len(data), len(text)]


def test_raw_stream_is_stored_whole(start_server, tmp_path):
    path = tmp_path / "raw.bin"
    srv = start_server("--store-format", "raw", store=str(path))
    data = payload(6 << 20, seed=9)
    assert echo(srv.port, data) == data
    assert srv.stop() == 0
    assert path.read_bytes() == data
