#!/usr/bin/env python3
"""report.py - turns bench/compare.sh's raw cells into the results markdown and plot data.

Input: the .tsv compare.sh writes: "#env<TAB>key=value" and "#note<TAB>text" lines, then one
"round<TAB>server<TAB>cell<TAB>exit status<TAB>mpecho-bench's JSON" line per cell.  Output: OUT.md (tables of medians with
min-max over rounds, failures, CPU use, memory, fork cost, targets) and OUT.ratios.dat (every
figure as a ratio to mpechod --no-store, for bench/plot.gp).

The udp cells count losses (no echo within the timeout) apart from errors: UDP may drop, and
xinetd's dgram echo drops by design, so a udp cell fails only on errors, and its losses get a
table of their own.

A cell fails when any of its rounds exited non-zero, printed no JSON or counted an error: a
server that is fast but wrong, or fast only sometimes, gets no number.  The flood cells (run
once, not in every round) are the exception: their probes' errors are what they measure, so a
flood cell fails only on errors of the flood itself, and its probe columns read "N probe errors"
when any probe failed.
"""
import argparse
import json
import statistics
import sys

SERVERS = [
    ("socat_pipe", "socat PIPE"),
    ("socat_exec", "socat EXEC:cat"),
    ("ncat", "ncat --exec cat"),
    ("tcpserver", "tcpserver cat"),
    ("xinetd", "xinetd echo"),
    ("mpechod", "mpechod --no-store"),
    ("mpechod_store", "mpechod -s FILE"),
    ("mpechod_prefork", "mpechod --prefork --no-store"),
    ("mpechod_prefork_store", "mpechod --prefork -s FILE"),
    ("mpechod_raw", "mpechod -s FILE --store-format raw"),
    ("epoll", "epoll yardstick"),
    ("socat_udp", "socat UDP PIPE"),
    ("socat_r", "socat -r FILE PIPE"),
]
LABEL = dict(SERVERS)
REF = "mpechod"
STORE = "mpechod_store"
PREFORK = "mpechod_prefork"
PREFORK_STORE = "mpechod_prefork_store"
RAW = "mpechod_raw"
YARD = "epoll"      # bench/epoll_echo.c: a yardstick, not a peer
SOCAT_R = "socat_r"  # socat -r FILE: socat's traffic dump, the peer that keeps what it echoes
PEERS = [s for s, _ in SERVERS if not s.startswith("mpechod") and s != YARD]
ABS = "absolute"    # a target's "against" (ABS, unit): the figure itself, in that unit
US_PER = {"ms": 1000.0, "µs": 1.0}

# key, cell, path into the JSON, column title, higher is better, format
METRICS = [
    ("conn1", "conn1", ("conn_per_sec",), "connect/s C=1", True, "{:,.0f}"),
    ("conn32", "conn32", ("conn_per_sec",), "connect/s C=32", True, "{:,.0f}"),
    ("rr1_p50", "rr1", ("latency_us", "p50"), "rr p50 µs C=1", False, "{:,.1f}"),
    ("rr1_p99", "rr1", ("latency_us", "p99"), "rr p99 µs C=1", False, "{:,.1f}"),
    ("rr32_p50", "rr32", ("latency_us", "p50"), "rr p50 µs C=32", False, "{:,.0f}"),
    ("rr32_p99", "rr32", ("latency_us", "p99"), "rr p99 µs C=32", False, "{:,.0f}"),
    ("rr32_rate", "rr32", ("req_per_sec",), "rr req/s C=32", True, "{:,.0f}"),
    ("rr1_rate", "rr1", ("req_per_sec",), "rr req/s C=1", True, "{:,.0f}"),
    ("stream", "stream", ("mib_per_sec",), "stream MiB/s", True, "{:,.0f}"),
    ("stream_text", "stream_text", ("mib_per_sec",), "stream text MiB/s", True, "{:,.0f}"),
    ("pss", "hold", ("pss_kib_per_conn",), "PSS KiB per held conn", False, "{:,.1f}"),
    ("udp1_p50", "udp1", ("latency_us", "p50"), "udp p50 µs C=1", False, "{:,.1f}"),
    ("udp1_p99", "udp1", ("latency_us", "p99"), "udp p99 µs C=1", False, "{:,.1f}"),
    ("udp32_p50", "udp32", ("latency_us", "p50"), "udp p50 µs C=32", False, "{:,.0f}"),
    ("udp32_rate", "udp32", ("req_per_sec",), "udp req/s C=32", True, "{:,.0f}"),
    ("flood_rst", "flood_rst", ("flood_conn_per_sec",), "rst flood conn/s", True, "{:,.0f}"),
    ("flood_rst_p90", "flood_rst", ("probe_latency_us", "p90"), "rst flood probe p90 µs",
     False, "{:,.0f}"),
    ("flood_rst_max", "flood_rst", ("probe_latency_us", "max"), "rst flood probe max µs",
     False, "{:,.0f}"),
    ("flood_fin", "flood_fin", ("flood_conn_per_sec",), "fin flood conn/s", True, "{:,.0f}"),
    ("flood_fin_p90", "flood_fin", ("probe_latency_us", "p90"), "fin flood probe p90 µs",
     False, "{:,.0f}"),
    ("flood_fin_max", "flood_fin", ("probe_latency_us", "max"), "fin flood probe max µs",
     False, "{:,.0f}"),
]
MET = {m[0]: m for m in METRICS}
FLOOD_CELLS = ("flood_rst", "flood_fin")
ROUND_CELLS = ("conn1", "conn32", "rr1", "rr32", "stream", "stream_text", "hold", "udp1",
               "udp32")
UDP_CELLS = ("udp1", "udp32")

# name, (server, metric), (against: a server, or None for the best peer, metric; or ABS and
# the figure's divisor), goal, "ge" or "le"
TARGETS = [
    ("connect/s at C=32 ≥ 3× the best peer", (REF, "conn32"), (None, "conn32"), 3.0, "ge"),
    ("rr p50 at C=1 ≤ 1.1× the best peer's", (REF, "rr1_p50"), (None, "rr1_p50"), 1.1, "le"),
    ("rr req/s at C=32 ≥ the best peer's", (REF, "rr32_rate"), (None, "rr32_rate"), 1.0, "ge"),
    ("stream MiB/s ≥ the best peer's", (REF, "stream"), (None, "stream"), 1.0, "ge"),
    ("PSS per held connection ≤ half the best peer's", (REF, "pss"), (None, "pss"), 0.5, "le"),
    ("store on: connect/s at C=32 ≥ 0.8× store off", (STORE, "conn32"), (REF, "conn32"), 0.8,
     "ge"),
    ("store on: stream ≥ 0.5× store off", (STORE, "stream"), (REF, "stream"), 0.5, "ge"),
    ("store on: stream of text ≥ 0.5× store off", (STORE, "stream_text"), (REF, "stream_text"),
     0.5, "ge"),
    ("store on: binary stream ≥ 0.25× store off", (STORE, "stream"), (REF, "stream"), 0.25,
     "ge"),
    ("raw store: binary stream ≥ 0.5× store off", (RAW, "stream"), (REF, "stream"), 0.5, "ge"),
    ("store on: rr req/s at C=1 ≥ 0.9× store off", (STORE, "rr1_rate"), (REF, "rr1_rate"), 0.9,
     "ge"),
    ("store on: connect/s at C=32 ≥ 0.95× store off", (STORE, "conn32"), (REF, "conn32"), 0.95,
     "ge"),
    ("udp p50 at C=1 ≤ 1.1× its TCP rr p50 at C=1", (REF, "udp1_p50"), (REF, "rr1_p50"), 1.1,
     "le"),
    ("udp req/s at C=32 ≥ xinetd's udp echo", (REF, "udp32_rate"), ("xinetd", "udp32_rate"), 1.0,
     "ge"),
    ("store on: udp p50 at C=1 ≤ 1.1× its TCP rr p50 at C=1", (STORE, "udp1_p50"),
     (STORE, "rr1_p50"), 1.1, "le"),
    ("store on: udp req/s at C=32 ≥ xinetd's udp echo", (STORE, "udp32_rate"),
     ("xinetd", "udp32_rate"), 1.0, "ge"),
    ("prefork: connect/s at C=32 ≥ 10× fork mode", (PREFORK, "conn32"), (REF, "conn32"), 10.0,
     "ge"),
    ("prefork, store on: connect/s at C=32 ≥ 10× fork mode", (PREFORK_STORE, "conn32"),
     (STORE, "conn32"), 10.0, "ge"),
    ("prefork: connect/s at C=32 ≥ the epoll yardstick", (PREFORK, "conn32"), (YARD, "conn32"),
     1.0, "ge"),
    ("prefork: rr p50 at C=1 ≤ 1.1× fork mode's", (PREFORK, "rr1_p50"), (REF, "rr1_p50"), 1.1,
     "le"),
    ("prefork: rr req/s at C=32 ≥ fork mode's", (PREFORK, "rr32_rate"), (REF, "rr32_rate"), 1.0,
     "ge"),
    ("prefork, store on: rst flood probe p90 ≤ 50 ms", (PREFORK_STORE, "flood_rst_p90"),
     (ABS, "ms"), 50.0, "le"),
    ("prefork, store on: fin flood probe p90 ≤ 50 ms", (PREFORK_STORE, "flood_fin_p90"),
     (ABS, "ms"), 50.0, "le"),
    ("prefork: PSS per held connection ≤ 1.2× fork mode's", (PREFORK, "pss"), (REF, "pss"), 1.2,
     "le"),
    ("prefork, store on: PSS per held connection ≤ 1.2× fork mode's", (PREFORK_STORE, "pss"),
     (STORE, "pss"), 1.2, "le"),
    ("raw store: binary stream ≥ socat -r's", (RAW, "stream"), (SOCAT_R, "stream"), 1.0, "ge"),
    ("raw store: stream of text ≥ socat -r's", (RAW, "stream_text"), (SOCAT_R, "stream_text"),
     1.0, "ge"),
]


def load_raw(path):
    """{(server, cell): {round: (ok, result, why)}}, {kind: [forks/s]}, env, notes."""
    cells, forks, env, notes = {}, {}, {}, []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#env\t"):
                k, _, v = line[5:].partition("=")
                env[k] = v
                continue
            if line.startswith("#note\t"):
                notes.append(line[6:])
                continue
            parts = line.split("\t", 4)
            if len(parts) != 5:
                continue
            rnd, server, cell, rc, body = parts
            if server.startswith("forkrate-"):
                try:
                    forks.setdefault(server[9:], []).append(json.loads(body)["forks_per_sec"])
                except (ValueError, KeyError, TypeError):
                    pass
                continue
            cells.setdefault((server, cell), {})[int(rnd)] = judge(rc, body)
    return cells, forks, env, notes


def judge(rc, body):
    if rc == "skipped":
        return False, None, "skipped (time budget)"
    if rc == "down":
        return False, None, "the server was not running"
    try:
        r = json.loads(body)
    except ValueError:
        r = None
    if not isinstance(r, dict):
        why = "no result (killed by the time limit)" if rc in ("124", "137") else \
            f"no result, exit {rc}"
        return False, None, why
    if r.get("mode") == "flood" and not r.get("errors", 0) and rc in ("0", "1"):
        return True, r, ""
    if r.get("errors", 0) or rc != "0":
        kinds = ", ".join(f"{k} {v}" for k, v in r.get("error_kinds", {}).items() if v)
        why = f"{r.get('errors', 0)} errors ({kinds or 'exit ' + rc})"
        if r.get("first_error"):
            why += f": {r['first_error']}"
        return False, r, why
    return True, r, ""


def dig(r, path):
    for k in path:
        if not isinstance(r, dict) or r.get(k) is None:
            return None
        r = r[k]
    return float(r)


class Table:
    def __init__(self, cells):
        self.cells = cells

    def rounds(self, server, cell):
        return self.cells.get((server, cell), {})

    def failed(self, server, cell):
        rs = self.rounds(server, cell)
        return not rs or any(not ok for ok, _, _ in rs.values())

    def values(self, server, metric):
        """{round: value} for a metric, or None when the cell failed."""
        _, cell, path, *_ = MET[metric]
        if self.failed(server, cell):
            return None
        vals = {rnd: dig(r, path) for rnd, (ok, r, _) in self.rounds(server, cell).items()}
        vals = {k: v for k, v in vals.items() if v is not None}
        return vals or None

    def median(self, server, metric):
        v = self.values(server, metric)
        return statistics.median(v.values()) if v else None

    def best_peer(self, metric):
        higher = MET[metric][4]
        cands = [(self.median(p, metric), p) for p in PEERS]
        cands = [c for c in cands if c[0] is not None]
        if not cands:
            return None
        return (max if higher else min)(cands)[1]


def fmt_range(vals, fmt):
    xs = sorted(vals)
    med = statistics.median(xs)
    if len(xs) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(xs[0])}–{fmt.format(xs[-1])})"


def present(t, servers):
    return [s for s in servers if any(k[0] == s for k in t.cells)]


def probe_errors(t, s, cell):
    """The probe errors of a flood cell over its rounds."""
    return sum(r.get("probe_errors", 0) for ok, r, _ in t.rounds(s, cell).values() if r)


def results_table(t, servers, out, cols):
    out.append("| Server | " + " | ".join(m[3] for m in cols) + " |")
    out.append("|---|" + "---:|" * len(cols))
    for s in servers:
        row = []
        for m in cols:
            v = t.values(s, m[0])
            if m[1] in FLOOD_CELLS and "probe" in m[3] and probe_errors(t, s, m[1]):
                row.append(f"{probe_errors(t, s, m[1])} probe errors")
            elif v is None:
                row.append("fail" if t.rounds(s, m[1]) else "–")
            else:
                row.append(fmt_range(v.values(), m[5]))
        out.append(f"| {LABEL[s]} | " + " | ".join(row) + " |")


def failures(t, servers, out):
    lines = []
    for s in servers:
        for cell in ROUND_CELLS + FLOOD_CELLS:
            for rnd, (ok, r, why) in sorted(t.rounds(s, cell).items()):
                if not ok:
                    lines.append(f"- {LABEL[s]}, {cell}, round {rnd}: {why}")
                elif r and r.get("probe_errors"):
                    lines.append(f"- {LABEL[s]}, {cell}: {r['probe_errors']} of {r['probes']} "
                                 f"probes failed: {r.get('probe_first_error')}")
    if lines:
        out.append("")
        out.append("Failed cells and probes (every error is listed; the first error of each run "
                   "is quoted):")
        out.append("")
        out.extend(lines)


def cpu_table(t, servers, out):
    cells = [("conn1", "connect C=1"), ("conn32", "connect C=32"), ("rr1", "rr C=1"),
             ("rr32", "rr C=32"), ("stream", "stream")]
    if udp_run(t):
        cells += [("udp1", "udp C=1"), ("udp32", "udp C=32")]
    out.append("| Server | " + " | ".join(c[1] for c in cells) + " |")
    out.append("|---|" + "---:|" * len(cells))
    for s in servers:
        row = []
        for cell, _ in cells:
            rs = [r for ok, r, _ in t.rounds(s, cell).values() if r]
            sv = [r["server_cpu_pct"] for r in rs if "server_cpu_pct" in r]
            cv = [r["client_cpu_pct"] for r in rs if "client_cpu_pct" in r]
            mv = [r["machine_cpu_pct"] for r in rs if "machine_cpu_pct" in r]
            row.append(f"{statistics.median(sv):.0f} / {statistics.median(cv):.0f} / "
                       f"{statistics.median(mv):.0f}" if sv and cv and mv else "–")
        out.append(f"| {LABEL[s]} | " + " | ".join(row) + " |")


def store_cpu_table(t, out):
    """The store process's own CPU (compare.sh's store_cpu_pct: the fork-mode server's children
    that outlive the cell's sessions), medians in % of one CPU."""
    cells = [("conn32", "connect C=32"), ("rr1", "rr C=1"), ("rr32", "rr C=32"),
             ("stream", "stream"), ("stream_text", "stream text")]
    rows = []
    for s in (REF, STORE, RAW):
        row = []
        for cell, _ in cells:
            v = [r["store_cpu_pct"] for ok, r, _ in t.rounds(s, cell).values()
                 if r and "store_cpu_pct" in r]
            row.append(f"{statistics.median(v):.0f}" if v else "–")
        if any(x != "–" for x in row):
            rows.append(f"| {LABEL[s]} | " + " | ".join(row) + " |")
    if not rows:
        return
    out += ["", "## The store's CPU", "",
            "The CPU of mpechod's store process (with its idle datagram process) in the "
            "measured window, medians in % of one CPU: what the store costs beside the "
            "sessions, whose CPU is in the server's figure above.", "",
            "| Server | " + " | ".join(c[1] for c in cells) + " |",
            "|---|" + "---:|" * len(cells)] + rows


def udp_run(t):
    return any(k[1] in UDP_CELLS for k in t.cells)


def udp_section(t, env, servers, out):
    """What the udp cells lost: medians over the rounds of the requests answered in the window,
    those lost (no echo within the timeout) and those of them echoed later."""
    if not udp_run(t):
        return
    tmo = env.get("udp_tmo", "200")
    out.append("## UDP echo")
    out.append("")
    out.append("`mpecho-bench udp`: each client sends a 64-byte datagram, waits for its echo, then "
               f"sends the next; a request with no echo within {tmo} ms is lost (not an error: "
               "the client goes on with the next one, so each loss costs its client "
               f"{tmo} ms), and an echo that comes later still is late.  Wrong bytes, a "
               "datagram never sent or a second echo would be errors and fail the cell.  The "
               "servers: xinetd's internal dgram echo (`wait = yes`, in the xinetd process); "
               "socat `UDP-RECVFROM:P,fork PIPE` (a process per datagram, echoing through a "
               "pipe to itself; `EXEC:cat` would fork and exec a cat per datagram besides); "
               "mpechod `--udp --udp-per-source 0 --udp-rate 0` (one datagram process, "
               "batches of recvmmsg/sendmmsg; with its store, each datagram recorded before it "
               "is echoed).  xinetd empties its socket after each datagram it echoes (its "
               "`drain()`, there to stop a looping service), so every request that arrives "
               "meanwhile is lost: its figures are what a client of it gets.")
    out.append("")
    out.append("| Server | requests C=1 | lost C=1 | late C=1 | requests C=32 | lost C=32 | "
               "late C=32 |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for s in servers:
        if not any(t.rounds(s, c) for c in UDP_CELLS):
            continue
        row = []
        for cell in UDP_CELLS:
            rs = [r for ok, r, _ in t.rounds(s, cell).values() if r]
            for key in ("requests", "lost", "late"):
                xs = [r[key] for r in rs if key in r]
                row.append(f"{statistics.median(xs):,.0f}" if xs else "–")
        out.append(f"| {LABEL[s]} | " + " | ".join(row) + " |")
    out.append("")


def memory_table(t, servers, out):
    out.append("| Server | PSS KiB per conn | page tables KiB per conn | "
               "server processes per conn | PSS before, KiB |")
    out.append("|---|---:|---:|---:|---:|")
    for s in servers:
        rs = [r for ok, r, _ in t.rounds(s, "hold").values() if ok and r]
        if not rs:
            out.append(f"| {LABEL[s]} | {'fail' if t.rounds(s, 'hold') else '–'} | | | |")
            continue

        def med(f):
            xs = [f(r) for r in rs]
            xs = [x for x in xs if x is not None]
            return statistics.median(xs) if xs else None

        cols = (med(lambda r: r.get("pss_kib_per_conn")),
                med(lambda r: r.get("pte_kib_per_conn")),
                med(lambda r: (r["server_procs"] - r["server_procs_baseline"]) / r["held"]
                    if r.get("held") and "server_procs" in r else None),
                med(lambda r: r.get("pss_kib_baseline")))
        cells = [("?" if v is None else f.format(v))
                 for v, f in zip(cols, ("{:.1f}", "{:.1f}", "{:.2f}", "{:.0f}"))]
        out.append(f"| {LABEL[s]} | " + " | ".join(cells) + " |")


def target_label(server, metric, mine_metric):
    """The column "Compared with": the server, and the figure when it is another one."""
    if metric == mine_metric:
        return LABEL[server]
    return f"{LABEL[server]}, {MET[metric][3]}"


def absolute_target(t, mine_s, metric, unit, goal, way):
    """A target on a figure itself (a latency in µs against a goal in unit): its median
    (min-max) in that unit, and the result."""
    cell = MET[metric][1]
    mine = t.values(mine_s, metric)
    if not t.rounds(mine_s, cell):
        return "–", f"n/a ({cell} was not run against {LABEL[mine_s]})"
    if mine is None:
        return "–", f"**missed** ({LABEL[mine_s]} failed the cell)"
    xs = [v / US_PER[unit] for v in mine.values()]
    med = statistics.median(xs)
    rng = f"{med:.1f} ({min(xs):.1f}–{max(xs):.1f})" if len(xs) > 1 else f"{med:.1f}"
    if cell in FLOOD_CELLS and probe_errors(t, mine_s, cell):
        return rng, f"**missed** ({probe_errors(t, mine_s, cell)} probe errors)"
    met = med >= goal if way == "ge" else med <= goal
    return rng, "met" if met else "**missed**"


def target_rows(t, out):
    summary = []
    out.append("| Target | Compared with | Ratio, median (min–max) | Goal | Result |")
    out.append("|---|---|---:|---:|---|")
    for name, (mine_s, metric), (other, other_metric), goal, way in TARGETS:
        sign = "≥" if way == "ge" else "≤"
        if other == ABS:
            rng, res = absolute_target(t, mine_s, metric, other_metric, goal, way)
            vs = f"the figure itself, in {other_metric}"
            out.append(f"| {name} | {vs} | {rng} | {sign} {goal:g} {other_metric} | {res} |")
            summary.append(f"{res.replace('**', ''):8} {rng:>20}  {name}")
            continue
        if other is None:
            other = t.best_peer(other_metric)
        mine = t.values(mine_s, metric)
        theirs = t.values(other, other_metric) if other else None
        if other is None:
            vs, rng, res = "no peer passed", "–", "n/a"
        elif not t.rounds(mine_s, MET[metric][1]) or not t.rounds(other, MET[other_metric][1]):
            missing, cell = (mine_s, MET[metric][1]) if not t.rounds(mine_s, MET[metric][1]) \
                else (other, MET[other_metric][1])
            vs, rng = target_label(other, other_metric, metric), "–"
            res = f"n/a ({cell} was not run against {LABEL[missing]})"
        elif mine is None or theirs is None:
            vs, rng = target_label(other, other_metric, metric), "–"
            res = f"**missed** ({LABEL[mine_s if mine is None else other]} failed the cell)"
        else:
            ratios = [mine[r] / theirs[r] for r in mine if r in theirs and theirs[r]]
            med = statistics.median(ratios)
            met = med >= goal if way == "ge" else med <= goal
            rng = f"{med:.3f} ({min(ratios):.3f}–{max(ratios):.3f})" if len(ratios) > 1 \
                else f"{med:.3f}"
            vs, res = target_label(other, other_metric, metric), ("met" if met else "**missed**")
        out.append(f"| {name} | {vs} | {rng} | {sign} {goal:g} | {res} |")
        summary.append(f"{res.replace('**', ''):8} {rng:>20}  {name} (vs {vs})")
    return summary


def ratios_dat(t, servers, path):
    """Rows: the figures; columns: each server's median over mpechod --no-store's."""
    cols = [s for s in servers if s != REF]
    with open(path, "w") as f:
        f.write("figure " + " ".join('"' + LABEL[s] + '"' for s in cols) + "\n")
        for m in METRICS:
            if m[1] in FLOOD_CELLS:
                continue    # mpechod --no-store is not flooded: there is nothing to divide by
            ref = t.median(REF, m[0])
            vals = []
            for s in cols:
                v = t.median(s, m[0])
                vals.append(f"{v / ref:.4g}" if v is not None and ref else "?")
            f.write(f'"{m[3]}" ' + " ".join(vals) + "\n")


def header(env, out):
    out.append(f"# Forking echo servers on loopback, {env.get('date', '?')}")
    out.append("")
    out.append(f"Machine: {env.get('cpus', '?')} × {env.get('cpu_model', '?')}, "
               f"{env.get('mem', '?')}, {env.get('kernel', '?')}.  The client (mpecho-bench, "
               "one worker process per CPU) and the server share the CPUs.  Load average "
               f"before the run: {env.get('load_before', '?')}; after each round: " +
               ", ".join(env[k] for k in sorted(env) if k.startswith("load_after_round_")) +
               ".")
    out.append("")
    out.append(f"Each cell ran {env.get('dur', '?')} s, against every server before the next "
               "cell (the server order rotates), and the whole matrix "
               f"{env.get('rounds', '?')} times; figures are medians with min–max over the "
               f"rounds.  The run took {env.get('elapsed', '?')} s.  mpecho-bench verified "
               "every byte echoed: a cell with an error in any round reads **fail**, and has "
               "no number.  Connects close with a reset (`--rst`) for every server, so the "
               "client never runs out of ports to TIME_WAIT.")


def flood_run(t):
    return any(k[1] in FLOOD_CELLS for k in t.cells)


def flood_section(t, env, out):
    if not flood_run(t):
        return
    out.append("## A flood of dead connections")
    out.append("")
    out.append(f"`mpecho-bench flood` for {env.get('flood_dur', '8')} s, once per server: 32 "
               "connections in flight that close as soon as they connect, with a reset (rst) "
               "or a FIN (fin), one in ten after sending a 16 KiB chunk, while a probe client "
               "connects every 200 ms, sends 32 bytes and times their echo (connect to last "
               "byte; an error past 5 s).  The flood's rate (the last columns of the results "
               "table) is what the server let through; the probes' latency is what a real client "
               "waited meanwhile.  mpechod --no-store is not flooded; a probe column reads "
               "\"N probe errors\" when any probe failed.")
    out.append("")


def forks_section(forks, t, out):
    out.append("## What fork costs here")
    out.append("")
    out.append("A bare loop of fork(), _exit(0) in the child and waitpid() (bench/forkrate.c), "
               "measured in every round of the same run:")
    out.append("")
    for kind in ("dynamic", "static"):
        if forks.get(kind):
            out.append(f"- {kind}ally linked: {fmt_range(forks[kind], '{:,.0f}')} forks/s")
    ref = t.median(REF, "conn32")
    if ref and forks.get("dynamic"):
        out.append(f"- mpechod --no-store served {ref:,.0f} connect/s at C=32, "
                   f"{100 * ref / statistics.median(forks['dynamic']):.0f}% of the dynamic "
                   "loop's rate (each connection costs a fork, an exit and a wait, plus the "
                   "TCP work on both sides, on the same 2 CPUs).")


def prefork_section(forks, t, out):
    """Issue 12's connect figures in absolute terms beside the fork rate of the same run: the
    10x goal came from a machine where a fork, an exit and a wait cost 536 µs."""
    rows = [(s, t.values(s, "conn32")) for s in (REF, PREFORK, STORE, PREFORK_STORE, YARD)]
    rows = [(s, v) for s, v in rows if t.rounds(s, "conn32")]
    if not any(s in (PREFORK, PREFORK_STORE) for s, _ in rows):
        return
    out.append("")
    out.append("## Prefork and fork mode (issue 12)")
    out.append("")
    out.append("connect/s at C=32 with reset close, medians (min–max) over the rounds, beside "
               "what a bare fork, _exit and waitpid loop does in the same run:")
    out.append("")
    for s, v in rows:
        out.append(f"- {LABEL[s]}: " +
                   (fmt_range(v.values(), "{:,.0f}") + " connect/s" if v else "failed"))
    for kind in ("dynamic", "static"):
        if forks.get(kind):
            out.append(f"- fork loop, {kind}ally linked: "
                       f"{fmt_range(forks[kind], '{:,.0f}')} forks/s "
                       f"({1e6 / statistics.median(forks[kind]):.0f} µs each)")
    out.append("")
    here = ""
    if forks.get("dynamic"):
        cost = 1e6 / statistics.median(forks["dynamic"])
        here = (f"  Here the dynamic loop's fork costs {cost:.0f} µs ({536 / cost:.1f} times "
                "less), and the TCP work of both sides, on the same 2 CPUs, is a larger share "
                "of each connection's cost: a pool saves the fork, not that work.")
    out.append("The goal of 10 times fork mode's rate was set on a machine where fork, exit and "
               "wait cost 536 µs (1,866/s) and fork mode served 738 connect/s, so that fork "
               "bounded it." + here + "  Read the ratio beside the absolute figures, and "
               "beside the yardstick, which forks nothing.")


def commands(env, servers, out):
    out.append("## How it was run")
    out.append("")
    out.append("`make bench` (or `bench/compare.sh`; ROUNDS, DUR, TMO, HOLD_C, SERVERS "
               "override the defaults).  Versions: " +
               ", ".join(f"{k} {env[k]}" for k in ("socat", "ncat", "tcpserver", "xinetd",
                                                   "mpechod") if env.get(k)) + ".")
    out.append("")
    out.append("```")
    for s in servers:
        if env.get("cmd_" + s):
            out.append(f"{s:14} {env['cmd_' + s]}")
    dur, tmo, hold = env.get("dur", "2"), env.get("tmo", "5000"), env.get("hold_c", "1000")
    out.append("")
    out.append(f"common         mpecho-bench --json -d {dur} -t {tmo} --pid SERVERPID ... "
               "127.0.0.1 PORT")
    for cell, args in (("conn1", "-c 1 --rst connect"), ("conn32", "-c 32 --rst connect"),
                       ("rr1", "-c 1 rr"), ("rr32", "-c 32 rr"), ("stream", "-c 1 stream"),
                       ("stream_text", "-c 1 --text stream"),
                       ("hold", f"-c {hold} hold")):
        out.append(f"{cell:14} {args}")
    udp_tmo = env.get("udp_tmo")
    for cell, args in (("udp1", f"-t {udp_tmo} -c 1 udp"), ("udp32", f"-t {udp_tmo} -c 32 udp")) \
            if udp_tmo else ():
        out.append(f"{cell:14} {args}")
    for cell in FLOOD_CELLS if env.get("flood_dur") else ():
        out.append(f"{cell:14} -d {env['flood_dur']} -c 32 --flood-close {cell[6:]} flood")
    out.append("```")
    out.append("")
    out.append("WORKDIR is the run's temporary directory; mpechod and mpecho-bench run from "
               "copies of build/bin made when the run starts.")
    out.append("")
    out.append("socat is run twice: with `PIPE` (one process per connection; it echoes through "
               "a pipe to itself and can deadlock on a stream when the pipe fills while its "
               "blocking write waits) and with `EXEC:cat` (a socat and a cat per connection, "
               "which cannot).  socat and tcpserver get a listen backlog of 1024; ncat's (10) "
               "and xinetd's (64) are fixed.  Sizes: 64-byte messages, 65536-byte stream "
               "writes, binary pseudo-random payload.")
    if env.get("cmd_" + SOCAT_R):
        out.append("")
        out.append("socat -r FILE (issue 24) is socat PIPE that also appends every byte it reads "
                   "from the client to FILE (one file opened before it listens, shared by every "
                   "forked child, a write(2) per read of up to 8192 bytes): the peer that keeps "
                   "what it echoes, for mpechod's raw store.  It is a peer in the best-peer "
                   "targets too; its FILE is emptied after each cell.")
    if any(env.get("cmd_" + s) for s in (PREFORK, PREFORK_STORE)):
        out.append("")
        out.append("The mpechod --prefork servers are started afresh before and after their hold "
                   "cell: their pool retires one idle process a second, so a hold measured "
                   "after another cell would find the processes it needs already there, and the "
                   "cells after a hold would run beside a thousand idle processes.")
    if env.get("cmd_" + YARD):
        out.append("")
        out.append("The epoll yardstick (bench/epoll_echo.c, built with `cc -O2`) is one "
                   "process with one level-triggered epoll loop over nonblocking sockets: "
                   "accept4 until EAGAIN, read and write back, keep only what the socket would "
                   "not take, close on EOF or error.  It keeps no store and forks nothing.")


def main():
    ap = argparse.ArgumentParser(description="compare.sh's results to markdown")
    ap.add_argument("results", help="the .tsv compare.sh wrote")
    ap.add_argument("out", help="output path without extension: OUT.md, OUT.ratios.dat")
    a = ap.parse_args()
    cells, forks, env, notes = load_raw(a.results)
    t = Table(cells)
    servers = present(t, [s for s, _ in SERVERS])
    out = []
    header(env, out)
    out += ["", "## Results", ""]
    results_table(t, servers, out, [m for m in METRICS if
                                    (flood_run(t) or m[1] not in FLOOD_CELLS) and
                                    (udp_run(t) or m[1] not in UDP_CELLS)])
    failures(t, servers, out)
    if notes:
        out += ["", "Notes from the run:", ""] + ["- " + n for n in notes]
    out += ["", "## Targets", "",
            "mpechod --no-store against the best peer of each figure (the best median among "
            "socat, ncat, tcpserver and xinetd cells that did not fail), as the median of the "
            "per-round ratios; then mpechod with its store against itself without; then "
            "mpechod's udp (issue 17), without and with its store, against its own TCP rr and "
            "against xinetd's udp echo; then mpechod --prefork (issue 12) against fork mode "
            "with the same store setting, against the epoll yardstick, and its flood probes' "
            "p90 in ms; last, mpechod's raw store against socat -r FILE PIPE.", ""]
    summary = target_rows(t, out)
    out += ["", f"![Ratios to mpechod --no-store]({a.out.rsplit('/', 1)[-1]}.png)", "",
            "The plot shows each server's medians over mpechod --no-store's, on a log scale: "
            "above 1 is more connections, requests or MiB/s, but also more latency or "
            "memory.", ""]
    udp_section(t, env, servers, out)
    flood_section(t, env, out)
    forks_section(forks, t, out)
    prefork_section(forks, t, out)
    out += ["", "## CPU use in the measured window", "",
            "Server / client / whole machine, medians in % of one CPU (200% is both CPUs), "
            "from /proc: the server's whole process tree, including the children it reaped; "
            "the bench's workers; and all CPUs' time less their idle time.  Where the "
            "machine's figure is well above the other two together, something else ran at "
            "the same time.",
            ""]
    cpu_table(t, servers, out)
    store_cpu_table(t, out)
    out += ["", "## Memory per held connection", "",
            f"{env.get('hold_c', '1000')} idle connections, each checked to echo before and "
            "after.  PSS is summed over the server's process tree from smaps_rollup, less the "
            "sum before the connections opened, over the connections held.  PSS leaves out "
            "the kernel's share: the page tables (VmPTE, summed the same way) and, for each "
            "process, a 16 KiB kernel stack and its task structures.", ""]
    memory_table(t, servers, out)
    out.append("")
    commands(env, servers, out)
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(out) + "\n")
    ratios_dat(t, servers, a.out + ".ratios.dat")
    print("Targets (mpechod --no-store vs the best peer; store on vs off; udp; prefork):")
    for line in summary:
        print("  " + line)


if __name__ == "__main__":
    sys.exit(main())
