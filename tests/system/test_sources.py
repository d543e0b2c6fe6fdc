"""Who a source is, behind a balancer (issue 22, suspected): the IPv4-mapped and plain forms
of one client are one source for --max-per-source; and a PROXY header that names no client
(LOCAL, UNKNOWN, UNSPEC) can be judged by the balancer's address or refused
(--proxy-no-client)."""
import socket

import pytest

from conftest import SLOW, recv_exact


def v1(client, port=4000):
    fam = "TCP6" if ":" in client else "TCP4"
    dst = "::1" if ":" in client else "127.0.0.1"
    return f"PROXY {fam} {client} {dst} {port} 7\r\n".encode()


def session(port, header):
    """A connection that sent header and "ping": (socket, echoed?)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
    s.sendall(header + b"ping")
    try:
        return s, recv_exact(s, 4) == b"ping"
    except ConnectionResetError:
        return s, False


def test_ipv4_mapped_and_plain_ipv4_are_one_source(start_server):
    srv = start_server("--proxy-protocol", "--max-per-source", "1")
    a, served = session(srv.port, v1("::ffff:192.0.2.9", 4001))
    assert served
    b, served = session(srv.port, v1("192.0.2.9", 4002))
    assert not served, "one client counted as two sources"
    b.close()
    a.close()


UNNAMED = [b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
           b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"]  # v2 LOCAL, no address block


@pytest.mark.parametrize("header", UNNAMED, ids=["v1-unknown", "v1-unknown-addrs", "v2-local"])
def test_a_header_without_a_client_can_be_refused_or_judged(start_server, header):
    default = start_server("--proxy-protocol", "--allow", "198.51.100.0/24")
    refuse = start_server("--proxy-protocol", "--proxy-no-client", "refuse")
    judge = start_server("--proxy-protocol", "--proxy-no-client", "judge",
                         "--allow", "198.51.100.0/24")
    judged_in = start_server("--proxy-protocol", "--proxy-no-client", "judge",
                             "--max-per-source", "1")
    for srv, want in ((default, True), (refuse, False), (judge, False), (judged_in, True)):
        s, served = session(srv.port, header)
        assert served == want, f"{header!r} on {srv.argv[srv.argv.index('--proxy-protocol'):]}"
        if srv is judged_in:
            # Judged by the balancer's address: its one place is taken.
            t, again = session(srv.port, header)
            assert not again
            t.close()
        s.close()
    assert refuse.stats()[0]["denied"] == 1
