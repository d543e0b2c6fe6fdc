#!/usr/bin/env bash
# bench/compare.sh - mpechod beside the classic forking echo servers, on loopback only.
#
# Starts socat, ncat, tcpserver, xinetd (its internal echo service) and mpechod with and without
# its store, in fork mode and with --prefork (its pool of processes that accept for themselves,
# issue 12), and a yardstick (bench/epoll_echo.c, one process with an epoll loop, built here),
# all on 127.0.0.1, and runs the same mpecho-bench matrix against each: connect/s at
# C=1 and C=32, rr at C=1 and C=32, stream, and memory per held connection at C=HOLD_C.  The UDP
# cells (mpecho-bench udp at C=1 and C=32, with a timeout of UDP_TMO) run against the servers
# that serve UDP echo: xinetd (its internal dgram echo, on the same port), mpechod (--udp, no
# rate limits) with and without its store, and one more socat, UDP-RECVFROM with fork and PIPE,
# that serves UDP only; and socat -r FILE ... PIPE, socat's traffic dump, the peer that keeps
# what it echoes (issue 24).  The cells are interleaved (one cell against every server, in an order
# that rotates, before the next cell) and the whole matrix is repeated ROUNDS times; report.py
# turns the raw results into bench/results/DATE.md and the plot of ratios to mpechod (DATE.png,
# DATE.svg).  A bare fork+_exit+waitpid loop (bench/forkrate.c) is measured in every round too.
#
# After the rounds, the flood cells: mpecho-bench flood for FLOOD_DUR seconds against every TCP
# server but the mpechods with --no-store (mpechod runs with its store, in both modes), once with
# resets and once with FINs: 32 connections in flight that close as soon as they connect, one in
# ten after a 16 KiB chunk, and a probe client every 200 ms whose echo is timed.
#
# A prefork server starts afresh before and after its hold cell (its pool retires one idle process
# a second, so the processes a hold grows stay for a quarter of an hour).
#
# Every process started here is stopped by pid, with its descendants, when the script exits.
# Nothing but 127.0.0.1 is used, and nothing looks up a name.
#
# Environment: ROUNDS (3), DUR (seconds per cell, 2), TMO (per-request timeout in ms, 5000),
# UDP_TMO (the udp cells' timeout in ms, after which a request is lost, 200), HOLD_C (1000),
# BUDGET (seconds after which the cells left are skipped, 900), OUT (the results directory,
# bench/results), SERVERS (a subset, e.g. "tcpserver mpechod"), CELLS (a subset of the round's
# cells, e.g. "" for none), FLOOD_CELLS ("flood_rst flood_fin", or "" for none),
# FLOOD_DUR (8).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH=$ROOT/build/bin/mpecho-bench
MPECHOD=$ROOT/build/bin/mpechod
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-2}
TMO=${TMO:-5000}
UDP_TMO=${UDP_TMO:-200}
HOLD_C=${HOLD_C:-1000}
BUDGET=${BUDGET:-900}
FLOOD_DUR=${FLOOD_DUR:-8}
OUT=${OUT:-$ROOT/bench/results}
DATE=$(date -u +%F)
ALL_SERVERS="socat_pipe socat_exec ncat tcpserver xinetd mpechod mpechod_store mpechod_prefork
    mpechod_prefork_store mpechod_raw epoll socat_udp socat_r"
SERVERS=${SERVERS:-$ALL_SERVERS}
CELLS=${CELLS-conn1 conn32 rr1 rr32 stream stream_text hold udp1 udp32}
FLOOD_CELLS=${FLOOD_CELLS-flood_rst flood_fin}

WORK=$(mktemp -d /tmp/mpecho-compare.XXXXXX)
RAW=$WORK/raw.tsv
NOTES=$WORK/notes.txt
STARTED=$SECONDS
declare -A PID PORT CMD BASEKIDS
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

arm_cleanup

# ---- setup ----

install_missing() {
	local pkgs=()
	have socat || pkgs+=(socat)
	have ncat || pkgs+=(ncat)
	have tcpserver || pkgs+=(ucspi-tcp)
	have xinetd || pkgs+=(xinetd)
	have gnuplot || pkgs+=(gnuplot-nox)
	have cc || pkgs+=(gcc libc6-dev)
	[ ${#pkgs[@]} -eq 0 ] && return 0
	if [ "$(id -u)" = 0 ] && have apt-get; then
		log "installing ${pkgs[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" \
		    >"$WORK/apt.log" 2>&1 ||
		    { apt-get update >>"$WORK/apt.log" 2>&1 &&
		      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		      "${pkgs[@]}" >>"$WORK/apt.log" 2>&1; } ||
		    { tail -n 5 "$WORK/apt.log" >&2
		      log "apt-get failed; servers without their program are skipped"; }
	else
		log "missing ${pkgs[*]} and not root: servers without their program are skipped"
	fi
}

# The mpechod --prefork servers.
is_prefork() { case $1 in mpechod_prefork*) return 0 ;; esac; return 1; }

# Which servers serve UDP echo, and which TCP (socat_udp serves UDP only).
UDP_SERVERS="xinetd mpechod mpechod_store socat_udp"
serves_udp() { case " $UDP_SERVERS " in *" $1 "*) return 0 ;; esac; return 1; }
serves_tcp() { [ "$1" != socat_udp ]; }
# Whether server $1 has the protocol of cell $2; a cell is not run against one that has not.
serves_cell() {
	case $2 in
	udp*) serves_udp "$1" ;;
	# Store on and off with printable text (issue 15): mpechod alone.
	stream_text) case $1 in mpechod | mpechod_store | mpechod_raw | socat_r) return 0 ;; esac
		return 1 ;;
	*) [ "$1" = mpechod_raw ] && { [ "$2" = stream ]; return; }; serves_tcp "$1" ;;
	esac
}

# One xinetd service block: the internal echo of socket type $1 (stream or dgram), protocol $2,
# wait $3, on port $4.
xinetd_echo() {
	cat <<EOF

service echo
{
	type		= INTERNAL UNLISTED
	id		= echo-$1
	socket_type	= $1
	protocol	= $2
	wait		= $3
	user		= root
	port		= $4
	bind		= 127.0.0.1
	only_from	= 127.0.0.1
	instances	= UNLIMITED
	per_source	= UNLIMITED
	cps		= 1000000 1
	flags		= NOLIBWRAP
}
EOF
}

# xinetd's internal stream and dgram echo on a port of their own; no limits that a benchmark
# would trip.  The dgram echo runs in xinetd itself (its builtins are NO_FORK for datagrams),
# wait = yes as for any datagram service (no changes nothing: xinetd empties the socket after
# each datagram either way).
write_xinetd_conf() {
	{
		cat <<EOF
defaults
{
	instances	= UNLIMITED
	per_source	= UNLIMITED
	cps		= 1000000 1
	log_type	= FILE $WORK/xinetd.service.log
	log_on_success	=
	log_on_failure	=
}
EOF
		xinetd_echo stream tcp no "$1"
		xinetd_echo dgram udp yes "$1"
	} >"$WORK/xinetd.conf"
}

# mpechod serves UDP echo too, on the same port, with no rate limits (its defaults, 100 replies
# a second per source and 10000 in all, would measure the limits).
MPECHOD_UDP=(--udp --udp-per-source 0 --udp-rate 0)

server_argv() {
	local name=$1 port=$2 max=$((HOLD_C * 2))
	case $name in
	socat_pipe) ARGV=(socat "TCP-LISTEN:$port,fork,reuseaddr,bind=127.0.0.1,backlog=1024" PIPE) ;;
	socat_exec) ARGV=(socat "TCP-LISTEN:$port,fork,reuseaddr,bind=127.0.0.1,backlog=1024" EXEC:cat) ;;
	ncat) ARGV=(ncat -n -l -k --max-conns "$max" --exec /bin/cat 127.0.0.1 "$port") ;;
	tcpserver) ARGV=(tcpserver -HRl0 -c "$max" -b 1024 127.0.0.1 "$port" cat) ;;
	xinetd)
		write_xinetd_conf "$port"
		ARGV=(xinetd -dontfork -filelog "$WORK/xinetd.log" -f "$WORK/xinetd.conf") ;;
	mpechod) ARGV=("$MPECHOD" -p "$port" -b 127.0.0.1 --no-store -c "$max" "${MPECHOD_UDP[@]}") ;;
	mpechod_store) ARGV=("$MPECHOD" -p "$port" -b 127.0.0.1 -s "$WORK/store.jsonl" -c "$max"
	    "${MPECHOD_UDP[@]}") ;;
	# The store in its raw format (issue 15), in the stream cells only; --fsync is everysec,
	# the default.
	mpechod_raw) ARGV=("$MPECHOD" -p "$port" -b 127.0.0.1 -s "$WORK/store.raw" --store-format raw
	    -c "$max") ;;
	# The same two with a pool of processes that accept for themselves (issue 12); -c bounds
	# the pool.  They serve UDP as the others do, but are measured on TCP only.
	mpechod_prefork) ARGV=("$MPECHOD" -p "$port" -b 127.0.0.1 --no-store --prefork -c "$max"
	    "${MPECHOD_UDP[@]}") ;;
	mpechod_prefork_store) ARGV=("$MPECHOD" -p "$port" -b 127.0.0.1 -s "$WORK/pstore.jsonl"
	    --prefork -c "$max" "${MPECHOD_UDP[@]}") ;;
	# The yardstick: one process, one epoll loop, no store (bench/epoll_echo.c).
	epoll) ARGV=("$WORK/epoll_echo" 127.0.0.1 "$port") ;;
	# One process per datagram, echoing through a pipe to itself: the lighter of socat's
	# two echoes (EXEC:cat forks and execs a cat for each datagram besides).
	socat_udp) ARGV=(socat "UDP-RECVFROM:$port,bind=127.0.0.1,fork" PIPE) ;;
	# socat's own traffic dump (issue 24): the peer that keeps what it echoes.  socat opens
	# the -r file once, before it listens (O_WRONLY|O_APPEND|O_CREAT, seen in
	# /proc/PID/fdinfo), so every forked child appends to that one open file: each read
	# (8192 bytes at most, socat's default -b) is one write(2), written before it goes into
	# the pipe, connections interleaved by read, nothing saying which connection a byte came
	# from.  Checked with three connections at once: each line of each was in the file once,
	# and emptying the file (as run_cell does) left later writes at its new start.
	socat_r) ARGV=(socat -r "$WORK/socat_r.dump"
	    "TCP-LISTEN:$port,fork,reuseaddr,bind=127.0.0.1,backlog=1024" PIPE) ;;
	esac
}

# Ready when a short rr run gets its echoes back, and a short udp run some (xinetd drops what
# comes while it echoes); 5 s at most.
wait_ready() {
	local name=$1 i
	for i in $(seq 50); do
		alive "${PID[$name]}" || return 1
		if { ! serves_tcp "$name" || echoes_tcp "${PORT[$name]}"; } &&
		    { ! serves_udp "$name" ||
		    "$BENCH" -d 0.1 -t 100 udp 127.0.0.1 "${PORT[$name]}" >/dev/null 2>&1; }; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

start_server() {
	local name=$1 prog
	PORT[$name]=$(free_port)
	server_argv "$name" "${PORT[$name]}"
	prog=${ARGV[0]}
	have "$prog" || [ -x "$prog" ] || { log "$name: no $prog; skipped"; return 1; }
	[ "$prog" = xinetd ] && ! command -v xinetd >/dev/null && ARGV[0]=/usr/sbin/xinetd
	CMD[$name]="${ARGV[*]}"
	"${ARGV[@]}" </dev/null >>"$WORK/$name.log" 2>&1 &
	PID[$name]=$!
	if ! wait_ready "$name"; then
		log "$name did not start; see below"
		tail -n 5 "$WORK/$name.log" >&2
		stop_tree "${PID[$name]}"
		PID[$name]=
		return 1
	fi
	BASEKIDS[$name]=$(descendants "${PID[$name]}" | wc -l)
	log "$name: pid ${PID[$name]} on 127.0.0.1:${PORT[$name]}: ${CMD[$name]}"
}

# Waits (5 s at most) until the server is back to the processes it had when idle, so a cell
# does not pay for the last one's exits.
settle() {
	local name=$1
	# A prefork pool does not shrink back within seconds, and its processes do not exit after
	# a connection: there is nothing to wait for.
	if is_prefork "$name"; then
		sleep 0.2
		return 0
	fi
	settle_tree "${PID[$name]}" "${BASEKIDS[$name]}" && return 0
	# Stuck children (a stalled stream's) stay until the server stops; later cells need not
	# wait for them again.
	BASEKIDS[$name]=$(descendants "${PID[$name]}" | wc -l)
	echo "$name: ${BASEKIDS[$name]} processes were still there 5 s after a cell" >>"$NOTES"
}

# ---- the matrix ----

# The CPU ticks of the fork-mode mpechod's long-lived children (its store, and its datagram
# process, idle in the TCP cells), or nothing for another server: sessions come and go.
helpers_ticks() {
	local k t=0 f
	case $1 in mpechod|mpechod_store|mpechod_raw) ;; *) return 0 ;; esac
	for k in $(cat /proc/"${PID[$1]}"/task/*/children 2>/dev/null); do
		f=$(sed 's/.*) //' /proc/"$k"/stat 2>/dev/null) || continue
		set -- $f
		t=$((t + ${12} + ${13}))
	done
	echo "$t"
}

# Adds "store_cpu_pct" (the store's CPU over the cell, as helpers_ticks counts it) to the cell's
# JSON: what the store costs beside the sessions (issue 15).
with_store_cpu() {
	local name=$1 out=$2 h0=$3 t0=$4 h1 ns
	h1=$(helpers_ticks "$name")
	if [ -z "$h0" ] || [ -z "$h1" ] || [ -z "$out" ] || [ "${out: -1}" != "}" ]; then
		printf '%s' "$out"
		return
	fi
	ns=$(( $(date +%s%N) - t0 ))
	printf '%s,"store_cpu_pct":%s}' "${out%\}}" \
	    "$(awk -v t=$((h1 - h0)) -v hz="$(getconf CLK_TCK)" -v ns="$ns" \
	    'BEGIN { printf "%.1f", (ns > 0 ? t / hz * 1e11 / ns : 0) }')"
}

run_cell() {
	local round=$1 name=$2 cell=$3 out rc helpers0 t0
	if [ -n "${PID[$name]:-}" ] && ! alive "${PID[$name]}"; then
		echo "round $round: $name had died before $cell; restarted it" >>"$NOTES"
		log "$name died; restarting it"
		stop_tree "${PID[$name]}"
		start_server "$name" || PID[$name]=
	elif [ -n "${PID[$name]:-}" ] && is_prefork "$name" && [ "$cell" = hold ]; then
		restart "$name"
	fi
	if [ -z "${PID[$name]:-}" ]; then
		printf '%s\t%s\t%s\tdown\tnull\n' "$round" "$name" "$cell" >>"$RAW"
		return
	fi
	helpers0=$(helpers_ticks "$name")
	t0=$(date +%s%N)
	out=$(bench_cell "$cell" "${PID[$name]}" "${PORT[$name]}" "$WORK/bench.err")
	rc=$?
	out=$(with_store_cpu "$name" "$out" "$helpers0" "$t0")
	printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$cell" "$rc" "${out:-null}" >>"$RAW"
	[ "$name" = mpechod_store ] && : >"$WORK/store.jsonl"
	[ "$name" = mpechod_raw ] && : >"$WORK/store.raw"
	[ "$name" = mpechod_prefork_store ] && : >"$WORK/pstore.jsonl"
	[ "$name" = socat_r ] && : >"$WORK/socat_r.dump"
	if is_prefork "$name" && [ "$cell" = hold ]; then
		restart "$name"
	else
		settle "$name"
	fi
}

# A prefork server starts afresh before and after its hold cell: before, so the hold counts
# the processes its connections need from the pool of a new server (--min-spare idle); after,
# so the next cells do not run with the thousand idle processes the hold left.
restart() {
	log "$1: restarting"
	stop_tree "${PID[$1]}"
	start_server "$1" || { PID[$1]=; echo "$1 could not be restarted" >>"$NOTES"; }
}

forkrate() {
	local round=$1 kind
	for kind in dynamic static; do
		[ -x "$WORK/forkrate-$kind" ] || continue
		printf '%s\tforkrate-%s\t-\t0\t%s\n' "$round" "$kind" \
		    "$(timeout 30 "$WORK/forkrate-$kind" "$DUR")" >>"$RAW"
	done
}

environment() {
	{
		echo "date=$(date -u '+%F %T UTC')"
		echo "kernel=$(uname -sr)"
		echo "cpus=$(nproc)"
		echo "cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
		echo "mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
		echo "rounds=$ROUNDS"
		echo "dur=$DUR"
		echo "tmo=$TMO"
		echo "udp_tmo=$UDP_TMO"
		echo "hold_c=$HOLD_C"
		echo "flood_dur=$FLOOD_DUR"
		echo "socat=$(socat -V 2>/dev/null | awk '/socat version/ { print $3; exit }')"
		echo "ncat=$(ncat --version 2>&1 | awk '{ print $3; exit }')"
		echo "tcpserver=$(dpkg-query -W -f '${Version}' ucspi-tcp 2>/dev/null)"
		echo "xinetd=$( (xinetd -version || /usr/sbin/xinetd -version) 2>&1 | awk '{ print $1; exit }')"
		echo "mpechod=$("$MPECHOD" -V 2>/dev/null | awk '{ print $2 }') (commit $(git -C "$ROOT" \
		    rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src Makefile \
		    2>/dev/null || echo ', with uncommitted changes'))"
		echo "bench=$("$BENCH" -V 2>/dev/null)"
		echo "cc=$(cc --version | head -n 1)"
	} >"$WORK/env.txt"
}

# The flood cells, once each, against every server but the mpechods without their store, in
# rotating order.
floods() {
	local cell name k=0
	[ -n "$FLOOD_CELLS" ] && log "flood cells"
	for cell in $FLOOD_CELLS; do
		k=$((k + 1))
		# shellcheck disable=SC2086
		for name in $(rotate "$k" $SERVERS); do
			case $name in mpechod | mpechod_prefork) continue ;; esac
			serves_tcp "$name" || continue
			[ "$name" = mpechod_raw ] && continue
			if [ $((SECONDS - STARTED)) -ge "$BUDGET" ]; then
				printf '1\t%s\t%s\tskipped\tnull\n' "$name" "$cell" >>"$RAW"
				continue
			fi
			run_cell 1 "$name" "$cell"
		done
	done
}

main() {
	local round cell name c k=0
	use_copies compare.sh
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
	install_missing
	cc -O2 -o "$WORK/forkrate-dynamic" "$HERE/forkrate.c" || exit 1
	cc -O2 -o "$WORK/epoll_echo" "$HERE/epoll_echo.c" || exit 1
	cc -O2 -static -o "$WORK/forkrate-static" "$HERE/forkrate.c" 2>/dev/null ||
	    log "no static libc: the static fork loop is skipped"
	environment
	echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/env.txt"
	: >"$RAW"
	: >"$NOTES"
	for name in $SERVERS; do
		start_server "$name" || { PID[$name]=; echo "$name: could not be started" >>"$NOTES"; }
	done
	for name in $SERVERS; do
		c=${CMD[$name]:-}
		echo "cmd_$name=${c//$WORK/WORKDIR}" >>"$WORK/env.txt"
	done
	for round in $(seq "$ROUNDS"); do
		log "round $round of $ROUNDS"
		forkrate "$round"
		# The order moves by one from cell to cell and from round to round (as in ab.sh):
		# one step per cell alone gives a cell the same order in every round whenever the
		# count of servers divides the count of cells.
		k=$round
		for cell in $CELLS; do
			k=$((k + 1))
			for name in $(rotate "$k" $SERVERS); do
				serves_cell "$name" "$cell" || continue
				if [ $((SECONDS - STARTED)) -ge "$BUDGET" ]; then
					printf '%s\t%s\t%s\tskipped\tnull\n' "$round" "$name" "$cell" >>"$RAW"
					continue
				fi
				run_cell "$round" "$name" "$cell"
			done
		done
		echo "load_after_round_$round=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/env.txt"
	done
	floods
	for name in $SERVERS; do
		[ -n "${PID[$name]:-}" ] && stop_tree "${PID[$name]}"
		PID[$name]=
	done
	echo "elapsed=$((SECONDS - STARTED))" >>"$WORK/env.txt"
	mkdir -p "$OUT"
	# The results keep their environment and notes, so report.py can redo the markdown.
	{
		sed 's/^/#env\t/' "$WORK/env.txt"
		sed 's/^/#note\t/' "$NOTES"
		cat "$RAW"
	} >"$OUT/$DATE.tsv"
	"$PYTHON" "$HERE/report.py" "$OUT/$DATE.tsv" "$OUT/$DATE" || exit 1
	if have gnuplot; then
		gnuplot -e "datafile='$OUT/$DATE.ratios.dat'; outbase='$OUT/$DATE'" "$HERE/plot.gp" ||
		    log "gnuplot failed"
	fi
	rm -f "$OUT/$DATE.ratios.dat"
	log "wrote $OUT/$DATE.md, .png, .svg, .tsv in $((SECONDS - STARTED)) s"
}

main "$@"
