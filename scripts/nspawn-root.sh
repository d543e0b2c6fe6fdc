#!/bin/sh
# Makes (once) and prints the path of a Debian 12 root for `systemd-nspawn -b`: systemd as
# PID 1 and what tests/system/test_systemd.py needs to install the mpecho package and run the
# server in it.  It is made with debootstrap from the mirror this machine's apt already uses
# (read from /etc/apt/sources.list and /etc/apt/sources.list.d/, never named here), and cached
# under $MPECHO_NSPAWN_CACHE (default /var/cache/mpecho-nspawn) in a directory named by a hash
# of the suite, the architecture, the mirror and the package list, so a changed list makes a
# new root and an unchanged one costs nothing.  The root is never changed after it is made:
# the tests boot it with --volatile=overlay, their writes going to a tmpfs.
#
#   scripts/nspawn-root.sh            make the root if it is not cached; print its path
#   scripts/nspawn-root.sh --mirror   print the mirror it would use, and exit
#   MPECHO_NSPAWN_MIRROR=URL ...      use URL instead of the one apt uses
#
# Needs root and debootstrap (scripts/deps.sh installs it).  Exit status 0 with the path on
# standard output; otherwise a message on standard error.
set -eu

SUITE=bookworm
# systemd-sysv gives /sbin/init; adduser is what the package's postinst runs; libjansson4 and
# zlib1g are mpecho-store's libraries; procps (ps, pgrep, pkill) and iproute2 (ss) are for
# looking at the server from inside.  The container has no network but its loopback, so
# everything apt needs to install the package must be here already.
PACKAGES="systemd,systemd-sysv,dbus,adduser,libjansson4,zlib1g,procps,iproute2"
CACHE=${MPECHO_NSPAWN_CACHE:-/var/cache/mpecho-nspawn}

say() { echo "nspawn-root: $*" >&2; }
fail() { say "$*"; exit 1; }

# The first "deb" source of this machine for the suite itself (not -updates or -security) with
# the component main: one-line sources.list entries and deb822 .sources files.
apt_mirror() {
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		awk -v suite="$SUITE" '
			$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if ($(i + 1) != suite) next
				for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; exit }
			}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk -v suite="$SUITE" '
			function done_stanza() {
				if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") &&
				    (" " comps " ") ~ / main /) { split(uris, u, " "); print u[1]; found = 1 }
				types = suites = comps = uris = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { done_stanza(); if (found) exit; next }
			{
				key = tolower($1); sub(/:$/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
				if (key == "types") types = val; else if (key == "suites") suites = val
				else if (key == "components") comps = val; else if (key == "uris") uris = val
			}
			END { if (!found) done_stanza() }' "$f"
	done
}

MIRROR=${MPECHO_NSPAWN_MIRROR:-$(apt_mirror | head -1)}
[ -n "$MIRROR" ] || fail "no '$SUITE main' source in /etc/apt/sources.list{,.d}; set MPECHO_NSPAWN_MIRROR"
if [ "${1:-}" = --mirror ]; then
	echo "$MIRROR"
	exit 0
fi

[ "$(id -u)" = 0 ] || fail "needs root (debootstrap)"
command -v debootstrap >/dev/null || fail "needs debootstrap (scripts/deps.sh installs it)"
ARCH=$(dpkg --print-architecture)
KEY=$(printf '%s\n' "$SUITE" "$ARCH" "$MIRROR" "$PACKAGES" | sha256sum | cut -c1-16)
DIR="$CACHE/$SUITE-$ARCH-$KEY"

mkdir -p "$CACHE"
# One maker at a time; a second caller waits for the first one's root.
exec 9>"$CACHE/.lock"
flock -w 1800 9 || fail "timed out waiting for $CACHE/.lock"
if [ -x "$DIR/root/lib/systemd/systemd" ] && [ -e "$DIR/ok" ]; then
	echo "$DIR/root"
	exit 0
fi

rm -rf "$DIR"
mkdir -p "$DIR"
say "debootstrap $SUITE ($ARCH) from $MIRROR into $DIR (once; later runs reuse it)"
if ! timeout 1800 debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$DIR/root" \
	"$MIRROR" >"$DIR/debootstrap.log" 2>&1; then
	tail -20 "$DIR/debootstrap.log" >&2
	fail "debootstrap failed (log: $DIR/debootstrap.log)"
fi
# A machine id of its own, no getty on a console nobody reads, and apt's lists and archives
# emptied: nothing inside fetches anything.
chroot "$DIR/root" systemd-machine-id-setup >/dev/null 2>&1 || true
chroot "$DIR/root" systemctl mask console-getty.service getty@tty1.service >/dev/null 2>&1 || true
rm -rf "$DIR/root/var/cache/apt/archives/"*.deb "$DIR/root/var/lib/apt/lists/"* 2>/dev/null || true
touch "$DIR/ok"
echo "$DIR/root"
