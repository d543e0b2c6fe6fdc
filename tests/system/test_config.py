"""The configuration file (-f), its check (-t) and its reload on SIGHUP (issue 26).

A file's keys are the long option names; the command line wins; -t exits 0 or 64 with the file,
line and reason.  On SIGHUP the master reads the file again: address rules apply to the next
connection while a session in progress goes on; a file that does not check out changes nothing
(logged with its line, and sent to systemd as STATUS=); what needs a restart is logged as such.
A reload with 100 --allow rules changed under load (mpecho-bench connect, new connections all
the time) costs no client an error.
"""
import json
import os
import pwd
import signal
import socket
import subprocess
import threading

from conftest import PREFORK, SLOW, binary, connect, echo, recv_exact, wait_until


def check(*args):
    p = subprocess.run([binary("mpechod")] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10 * SLOW)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def write(path, text):
    """Replaces the file in one step (as an editor or a package does)."""
    tmp = str(path) + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def refused(port):
    """Whether a new connection is closed unserved: nothing echoed."""
    try:
        return echo(port, b"are you there?\n") == b""
    except OSError:  # reset, or closed before the half-close
        return True


def session(port, data):
    """A connection that has had data echoed: a session in progress."""
    s = connect(port)
    s.sendall(data)
    assert recv_exact(s, len(data)) == data
    return s


def reload(srv, conf, text, count=1):
    """Writes the file, HUPs, waits for the count-th reload applied."""
    write(conf, text)
    srv.signal(signal.SIGHUP)
    srv.wait_line(f"reload: {conf} applied", count=count)


def test_check_config(tmp_path):
    conf = tmp_path / "mpechod.conf"
    write(conf, "# every kind of line\n\nport = 0\nallow 127.0.0.1\nallow 10.0.0.0/8  # lan\n"
                "grace 3\nprefork\nudp yes\nmax-clients\t64\n")
    rc, out, err = check("-t", "-f", conf)
    assert (rc, out) == (0, f"mpechod: configuration ok in {conf}\n"), (rc, out, err)
    rc, out, err = check("--check-config", "--config", conf, "--grace", "4")
    assert rc == 0, err

    for text, line, reason in [
        ("port 0\n\nbogus 1\n", 3, "unknown key 'bogus'"),
        ("# x\ngrace 99999\n", 2, "--grace: '99999' is not a whole number from 0 to 3600"),
        ("allow 10.1.2.3/8\n", 1, "--allow: '10.1.2.3/8' has address bits set past its prefix"),
        ("grace\n", 1, "grace needs a value"),
        ("prefork no\n", 1, "prefork takes no value (or yes), not 'no'"),
        ("config /etc/x\n", 1, "config is for the command line only"),
    ]:
        write(conf, text)
        rc, out, err = check("-t", "-f", conf)
        assert rc == 64 and out == "", (text, rc, out, err)
        assert f"mpechod: {conf}:{line}: {reason}" in err, (text, err)
        assert len(err.strip().splitlines()) == 1, err

    # Checks between options name the file; a missing file is refused too.
    write(conf, "proxy-from 10.0.0.0/8\n")
    rc, out, err = check("-t", "-f", conf)
    assert rc == 64 and f"{conf}: --proxy-from" in err, err
    rc, out, err = check("-t", "-f", conf, "--proxy-protocol")
    assert rc == 0, err
    rc, out, err = check("-t", "-f", tmp_path / "none.conf")
    assert rc == 64 and "none.conf: No such file or directory" in err, err
    # -t without a file checks the options alone.
    assert check("-t", "--grace", "5")[0] == 0
    assert check("-t", "--grace", "-1")[0] == 64


def test_command_line_wins(start_server, tmp_path):
    conf = tmp_path / "mpechod.conf"
    # The file denies us and allows nobody we are; the command line's --allow replaces the
    # file's list, its --grace the file's grace; the file's deny stays (not on the command line).
    write(conf, "allow 192.0.2.0/24\ndeny 127.0.0.2\ngrace 1\nport 1\n")
    srv = start_server("-f", conf, "--allow", "127.0.0.0/8", "--grace", "7")
    assert echo(srv.port, b"hello\n") == b"hello\n"
    held = session(srv.port, b"x")
    srv.signal(signal.SIGTERM)
    srv.wait_line("sessions get 7 s to finish")
    held.close()
    assert srv.stop() == 0
    # And the file alone: its deny applies.
    write(conf, "deny 127.0.0.1\n")
    srv2 = start_server("-f", conf)
    assert refused(srv2.port)


def test_reload_applies_rules_to_the_next_connection(start_server, tmp_path):
    conf = tmp_path / "mpechod.conf"
    write(conf, "allow 127.0.0.1\nidle-timeout 60\n")
    srv = start_server("-f", conf)
    held = session(srv.port, b"before\n")

    reload(srv, conf, "allow 192.0.2.0/24\nidle-timeout 60\n")
    assert refused(srv.port), "a connection after the reload was served by the old rules"
    # The session in progress keeps what it started with.
    held.sendall(b"still here\n")
    assert recv_exact(held, 11) == b"still here\n"

    reload(srv, conf, "allow 127.0.0.0/8\nidle-timeout 60\n", count=2)
    assert echo(srv.port, b"back\n") == b"back\n"
    held.sendall(b"and still\n")
    assert recv_exact(held, 10) == b"and still\n"
    held.close()
    if PREFORK:
        srv.wait_line("pool processes retire after their connection", count=2)


def test_bad_file_changes_nothing(start_server, tmp_path):
    conf = tmp_path / "mpechod.conf"
    notify = tmp_path / "notify.sock"
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(str(notify))
    ns.settimeout(10 * SLOW)
    try:
        write(conf, "deny 192.0.2.0/24\n")
        srv = start_server("-f", conf, env={"NOTIFY_SOCKET": str(notify)})
        write(conf, "deny 127.0.0.0/8\ngrace banana\n")
        srv.signal(signal.SIGHUP)
        line = srv.wait_line("reload: ")[0]
        assert f"{conf}:2: --grace: 'banana'" in line and "nothing changed" in line, line
        # The deny of line 1 was not applied: we are still served.
        assert echo(srv.port, b"ok\n") == b"ok\n"
        got = []

        def status():
            try:
                got.append(ns.recv(4096).decode())
            except socket.timeout:
                return None
            return any("STATUS=reload failed: " in m and f"{conf}:2:" in m for m in got)
        wait_until(status, 10, what="STATUS= naming the file and line")
    finally:
        ns.close()


def test_restart_only_keys_are_logged(start_server, tmp_path):
    conf = tmp_path / "mpechod.conf"
    write(conf, "max-clients 50\nstore-format jsonl\ngrace 2\n")
    srv = start_server("-f", conf)
    write(conf, "max-clients 60\nstore-format raw\ngrace 4\nudp-rate 5\n")
    srv.signal(signal.SIGHUP)
    for key in ("max-clients", "store-format", "udp-rate"):
        srv.wait_line(f"reload: {key} changed in {conf}; it needs a restart")
    srv.wait_line(f"reload: {conf} applied")
    assert not [l for l in srv.lines if "reload: grace changed" in l]
    # The grace did change (the shutdown says it), max-clients did not (the store stays jsonl).
    srv.signal(signal.SIGTERM)
    srv.wait_line("sessions get 4 s to finish")
    assert srv.stop() == 0
    with open(srv.store_path) as f:
        assert all(json.loads(l) for l in f if l.strip())


def rules(n, seed, extra):
    """n --allow lines: n - 1 documentation blocks that differ with seed, and extra."""
    out = [f"allow 198.{18 + seed % 2}.{i}.0/24" for i in range(n - 1)]
    out.insert(seed % n, f"allow {extra}")
    return "".join(l + "\n" for l in out)


def test_reload_100_rules_under_load(start_server, tmp_path):
    conf = tmp_path / "mpechod.conf"
    write(conf, rules(100, 0, "127.0.0.0/8"))
    srv = start_server("-f", conf)
    result = {}

    def run():
        p = subprocess.run([binary("mpecho-bench"), "--json", "-d", "4", "-c", "8", "-s", "200",
                            "connect", "127.0.0.1", str(srv.port)],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60 * SLOW)
        result["rc"], result["out"], result["err"] = p.returncode, p.stdout, p.stderr
    t = threading.Thread(target=run)
    t.start()
    try:
        for i in range(1, 9):
            reload(srv, conf, rules(100, i, "127.0.0.1" if i % 2 else "127.0.0.0/8"), count=i)
            threading.Event().wait(0.3)
    finally:
        t.join(90 * SLOW)
    r = json.loads(result["out"])
    assert result["rc"] == 0 and r["errors"] == 0, (result, srv.output(last=20))
    assert r["connects"] > 0, r
    print(f"reload of 100 rules x8 under mpecho-bench connect: {r['errors']} errors, "
          f"{r['connects']} connects")
    # And the last rules are in force for the next connection.
    reload(srv, conf, rules(100, 3, "192.0.2.1"), count=9)
    srv.wait_line(f"reload: {conf} applied: 100 allow", count=9)
    assert refused(srv.port)


def test_packaged_file_documents_every_key(tmp_path):
    """contrib/mpechod.conf (/etc/mpecho/mpechod.conf in the package): every line commented out;
    each key of --help is there, and each commented line, uncommented, checks."""
    import re
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    text = open(os.path.join(root, "contrib", "mpechod.conf")).read()
    assert not [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    helptext = subprocess.run([binary("mpechod"), "--help"], capture_output=True,
                              timeout=10 * SLOW).stdout.decode()
    keys = set(re.findall(r"--([a-z][a-z-]+)", helptext)) - {
        "help", "version", "config", "check-config", "inetd"}
    lines = [l for l in text.splitlines() if re.match(r"^#[a-z]", l)]
    shown = {re.match(r"^#([a-z-]+)", l).group(1) for l in lines}
    assert keys <= shown, f"keys of --help missing from contrib/mpechod.conf: {keys - shown}"
    conf = tmp_path / "one.conf"
    for l in lines:
        # The user the package creates: a machine that never had the package has none, so the
        # line is checked with one every Debian system has.
        if l.startswith("#user mpecho"):
            try:
                pwd.getpwnam("mpecho")
            except KeyError:
                l = l.replace("mpecho", "nobody", 1)
        # Some keys need another: proxy-* need proxy-protocol, agent-address agent-port,
        # metrics-allow metrics.
        write(conf, l[1:] + "\nproxy-protocol\nagent-port 7008\n" +
              ("metrics 127.0.0.1:0\n" if l.startswith("#metrics-allow") else ""))
        rc, out, err = check("-t", "-f", conf)
        assert rc == 0, (l, err)


def test_reload_timeout_applies_to_new_sessions_only(start_server, tmp_path):
    """idle-timeout 0 -> 1 by a reload: a connection opened after it is ended when idle; one
    opened before keeps no timeout (with --prefork: its pool process was forked with the old
    settings and is retired after its connection, as Apache's graceful restart does)."""
    conf = tmp_path / "mpechod.conf"
    write(conf, "idle-timeout 0\n")
    srv = start_server("-f", conf)
    old = session(srv.port, b"o")
    reload(srv, conf, "idle-timeout 1\n")
    new = session(srv.port, b"n")
    srv.wait_line("(idle)")  # the new one, idle for a second, is ended
    assert new.recv(10) == b""
    # The old one is still served, well past the new timeout.
    old.sendall(b"still")
    assert recv_exact(old, 5) == b"still"
    assert len([l for l in srv.lines if "(idle)" in l]) == 1
    old.close()
    new.close()
