#!/usr/bin/env python3
"""bench/store_size.py - how large mpechod's store is for random binary data (issue 24).

For each write size, a fresh mpechod (build/bin/mpechod, or MPECHOD) on 127.0.0.1 port 0 with
its store in a temporary directory; one client sends TOTAL bytes from /dev/urandom (at most
20,000 writes) in writes of that size and reads each echo back before the next; then the server is stopped (TERM, so the
store writes what it holds) and the file is read.  Prints a markdown table: the store file's
bytes per byte echoed, the data lines' bytes per byte (the records' own fields included), and
the longest line.  Usage: bench/store_size.py [SIZE ...] (default 1 64 1024 4096 65536);
TOTAL (bytes per size, default 4 MiB), ARGS (more mpechod arguments, e.g. "--prefork").
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPECHOD = os.environ.get("MPECHOD", os.path.join(ROOT, "build", "bin", "mpechod"))
TOTAL = int(os.environ.get("TOTAL", 4 << 20))


def recv_exact(s, n):
    got = bytearray()
    while len(got) < n:
        b = s.recv(n - len(got))
        if not b:
            raise OSError("connection closed before its echo")
        got += b
    return bytes(got)


def start(store, log):
    p = subprocess.Popen([MPECHOD, "-p", "0", "-b", "127.0.0.1", "-s", store] +
                         os.environ.get("ARGS", "").split(), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(log.name, encoding="utf-8", errors="replace") as f:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", f.read())
        if m:
            return p, int(m[1])
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    p.wait(10)
    raise SystemExit(f"store_size.py: {MPECHOD} did not start")


def measure(size):
    with tempfile.TemporaryDirectory(prefix="mpecho-store-size.") as d:
        store = os.path.join(d, "store.jsonl")
        with open(os.path.join(d, "log"), "w") as log:
            p, port = start(store, log)
            try:
                sent, total = 0, min(TOTAL, size * 20000)
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    while sent < total:
                        chunk = os.urandom(min(size, total - sent))
                        s.sendall(chunk)
                        if recv_exact(s, len(chunk)) != chunk:
                            raise SystemExit("store_size.py: a wrong echo")
                        sent += len(chunk)
                    s.shutdown(socket.SHUT_WR)
                    s.recv(1)
            finally:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        with open(store, "rb") as f:
            lines = f.read().split(b"\n")[:-1]
    data = [l for l in lines if b'"ev":"data"' in l]
    return (sent, sum(len(l) + 1 for l in lines), sum(len(l) + 1 for l in data), len(data),
            max(len(l) for l in data))


def main(argv):
    sizes = [int(a) for a in argv[1:]] or [1, 64, 1024, 4096, 65536]
    print(f"{os.path.relpath(MPECHOD, ROOT)} -s STORE {os.environ.get('ARGS', '')}".rstrip() +
          f", {TOTAL:,} random bytes per write size (at most 20,000 writes), "
          "one connection, each echo read before the next write\n")
    print("| write size | bytes echoed | store file / echoed | data lines / echoed | data lines |"
          " longest line |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        sent, whole, data, n, longest = measure(size)
        print(f"| {size:,} | {sent:,} | {whole / sent:.3f} | {data / sent:.3f} | {n:,} |"
              f" {longest:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
