"""Compare checkouts of the project (e.g. before and after a change) on bench/serving.py or bench/export.py,
alternating them round by round (ABCABC...) in one session so that the drift of a shared machine falls on all.

Each checkout runs its *own* bench script with its own code, against its own database (one per checkout
and bench: <db-prefix>_<kind>_<label>, created, migrated and seeded by the bench itself on its first run,
reused after), so a schema that differs between commits cannot break a shared one. The 1-minute load
average is read before and after each run. At the end it prints, per figure: each run, the median per
checkout, the per-round ratio to the first checkout and the spread of that ratio (min-max), and the
command that reproduces the table.

    # three checkouts (git worktree add --detach DIR COMMIT, each with .venv linked in)
    .venv/bin/python bench/compare_commits.py serving --rounds 3 before=../b15_before core=../b15_core main=../b15_main \
        -- --tasks 20000 --duration 15 --scenarios saturation,realistic --realistic-annotators 100
    .venv/bin/python bench/compare_commits.py export --rounds 3 before=../b15_before export=../b15_export main=../b15_main \
        -- --rankings 150000 --format pairs

The first checkout is the baseline of the ratios. Arguments after "--" go to every checkout's bench unchanged,
so use only options all of them accept (read each one's --help).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

SERVING_HEAD = re.compile(r"^== (?P<scenario>[\w-]+)[^:]*: (?P<rps>[\d.]+) req/s measured over [\d.]+ s; (?P<subs>[\d.]+) submissions/s")
SERVING_LAT = re.compile(r"^\s+(?P<what>next-task|submit)\s+p50/p95/p99 = (?P<p50>[\d.]+) / (?P<p95>[\d.]+) / (?P<p99>[\d.]+) ms")
SERVING_CPU = re.compile(r"CPU per request: app (?P<app>[\d.]+) ms, PostgreSQL (?P<db>[\d.]+) ms")
SERVING_INV = re.compile(r"^\s+invariants: (?P<ok>OK|VIOLATED)")
EXPORT_LINE = re.compile(r"^(?:round \d+, this checkout: )?export (?P<fmt>\S+): .* -> (?P<rows>\d+) rows .* in (?P<seconds>[\d.]+) s = .*"
                         r"CPU time of the export process (?P<cpu>[\d.]+) s.*peak RSS (?P<rss>\d+) MB")


def parse_serving(out: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    scenario = None
    for line in out.splitlines():
        if m := SERVING_HEAD.match(line):
            scenario = m["scenario"]
            figures[f"{scenario} req/s"] = float(m["rps"])
            figures[f"{scenario} submits/s"] = float(m["subs"])
        elif scenario and (m := SERVING_LAT.match(line)):
            figures[f"{scenario} {m['what']} p50 ms"] = float(m["p50"])
            figures[f"{scenario} {m['what']} p95 ms"] = float(m["p95"])
        elif scenario and (m := SERVING_CPU.search(line)):
            figures[f"{scenario} app CPU ms/req"] = float(m["app"])
            figures[f"{scenario} db CPU ms/req"] = float(m["db"])
        elif scenario and (m := SERVING_INV.match(line)):
            figures[f"{scenario} invariants ok"] = 1.0 if m["ok"] == "OK" else 0.0
    return figures


def parse_export(out: str) -> dict[str, float]:
    for line in out.splitlines():
        if m := EXPORT_LINE.match(line):
            return {f"{m['fmt']} s": float(m["seconds"]), f"{m['fmt']} CPU s": float(m["cpu"]),
                    f"{m['fmt']} peak MB": float(m["rss"]), f"{m['fmt']} rows": float(m["rows"])}
    return {}


def run_one(kind: str, label: str, root: Path, bench_args: list[str], db_prefix: str, port: int, log_dir: Path, round_no: int) -> dict:
    db = f"postgresql://postgres@127.0.0.1:5432/{db_prefix}_{kind}_{label}"
    python = root / ".venv" / "bin" / "python"
    command = [str(python), f"bench/{kind}.py", *bench_args, "--database-url", db]
    if kind == "serving":
        command += ["--port", str(port)]
    else:
        command += ["--out", f"/tmp/{db_prefix}_export_out_{label}"]
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    load_after = os.getloadavg()[0]
    log = log_dir / f"{kind}_{label}_r{round_no}.log"
    log.write_text(result.stdout + "\n--- stderr ---\n" + result.stderr)
    figures = parse_serving(result.stdout) if kind == "serving" else parse_export(result.stdout)
    status = "ok" if result.returncode == 0 and figures else f"rc={result.returncode}"
    print(f"round {round_no} {label:>8}: {status}, {wall:.0f} s wall, load {load_before:.2f} -> {load_after:.2f}; "
          + ", ".join(f"{k} {v:g}" for k, v in figures.items()), flush=True)
    return {"label": label, "round": round_no, "figures": figures, "load_before": round(load_before, 2),
            "load_after": round(load_after, 2), "rc": result.returncode, "log": str(log)}


def table(runs: list[dict], labels: list[str], rounds: int) -> str:
    base = labels[0]
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run["figures"] if k not in keys]
    by = {(r["label"], r["round"]): r for r in runs}
    lines = []
    header = "| figure | " + " | ".join(f"{lab} (runs; median)" for lab in labels) + " | " + \
        " | ".join(f"{lab}/{base} per round (median; min-max)" for lab in labels[1:]) + " |"
    lines += [header, "|" + "---|" * (1 + len(labels) + len(labels) - 1)]
    for key in keys:
        cells = [key]
        medians = {}
        for lab in labels:
            values = [by[(lab, i)]["figures"].get(key) for i in range(1, rounds + 1) if (lab, i) in by]
            values = [v for v in values if v is not None]
            medians[lab] = statistics.median(values) if values else None
            cells.append(", ".join(f"{v:g}" for v in values) + (f"; **{medians[lab]:g}**" if values else ""))
        for lab in labels[1:]:
            ratios = []
            for i in range(1, rounds + 1):
                a, b = by.get((lab, i)), by.get((base, i))
                if a and b and key in a["figures"] and b["figures"].get(key):
                    ratios.append(a["figures"][key] / b["figures"][key])
            cells.append(", ".join(f"{r:.2f}" for r in ratios)
                         + (f" ({statistics.median(ratios):.2f}; {min(ratios):.2f}-{max(ratios):.2f})" if ratios else ""))
        lines.append("| " + " | ".join(cells) + " |")
    loads = {lab: [by[(lab, i)]["load_before"] for i in range(1, rounds + 1) if (lab, i) in by] for lab in labels}
    lines.append("| load avg (1 min) before run | " + " | ".join(", ".join(f"{v:g}" for v in loads[lab]) for lab in labels)
                 + " | " + " | ".join("" for _ in labels[1:]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["serving", "export"])
    parser.add_argument("checkouts", nargs="+", help="label=DIR, the first is the baseline of the ratios")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db-prefix", default="ann_cmp", help="databases are <prefix>_<kind>_<label>")
    parser.add_argument("--port", type=int, default=8915, help="gunicorn port for serving runs")
    parser.add_argument("--log-dir", default="/tmp/compare_commits", help="each run's full output")
    parser.add_argument("--json", help="write every run's figures here")
    argv = sys.argv[1:]
    bench_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, bench_args = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    checkouts = []
    for item in args.checkouts:
        label, _, directory = item.partition("=")
        root = Path(directory).resolve()
        if not (root / "bench" / f"{args.kind}.py").exists():
            sys.exit(f"{root}: no bench/{args.kind}.py")
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        checkouts.append((label, root, commit))
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for round_no in range(1, args.rounds + 1):
        for label, root, _ in checkouts:
            runs.append(run_one(args.kind, label, root, bench_args, args.db_prefix, args.port, log_dir, round_no))
    labels = [label for label, _, _ in checkouts]
    print(f"\n{args.kind}: " + ", ".join(f"{label} = {commit}" for label, _, commit in checkouts)
          + f"; {args.rounds} rounds alternating; {os.cpu_count()} CPUs; load average now {os.getloadavg()[0]:.2f}")
    print(table(runs, labels, args.rounds))
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    print("reproduce: .venv/bin/python bench/compare_commits.py " + shlex.join(sys.argv[1:]))
    sys.exit(0 if all(r["rc"] == 0 for r in runs) else 1)


if __name__ == "__main__":
    main()
