"""The store's write-behind (store_wb.h): with --fsync everysec it starts writing each 4 MiB of
the file and drops the pages of the chunk before last.  Whatever it drops, the file holds every
byte echoed, in order: across a rotation (mv + HUP: the new file starts over) and after the file
was truncated under the store (as bench/ab.sh does between cells)."""
import os
import signal
import subprocess

from conftest import SLOW, binary, echo, wait_until

MIB = 1024 * 1024


def size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return -1


def test_a_raw_store_holds_every_byte_across_rotation_and_truncation(start_server, tmp_path):
    path = tmp_path / "wb.raw"
    srv = start_server("--store-format", "raw", "--fsync", "everysec", store=str(path))
    data = [os.urandom(n) for n in (13 * MIB, 11 * MIB, 9 * MIB + 7)]
    assert echo(srv.port, data[0]) == data[0]
    wait_until(lambda: size(path) == len(data[0]), 30 * SLOW, what="the first stream stored")
    os.rename(path, str(path) + ".1")
    srv.signal(signal.SIGHUP)
    srv.wait_line("reopened")
    assert echo(srv.port, data[1]) == data[1]
    wait_until(lambda: size(path) == len(data[1]), 30 * SLOW, what="the second stream stored")
    os.truncate(path, 0)
    assert echo(srv.port, data[2]) == data[2]
    assert srv.stop() == 0
    assert (tmp_path / "wb.raw.1").read_bytes() == data[0]
    assert path.read_bytes() == data[2]


def test_a_jsonl_store_dumps_a_long_stream_exactly(start_server, tmp_path):
    path = tmp_path / "wb.jsonl"
    srv = start_server("--fsync", "everysec", store=str(path))
    data = os.urandom(10 * MIB) + b"text after the binary\n" * (300 * 1024)
    assert echo(srv.port, data) == data
    assert srv.stop() == 0
    tool = binary("mpecho-store")
    r = subprocess.run([tool, "check", str(path)], capture_output=True, timeout=60 * SLOW)
    assert r.returncode == 0, r.stdout.decode()[-2000:] + r.stderr.decode()
    r = subprocess.run([tool, "dump", "1", str(path)], capture_output=True, timeout=60 * SLOW)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == data
