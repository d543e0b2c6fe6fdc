"""Shipping the store with Debian's rsyslog: one rsyslogd reads the live store with imfile
(through mv + HUP rotations while clients run) and forwards it over TCP to a second rsyslogd on
127.0.0.1, which writes each message's text alone (a template that strips the syslog framing).
What arrives passes mpecho-store check and dumps every connection byte for byte.

Both daemons run in the foreground with their own configuration, work directory and pid file,
the receiver on a port it picks itself (listenPortFileName), and are stopped by pid."""
import os
import random
import shutil
import signal
import subprocess
import threading

import pytest

from conftest import SLOW, Process, binary, echo, read_store, wait_until

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
pytestmark = pytest.mark.skipif(not os.access(RSYSLOGD, os.X_OK), reason="rsyslog is not installed")

# The receiver: messages from TCP, their text alone, one per line.
RECEIVER = """\
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName="{portfile}" ruleset="in")
template(name="line" type="string" string="%msg%\\n")
ruleset(name="in") {{
  action(type="omfile" file="{out}" template="line")
}}
"""
# The shipper: the store's lines as they are appended, to the receiver over TCP (RFC 5424 framing,
# which keeps the message text as it is).  imfile polls: at the poll that sees a new file at the
# path it reads the renamed one to its end, and mpechod's store writes the renamed file only until
# it reopens, milliseconds after the HUP that follows the mv (inotify mode, which reacts to the
# rename itself, lost those last lines in about one run in three).
SHIPPER = """\
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imfile" mode="polling" PollingInterval="1")
input(type="imfile" file="{store}" tag="mpecho" ruleset="ship")
ruleset(name="ship") {{
  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
         template="RSYSLOG_SyslogProtocol23Format")
}}
"""


def rsyslogd(tmp_path, name, text):
    work = tmp_path / f"{name}.work"
    work.mkdir()
    conf = tmp_path / f"{name}.conf"
    conf.write_text(text.replace("{work}", str(work)))
    return Process([RSYSLOGD, "-n", "-f", conf, "-i", tmp_path / f"{name}.pid"],
                   read=("stdout", "stderr"))


def shipped_from(path, received):
    """Whether the first line of path has arrived in received."""
    try:
        with open(path, "rb") as f:
            first = f.readline()
        return first.endswith(b"\n") and first in open(received, "rb").read()
    except FileNotFoundError:
        return False


def test_the_store_shipped_through_rsyslog(start_server, tmp_path):
    received = tmp_path / "received.jsonl"
    portfile = tmp_path / "receiver.port"
    procs = []
    try:
        procs.append(rsyslogd(tmp_path, "receiver", RECEIVER.format(
            work="{work}", portfile=portfile, out=received)))
        wait_until(lambda: portfile.exists() and portfile.read_text().strip(), 10,
                   what="the receiver's port")
        srv = start_server()
        store = srv.store_path
        procs.append(rsyslogd(tmp_path, "shipper", SHIPPER.format(
            work="{work}", store=store, port=portfile.read_text().strip())))
        rng = random.Random(24)
        payloads = ["안녕하세요 {} 😀 e\u0301\n".format(i).encode() * rng.randint(1, 300)
                    if i % 2 else rng.randbytes(rng.randint(1, 60000)) for i in range(24)]
        done = []
        # Sessions start as the gate lets them: 12 before the first rotation, 8 more after it,
        # the rest after the second, so that each rotation comes while some are running and
        # each file gets records.
        gate = threading.Semaphore(12)

        def clients(part):
            for p in part:
                gate.acquire()
                assert echo(srv.port, p) == p
                done.append(p)

        ts = [threading.Thread(target=clients, args=(payloads[i::3],)) for i in range(3)]
        for t in ts:
            t.start()
        # Two rotations while the clients run: mv, then HUP.  imfile follows a file it has
        # opened through its rename, but one renamed before it looked at it is not its file any
        # more (a rotation each second would lose one): so each rotation waits until the live
        # file's first line has arrived.
        for n in (1, 2):
            wait_until(lambda: len(done) >= 8 * n, 60, what=f"{8 * n} sessions")
            wait_until(lambda: shipped_from(store, received), 30,
                       what=f"the receiver to have the first line of {store}")
            for k in range(n - 1, 0, -1):
                os.rename(f"{store}.{k}", f"{store}.{k + 1}")
            os.rename(store, f"{store}.1")
            srv.signal(signal.SIGHUP)
            srv.wait_line("reopened", count=n)
            for _ in range(8 if n == 1 else len(payloads)):
                gate.release()
        for t in ts:
            t.join(120 * SLOW)
        assert len(done) == len(payloads)
        assert srv.stop() == 0
        files = [f"{store}.2", f"{store}.1", store]
        want = sum(len(open(f, "rb").read()) for f in files)
        wait_until(lambda: received.exists() and received.stat().st_size >= want, 60,
                   what=f"{want} bytes at the receiver")
    finally:
        for p in procs:
            p.proc.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.proc.wait(10 * SLOW)
            except subprocess.TimeoutExpired:
                pass
            p.cleanup()
    # What arrived is the three files, in order.
    assert received.read_bytes() == b"".join(open(f, "rb").read() for f in files)
    recs = read_store(str(received))
    assert [r["ev"] for r in recs].count("start") == 1 and recs[-1]["ev"] == "stop"
    tool = binary("mpecho-store")
    p = subprocess.run([tool, "check", received], capture_output=True, timeout=60 * SLOW)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    opens = [r for r in recs if r["ev"] == "open"]
    dumped = [subprocess.run([tool, "dump", str(r["conn"]), received], capture_output=True,
                             timeout=60 * SLOW).stdout for r in opens]
    assert sorted(dumped) == sorted(payloads)
