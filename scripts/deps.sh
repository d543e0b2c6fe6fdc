#!/bin/sh
# Installs what building and testing mpecho needs, from Debian's packages, when it is missing.
# As root it runs apt-get; otherwise it names what is missing and fails.
#   scripts/deps.sh          everything the tests need (make test runs this)
#   scripts/deps.sh build    only what `make` needs
#   scripts/deps.sh PKG...   everything, and these too
set -eu

BUILD="gcc make libc6-dev libjansson-dev zlib1g-dev"
TEST="libcriterion-dev python3 python3-pytest procps gdb jq rsyslog cppcheck clang-tidy valgrind clang libclang-rt-14-dev debhelper lintian dpkg-dev fakeroot systemd adduser logrotate strace haproxy xinetd debootstrap systemd-container debian-archive-keyring util-linux stress-ng prometheus tmux gnuplot-nox"
if [ "${1:-}" = build ]; then
	shift
	PKGS="$BUILD"
else
	PKGS="$BUILD $TEST"
fi
[ $# -gt 0 ] && PKGS="$PKGS $*"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
