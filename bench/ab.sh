#!/usr/bin/env bash
# bench/ab.sh - the same mpecho-bench cells against several server configurations, side by
# side, on loopback only: store on against store off, one build against another.
#
#   bench/ab.sh [NAME=SPEC ...]
#
# Each NAME=SPEC is one configuration (the first one is the baseline the ratios divide by):
#   NAME=ARGS         build/bin/mpechod -p 0 -b 127.0.0.1 ARGS
#   NAME=@BIN ARGS    the same with another mpechod: BIN is a path, or the name of an
#                     environment variable that holds one (OLD=/tmp/old/build/bin/mpechod,
#                     "old=@OLD -s STORE")
#   NAME=!COMMAND     any other echo server (e.g. socat): PORT in it becomes a free port
# In ARGS and COMMAND, STORE becomes a file of the configuration's own in the work directory.
# Words are split at blanks; there is no quoting.  Default: "off=--no-store" "store=-s STORE".
#
# Every mpechod starts on 127.0.0.1 port 0 and the port it bound is read from its log.  Each
# round runs one cell against every configuration, in an order that rotates, before the next
# cell; ROUNDS rounds.  After a cell the server is given up to 5 s to be back to its idle
# processes and its STORE file up to 10 s to stop growing (so a store's backlog does not run
# beside the next configuration's cell); the file's size over the bytes echoed is kept for the
# stream cells, then the file is emptied.  The report (markdown, on stdout, and in OUT if set)
# has the median of each cell for each configuration, the rounds' range, each configuration's
# ratio to the baseline, the store's bytes per byte echoed, and the load average before and
# after.  Every process started here is stopped by pid, with its descendants, on exit.
#
# Environment: ROUNDS (3), DUR (seconds per cell, 2), TMO (per-request timeout in ms, 5000),
# CELLS ("conn32 rr1 rr32 stream stream_text stream_ko"; also conn1), OUT (a file for the
# report, besides stdout), RAW_OUT (a file for every round's figures: round, configuration, cell,
# exit status, store bytes, mpecho-bench's JSON), BENCH_BIN and MPECHOD (build/bin's by default).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH=${BENCH_BIN:-$ROOT/build/bin/mpecho-bench}
MPECHOD=${MPECHOD:-$ROOT/build/bin/mpechod}
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-2}
TMO=${TMO:-5000}
CELLS=${CELLS-conn32 rr1 rr32 stream stream_text stream_ko}
OUT=${OUT:-}
RAW_OUT=${RAW_OUT:-}
STARTED=$SECONDS

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

usage() {
	echo "usage: bench/ab.sh [NAME=ARGS | NAME=@BIN ARGS | NAME=!COMMAND ...]" >&2
	exit 64
}

WORK=$(mktemp -d /tmp/mpecho-ab.XXXXXX)
RAW=$WORK/raw.tsv
NAMES=()
declare -A SPEC PID PORT CMD BASEKIDS STOREFILE

arm_cleanup

# The configuration's command line in ARGV, with PORT (for a COMMAND) and STORE replaced.
config_argv() {
	local name=$1 spec=${SPEC[$1]} bin=$MPECHOD w words
	STOREFILE[$name]=
	read -r -a words <<<"${spec#!}"
	ARGV=()
	for w in "${words[@]}"; do
		case $w in
		*STORE*) STOREFILE[$name]=$WORK/$name.store; w=${w//STORE/$WORK/$name.store} ;;
		esac
		[ "${spec:0:1}" = '!' ] && w=${w//PORT/${PORT[$name]}}
		ARGV+=("$w")
	done
	[ "${spec:0:1}" = '!' ] && return 0
	if [ "${spec:0:1}" = @ ]; then
		bin=${ARGV[0]#@}
		# shellcheck disable=SC2154
		case $bin in */*) ;; *) bin=${!bin:-} ;; esac
		if [ -z "$bin" ] || [ ! -x "$bin" ]; then
			log "$name: no mpechod at ${ARGV[0]#@}"
			return 1
		fi
		ARGV=("${ARGV[@]:1}")
		# A copy, so that a rebuild during the run changes nothing in it.
		cp "$bin" "$WORK/$name.mpechod" || return 1
		bin=$WORK/$name.mpechod
	fi
	ARGV=("$bin" -p 0 -b 127.0.0.1 "${ARGV[@]}")
}

# Starts a configuration; ready when it echoes (5 s at most, and an mpechod has said its port).
start_config() {
	local name=$1 i
	PORT[$name]=
	[ "${SPEC[$name]:0:1}" = '!' ] && PORT[$name]=$(free_port)
	config_argv "$name" || return 1
	have "${ARGV[0]}" || { log "$name: no ${ARGV[0]}"; return 1; }
	CMD[$name]="${ARGV[*]}"
	"${ARGV[@]}" </dev/null >>"$WORK/$name.log" 2>&1 &
	PID[$name]=$!
	for i in $(seq 50); do
		alive "${PID[$name]}" || break
		[ -n "${PORT[$name]}" ] || PORT[$name]=$(logged_port "$WORK/$name.log")
		if [ -n "${PORT[$name]}" ] && echoes_tcp "${PORT[$name]}"; then
			BASEKIDS[$name]=$(descendants "${PID[$name]}" | wc -l)
			log "$name: pid ${PID[$name]} on 127.0.0.1:${PORT[$name]}: ${CMD[$name]//$WORK/WORK}"
			return 0
		fi
		sleep 0.1
	done
	log "$name did not start; see below"
	tail -n 5 "$WORK/$name.log" >&2
	stop_tree "${PID[$name]}"
	PID[$name]=
	return 1
}

file_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# Waits (10 s at most) until the configuration's STORE file has not grown for 0.3 s, and prints
# its size.
store_settled() {
	local f=$1 i last now
	last=$(file_size "$f")
	for i in $(seq 33); do
		sleep 0.3
		now=$(file_size "$f")
		[ "$now" = "$last" ] && break
		last=$now
	done
	echo "$last"
}

run_cell() {
	local round=$1 name=$2 cell=$3 out rc size=-
	if [ -n "${PID[$name]}" ] && ! alive "${PID[$name]}"; then
		log "$name died; restarting it"
		echo "round $round: $name had died before $cell; restarted" >>"$WORK/notes"
		stop_tree "${PID[$name]}"
		start_config "$name" || PID[$name]=
	fi
	if [ -z "${PID[$name]}" ]; then
		printf '%s\t%s\t%s\tdown\t-\tnull\n' "$round" "$name" "$cell" >>"$RAW"
		return
	fi
	out=$(bench_cell "$cell" "${PID[$name]}" "${PORT[$name]}" "$WORK/bench.err")
	rc=$?
	case ${SPEC[$name]} in *--prefork*) sleep 0.2 ;; *)
		settle_tree "${PID[$name]}" "${BASEKIDS[$name]}" ||
		    BASEKIDS[$name]=$(descendants "${PID[$name]}" | wc -l) ;;
	esac
	if [ -n "${STOREFILE[$name]}" ]; then
		size=$(store_settled "${STOREFILE[$name]}")
		: >"${STOREFILE[$name]}"
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$cell" "$rc" "$size" "${out:-null}" >>"$RAW"
}

main() {
	local arg name round cell k
	[ $# -eq 0 ] && set -- "off=--no-store" "store=-s STORE"
	for arg in "$@"; do
		name=${arg%%=*}
		[[ $arg == *=* && $name =~ ^[A-Za-z0-9_.-]+$ && -z ${SPEC[$name]+x} ]] || usage
		NAMES+=("$name")
		SPEC[$name]=${arg#*=}
	done
	for cell in $CELLS; do cell_args "$cell" || { log "unknown cell $cell"; usage; }; done
	use_copies ab.sh
	: >"$RAW"
	: >"$WORK/notes"
	log "work directory $WORK (removed on exit)"
	{
		echo "#date	$(date -u '+%F %T UTC')"
		echo "#settings	ROUNDS=$ROUNDS DUR=$DUR TMO=$TMO CELLS=\"$CELLS\""
		echo "#machine	$(nproc) CPUs, $(uname -sr), commit $(git -C "$ROOT" rev-parse --short \
		    HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null ||
		    echo ' with uncommitted changes in src')"
		echo "#load_before	$(cut -d' ' -f1-3 /proc/loadavg)"
	} >"$WORK/head"
	for name in "${NAMES[@]}"; do
		start_config "$name" || { PID[$name]=; echo "$name did not start" >>"$WORK/notes"; }
		echo "#config	$name	${CMD[$name]:-(did not start)}" >>"$WORK/head"
	done
	for round in $(seq "$ROUNDS"); do
		log "round $round of $ROUNDS"
		k=$round
		for cell in $CELLS; do
			# The order moves by one from cell to cell and from round to round: with a
			# count of cells that the count of configurations divides, one step per cell
			# alone gave a cell the same order in every round (rr1 always second for the
			# third configuration of three), a bias in its ratio.
			k=$((k + 1))
			for name in $(rotate "$k" "${NAMES[@]}"); do
				run_cell "$round" "$name" "$cell"
			done
		done
	done
	stop_all
	{
		echo "#load_after	$(cut -d' ' -f1-3 /proc/loadavg)"
		echo "#elapsed	$((SECONDS - STARTED)) s"
		sed 's/^/#note\t/' "$WORK/notes"
	} >>"$WORK/head"
	"$PYTHON" "$HERE/ab_report.py" "$WORK/head" "$RAW" "$WORK" "${NAMES[@]}" >"$WORK/report.md" ||
	    exit 1
	cat "$WORK/report.md"
	[ -z "$OUT" ] || cp "$WORK/report.md" "$OUT"
	[ -z "$RAW_OUT" ] || cp "$RAW" "$RAW_OUT"
}

main "$@"
