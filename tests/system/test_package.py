"""Tests of what a package ships: the systemd units of contrib/ pass `systemd-analyze verify`
as `make install` writes them, and the Debian package builds, passes lintian, installs, serves,
and purges cleanly (scripts/package-check.sh, which needs root and dpkg-buildpackage).

package-check builds its own binaries from a copy of the tree, so it runs in the normal pass
only, not again in the sanitized one.
"""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, SANITIZED, binary

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
    assert f"ExecStart={sbin} -s " in (unitdir / "mpechod.service").read_text()
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
