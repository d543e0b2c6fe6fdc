#!/usr/bin/env bash
# bench/soak.sh - a soak of our own: 1,000 clients at once for SOAK_S seconds against mpechod in
# fork mode, then in --prefork mode, each with its store on, on 127.0.0.1 only.
#
# The clients are four mpecho-bench runs side by side: rr with binary and with text payloads
# (RR_C persistent connections each, ping-pong), and connect churn with binary payloads closed
# by a FIN and text ones closed by a reset (CONN_C connections in flight each).  2*RR_C +
# 2*CONN_C is 1,000 by default.  The rr runs start first and the churn once their connections
# are set up (the master's stats line counts them), so that all four measure SOAK_S s
# together.  The figures are taken from /proc (VmRSS, Pss from smaps_rollup, the descriptors
# in /proc/PID/fd) for the master and the store, idle before the load, under load after the
# warm-up (SOAK_S/10, 3 to 60 s) and just before the load ends, and idle after.
#
# A mode fails when: a bench run reports an error (or exits non-zero); the master's or the
# store's descriptors differ idle after from idle before; the master's or the store's RSS grew
# by more than SOAK_GROW_KIB between the two samples under load; the store was restarted; a
# zombie is left once the load is over; the master does not exit 0 on SIGTERM; or
# `mpecho-store check` rejects the store.  The script exits 1 if any check failed in any mode.
#
# Environment: SOAK_S (600, seconds of load per mode), MODES ("fork prefork"), RR_C (400),
# CONN_C (100), SOAK_TMO (ms before a request counts as an error, 10000), SOAK_GROW_KIB (1024),
# SOAK_ARGS (more mpechod options, e.g. "--sandbox off"), KEEP (1 keeps the work directory with the stores and logs; by default it is removed, since a
# store of a ten-minute soak takes gigabytes).
#
# Every process started here is stopped by pid when the script exits.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN=${MPECHO_BIN:-$ROOT/build/bin}
SOAK_S=${SOAK_S:-600}
CMD_MODES=${MODES:+MODES=\"$MODES\" }
MODES=${MODES:-fork prefork}
RR_C=${RR_C:-400}
CONN_C=${CONN_C:-100}
SOAK_TMO=${SOAK_TMO:-10000}
SOAK_GROW_KIB=${SOAK_GROW_KIB:-1024}
KEEP=${KEEP:-0}
NOFILE=65536

case $SOAK_S in
'' | *[!0-9]* | 0) echo "soak: SOAK_S must be a positive number of seconds, not '$SOAK_S'" >&2; exit 2 ;;
esac
WARM=$((SOAK_S / 10))
[ "$WARM" -lt 3 ] && WARM=3
[ "$WARM" -gt 60 ] && WARM=60

# Descriptors: each client, session or pool process holds its own, but the bench's workers
# hold a share of the 1,000 each and mpechod's limit is inherited.
ulimit -Hn "$NOFILE" 2>/dev/null
ulimit -n "$NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
	echo "soak: RLIMIT_NOFILE is $(ulimit -n) and cannot be raised to $NOFILE" >&2
	exit 2
fi

WORK=$(mktemp -d /tmp/mpecho-soak.XXXXXX)
SERVER=""
WATCHER=""
BENCHES=()
cleanup() {
	for p in "${BENCHES[@]}" $WATCHER $SERVER; do
		kill -KILL "$p" 2>/dev/null
	done
	[ -n "$SERVER" ] && { descendants "$SERVER" | xargs -r kill -KILL 2>/dev/null; }
	wait 2>/dev/null
	[ "$KEEP" = 1 ] && echo "soak: kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

descendants() {
	local f c kids
	for f in /proc/"$1"/task/*/children; do
		[ -r "$f" ] || continue
		read -r -a kids 2>/dev/null <"$f" || true
		for c in "${kids[@]}"; do
			echo "$c"
			descendants "$c"
		done
	done
}

kib() { awk -v k="$2" '$1 == k":" { print $2; found = 1 } END { if (!found) print 0 }' "$1" 2>/dev/null; }
fds() { local n; n=$(ls /proc/"$1"/fd 2>/dev/null | wc -l); echo "$n"; }
# "RSS PSS FDS" of a pid, in KiB and descriptors.
figures() { echo "$(kib /proc/"$1"/status VmRSS) $(kib /proc/"$1"/smaps_rollup Pss) $(fds "$1")"; }

# The store process: the master's child that has the store file open.
store_pid() {
	local c f
	for c in $(cat /proc/"$SERVER"/task/*/children 2>/dev/null); do
		for f in /proc/"$c"/fd/*; do
			[ "$(readlink "$f" 2>/dev/null)" = "$STORE" ] && { echo "$c"; return; }
		done
	done
}

zombies() {
	local c n=0
	for c in $(cat /proc/"$SERVER"/task/*/children 2>/dev/null); do
		[ "$(awk '{ print $3 }' /proc/"$c"/stat 2>/dev/null)" = Z ] && n=$((n + 1))
	done
	echo "$n"
}

# A fresh stats line from the master (SIGUSR1), waited for in its log.
stats() {
	local before after i
	before=$(grep -c 'stats:' "$LOG")
	kill -USR1 "$SERVER"
	for i in $(seq 100); do
		after=$(grep -c 'stats:' "$LOG")
		[ "$after" -gt "$before" ] && { grep 'stats:' "$LOG" | tail -1; return; }
		sleep 0.1
	done
	echo "(no stats line)"
}

stat_field() { grep -oE "[ ,:]$1 [0-9]+" | head -1 | grep -oE '[0-9]+$'; }

# Once a second while the clients run: the master's CPU time (schedstat), its state (D: blocked
# in the kernel), the listen queue and the kernel's count of connections dropped for a full
# one.  Keeps, in FILE, one line with the longest stretch in which the master, not idle (R or
# D), got no CPU at all, the deepest queue seen and the drops.  Idle seconds (S: in ppoll, with
# nothing waiting, as at the end of a run) are not counted: when they were, this line said 3 to
# 5 s where a sampler at 50 ms found the master never more than 0.7 s without CPU under load.
watch_master() {
	local pid=$1 port=$2 out=$3 run last="" still=0 worst=0 q qmax=0 drops0 drops st n=0 nd=0
	drops0=$(nstat -az TcpExtListenOverflows 2>/dev/null | awk '/ListenOverflows/ { print $2 }')
	trap 'exit 0' TERM
	while [ -r /proc/"$pid"/schedstat ]; do
		read -r run _ </proc/"$pid"/schedstat
		read -r _ _ st _ </proc/"$pid"/stat
		# Idle (S, in ppoll: nothing to accept, as once the clients stop) is not starved.
		if [ "$run" = "$last" ] && [ "$st" != S ]; then
			still=$((still + 1))
			[ "$still" -gt "$worst" ] && worst=$still
		else
			still=0
		fi
		last=$run
		n=$((n + 1))
		[ "$st" = D ] && nd=$((nd + 1))
		q=$(ss -Hltn "sport = :$port" 2>/dev/null | awk '{ print $2; exit }')
		[ -n "$q" ] && [ "$q" -gt "$qmax" ] && qmax=$q
		drops=$(nstat -az TcpExtListenOverflows 2>/dev/null | awk '/ListenOverflows/ { print $2 }')
		echo "the master's longest stretch runnable but without CPU time ${worst} s, listen queue at most" \
			"$qmax, connections dropped for a full listen queue (whole machine) $((${drops:-0} - ${drops0:-0})),"  \
			"the master in uninterruptible sleep (D: in the kernel, e.g. inside fork) in $nd of $n" \
			"samples" >"$out"
		sleep 1
	done
}

# Waits (bounded: as long as a bench allows for its set-up, and 5 s more) until N sessions are
# in progress, once: the rr clients are set up.
SETUP_DONE=0
rr_setup() {
	local i
	[ "$SETUP_DONE" = 1 ] && return
	SETUP_DONE=1
	for i in $(seq $((2 * (SOAK_TMO / 1000 + 10)))); do
		[ "$(stats | stat_field active)" -ge "$1" ] 2>/dev/null && return
		sleep 0.5
	done
	echo "soak: the rr clients were not all set up after $((SOAK_TMO / 1000 + 10)) s" >&2
}

BAD=0
fail() { echo "  FAIL: $*"; BAD=1; MODEBAD=1; }

soak_mode() {
	local mode=$1 extra="" i p rc sp sp0 m0 m1 m2 m3 s0 s1 s2 s3 st line
	MODEBAD=0
	SETUP_DONE=0
	[ "$mode" = prefork ] && extra=--prefork
	STORE=$WORK/store-$mode.jsonl
	LOG=$WORK/mpechod-$mode.log
	# shellcheck disable=SC2086
	"$BIN"/mpechod -p 0 -b 127.0.0.1 -c 4096 -s "$STORE" $extra ${SOAK_ARGS:-} 2>"$LOG" </dev/null &
	SERVER=$!
	for i in $(seq 100); do
		grep -q 'listening on ' "$LOG" && break
		sleep 0.1
	done
	PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG" | head -1)
	[ -n "$PORT" ] || { fail "mpechod did not start: $(tail -3 "$LOG")"; return; }
	for i in $(seq 100); do
		sp0=$(store_pid)
		[ -n "$sp0" ] && break
		sleep 0.1
	done
	m0=$(figures "$SERVER")
	s0=$(figures "$sp0")
	echo "## $mode mode (mpechod -c 4096 -s STORE $extra ${SOAK_ARGS:-}; port $PORT; master $SERVER, store $sp0)"
	echo

	BENCHES=()
	local runs=("rr-binary:-c $RR_C rr" "rr-text:-c $RR_C --text rr"
		"connect-binary-fin:-c $CONN_C connect" "connect-text-rst:-c $CONN_C --text --rst connect")
	for r in "${runs[@]}"; do
		# The churn starts once the rr connections are set up (each rr client connects 8 at a
		# time and waits for their first echo, which behind a listen queue the churn keeps
		# full took longer than the bench allows: timeout + 5 s).  The bench's -d counts from
		# the end of its own set-up, so all four runs end together.
		case $r in connect*) rr_setup "$((2 * RR_C))" ;; esac
		# shellcheck disable=SC2086
		"$BIN"/mpecho-bench --json -d "$SOAK_S" -t "$SOAK_TMO" --pid "$SERVER" ${r#*:} \
			127.0.0.1 "$PORT" >"$WORK/${r%%:*}-$mode.json" 2>"$WORK/${r%%:*}-$mode.err" &
		BENCHES+=($!)
	done
	watch_master "$SERVER" "$PORT" "$WORK/watch-$mode" &
	WATCHER=$!
	sleep "$WARM"
	m1=$(figures "$SERVER")
	s1=$(figures "$(store_pid)")
	sleep $((SOAK_S - WARM > 2 ? SOAK_S - WARM - 2 : 0))
	m2=$(figures "$SERVER")
	s2=$(figures "$(store_pid)")
	rc=0
	for p in "${BENCHES[@]}"; do
		wait "$p" || rc=1
	done
	BENCHES=()
	kill "$WATCHER" 2>/dev/null
	wait "$WATCHER" 2>/dev/null
	WATCHER=""

	# Idle again: no session in progress (a bounded wait), then the figures and the zombies.
	for i in $(seq 600); do
		line=$(stats)
		[ "$(echo "$line" | stat_field active)" = 0 ] && break
		sleep 0.1
	done
	for i in $(seq 100); do
		[ "$(zombies)" = 0 ] && break
		sleep 0.1
	done
	sp=$(store_pid)
	m3=$(figures "$SERVER")
	s3=$(figures "$sp")

	echo "| client run | connections | requests or connects | errors | p50 us | p99 us | max us |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	local total=0 errs=0
	for r in "${runs[@]}"; do
		local name=${r%%:*} j
		j=$WORK/$name-$mode.json
		if ! python3 - "$j" "$name" 2>"$WORK/first-$name-$mode" <<'EOF'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print(f"| {sys.argv[2]} | - | - | no report | - | - | - |")
    sys.exit(1)
n = r.get("requests", r.get("connects", 0))
lat = r.get("latency_us", {})
kinds = ", ".join(f"{k} {v}" for k, v in r.get("error_kinds", {}).items() if v)
print(f"| {sys.argv[2]} ({r['payload']}) | {r['connections']} | {n} | {r['errors']}"
      f"{' (' + kinds + ')' if kinds else ''} "
      f"| {lat.get('p50', 0):.0f} | {lat.get('p99', 0):.0f} | {lat.get('max', 0):.0f} |")
if r["errors"]:
    print(f"{r['errors']} errors, first: {r['first_error']}", file=sys.stderr)
sys.exit(1 if r["errors"] else 0)
EOF
		then
			errs=1
			echo "$name: $(cat "$WORK/first-$name-$mode") $(head -c 300 "$WORK/$name-$mode.err")" \
				>>"$WORK/why-$mode"
		fi
	done
	echo
	st=$(echo "$line" | sed 's/.*stats: //')
	echo "Server stats after the load: $st"
	echo
	echo "| process | when | RSS KiB | PSS KiB | descriptors |"
	echo "|---|---|---:|---:|---:|"
	for w in "idle, before:0" "under load, after ${WARM} s:1" "under load, at the end:2" "idle, after:3"; do
		local k=${w##*:} mf sf
		eval "mf=\$m$k; sf=\$s$k"
		set -- $mf
		echo "| master | ${w%:*} | $1 | $2 | $3 |"
		set -- $sf
		echo "| store | ${w%:*} | $1 | $2 | $3 |"
	done
	echo
	echo "Zombies after the load: $(zombies)"
	# What a stall of the accept path would show (the figures that explain a client's timeout).
	[ -s "$WORK/watch-$mode" ] && echo "Under load: $(tail -1 "$WORK/watch-$mode")"

	[ "$rc" = 0 ] && [ "$errs" = 0 ] || fail "a client run reported errors: $(cat "$WORK/why-$mode" 2>/dev/null)"
	[ "$(echo "$m0" | cut -d' ' -f3)" = "$(echo "$m3" | cut -d' ' -f3)" ] ||
		fail "the master's descriptors went from $(echo "$m0" | cut -d' ' -f3) to $(echo "$m3" | cut -d' ' -f3)"
	[ "$(echo "$s0" | cut -d' ' -f3)" = "$(echo "$s3" | cut -d' ' -f3)" ] ||
		fail "the store's descriptors went from $(echo "$s0" | cut -d' ' -f3) to $(echo "$s3" | cut -d' ' -f3)"
	[ $(( $(echo "$m2" | cut -d' ' -f1) - $(echo "$m1" | cut -d' ' -f1) )) -le "$SOAK_GROW_KIB" ] ||
		fail "the master's RSS grew by more than $SOAK_GROW_KIB KiB under load"
	[ $(( $(echo "$s2" | cut -d' ' -f1) - $(echo "$s1" | cut -d' ' -f1) )) -le "$SOAK_GROW_KIB" ] ||
		fail "the store's RSS grew by more than $SOAK_GROW_KIB KiB under load"
	[ "$sp" = "$sp0" ] || fail "the store was restarted ($sp0, now $sp)"
	[ "$(zombies)" = 0 ] || fail "$(zombies) zombies left"
	if grep -q 'killed by signal' "$LOG"; then
		fail "a process was killed: $(grep -m1 'killed by signal' "$LOG")"
	fi

	kill -TERM "$SERVER"
	wait "$SERVER"
	rc=$?
	SERVER=""
	[ "$rc" = 0 ] || fail "mpechod exited $rc on SIGTERM: $(tail -3 "$LOG")"
	local size
	size=$(stat -c %s "$STORE")
	echo "Store: $((size / 1048576)) MiB, $(wc -l <"$STORE") records."
	if "$BIN"/mpecho-store check "$STORE" >"$WORK/check-$mode" 2>&1; then
		echo "mpecho-store check: clean ($(tail -1 "$WORK/check-$mode"))"
	else
		fail "mpecho-store check: $(head -5 "$WORK/check-$mode")"
	fi
	[ "$KEEP" = 1 ] || rm -f "$STORE"
	echo
	[ "$MODEBAD" = 0 ] && echo "$mode mode: passed" || echo "$mode mode: FAILED"
	echo
}

echo "# mpechod soak, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Command: ${CMD_MODES}SOAK_S=$SOAK_S bench/soak.sh (make soak SOAK_S=$SOAK_S); $((2 * RR_C + 2 * CONN_C))" \
	"clients at once for $SOAK_S s per mode: rr binary and text ($RR_C each), connect" \
	"churn binary with FIN and text with reset ($CONN_C each); timeout $SOAK_TMO ms."
echo "Machine: $(nproc) CPUs, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start;" \
	"mpechod $("$BIN"/mpechod -V 2>&1 | head -1 | awk '{ print $2 }'), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')."
echo
for m in $MODES; do
	soak_mode "$m"
done
if [ "$BAD" != 0 ]; then
	echo "soak: FAILED"
	exit 1
fi
echo "soak: passed"
