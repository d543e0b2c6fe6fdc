#!/usr/bin/env bash
# bench/hold10k.sh - mpechod's memory per held connection in fork mode and with --prefork, at
# 1,000 and at 10,000 idle connections (issue 12: prefork within 1.2 times fork mode at both).
#
# Each figure comes from a server of its own, started for it on 127.0.0.1 and stopped after it:
# mpecho-bench hold opens the connections, checks that each echoes, holds them DUR seconds and
# checks them again, and reports the PSS summed over the server's process tree (the master, its
# sessions or pool processes, and its store process) less the sum before the connections
# opened, over the connections held; and the page tables (VmPTE) the same way.  A fresh server
# matters for --prefork: its pool retires one idle process a second, so a second hold on the
# same server would find the processes it needs already there.
#
# Not part of make bench (it takes about a minute).  Every process started here is stopped by
# pid, with its descendants.
#
# Environment: SIZES ("1000 10000"), DUR (seconds held, 5), TMO (connect and echo timeout in
# ms, 20000: 10,000 connections at once overflow the listen backlog and wait for SYN retries),
# SERVERS ("fork prefork fork_store prefork_store"), OUT (a file for the markdown table, besides
# stdout).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH=$ROOT/build/bin/mpecho-bench
MPECHOD=$ROOT/build/bin/mpechod
PYTHON=${PYTHON:-python3}
SIZES=${SIZES:-1000 10000}
DUR=${DUR:-5}
TMO=${TMO:-20000}
SERVERS=${SERVERS:-fork prefork fork_store prefork_store}
OUT=${OUT:-}

WORK=$(mktemp -d /tmp/mpecho-hold10k.XXXXXX)
RAW=$WORK/raw.tsv
SERVER=
PORT=
# Its own log, stop and cleanup below replace the shared ones.
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

log() { printf '[%3ds] %s\n' "$SECONDS" "$*" >&2; }

# TERM to the server (it stops its sessions or pool), up to 15 s for it to go, then KILL to
# whatever is left of its process group (it runs in a session of its own, and so do all the
# processes it starts).
stop_server() {
	local st
	[ -n "$SERVER" ] || return 0
	kill -TERM "$SERVER" 2>/dev/null
	for _ in $(seq 150); do
		st=$(awk '{ sub(/.*\) /, ""); print $1 }' /proc/"$SERVER"/stat 2>/dev/null)
		{ [ -n "$st" ] && [ "$st" != Z ]; } || break
		sleep 0.1
	done
	kill -KILL -- -"$SERVER" 2>/dev/null
	wait "$SERVER" 2>/dev/null
	SERVER=
}

cleanup() {
	trap - EXIT INT TERM
	stop_server
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Starts the server $1 for $2 connections on a port the kernel chooses, in a session of its
# own; SERVER is its pid and PORT its port once it says it listens (5 s at most).
start_server() {
	local name=$1 args=(-p 0 -b 127.0.0.1 -c $(($2 + 100)))
	case $name in
	fork) args+=(--no-store) ;;
	prefork) args+=(--no-store --prefork) ;;
	fork_store) args+=(-s "$WORK/store.jsonl") ;;
	prefork_store) args+=(-s "$WORK/store.jsonl" --prefork) ;;
	*) log "unknown server $name"; return 1 ;;
	esac
	rm -f "$WORK/store.jsonl"
	: >"$WORK/$name.log"
	setsid "$MPECHOD" "${args[@]}" </dev/null >>"$WORK/$name.log" 2>&1 &
	SERVER=$!
	for _ in $(seq 50); do
		PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/$name.log")
		[ -n "$PORT" ] && return 0
		sleep 0.1
	done
	log "$name did not start:"
	tail -n 5 "$WORK/$name.log" >&2
	stop_server
	return 1
}

measure() {
	local name=$1 size=$2 out rc
	start_server "$name" "$size" || {
		printf '%s\t%s\tdown\tnull\n' "$name" "$size" >>"$RAW"
		return
	}
	log "$name, $size connections: pid $SERVER on 127.0.0.1:$PORT"
	out=$(timeout -k 2 $((DUR + 3 * TMO / 1000 + 30)) "$BENCH" --json -d "$DUR" -t "$TMO" \
	    --pid "$SERVER" -c "$size" hold 127.0.0.1 "$PORT" 2>>"$WORK/bench.err")
	rc=$?
	printf '%s\t%s\t%s\t%s\n' "$name" "$size" "$rc" "${out:-null}" >>"$RAW"
	stop_server
}

# The table: per server and size, the figures of mpecho-bench's JSON, and prefork over fork
# mode with the same store setting.
report() {
	"$PYTHON" - "$RAW" <<'EOF'
import json, sys
rows, got = [], {}
for line in open(sys.argv[1]):
    name, size, rc, body = line.rstrip("\n").split("\t", 3)
    try:
        r = json.loads(body)
    except ValueError:
        r = None
    ok = rc == "0" and isinstance(r, dict) and not r.get("errors") and \
        r.get("pss_kib_per_conn") is not None
    got[(name, size)] = r["pss_kib_per_conn"] if ok else None
    rows.append((name, size, rc, r if ok else None))
print("| Server | held | PSS KiB per conn | page tables KiB per conn | processes | "
      "PSS before KiB | PSS held KiB | prefork / fork |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
label = {"fork": "mpechod --no-store", "prefork": "mpechod --prefork --no-store",
         "fork_store": "mpechod -s FILE", "prefork_store": "mpechod --prefork -s FILE"}
for name, size, rc, r in rows:
    if r is None:
        print(f"| {label.get(name, name)} | {size} | fail (exit {rc}) | | | | | |")
        continue
    ratio = ""
    if name.startswith("prefork"):
        base = got.get((name[3:], size))
        ratio = f"{r['pss_kib_per_conn'] / base:.2f}" if base else "–"
    print(f"| {label.get(name, name)} | {r['held']:,} | {r['pss_kib_per_conn']:.1f} | "
          f"{r.get('pte_kib_per_conn', 0):.1f} | {r.get('server_procs', 0):,} | "
          f"{r.get('pss_kib_baseline', 0):,} | {r.get('pss_kib_loaded', 0):,} | {ratio} |")
EOF
}

main() {
	local size name
	use_copies hold10k.sh
	# mpecho-bench raises its own limit; the server needs none per connection in its master
	# (each session or pool process holds its one socket), but a generous one costs nothing.
	ulimit -n "$(ulimit -Hn)"
	: >"$RAW"
	for size in $SIZES; do
		for name in $SERVERS; do
			measure "$name" "$size"
		done
	done
	if [ -n "$OUT" ]; then
		report | tee "$OUT"
	else
		report
	fi
}

main "$@"
