"""Tests of what a package ships: the systemd units of contrib/ pass `systemd-analyze verify`
as `make install` writes them, the logrotate snippet moves the store and never copies it,
the xinetd service runs under a real xinetd, and the Debian package builds, passes lintian,
installs, serves, and purges cleanly (scripts/package-check.sh, which needs root and
dpkg-buildpackage).

package-check builds its own binaries from a copy of the tree, so it runs in the normal pass
only, not again in the sanitized one.
"""
import grp
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile

import pytest

from conftest import ROOT, SANITIZED, Process, binary, record_bytes, wait_until

UNITS = ["mpechod.socket", "mpechod.service", "mpechod-inetd.socket", "mpechod-inetd@.service"]


def run(cmd, timeout, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, **kw)


@pytest.fixture
def installed_contrib(tmp_path):
    """contrib/ installed by `make install-contrib` under a temporary prefix, with the server
    copied to the sbin the units name, so that verify finds every ExecStart."""
    prefix = tmp_path / "usr"
    r = run(["make", "-s", "-C", ROOT, "install-contrib", f"PREFIX={prefix}",
             f"SYSCONFDIR={tmp_path / 'etc'}", f"OUT={tmp_path / 'out'}"], 60)
    assert r.returncode == 0, r.stdout
    (prefix / "sbin").mkdir()
    shutil.copy(binary("mpechod"), prefix / "sbin" / "mpechod")
    return tmp_path


def test_make_install_contrib_fills_in_the_server_path(installed_contrib):
    unitdir = installed_contrib / "usr" / "lib" / "systemd" / "system"
    sbin = installed_contrib / "usr" / "sbin" / "mpechod"
    for unit in UNITS:
        text = (unitdir / unit).read_text()
        assert "@SBINDIR@" not in text, unit
    service = (unitdir / "mpechod.service").read_text()
    assert f"ExecStart={sbin} -s " in service
    conf = installed_contrib / "etc" / "mpecho" / "mpechod.conf"
    assert f" -f {conf}\n" in service
    # The reload checks the file first, with the options the service runs with.
    assert f"ExecReload={sbin} -t -s /var/lib/mpecho/echomsg.jsonl -f {conf}\n" in service
    assert conf.exists()
    assert f"ExecStart=-{sbin} --inetd -s " in (unitdir / "mpechod-inetd@.service").read_text()
    xinetd = (installed_contrib / "etc" / "xinetd.d" / "mpecho").read_text()
    assert f"server\t\t= {sbin}\n" in xinetd
    assert (installed_contrib / "etc" / "logrotate.d" / "mpecho").exists()
    assert (installed_contrib / "usr" / "lib" / "sysusers.d" / "mpecho.conf").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (Debian package systemd)")
def test_units_pass_systemd_analyze_verify(installed_contrib):
    unitdir = installed_contrib / "usr" / "lib" / "systemd" / "system"
    # Without PID 1 being systemd, verify loads the files given as paths; the man pages are
    # not installed under this prefix, so their check is off here (package-check does it).
    r = run(["systemd-analyze", "verify", "--man=no"] + UNITS, 60, cwd=unitdir)
    assert r.returncode == 0, r.stdout
    assert r.stdout == "", f"systemd-analyze verify is not clean:\n{r.stdout}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (Debian package systemd)")
def test_verify_catches_a_broken_unit(installed_contrib):
    """The check above would see a mistake: a key in the wrong section."""
    unitdir = installed_contrib / "usr" / "lib" / "systemd" / "system"
    unit = unitdir / "mpechod.service"
    unit.write_text(unit.read_text().replace("[Service]\n", "[Service]\nAccept=yes\n"))
    r = run(["systemd-analyze", "verify", "--man=no", "mpechod.service"], 60, cwd=unitdir)
    assert "Accept" in r.stdout, r.stdout


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate is not installed")
def test_logrotate_renames_the_store_and_never_copies(installed_contrib):
    """The snippet, pointed at a store in a temporary directory and forced: the file is moved
    (the rotation is the same inode, so nothing mpechod wrote was copied or cut) and no new
    one is created for mpechod to find (it makes its own on HUP)."""
    conf = installed_contrib / "etc" / "logrotate.d" / "mpecho"
    rules = [ln.strip() for ln in conf.read_text().splitlines() if not ln.lstrip().startswith("#")]
    assert "copytruncate" not in rules and "nocreate" in rules, rules
    store = installed_contrib / "store" / "echomsg.jsonl"
    store.parent.mkdir(mode=0o755)
    store.write_text('{"ev":"open"}\n')
    ino = store.stat().st_ino
    test_conf = installed_contrib / "logrotate.conf"
    test_conf.write_text(conf.read_text().replace("/var/lib/mpecho/echomsg.jsonl", str(store)))
    test_conf.chmod(0o644)
    r = run(["logrotate", "-v", "-f", "-s", str(installed_contrib / "state"), str(test_conf)], 30)
    assert r.returncode == 0, r.stdout
    rotated = store.with_name("echomsg.jsonl.1")
    assert rotated.exists(), r.stdout
    assert rotated.stat().st_ino == ino, "the store was copied, not moved"
    assert rotated.read_text() == '{"ev":"open"}\n'
    assert not store.exists(), "logrotate created the new store itself"


def mpechod_has(option):
    try:
        return option in run([binary("mpechod"), "--help"], 10).stdout
    except OSError:
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def echo_once(port, data):
    """Sends data on a new connection, half-closes, and returns all that comes back."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        while chunk := c.recv(65536):
            got += chunk
    return got


def store_conns(store):
    """Each connection's bytes in a JSON Lines store (its data records in file order), sorted.
    Not the whole file in order: each mpechod --inetd has a store process of its own, and the
    first connection's may write after the second's (seen under load)."""
    if not store.exists():
        return []
    # Whole lines only: a store may be in the middle of a write while this reads (the client
    # has its echo, and its connection closed, before the records are on disk).  Split on
    # newlines alone: splitlines() would also break at U+2028 and friends inside a string.
    lines = store.read_bytes().split(b"\n")[:-1]
    conns = {}
    for r in (json.loads(line.decode("utf-8")) for line in lines):
        if r.get("ev") == "data":
            conns[(r["life"], r["conn"])] = conns.get((r["life"], r["conn"]), b"") + record_bytes(r)
    return sorted(conns.values())


@pytest.fixture
def open_dir():
    """A temporary directory that the user nobody can enter (pytest's are root's alone)."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="mpecho-xinetd."))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def xinetd_config(installed_contrib, open_dir, port, server, store):
    """contrib's xinetd service as make install wrote it, enabled, on 127.0.0.1:port, as
    nobody, running server with the store given."""
    text = (installed_contrib / "etc" / "xinetd.d" / "mpecho").read_text()
    sbin = installed_contrib / "usr" / "sbin" / "mpechod"
    edits = [("disable\t\t= yes", "disable\t\t= no"),
             ("port\t\t= 7\n", f"port\t\t= {port}\n\tbind\t\t= 127.0.0.1\n"),
             ("\tflags\t\t= IPv6\n", ""),
             ("user\t\t= mpecho", "user\t\t= nobody"),
             ("group\t\t= mpecho", f"group\t\t= {grp.getgrgid(65534).gr_name}"),
             (f"server\t\t= {sbin}\n", f"server\t\t= {server}\n"),
             ("/var/lib/mpecho/echomsg.jsonl", str(store))]
    for old, new in edits:
        assert old in text, f"the xinetd file has no '{old}'"
        text = text.replace(old, new)
    conf = open_dir / "xinetd.conf"
    conf.write_text("defaults\n{\n}\n" + text)
    return conf


@pytest.mark.skipif(os.geteuid() != 0, reason="xinetd switches to the service's user: needs root")
@pytest.mark.skipif(shutil.which("xinetd") is None, reason="xinetd is not installed")
@pytest.mark.skipif(not mpechod_has("--inetd"), reason="mpechod has no --inetd yet")
def test_xinetd_runs_mpechod_inetd_per_connection(installed_contrib, open_dir):
    """contrib's xinetd service under a real xinetd: each connection is echoed by its own
    mpechod --inetd running as the service's user, and lands in the one store."""
    port = free_port()
    shutil.copy(binary("mpechod"), open_dir / "mpechod")
    (open_dir / "store").mkdir()
    os.chown(open_dir / "store", 65534, 65534)
    store = open_dir / "store" / "echomsg.jsonl"
    conf = xinetd_config(installed_contrib, open_dir, port, open_dir / "mpechod", store)
    log = open_dir / "xinetd.log"
    xi = Process(["xinetd", "-dontfork", "-stayalive", "-filelog", log, "-f", conf,
                  "-pidfile", open_dir / "xinetd.pid"])
    try:
        # xinetd says so in its log once it listens; "1 available service" means it took ours.
        wait_until(lambda: log.exists() and "Started working" in log.read_text(), 10,
                   what="xinetd's readiness")
        assert "Started working: 1 available service" in log.read_text(), log.read_text()
        sent = [b"hello xinetd\n", bytes(range(256)) * 8]
        for data in sent:
            assert echo_once(port, data) == data
        wait_until(lambda: store_conns(store) == sorted(sent), 10,
                   what="both sessions in the store")
        assert store.stat().st_uid == 65534, "the store was not written as the service's user"
    finally:
        xi.cleanup()


def package_check_skip_reason():
    if SANITIZED:
        return "package-check builds its own binaries: it runs in the normal pass only"
    if os.geteuid() != 0:
        return "package-check needs root (dpkg -i, dpkg --purge)"
    if shutil.which("dpkg-buildpackage") is None:
        return "dpkg-buildpackage is missing (Debian package dpkg-dev)"
    r = run(["dpkg-query", "-W", "-f=${Status}", "mpecho"], 30)
    if "ok installed" in r.stdout:
        return "the package mpecho is installed on this machine; package-check would purge it"
    return None


@pytest.mark.skipif(package_check_skip_reason() is not None,
                    reason=package_check_skip_reason() or "")
def test_package_builds_installs_serves_and_purges():
    r = run([os.path.join(ROOT, "scripts", "package-check.sh")], 2400)
    assert r.returncode == 0, r.stdout[-6000:]
    assert "package-check: OK" in r.stdout
    assert "\nE: " not in r.stdout, "lintian errors"
