"""UDP echo on the default wildcard address answers from the address each datagram was sent
to (issue 22, fault 4): a client connect()ed to 127.0.0.2, 127.0.0.3 or ::1 accepts only
datagrams from there.  And what the store records is what the clients got."""
import socket

from conftest import SLOW, read_store


def test_wildcard_udp_answers_from_the_address_it_was_asked_at(start_server):
    srv = start_server("--udp", "--udp-per-source", "0", bind=False)
    srv.wait_line("serving UDP on", count=2)
    got = {}
    for family, dst in ((socket.AF_INET, "127.0.0.2"), (socket.AF_INET, "127.0.0.3"),
                        (socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            # Connected, as most clients are: the kernel drops a reply from any other address.
            s.connect((dst, srv.port))
            s.settimeout(5 * SLOW)
            msg = b"to " + dst.encode()
            s.send(msg)
            try:
                got[dst] = (s.recv(100), s.getsockname()[1])
            except (socket.timeout, ConnectionRefusedError):
                got[dst] = (None, s.getsockname()[1])
    assert {d: g[0] for d, g in got.items()} == {d: b"to " + d.encode() for d in got}
    # Not connected: recvfrom says where the echo came from.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5 * SLOW)
        s.sendto(b"from?", ("127.0.0.2", srv.port))
        data, addr = s.recvfrom(100)
        assert (data, addr) == (b"from?", ("127.0.0.2", srv.port))
    assert srv.stop() == 0
    # Every datagram recorded was echoed to its client, and the other way round.
    recs = [r for r in read_store(srv.store_path) if r["ev"] == "datagram"]
    assert sorted(r["data"] for r in recs) == sorted(
        [("to " + d) for d in got] + ["from?"]), recs
