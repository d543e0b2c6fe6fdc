#!/usr/bin/env python3
"""bench/ab_report.py HEAD RAW WORKDIR NAME... - the markdown report of bench/ab.sh.

HEAD: "#key<TAB>value" lines (date, settings, machine, load, configs, notes); RAW: one line a
cell run, "round<TAB>config<TAB>cell<TAB>exit status<TAB>store bytes or -<TAB>mpecho-bench's
JSON"; the NAMEs in order, the first one the baseline.  A run with an exit status other than 0,
errors, or no figure is a failure: it is counted, and left out of the median.
"""
import json
import statistics
import sys

# cell -> [(row label, figure from the JSON, format)]
FIGURES = {
    "conn1": [("conn1 connect/s (C=1)", lambda r: r["conn_per_sec"], "{:,.0f}")],
    "conn32": [("conn32 connect/s (C=32)", lambda r: r["conn_per_sec"], "{:,.0f}")],
    "rr1": [("rr1 req/s (C=1)", lambda r: r["req_per_sec"], "{:,.0f}"),
            ("rr1 p50 µs (lower is better)", lambda r: r["latency_us"]["p50"], "{:,.0f}")],
    "rr32": [("rr32 req/s (C=32)", lambda r: r["req_per_sec"], "{:,.0f}")],
    "stream": [("stream MiB/s (binary)", lambda r: r["mib_per_sec"], "{:,.1f}")],
    "stream_text": [("stream_text MiB/s (ASCII)", lambda r: r["mib_per_sec"], "{:,.1f}")],
    "stream_ko": [("stream_ko MiB/s (UTF-8 Korean)", lambda r: r["mib_per_sec"], "{:,.1f}")],
}


def load(head_path, raw_path):
    head, runs = [], []
    with open(head_path, encoding="utf-8") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("\t")
            head.append((key.lstrip("#"), value))
    with open(raw_path, encoding="utf-8") as f:
        for line in f:
            rnd, name, cell, rc, size, out = line.rstrip("\n").split("\t", 5)
            try:
                r = json.loads(out)
            except ValueError:
                r = None
            ok = rc == "0" and isinstance(r, dict) and r.get("errors") == 0
            runs.append({"round": int(rnd), "name": name, "cell": cell, "ok": ok, "r": r,
                         "rc": rc, "size": None if size == "-" else int(size)})
    return head, runs


def figure(run, fn):
    try:
        return float(fn(run["r"]))
    except (KeyError, TypeError, ValueError):
        return None


def cells_in_order(runs):
    seen = []
    for run in runs:
        if run["cell"] not in seen:
            seen.append(run["cell"])
    return seen


def median_table(runs, names):
    base = names[0]
    lines = ["| cell | " + " | ".join(names) + " | " +
             " | ".join(f"{n}/{base}" for n in names[1:]) + " |",
             "|---|" + "---:|" * (2 * len(names) - 1)]
    failed = []
    for cell in cells_in_order(runs):
        for label, fn, fmt in FIGURES.get(cell, []):
            med = {}
            row = []
            for n in names:
                mine = [r for r in runs if r["cell"] == cell and r["name"] == n]
                vals = [v for v in (figure(r, fn) for r in mine if r["ok"]) if v is not None]
                bad = len(mine) - len(vals)
                note = f"{cell} / {n}: {bad} of {len(mine)} rounds failed"
                if bad and note not in failed:
                    failed.append(note)
                if not vals:
                    row.append("failed")
                    continue
                med[n] = statistics.median(vals)
                text = fmt.format(med[n])
                if len(vals) > 1:
                    text += f" ({fmt.format(min(vals))}–{fmt.format(max(vals))})"
                row.append(text + (f" [{bad} failed]" if bad else ""))
            for n in names[1:]:
                ok = n in med and base in med and med[base] > 0
                row.append(f"{med[n] / med[base]:.2f}x" if ok else "-")
            lines.append(f"| {label} | " + " | ".join(row) + " |")
    return lines, failed


def store_table(runs, names):
    """The STORE file's bytes over the bytes echoed, in the stream cells."""
    lines = []
    with_store = [n for n in names if any(r["name"] == n and r["size"] is not None for r in runs)]
    cells = [c for c in cells_in_order(runs) if c.startswith("stream")]
    if not with_store or not cells:
        return lines
    lines += ["", "Store file bytes per byte echoed (stream cells; median of the rounds):", "",
              "| cell | " + " | ".join(with_store) + " |", "|---|" + "---:|" * len(with_store)]
    for cell in cells:
        row = []
        for n in with_store:
            vals = [r["size"] / r["r"]["bytes"] for r in runs
                    if r["cell"] == cell and r["name"] == n and r["ok"] and r["size"] is not None
                    and r["r"].get("bytes")]
            row.append(f"{statistics.median(vals):.3f}" if vals else "-")
        lines.append(f"| {cell} | " + " | ".join(row) + " |")
    return lines


def main(argv):
    if len(argv) < 5:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 64
    head, runs = load(argv[1], argv[2])
    names = argv[4:]
    out = []
    notes = [v for k, v in head if k == "note"]
    for key, value in head:
        if key == "config":
            name, _, cmd = value.partition("\t")
            out.append(f"- config `{name}`: `{cmd.replace(argv[3], 'WORK')}`")
        elif key != "note":
            out.append(f"- {key.replace('_', ' ')}: {value}")
    out.append("")
    table, failed = median_table(runs, names)
    out += table
    out += store_table(runs, names)
    if failed or notes:
        out += ["", "Failures and notes:", ""] + [f"- {f}" for f in failed + notes]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
