"""One short scenario with the master under valgrind: no memory error, no leak."""
import shutil
import signal

import pytest

from conftest import SANITIZED, Server, connect, echo, read_store, recv_exact, store_by_conn

VALGRIND = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
            "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
            "--child-silent-after-fork=yes", "--trace-children=no"]
# The master and its children run on valgrind's synthetic CPU, tens of times slower: every wait
# on them gets this many times the usual deadline.
VG_SLOW = 6


@pytest.mark.skipif(SANITIZED, reason="valgrind cannot run AddressSanitizer binaries; "
                    "this test runs in the plain pass of make test")
def test_master_under_valgrind(tmp_path):
    assert shutil.which("valgrind"), "valgrind is missing: run scripts/deps.sh"
    store = str(tmp_path / "v.jsonl")
    # valgrind replaces malloc only in a dynamically linked program.
    # --sandbox off: valgrind runs inside each child and makes calls of its own (executable
    # mappings for its translations, its pipes) that the children's seccomp filters forbid.
    srv = Server(["-p", "0", "-b", "127.0.0.1", "-s", store, "--grace", "1", "--sandbox", "off"],
                 wrapper=VALGRIND,
                 program="mpechod-dynamic")
    try:
        srv.wait_ready(timeout=10 * VG_SLOW)
        for i in range(5):
            assert echo(srv.port, b"valgrind %d" % i) == b"valgrind %d" % i
        held = connect(srv.port)
        held.sendall(b"held")
        assert recv_exact(held, 4) == b"held"
        srv.signal(signal.SIGUSR1)
        srv.wait_line("stats:", timeout=10 * VG_SLOW)
        srv.signal(signal.SIGHUP)
        srv.wait_line("reopened", timeout=10 * VG_SLOW)
        rc = srv.stop(timeout=20 * VG_SLOW)
        held.close()
        assert rc == 0, "valgrind reported errors:\n" + "\n".join(srv.lines)
        assert not [l for l in srv.lines if l.startswith("==")], "\n".join(srv.lines)
        conns = store_by_conn(read_store(store))
        assert len(conns) == 6
        assert conns[6]["close"][0]["reason"] == "shutdown"
    finally:
        srv.cleanup()
