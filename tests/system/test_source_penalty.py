"""--source-penalty (gate.c, penalty.c): a source (its --source-prefix block) whose connections
keep being culled or failing their PROXY header is refused for a while, said once; other
sources are served meanwhile.  Loopback only: 127.0.0.2 is another source than 127.0.0.1."""
import socket

from conftest import connect, recv_exact, wait_until

PENALTY_STRIKES = 8  # penalty.h


def connect_from(src, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def refused(src, port):
    """A connection from src is closed with nothing echoed."""
    s = connect_from(src, port)
    try:
        s.sendall(b"hello")
        return s.recv(16) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        s.close()


def served(src, port):
    s = connect_from(src, port)
    try:
        s.sendall(b"hello")
        return recv_exact(s, 5) == b"hello"
    finally:
        s.close()


def test_bad_proxy_headers_earn_a_penalty(start_server):
    srv = start_server("--proxy-protocol", "--source-penalty", "60", store=False)
    # A balancer's plain TCP health check (connect, close) is not a failed header.
    for _ in range(PENALTY_STRIKES + 2):
        connect_from("127.0.0.2", srv.port).close()
    # Nor is a header cut short (the balancer gone mid-header, under load).
    for _ in range(PENALTY_STRIKES + 2):
        s = connect_from("127.0.0.2", srv.port)
        s.sendall(b"PROXY TCP4 203.0.113.7 ")
        s.close()
    srv.wait_stats(lambda c: c.get("proxy errors", 0) >= PENALTY_STRIKES + 2,
                   what="the cut headers counted as PROXY errors")
    s = connect_from("127.0.0.2", srv.port)
    s.sendall(b"PROXY UNKNOWN\r\nhello")
    assert recv_exact(s, 5) == b"hello", "refused after health checks and cut headers"
    s.close()
    for _ in range(PENALTY_STRIKES):
        s = connect_from("127.0.0.2", srv.port)
        s.sendall(b"GARBAGE\r\n")
        assert s.recv(16) == b""
        s.close()
    srv.wait_line("refusing 127.0.0.2")
    assert refused("127.0.0.2", srv.port)
    # Another source is served (a LOCAL header: the balancer's own check).
    s = connect_from("127.0.0.1", srv.port)
    s.sendall(b"PROXY UNKNOWN\r\nhello")
    assert recv_exact(s, 5) == b"hello"
    s.close()
    srv.wait_line("--source-penalty (")
    said = [l for l in srv.lines if "refusing 127.0.0.2" in l]
    assert len(said) == 1, said
    assert "for 60 s" in said[0] and "PROXY header" in said[0], said
    assert srv.stop() == 0


def test_culled_connections_earn_a_penalty(start_server):
    srv = start_server("-c", "1", "--source-penalty", "60", store=False)
    held = connect(srv.port)
    held.sendall(b"h")
    assert recv_exact(held, 1) == b"h"
    # Closed with nothing sent while they wait in the listen queue: culled at their accept.
    for _ in range(PENALTY_STRIKES):
        connect_from("127.0.0.2", srv.port).close()
    held.close()
    srv.wait_line("refusing 127.0.0.2")
    assert refused("127.0.0.2", srv.port)
    assert served("127.0.0.1", srv.port)
    srv.wait_stats(lambda c: c["refused per source"] >= 1, what="the refusal counted")
    assert srv.stop() == 0


def test_without_the_option_nothing_is_refused(start_server):
    srv = start_server("-c", "1", store=False)
    held = connect(srv.port)
    held.sendall(b"h")
    assert recv_exact(held, 1) == b"h"
    for _ in range(PENALTY_STRIKES + 2):
        connect_from("127.0.0.2", srv.port).close()
    held.close()
    wait_until(lambda: served("127.0.0.2", srv.port), 10, what="127.0.0.2 served")
    assert not [l for l in srv.lines if "refusing" in l], srv.lines
    assert srv.stop() == 0
