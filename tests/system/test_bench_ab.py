"""mpecho-bench's UTF-8 Korean payload through a real store, and bench/ab.sh's side-by-side
table from a tiny run (one round, one cell, two configurations).

Every subprocess has a deadline; ab.sh starts its own servers on 127.0.0.1 port 0 and stops
them by pid, which the test checks from the pids it logs.
"""
import json
import os
import re
import subprocess

import pytest

from conftest import ROOT, SLOW, alive, binary, read_store, store_by_conn


def bench(*args, timeout=30):
    p = subprocess.run([binary("mpecho-bench"), "--json"] + [str(a) for a in args],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout * SLOW)
    out = p.stdout.decode()
    return p.returncode, (json.loads(out) if out.strip() else None), p.stderr.decode()


def hangul_or_space(text):
    return all(c in " \n" or 0xAC00 <= ord(c) <= 0xD7A3 for c in text)


@pytest.mark.parametrize("args", [["-c", "1", "stream"], ["-c", "3", "-s", "100", "rr"],
                                  ["-c", "4", "--rst", "connect"]])
def test_ko_payload_is_utf8_and_stored_as_data(start_server, args):
    """Each connection's bytes, as the store kept them, are UTF-8 Hangul text from the first
    byte: data records, never b64, but for a connection's last one when the client stopped in
    the middle of a character (the store writes the 1 to 2 bytes it carried as b64 then)."""
    srv = start_server()
    rc, r, err = bench("-d", "0.5", "--payload", "ko", *args[:-1], args[-1], "127.0.0.1",
                       srv.port)
    assert rc == 0 and r["errors"] == 0, f"exit {rc}: {r} {err}"
    assert r["payload"] == "ko"
    srv.stop()
    records = read_store(srv.store_path)
    data = [x for x in records if x.get("ev") == "data"]
    assert data, "no data record"
    assert sum("data" in x for x in data) >= len(data) // 2 + 1, "most records should be text"
    conns = store_by_conn(records)
    last = {}
    for x in data:
        last[x["conn"]] = x
    for x in data:
        if "b64" in x:
            assert x is last[x["conn"]], f"b64 before the end of a connection: {x}"
    chars = syllables = 0
    for conn, c in conns.items():
        raw = bytes(c["data"])
        assert raw, f"conn {conn}: no bytes"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            # Only a character cut by the end of the connection.
            assert e.start >= len(raw) - 2 and e.reason == "unexpected end of data", (conn, e)
            text = raw[:e.start].decode("utf-8")
        assert hangul_or_space(text), f"conn {conn}: not Hangul text: {text[:40]!r}"
        chars += len(text)
        syllables += sum(0xAC00 <= ord(ch) <= 0xD7A3 for ch in text)
    # Three characters in four are syllables (a short connection's slice may have fewer).
    assert syllables > chars // 2, (syllables, chars)


def test_payload_usage():
    p = subprocess.run([binary("mpecho-bench"), "--payload", "latin1", "rr"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10 * SLOW)
    assert p.returncode == 64, p
    assert b"payload" in p.stderr and b"binary, text or ko" in p.stderr, p.stderr


def test_ab_prints_the_table(tmp_path):
    out = tmp_path / "ab.md"
    env = dict(os.environ, ROUNDS="1", DUR="1", TMO="3000", CELLS="rr1", OUT=str(out),
               MPECHOD=binary("mpechod"), BENCH_BIN=binary("mpecho-bench"), LC_ALL="C")
    p = subprocess.run([os.path.join(ROOT, "bench", "ab.sh"), "off=--no-store",
                        "store=-s STORE --fsync everysec"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=120 * SLOW, env=env)
    err = p.stderr.decode()
    assert p.returncode == 0, err
    report = p.stdout.decode()
    assert out.read_text(encoding="utf-8") == report
    assert "| cell | off | store | store/off |" in report, report
    row = re.search(r"^\| rr1 req/s \(C=1\) \| ([\d,]+) \| ([\d,]+) \| (\d+\.\d\d)x \|$", report,
                    re.M)
    assert row, report
    off, store, ratio = (float(g.replace(",", "")) for g in row.groups())
    assert off > 0 and store > 0
    assert ratio == pytest.approx(store / off, abs=0.006)
    assert re.search(r"^\| rr1 p50 µs .*\| \d+\.\d\dx \|$", report, re.M), report
    assert re.search(r"^- load before: [\d.]+ [\d.]+ [\d.]+$", report, re.M), report
    assert re.search(r"^- load after: [\d.]+ [\d.]+ [\d.]+$", report, re.M), report
    assert "-s WORK/store.store --fsync everysec" in report, report
    assert "failed" not in report, report
    # Every server it started is gone, and so is its work directory.
    pids = [int(m) for m in re.findall(r"^\[ *\d+s\] \w+: pid (\d+) on ", err, re.M)]
    assert len(pids) == 2, err
    assert not any(alive(pid) for pid in pids), err
    work = re.findall(r"work directory (/tmp/mpecho-ab\.\w+) ", err)
    assert len(work) == 1 and not os.path.exists(work[0]), err


def test_ab_usage():
    p = subprocess.run([os.path.join(ROOT, "bench", "ab.sh"), "no equals sign"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30 * SLOW)
    assert p.returncode == 64 and b"usage: bench/ab.sh" in p.stderr, p
