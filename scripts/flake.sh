#!/bin/sh
# Runs the system tests RUNS times in both modes (fork, then every test server with --prefork)
# under a competing CPU load, and lists every test that failed at least once, with its failure.
# Exits 1 when any test failed (or a run ended badly without saying which test), 0 otherwise.
#
#   scripts/flake.sh [pytest arguments]      (make flake RUNS=3 runs it after building)
#
# RUNS (3), MPECHO_BIN (build/bin), PYTEST (python3 -m pytest), FLAKE_DIR (build/flake: one junit
# XML file and one log per run and mode), FLAKE_CPUS (stress-ng's CPU workers: as many as there
# are cores).  The arguments name what to run (tests/system by default).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
BIN=${MPECHO_BIN:-$ROOT/build/bin}
PYTEST=${PYTEST:-/usr/bin/python3 -m pytest}
DIR=${FLAKE_DIR:-$ROOT/build/flake}
CPUS=${FLAKE_CPUS:-$(nproc)}
[ $# -gt 0 ] || set -- "$ROOT/tests/system"

case $RUNS in
'' | *[!0-9]* | 0) echo "flake: RUNS must be a positive number, not '$RUNS'" >&2; exit 2 ;;
esac
command -v stress-ng >/dev/null || { echo "flake: stress-ng is missing (scripts/deps.sh)" >&2; exit 2; }

rm -rf "$DIR"
mkdir -p "$DIR"

# The load runs in a session of its own, so that its workers are stopped with it by its group
# id (its own pid), whatever way this script ends.
load=""
stop_load() {
	if [ -n "$load" ]; then
		kill -TERM "-$load" 2>/dev/null || kill -TERM "$load" 2>/dev/null || true
		wait "$load" 2>/dev/null || true
		load=""
	fi
}
trap 'stop_load' EXIT
trap 'stop_load; exit 130' INT
trap 'stop_load; exit 143' TERM
setsid stress-ng --cpu "$CPUS" --quiet >"$DIR/stress-ng.log" 2>&1 &
load=$!
echo "flake: $RUNS run(s) of $* in both modes, under stress-ng --cpu $CPUS (pid $load)"

bad=0
i=1
while [ "$i" -le "$RUNS" ]; do
	for mode in fork prefork; do
		args=""
		[ "$mode" = prefork ] && args=--prefork
		out="$DIR/run$i-$mode"
		start=$(date +%s)
		rc=0
		MPECHO_BIN=$BIN MPECHO_SERVER_ARGS=$args $PYTEST -q -rfE -p no:cacheprovider \
			--junitxml="$out.xml" "$@" >"$out.log" 2>&1 || rc=$?
		echo "flake: run $i $mode: $(tail -1 "$out.log") (exit $rc, $(($(date +%s) - start)) s)"
		[ "$rc" -eq 0 ] || bad=1
	done
	i=$((i + 1))
done
stop_load

# Every failure or error from the junit files: the test, how often, and its assertion line.
/usr/bin/python3 - "$DIR" "$RUNS" <<'EOF' || bad=1
import glob, os, sys
import xml.etree.ElementTree as ET

d, runs = sys.argv[1], int(sys.argv[2])
failed = {}  # (mode, test) -> [(run, line)]
for path in sorted(glob.glob(os.path.join(d, "run*.xml"))):
    run, mode = os.path.basename(path)[3:-4].split("-")
    for tc in ET.parse(path).getroot().iter("testcase"):
        for kind in ("failure", "error"):
            for f in tc.findall(kind):
                text = (f.text or "").splitlines()
                elines = [l[2:].strip() for l in text if l.startswith("E ")]
                line = elines[0] if elines else (f.get("message") or kind).splitlines()[0]
                if kind == "error":
                    line = "(error) " + line
                test = tc.get("classname", "").replace(".", "/") + ".py::" + tc.get("name", "")
                failed.setdefault((mode, test), []).append((run, line[:300]))
if not failed:
    print(f"flake: no test failed in {runs} run(s) of both modes")
    sys.exit(0)
print(f"flake: {len(failed)} test(s) failed at least once in {runs} run(s):")
for (mode, test), fails in sorted(failed.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    print(f"  {test} [{mode}] failed {len(fails)}/{runs}")
    for run, line in fails:
        print(f"      run {run}: {line}")
sys.exit(1)
EOF
if [ "$bad" -ne 0 ]; then
	echo "flake: FAILED (logs in $DIR)"
	exit 1
fi
echo "flake: passed"
