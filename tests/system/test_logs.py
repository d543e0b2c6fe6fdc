"""Structured logs: --log-format json gives one JSON object a line, with a session's end as an
event with its fields; under systemd, journald's native protocol carries the same fields."""
import json
import os
import shutil
import socket
import subprocess

import pytest

from conftest import SLOW, binary, wait_until


def test_json_lines_parse_and_carry_the_session_fields(start_server):
    srv = start_server("--log-format", "json", ready=False)
    first = json.loads(srv.wait_line('"listening on ')[0])
    srv.port = int(first["msg"].rsplit(":", 1)[1])
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    peer = "%s:%d" % c.getsockname()
    c.sendall(b"hello")
    c.shutdown(socket.SHUT_WR)
    while c.recv(100):
        pass
    c.close()
    end = json.loads(srv.wait_line('"event":"session-end"')[0])
    assert srv.stop() == 0
    objs = [json.loads(l) for l in srv.lines if l.strip()]
    assert all({"ts", "level", "event", "role", "pid", "msg"} <= set(o) for o in objs), objs
    assert all(o["ts"].endswith("Z") and o["level"] in ("info", "warning", "error")
               for o in objs)
    assert end["conn"] == 1 and end["peer"] == peer and end["reason"] == "eof", end
    assert end["bytes"] == 5 and end["duration"] >= 0, end
    assert end["msg"].endswith("exited 0 (eof) after 5 bytes"), end


def test_text_stays_the_default(start_server):
    srv = start_server()
    assert srv.lines[0].startswith(f"mpechod[{srv.pid}]: listening on "), srv.lines[0]


def test_a_bad_format_is_a_usage_error():
    p = subprocess.run([binary("mpechod"), "--log-format", "xml"], capture_output=True,
                       text=True, timeout=10 * SLOW)
    assert p.returncode == 64 and "--log-format" in p.stderr, p.stderr


@pytest.mark.skipif(not os.path.exists("/run/systemd/journal/socket") or
                    shutil.which("systemd-run") is None or shutil.which("journalctl") is None,
                    reason="no journald runs here (no /run/systemd/journal/socket)")
def test_journald_gets_the_fields(tmp_path):
    unit = f"mpecho-test-{os.getpid()}"
    subprocess.run(["systemd-run", "--unit", unit, "--collect", binary("mpechod"), "-p", "0",
                    "-b", "127.0.0.1", "--no-store"], check=True, timeout=30 * SLOW)
    try:
        def port():
            out = subprocess.run(["journalctl", "-u", unit, "-o", "json", "--no-pager"],
                                 capture_output=True, text=True, timeout=30 * SLOW).stdout
            for l in out.splitlines():
                m = json.loads(l).get("MESSAGE", "")
                if "listening on " in m:
                    return int(m.rsplit(":", 1)[1])
            return None
        p = wait_until(port, 30 * SLOW, interval=0.5, what="the listening line in the journal")
        with socket.create_connection(("127.0.0.1", p), timeout=10) as c:
            c.sendall(b"x")
            c.shutdown(socket.SHUT_WR)
            while c.recv(10):
                pass

        def ended():
            out = subprocess.run(["journalctl", "-u", unit, "MPECHO_EVENT=session-end", "-o",
                                  "json", "--no-pager"], capture_output=True, text=True,
                                 timeout=30 * SLOW).stdout
            return [json.loads(l) for l in out.splitlines()]
        e = wait_until(ended, 30 * SLOW, interval=0.5, what="the session's end in the journal")[0]
        assert e["MPECHO_REASON"] == "eof" and e["MPECHO_BYTES"] == "1", e
        assert e["MESSAGE_ID"] and e["MPECHO_CONN"] == "1" and "MPECHO_PEER" in e, e
    finally:
        subprocess.run(["systemctl", "stop", unit], timeout=30 * SLOW)
