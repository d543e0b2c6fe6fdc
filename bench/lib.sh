# shellcheck shell=bash
# bench/lib.sh - shell functions the bench scripts share (sourced by compare.sh and ab.sh; not
# run on its own): processes stopped by pid with their descendants, free loopback ports, the
# rotating order of the servers, and the mpecho-bench arguments of each cell.
#
# The sourcing script sets STARTED (for log), BENCH (the mpecho-bench binary), DUR and TMO
# (and UDP_TMO, FLOOD_DUR, HOLD_C for compare.sh's cells) before it calls them.

log() { printf '[%3ds] %s\n' $((SECONDS - STARTED)) "$*" >&2; }

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

# ---- processes ----

# Every descendant of the given pids, through each thread's children list (with builtins only:
# a server holding a thousand connections has a thousand children).
descendants() {
	local p f c kids
	for p in "$@"; do
		for f in /proc/"$p"/task/*/children; do
			[ -r "$f" ] || continue
			kids=()
			read -r -a kids 2>/dev/null <"$f"
			for c in "${kids[@]}"; do
				echo "$c"
				descendants "$c"
			done
		done
	done
}

state_of() { awk '{ sub(/.*\) /, ""); print $1 }' /proc/"$1"/stat 2>/dev/null; }

alive() { local s; s=$(state_of "$1"); [ -n "$s" ] && [ "$s" != Z ]; }

# Stops a server and everything it started.  Its descendants go first, deepest first, while
# their parents live to reap them (an orphan is init's to reap); then TERM to the server, up to
# 3 s for it to go, and KILL.
stop_tree() {
	local pid=$1 kids i
	kids=$(descendants "$pid" | tac)
	if [ -n "$kids" ]; then
		# shellcheck disable=SC2086
		kill -KILL $kids 2>/dev/null
		sleep 0.2
	fi
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 30); do
		alive "$pid" || break
		sleep 0.1
	done
	kids=$(descendants "$pid")
	# shellcheck disable=SC2086
	kill -KILL "$pid" $kids 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# Stops every server in the associative array PID (name -> pid, or empty) and empties it.
stop_all() {
	local n
	for n in "${!PID[@]}"; do
		[ -n "${PID[$n]}" ] && stop_tree "${PID[$n]}"
	done
	PID=()
}

# On exit, and on INT or TERM: every server stopped and the work directory $WORK removed.
cleanup() {
	trap - EXIT INT TERM
	stop_all
	rm -rf "$WORK"
}
arm_cleanup() {
	trap cleanup EXIT
	trap 'log "interrupted"; exit 130' INT TERM
}

# Waits (5 s at most) until process $1 has at most $2 descendants, so a cell does not pay for
# the last one's exits; fails if it still has more.
settle_tree() {
	local i
	for i in $(seq 50); do
		[ "$(descendants "$1" | wc -l)" -le "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# Copies of $BENCH and $MPECHOD in $WORK, so that a rebuild during the run changes nothing in
# it; BENCH and MPECHOD then name the copies.  Exits if they are not built ($1: the script).
use_copies() {
	if [ ! -x "$BENCH" ] || [ ! -x "$MPECHOD" ]; then
		echo "$1: run make first" >&2
		exit 1
	fi
	cp "$BENCH" "$WORK/mpecho-bench" && cp "$MPECHOD" "$WORK/mpechod" || exit 1
	BENCH=$WORK/mpecho-bench
	MPECHOD=$WORK/mpechod
}

# ---- ports ----

# A TCP port below the ephemeral range (so no client socket can hold it) that nothing uses, for
# a server that cannot be told to take port 0 and say which it got.
NEXT_PORT=$((20000 + $$ % 4000 * 2))
free_port() {
	local hex
	while :; do
		NEXT_PORT=$((NEXT_PORT + 1))
		hex=$(printf ':%04X ' "$NEXT_PORT")
		grep -q "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null || break
	done
	echo "$NEXT_PORT"
}

# The port mpechod -p 0 bound, from its "listening on 127.0.0.1:PORT" line in log $1.
logged_port() { sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$1" | head -n 1; }

# Whether a short rr run on 127.0.0.1 port $1 gets its echoes back.
echoes_tcp() { "$BENCH" -d 0.1 -t 1000 rr 127.0.0.1 "$1" >/dev/null 2>&1; }

# ---- the cells ----

# The servers in an order that moves by one at each step, so none is always first after a
# heavy cell.
rotate() {
	local k=$1 n i
	shift
	n=$#
	local a=("$@")
	for ((i = 0; i < n; i++)); do
		echo "${a[$(((i + k) % n))]}"
	done
}

# The cell's mpecho-bench arguments in ARGS, its duration in CELL_DUR and its timeout in
# CELL_TMO.
cell_args() {
	CELL_DUR=$DUR
	CELL_TMO=$TMO
	case $1 in
	conn1) ARGS=(-c 1 --rst connect) ;;
	conn32) ARGS=(-c 32 --rst connect) ;;
	rr1) ARGS=(-c 1 rr) ;;
	rr32) ARGS=(-c 32 rr) ;;
	stream) ARGS=(-c 1 stream) ;;
	stream_text) ARGS=(-c 1 --text stream) ;;
	stream_ko) ARGS=(-c 1 --payload ko stream) ;;
	hold) ARGS=(-c "$HOLD_C" hold) ;;
	udp1) ARGS=(-c 1 udp); CELL_TMO=$UDP_TMO ;;
	udp32) ARGS=(-c 32 udp); CELL_TMO=$UDP_TMO ;;
	flood_rst) ARGS=(-c 32 --flood-close rst flood); CELL_DUR=$FLOOD_DUR ;;
	flood_fin) ARGS=(-c 32 --flood-close fin flood); CELL_DUR=$FLOOD_DUR ;;
	*) return 1 ;;
	esac
}

# Runs cell $1 against the server of pid $2 on 127.0.0.1 port $3 and prints mpecho-bench's
# JSON (nothing if it printed none); its exit status is mpecho-bench's.  stderr goes to $4.
bench_cell() {
	local limit
	cell_args "$1" || return 64
	# mpecho-bench bounds itself by the duration + 3 timeouts + 10 s; this is only a backstop.
	limit=$((${CELL_DUR%.*} + 3 * CELL_TMO / 1000 + 15))
	timeout -k 2 "$limit" "$BENCH" --json -d "$CELL_DUR" -t "$CELL_TMO" --pid "$2" \
	    "${ARGS[@]}" 127.0.0.1 "$3" 2>>"$4"
}
