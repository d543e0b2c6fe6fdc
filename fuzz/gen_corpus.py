#!/usr/bin/env python3
"""Writes the seed corpora: option vectors and well-formed pipe streams."""
import os
import struct
import sys

here = os.path.dirname(os.path.abspath(__file__))


def put(kind, name, data):
    with open(os.path.join(here, "corpus", kind, name), "wb") as f:
        f.write(data)


def argv(*args):
    return b"\0".join(a.encode() for a in args)


put("opts", "empty", b"")
put("opts", "all", argv("-p", "0", "-b", "127.0.0.1", "--bind=::1", "-s", "x", "--store-format",
                         "raw", "--fsync", "always", "-c", "5", "--idle-timeout", "3",
                         "--grace", "1", "--max-per-source", "2", "--max-rate", "9"))
put("opts", "bad_port", argv("--port", "65536"))
put("opts", "no_value", argv("-p"))
put("opts", "no_store", argv("--no-store", "--fsync=no", "-V"))


def frame(typ, conn, payload, flags=0):
    # The fuzz target runs with the default key, 0.
    return struct.pack("<HBBIQQqII", 0x4d45, typ, flags, len(payload), 0, conn,
                       1795255200123456, 4242, 0) + payload


put("record", "session", frame(1, 17, b"127.0.0.1:50312") + frame(2, 17, b"hello\n")
    + frame(3, 17, struct.pack("<Q", 6) + b"eof"))
put("record", "binary", frame(2, 1, bytes(range(256))))
put("record", "behalf", frame(3, 9, struct.pack("<Q", 0) + b"signal 9", flags=1))
put("record", "truncated", frame(2, 2, b"x" * 100)[:60])
sys.exit(0)
