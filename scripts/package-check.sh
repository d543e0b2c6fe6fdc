#!/bin/sh
# Builds the Debian package in a temporary copy of the tree, checks it with lintian (errors
# fail), installs it, runs the installed mpechod on 127.0.0.1 (port 0) and echoes through it
# with the installed client, checks the system user and the installed units (systemd-analyze
# verify), purges it, and checks that nothing it installed is left.  Needs root (dpkg -i);
# installs its tools through scripts/deps.sh.  Every step has a deadline; whatever it started
# or installed is removed on the way out, failed or not.
#
#   scripts/package-check.sh          the working tree as it is (tracked and untracked files)
#   scripts/package-check.sh --head   the last commit only (git archive HEAD)
#   scripts/package-check.sh --deb DIR   only build the package from the working tree (no unit
#                                     tests: DEB_BUILD_OPTIONS=nocheck) and copy it into DIR;
#                                     installs nothing (tests/system/test_systemd.py)
#   PACKAGE_CHECK_KEEP=1 ...          keep the temporary directory (build log, .deb) to look at
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PKG=mpecho
TMP=""
SERVER_PID=""
INSTALLED=0

say() { echo "package-check: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

cleanup() {
	st=$?
	if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -KILL "$SERVER_PID" 2>/dev/null || true
	fi
	if [ "$INSTALLED" = 1 ] && dpkg-query -W "$PKG" >/dev/null 2>&1; then
		timeout 120 dpkg --purge "$PKG" >/dev/null 2>&1 || say "could not purge $PKG"
	fi
	if [ -n "$TMP" ] && [ "${PACKAGE_CHECK_KEEP:-0}" = 1 ]; then
		say "kept $TMP"
	elif [ -n "$TMP" ]; then
		rm -rf "$TMP"
	fi
	exit "$st"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The source: the tree's files (not build products, which git ignores) copied under $TMP/src.
copy_tree() {
	mkdir "$TMP/src"
	if [ "${1:-}" = --head ]; then
		git -C "$ROOT" archive HEAD | tar -x -C "$TMP/src"
	elif git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		# shellcheck disable=SC2016
		(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
			xargs -0 sh -c 'for f; do if [ -e "$f" ]; then printf "%s\0" "$f"; fi; done' sh |
			tar --null -T - -cf -) | tar -x -C "$TMP/src"
	else
		tar -C "$ROOT" --exclude=./build --exclude=./build-san --exclude=./build-fuzz \
			--exclude=./bin -cf - . | tar -x -C "$TMP/src"
	fi
}

build() {
	say "building with dpkg-buildpackage -us -uc -b (log: $TMP/build.log)"
	if ! (cd "$TMP/src" && timeout 1200 dpkg-buildpackage -us -uc -b) >"$TMP/build.log" 2>&1; then
		tail -40 "$TMP/build.log" >&2
		fail "dpkg-buildpackage failed"
	fi
	version=$(dpkg-parsechangelog -l "$TMP/src/debian/changelog" -S Version)
	DEB="$TMP/${PKG}_${version}_$(dpkg --print-architecture).deb"
	[ -f "$DEB" ] || fail "no $DEB"
	say "built $(basename "$DEB"): $(dpkg-deb -c "$DEB" | wc -l) entries"
}

run_lintian() {
	say "lintian"
	timeout 600 lintian -I --pedantic --show-overrides "$DEB" >"$TMP/lintian.log" 2>&1 || true
	cat "$TMP/lintian.log" >&2
	if grep -q '^E: ' "$TMP/lintian.log"; then
		fail "lintian reports errors"
	fi
}

install_pkg() {
	say "dpkg -i"
	INSTALLED=1
	timeout 300 dpkg -i "$DEB" >"$TMP/dpkg.log" 2>&1 || { cat "$TMP/dpkg.log" >&2; fail "dpkg -i"; }
	dpkg -L "$PKG" >"$TMP/files"
	for f in /usr/sbin/mpechod /usr/bin/mpecho /usr/bin/mpecho-bench \
		/usr/share/man/man8/mpechod.8.gz /lib/systemd/system/mpechod.service \
		/lib/systemd/system/mpechod.socket /lib/systemd/system/mpechod-inetd.socket \
		/lib/systemd/system/mpechod-inetd@.service /etc/logrotate.d/mpecho \
		/etc/xinetd.d/mpecho /usr/lib/sysusers.d/mpecho.conf /etc/mpecho/mpechod.conf; do
		[ -e "$f" ] || fail "$f is not installed"
	done
	# The configuration file is a conffile (an upgrade keeps the admin's edits), every key
	# commented out, and checks as it is installed.
	dpkg-query -W -f='${Conffiles}\n' "$PKG" | grep -q ' /etc/mpecho/mpechod.conf ' ||
		fail "/etc/mpecho/mpechod.conf is not a conffile"
	! grep -Eq '^[[:space:]]*[a-z]' /etc/mpecho/mpechod.conf ||
		fail "/etc/mpecho/mpechod.conf sets something: every key should be commented out"
	/usr/sbin/mpechod -t -f /etc/mpecho/mpechod.conf >/dev/null ||
		fail "mpechod -t -f /etc/mpecho/mpechod.conf"
}

check_user() {
	entry=$(getent passwd mpecho) || fail "no user mpecho after installation"
	say "user: $entry"
	case "$entry" in
	*:/var/lib/mpecho:/usr/sbin/nologin) ;;
	*) fail "user mpecho has another home or shell: $entry" ;;
	esac
	getent group mpecho >/dev/null || fail "no group mpecho"
	owner=$(stat -c %U:%G /var/lib/mpecho) || fail "no /var/lib/mpecho"
	[ "$owner" = mpecho:mpecho ] || fail "/var/lib/mpecho belongs to $owner"
}

# Starts the installed mpechod on 127.0.0.1 port 0 with the store $2, as user $1 (setpriv),
# echoes a line through the installed client, stops it with TERM and checks its exit status
# and the store.
run_server() {
	user=$1 store=$2 log="$TMP/server.$1.log" port=""
	say "mpechod as $user, store $store"
	: >"$log"
	setpriv --reuid="$user" --regid="$user" --init-groups \
		/usr/sbin/mpechod -b 127.0.0.1 -p 0 -s "$store" 2>"$log" &
	SERVER_PID=$!
	for _ in $(seq 100); do
		port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
		[ -n "$port" ] && break
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$port" ] || { cat "$log" >&2; fail "mpechod did not say it was listening"; }
	line="hello from package-check $$"
	out=$(printf '%s\n' "$line" | timeout 10 /usr/bin/mpecho 127.0.0.1 "$port") ||
		fail "mpecho 127.0.0.1 $port failed"
	[ "$out" = "$line" ] || fail "echo: sent '$line', got '$out'"
	kill -TERM "$SERVER_PID"
	st=0
	# shellcheck disable=SC2016
	timeout 30 sh -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.1; done' sh "$SERVER_PID" ||
		fail "mpechod did not stop within 30 s of TERM"
	wait "$SERVER_PID" || st=$?
	SERVER_PID=""
	[ "$st" = 0 ] || { cat "$log" >&2; fail "mpechod exited $st after TERM"; }
	grep -q "hello from package-check $$" "$store" || fail "the echoed line is not in $store"
	[ "$(stat -c %U "$store")" = "$user" ] || fail "$store does not belong to $user"
}

verify_units() {
	say "systemd-analyze verify"
	man=yes
	command -v man >/dev/null || man=no
	(cd /lib/systemd/system && timeout 60 systemd-analyze verify --man="$man" mpechod.socket \
		mpechod.service mpechod-inetd.socket mpechod-inetd@.service) >"$TMP/verify.log" 2>&1 ||
		{ cat "$TMP/verify.log" >&2; fail "systemd-analyze verify failed"; }
	[ ! -s "$TMP/verify.log" ] || { cat "$TMP/verify.log" >&2; fail "systemd-analyze verify warns"; }
	if command -v logrotate >/dev/null; then
		timeout 30 logrotate -d /etc/logrotate.d/mpecho >"$TMP/logrotate.log" 2>&1 ||
			{ cat "$TMP/logrotate.log" >&2; fail "logrotate -d /etc/logrotate.d/mpecho"; }
	fi
}

purge() {
	say "dpkg --purge"
	timeout 300 dpkg --purge "$PKG" >"$TMP/dpkg.log" 2>&1 || { cat "$TMP/dpkg.log" >&2; fail "dpkg --purge"; }
	INSTALLED=0
	left=""
	while read -r f; do
		[ -d "$f" ] || [ ! -e "$f" ] || left="$left $f"
	done <"$TMP/files"
	[ -z "$left" ] || fail "left after the purge:$left"
	[ ! -e /var/lib/mpecho ] || fail "/var/lib/mpecho is left after the purge"
	if [ -e /usr/sbin/mpechod ] || [ -e /usr/bin/mpecho ]; then
		fail "binaries left after the purge"
	fi
	say "purged; the user mpecho is kept, as Debian packages keep their system users"
}

if [ "${1:-}" = --deb ]; then
	if [ -z "${2:-}" ] || [ ! -d "$2" ]; then fail "--deb needs an existing directory"; fi
	OUT=$(cd "$2" && pwd)
	TMP=$(mktemp -d /tmp/mpecho-package.XXXXXX)
	copy_tree
	export DEB_BUILD_OPTIONS="nocheck parallel=2 ${DEB_BUILD_OPTIONS:-}"
	build
	cp "$DEB" "$OUT/"
	echo "$OUT/$(basename "$DEB")"
	exit 0
fi
[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i, dpkg --purge)"
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "ok installed"; then
	fail "$PKG is installed already; this check would replace and purge it"
fi
timeout 1200 "$ROOT/scripts/deps.sh"
TMP=$(mktemp -d /tmp/mpecho-package.XXXXXX)
copy_tree "${1:-}"
build
run_lintian
install_pkg
check_user
mkdir "$TMP/store" && chmod 755 "$TMP"
run_server root "$TMP/store/echomsg.jsonl"
run_server mpecho /var/lib/mpecho/echomsg.jsonl
verify_units
purge
say "OK"
