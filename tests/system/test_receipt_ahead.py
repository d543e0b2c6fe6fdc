"""--echo-after with a stream read ahead: while one chunk waits for its receipt the session reads
and records the next ones (session_echo_ahead), and still echoes nothing before the store has
written (or synced) its record.  Shown at the hard moment, a store stopped (SIGSTOP) in the
middle of a stream with chunks read ahead, and traced (strace -f) byte for byte on a stream."""
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import termios
import threading
import time

import pytest

from conftest import SLOW, read_store, record_bytes, store_by_conn, wait_until
from test_faults import Streamer
from test_receipt import MODES, server, stop_traced, strace_calls


class Stored:
    """The data bytes of a growing store file, read on from where the last call stopped (its
    whole lines only: the store may be writing the next one)."""

    def __init__(self, path):
        self.path, self.off, self.total = path, 0, 0

    def __call__(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                raw = f.read()
        except FileNotFoundError:
            return 0
        whole = raw[:raw.rfind(b"\n") + 1]
        self.off += len(whole)
        for line in whole.split(b"\n")[:-1]:
            r = json.loads(line)
            if r["ev"] == "data":
                self.total += len(record_bytes(r))
        return self.total


def pipe_bytes(srv):
    """The bytes in the store pipe (FIONREAD on a read end of our own, opened through /proc and
    closed at once, never read)."""
    ours = os.open(f"/proc/{srv.pid}/fd/{srv.store_pipe()[0]}", os.O_RDONLY | os.O_NONBLOCK)
    try:
        return struct.unpack("i", fcntl.ioctl(ours, termios.FIONREAD, b"\0" * 4))[0]
    finally:
        os.close(ours)


class GatedStreamer(Streamer):
    """A Streamer that sends the first `first` bytes, then waits (bounded) for .gate before the
    rest: a stream that cannot end before the test has made its moment."""

    def __init__(self, port, data, first):
        super().__init__(port, data)
        self.first, self.gate = first, threading.Event()

    def _send(self):
        try:
            self.sock.sendall(self.data[:self.first])
            self.gate.wait(120 * SLOW)
            self.sock.sendall(self.data[self.first:])
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def settled(st, quiet=0.3):
    """What the client has once it has received nothing more for quiet seconds (bounded)."""
    last = -1
    deadline = time.monotonic() + 20 * SLOW
    while st.got != last:
        assert time.monotonic() < deadline, "the echo never stopped"
        last = st.got
        time.sleep(quiet)
    return last


@pytest.mark.parametrize("mode", MODES)
def test_stopped_store_the_client_has_nothing_beyond_the_file(tmp_path, mode):
    """SIGSTOP the store again and again while a client streams: with chunks read and recorded
    ahead, waiting for receipts the stopped store cannot give, the client must have received
    nothing the file does not hold; after SIGCONT everything arrives, in order."""
    srv, path = server(tmp_path, "--echo-after", mode)
    data = os.urandom(64 << 20)
    st = Streamer(srv.port, data)
    stored = Stored(path)
    st.start()
    store = srv.store_pid()
    stops = 0
    try:
        while stops < 5:
            mark = st.got
            wait_until(lambda: st.got >= mark + (1 << 20) or not st.is_alive(), 30,
                       what="the stream to go on")
            if not st.is_alive():
                break
            os.kill(store, signal.SIGSTOP)
            try:
                got = settled(st)
                held = stored()
                assert got <= held, f"client received {got} bytes, the file holds {held}"
                stops += 1
            finally:
                os.kill(store, signal.SIGCONT)
        st.join(60 * SLOW)
        assert not st.is_alive(), "the stream did not finish"
        assert b"".join(st.out) == data
    finally:
        st.sock.close()
    assert stops >= 3
    assert srv.stop() == 0
    (c,) = store_by_conn(read_store(path)).values()
    assert bytes(c["data"]) == data


def data_in_writes(args):
    """The data bytes of the records in one traced store write (digits only: no escapes)."""
    return sum(len(m) for m in re.findall(r'\\"data\\":\\"([0-9]*)\\"', args))


ECHO = re.compile(r'^"([0-9]+)"$')


@pytest.mark.parametrize("mode", MODES)
def test_strace_a_stream_read_ahead_echoes_only_what_is_written_or_synced(tmp_path, mode):
    """Traced, byte for byte: at the start of each echo write, the store's writes that had
    returned hold every byte echoed through that write's end (synced: writes followed by an
    fdatasync that had returned).  The session did read ahead (a recvfrom with MSG_DONTWAIT
    that returned data), so the trace covers the case this checks."""
    if shutil.which("strace") is None:
        pytest.skip("no strace")
    log = str(tmp_path / "strace.log")
    srv, path = server(tmp_path, "--echo-after", mode, wrapper=(
        "strace", "-f", "-ttt", "-T", "-s", str(1 << 22), "-o", log,
        "-e", "trace=write,fdatasync,recvfrom"))
    data = b"".join(b"%08d" % i for i in range((3 << 20) // 8))
    st = Streamer(srv.port, data)
    st.start()
    st.join(120 * SLOW)
    try:
        assert not st.is_alive() and b"".join(st.out) == data
    finally:
        st.sock.close()
    stop_traced(srv)
    calls = strace_calls(log)
    stores = [c for c in calls if c[1] == "write" and '\\"data\\":\\"' in c[3]]
    assert stores
    store_pid = stores[0][0]
    syncs = [c for c in calls if c[1] == "fdatasync" and c[0] == store_pid]
    echoes = [c for c in calls if c[1] == "write" and c[0] != store_pid and
              ECHO.match(c[3].rsplit(", ", 1)[0])]
    assert echoes
    session = echoes[0][0]
    ahead = [c for c in calls if c[0] == session and c[1] == "recvfrom" and
             "MSG_DONTWAIT" in c[3] and c[6] > 0]
    assert ahead, "the session never read ahead: nothing was checked"
    # The bytes the file held (and, synced, held on the disk) at each store write's end.
    written, total = [], 0
    for c in sorted(stores, key=lambda c: c[5]):
        total += data_in_writes(c[3])
        written.append((c[5], total))
    assert total == len(data)

    def held_at(t):
        return max([n for end, n in written if end <= t], default=0)

    def synced_at(t):
        return max([held_at(s[4]) for s in syncs if s[5] <= t], default=0)

    echoed = 0
    for c in sorted(echoes, key=lambda c: c[4]):
        sent = ECHO.match(c[3].rsplit(", ", 1)[0]).group(1).encode()
        assert sent == data[echoed:echoed + len(sent)] and c[6] > 0
        echoed += c[6]
        have = synced_at(c[4]) if mode == "synced" else held_at(c[4])
        assert echoed <= have, \
            f"echo through byte {echoed} at {c[4]}, the file held {have} bytes ({mode})"
    assert echoed == len(data)


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
@pytest.mark.parametrize("mode", MODES)
def test_store_killed_between_its_read_and_its_write_loses_no_echoed_byte(tmp_path, mode):
    """The hard moment for a stream read ahead: the store is SIGKILLed (by gdb) right after a
    read(2) of the pipe returned, so the frames it read are never written, while the chunks
    read ahead after them are still in the pipe.  The restarted store writes those; they must
    not count for the lost ones (a count is a writer's first frames, receipt.h), so the client
    receives nothing beyond the hole, and the session ends at its bound."""
    srv, path = server(tmp_path, "--echo-after", mode, "--idle-timeout", str(int(15 * SLOW)))
    data = os.urandom(64 << 20)
    st = GatedStreamer(srv.port, data, 4 << 20)
    st.start()
    store = None
    try:
        # Everything sent so far echoed: the session waits for the client, no receipt.
        wait_until(lambda: st.got >= st.first, 30, what="the stream's first 4 MiB echoed")
        store = wait_until(srv.store_pid, 10, what="the store")
        _, pipe = srv.store_pipe()
        fd = next(int(f) for f in os.listdir(f"/proc/{store}/fd")
                  if os.readlink(f"/proc/{store}/fd/{f}") == pipe)
        # The client has sent 4 MiB, had them back, and waits; the store is held (SIGSTOP) and
        # the client let go, until the pipe holds frames, before gdb attaches.  So the stream
        # cannot end while gdb starts (once, on a loaded CI machine, the whole stream went
        # through first and the kill hit a read with no data frame in it), the read gdb catches
        # has this stream's frames to lose, and the session's wait for their receipt (bounded
        # by the idle timeout, 15 s) starts only now: a wait that ended while gdb attached
        # would put the session's close record in the read that is lost.  gdb's continue
        # resumes the store.
        os.kill(store, signal.SIGSTOP)
        st.gate.set()
        wait_until(lambda: pipe_bytes(srv) > 0, 30,
                   what="the stream's frames in the store pipe")
        # Stopped at a read's entry ($rax is -ENOSYS there), it reads one chunk's worth and is
        # killed at the return, once a read returns data: the pipe is non-blocking, and a read
        # that finds it empty (EAGAIN, as a slow sanitized session leaves it) is let through.
        # A stop that is not read(2)'s ($orig_rax 0) is let through too: the SIGSTOP pending
        # from above (swallowed: nopass), which once ended the loop in ppoll with $rax 1.
        script = tmp_path / "kill-after-read.gdb"
        script.write_text("\n".join([
            "set pagination off", "handle SIGSTOP nostop noprint nopass",
            "catch syscall read", f"condition 1 $rdi == {fd}",
            "set $n = 0", "set $i = 0",
            "while $n <= 0 && $i < 10000",
            "  continue",
            "  if $orig_rax == 0 && $rax == -38", "    set $rdx = 65536", "    continue",
            "  end",
            "  if $orig_rax == 0", "    set $n = $rax", "  end",
            "  set $i = $i + 1",
            "end",
            "print $n", "kill", ""]))
        out = subprocess.run([shutil.which("gdb"), "-nx", "-batch", "-p", str(store),
                              "-x", str(script)], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=60 * SLOW).stdout
        assert re.search(r"^\$1 = [1-9]", out, re.M), out[-2000:]
        st.join(60 * SLOW)
        assert not st.is_alive(), "the session never ended"
    finally:
        st.gate.set()
        st.sock.close()
        if store is not None:
            try:
                os.kill(store, signal.SIGCONT)  # a failure before gdb ran left it stopped
            except OSError:
                pass
    got = b"".join(st.out)
    assert srv.stop() == 0, srv.output(last=20)
    (c,) = store_by_conn(read_store(path)).values()
    stored = bytes(c["data"])
    first = next((i for i in range(min(len(got), len(stored))) if got[i] != stored[i]), None)
    assert got == stored[:len(got)], (
        f"the client received {len(got)} bytes, the file holds {len(stored)}; the first "
        f"difference at {first}")
    # The moment itself: the frames of the read gdb caught are not in the file.
    assert len(stored) < len(data), "the kill lost no frame: its moment was missed"
    assert "receipt" in c["close"][-1]["reason"], c["close"]
