"""--max-per-source counts an IPv6 /64 as one source (--source-prefix, default 32:64).

The real test needs twenty addresses of one /64 on an interface, so it runs as root in a
network namespace of its own (ip netns), with the addresses on its loopback: twenty clients
of 2001:db8:0:1::/64 share one count, a client of the neighbouring /64 has its own.  Without
root it is skipped; the PROXY-header test below shows the same through a balancer's headers,
as any user.
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import MODE_ARGS, SLOW, Server

from test_sources import session, v1

LIMIT = 5
NET = "2001:db8:0:1::"
NEIGHBOUR = "2001:db8:0:2::1"

# Run inside the namespace: one connection from each source address given, all kept open until
# each has had its answer; prints {"served": [...], "refused": [...]} by source.
CLIENT = r"""
import json, socket, sys
port, srcs = int(sys.argv[1]), sys.argv[2:]
out, keep = {"served": [], "refused": []}, []
for src in srcs:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((src, 0))
    s.connect(("2001:db8:0:1::1", port))
    keep.append(s)
    try:
        s.sendall(b"p")
        ok = s.recv(1) == b"p"
    except OSError:
        ok = False
    out["served" if ok else "refused"].append(src)
print(json.dumps(out))
"""


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.skip("needs root: it makes a network namespace with twenty IPv6 addresses")
    name = f"mpecho-prefix-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot make a network namespace: {r.stderr.strip()}")
    try:
        run = ["ip", "netns", "exec", name]
        subprocess.run(run + ["ip", "link", "set", "lo", "up"], check=True)
        for a in [f"{NET}{i:x}" for i in range(1, 22)] + [NEIGHBOUR]:
            subprocess.run(run + ["ip", "-6", "addr", "add", f"{a}/64", "dev", "lo", "nodad"],
                           check=True)
        yield run
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def test_twenty_addresses_of_one_64_are_one_source(netns):
    srv = Server(["-p", "0", "-b", f"{NET}1", "--no-store", "--max-per-source", str(LIMIT)] +
                 MODE_ARGS, wrapper=netns)
    try:
        srv.wait_ready()
        srcs = [f"{NET}{i:x}" for i in range(2, 22)]
        r = subprocess.run(netns + [sys.executable, "-c", CLIENT, str(srv.port)] + srcs +
                           [NEIGHBOUR], capture_output=True, text=True, timeout=60 * SLOW)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert len(out["served"]) == LIMIT + 1, out
        assert NEIGHBOUR in out["served"], out
        assert len(out["refused"]) == len(srcs) - LIMIT, out
        srv.wait_line("--max-per-source 5 reached")
        assert srv.stop() == 0
    finally:
        srv.cleanup()


def test_whole_addresses_with_source_prefix_128(netns):
    srv = Server(["-p", "0", "-b", f"{NET}1", "--no-store", "--max-per-source", "1",
                  "--source-prefix", "32:128"] + MODE_ARGS, wrapper=netns)
    try:
        srv.wait_ready()
        srcs = [f"{NET}{i:x}" for i in range(2, 12)]
        r = subprocess.run(netns + [sys.executable, "-c", CLIENT, str(srv.port)] + srcs,
                           capture_output=True, text=True, timeout=60 * SLOW)
        assert r.returncode == 0, r.stderr
        assert len(json.loads(r.stdout)["served"]) == len(srcs), r.stdout
        assert srv.stop() == 0
    finally:
        srv.cleanup()


def test_proxy_clients_of_one_64_are_one_source(start_server):
    """The same through PROXY headers (any user): the client's address from the header is cut
    to its /64."""
    srv = start_server("--proxy-protocol", "--max-per-source", "2")
    a, ok_a = session(srv.port, v1("2001:db8:0:1::a", 4001))
    b, ok_b = session(srv.port, v1("2001:db8:0:1::b", 4002))
    c, ok_c = session(srv.port, v1("2001:db8:0:1::c", 4003))
    d, ok_d = session(srv.port, v1("2001:db8:0:2::c", 4004))
    assert (ok_a, ok_b, ok_c, ok_d) == (True, True, False, True)
    for s in (a, b, c, d):
        s.close()
    assert srv.stop() == 0
