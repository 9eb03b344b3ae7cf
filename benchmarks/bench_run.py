"""Where a `kuairec run` spends its time: the per-stage table of one run.

Runs `kuairec run` in a child process (wall time around it, CPU time and peak RSS from
its own rusage), then reads the run folder: the manifest's stage timings (data, each
model's tuning, the validity and cold-video sections and their parts) and each model's
fit and evaluation seconds from metrics.json (the manifest's "<model>: fit" is written
over by the cold-video refits). What the manifest does not time (writing the run folder,
the EDA report, the report itself) is the run's remainder; ``--eda`` also times
`kuairec eda` alone on the same data. The data is generated and loaded (cached) before
the timed run. Prints the table; ``--write`` appends it to docs/benchmarks-run.md.

    python benchmarks/bench_run.py                          # default run, scale 0.2
    python benchmarks/bench_run.py --scale 1.0 --models popularity,als,ease,itemknn,bpr \\
        -- --no-validity --no-cold-items
    python benchmarks/bench_run.py --table runs/<a> runs/<b>  # finished runs, side by side
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine_info import machine  # benchmarks/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parents[1]
TUNE = re.compile(r"^(?P<model>.+): tune \((?P<trials>\d+) trials\)$")


def measure(cmd: list[str], env: dict[str, str], log: Path | None = None) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one child process (its rusage)."""
    out = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    finally:
        if log is not None:
            out.close()
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log.read_text()[-3000:] if log is not None else ""
        raise SystemExit(f"failed: {' '.join(cmd)}\n{tail}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024}


def stage_rows(folder: Path) -> list[tuple[str, float, bool]]:
    """(stage, seconds, counts in the sum) of a run folder, in the run's order; parts of
    a section are listed indented and not summed."""
    stages: dict[str, float] = json.loads((folder / "manifest.json").read_text()).get(
        "stage_seconds", {}
    )
    models: dict[str, Any] = json.loads((folder / "metrics.json").read_text()).get("models", {})
    rows: list[tuple[str, float, bool]] = []
    shown: set[str] = set()
    for name, seconds in stages.items():
        step = re.match(r"^(?P<model>.+): (?P<step>fit|evaluate)$", name)
        if name in ("preparing data", "loading interactions"):
            rows.append(("load (generate if needed, read, cache)", seconds, True))
        elif match := TUNE.match(name):
            rows.append((f"{match['model']}: tuning ({match['trials']} trials)", seconds, True))
        elif step and step["model"] in models:  # the main fit's figures (see the docstring)
            model = step["model"]
            if model not in shown:
                shown.add(model)
                cost = models[model].get("cost", models[model])  # metrics.json 2 / 1
                rows.append((f"{model}: fit", float(cost.get("fit_seconds") or 0), True))
                rows.append((f"{model}: evaluation", float(cost.get("eval_seconds") or 0), True))
        elif name in ("validity", "cold videos"):
            rows.append((f"section: {name}", seconds, True))
        elif name.startswith(("validity: ", "cold videos: ")):
            rows.append((f"  {name}", seconds, False))
        else:
            rows.append((name, seconds, True))
    return rows


def table(folders: list[Path], labels: list[str] | None = None) -> str:
    """The per-stage table of one run folder, or of several side by side (same stages
    joined by name). The whole run's wall, CPU and peak RSS come from ``bench_run.json``
    (written by this script into the folder), and so does `kuairec eda` alone."""
    labels = labels or [f.name for f in folders]
    per_run = [stage_rows(f) for f in folders]
    timing = [_timing(f) for f in folders]
    names: list[str] = []
    for rows in per_run:
        names += [n for n, _, _ in rows if n not in names]
    values = [{n: (s, summed) for n, s, summed in rows} for rows in per_run]
    for vals, t in zip(values, timing, strict=True):
        if "run" in t:
            counted = sum(s for s, summed in vals.values() if summed)
            vals[REST] = (max(t["run"]["wall"] - counted, 0.0), True)
    names.append(REST)
    head = " | ".join(f"{label}: s | share" for label in labels)
    lines = [f"| stage | {head} |", "|---" * (1 + 2 * len(folders)) + "|"]
    for name in names:
        cells = []
        for vals, t in zip(values, timing, strict=True):
            base = t["run"]["wall"] if "run" in t else sum(s for s, ok in vals.values() if ok)
            s, _ = vals.get(name, (None, False))
            cells.append("|" if s is None else f"{s:.1f} | {100 * s / base:.1f}%")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    for key, what in (("run", "**whole run**"), ("eda", "`kuairec eda` alone")):
        if any(key in t for t in timing):
            cells = [_whole(t[key]) if key in t else "|" for t in timing]
            lines.append(f"| {what} | {' | '.join(cells)} |")
    return "\n".join(lines)


def peak_lines(folder: Path, rise_mb: float = 100.0) -> str:
    """Where the memory peak was: the stages at whose end the process's peak RSS so far
    (``manifest.json``'s ``stage_peak_mb``) had risen by ``rise_mb`` or more, and the
    last one is where the run's peak (as far as the stages see it) was reached."""
    peaks = json.loads((folder / "manifest.json").read_text()).get("stage_peak_mb", [])
    if isinstance(peaks, dict):  # a run folder of 9ce8c9f's parents: by name, not in order
        return ""
    lines, high = [], 0.0
    for name, mb in peaks:
        if mb >= high + rise_mb:
            lines.append(f"| {name} | {mb:,.0f} |")
            high = mb
    if not lines:
        return ""
    head = "| the peak RSS so far rose by 100 MB or more in | MB at its end |\n|---|---|"
    return head + "\n" + "\n".join(lines)


def core_lines(folder: Path, min_seconds: float = 10.0) -> str:
    """How many of the cores each stage of ``min_seconds`` or more kept busy: its CPU time
    (this process's threads; not a child such as Spark's JVM) over its wall time
    (``manifest.json``'s ``stage_cpu_seconds``). Sections are listed with their parts,
    so the figures overlap."""
    stages = json.loads((folder / "manifest.json").read_text()).get("stage_cpu_seconds", [])
    rows = [
        f"| {name} | {wall:.1f} | {cpu:.1f} | {cpu / wall:.2f} |"
        for name, wall, cpu in stages
        if wall >= min_seconds
    ]
    if not rows:
        return ""
    head = "| stage (10 s or more) | wall s | CPU s | cores busy |\n|---|---|---|---|"
    return head + "\n" + "\n".join(rows)


def _whole(m: dict[str, Any]) -> str:
    if m.get("cpu") is None:  # profiled: the child measured was py-spy
        return f"{m['wall']:.1f} | CPU, RSS: n/a (under py-spy)"
    return f"{m['wall']:.1f} | CPU {m['cpu']:.0f} s, {m['rss']:,.0f} MB"


REST = "rest: writing outputs, EDA report, report (stages without a timing)"


def _timing(folder: Path) -> dict[str, Any]:
    path = folder / "bench_run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def prepare_data(args: argparse.Namespace, env: dict[str, str], cache: Path) -> list[str]:
    """Generate (scale != 0.2) and load the data once, untimed: the ``--data`` arguments."""
    kuairec = [sys.executable, "-m", "kuairec"]
    data: list[str] = []
    if args.data is not None:
        data = ["--data", str(args.data)]
    elif args.scale != 0.2:
        folder = cache / f"bench-data-{args.scale:g}"
        if not (folder / "big_matrix.csv").exists():
            gen = [*kuairec, "data", "generate", "--scale", str(args.scale), "--out", str(folder)]
            subprocess.run(gen, env=env, check=True, stdout=subprocess.DEVNULL)
        data = ["--data", str(folder)]
    subprocess.run([*kuairec, "data", "describe", *data], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.2, help="synthetic scale (no --data)")
    ap.add_argument("--data", type=Path, default=None, help="a data folder instead")
    ap.add_argument("--models", default=None, help="default: the run's default models")
    ap.add_argument("--cache", type=Path, default=None, help="KUAIREC_CACHE to use")
    ap.add_argument("--eda", action="store_true", help="also time `kuairec eda` alone")
    ap.add_argument(
        "--table", type=Path, nargs="+", default=None, help="only print run folders' tables"
    )
    ap.add_argument("--labels", nargs="+", default=None, help="column names for --table")
    ap.add_argument("--write", action="store_true", help="append the table to docs/")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy raw samples to this file")
    ap.add_argument("extra", nargs="*", help="after --: more `kuairec run` options")
    args = ap.parse_args()
    if args.table:
        print(table(args.table, args.labels))
        for folder in args.table:
            for lines in (peak_lines(folder), core_lines(folder)):
                if lines:
                    print(f"\n{folder}:\n{lines}")
        return
    env = dict(os.environ)
    cache = args.cache or Path(tempfile.mkdtemp(prefix="kuairec-bench-"))
    env["KUAIREC_CACHE"] = str(cache)
    data = prepare_data(args, env, cache)
    runs = Path(tempfile.mkdtemp(prefix="kuairec-runs-"))
    cmd = [sys.executable, "-m", "kuairec", "run", *data, "--runs-dir", str(runs), "-q"]
    cmd += (["--models", args.models] if args.models else []) + args.extra
    if args.profile is not None:  # py-spy (pip install py-spy) samples the run 20 times/s
        spy = ["py-spy", "record", "-r", "20", "--format", "raw", "-o", str(args.profile)]
        cmd = [*spy, "--", *cmd]
    load = os.getloadavg()[0]
    run = measure(cmd, env, runs / "run.log")
    if args.profile is not None:  # the rusage is py-spy's own
        run["cpu"] = run["rss"] = None
    (folder,) = [p for p in runs.iterdir() if p.is_dir()]
    eda = None
    if args.eda:
        out = Path(tempfile.mkdtemp(prefix="kuairec-eda-"))
        eda = measure([sys.executable, "-m", "kuairec", "eda", *data, "--out", str(out / "r")], env)
    timing = {"run": run, **({"eda": eda} if eda else {}), "load_before": load}
    (folder / "bench_run.json").write_text(json.dumps(timing))
    what = f"`kuairec run {' '.join([*data, *cmd[cmd.index('-q') + 1 :]])}`"
    text = "\n".join(
        [
            f"## {what}{'' if args.data else f', scale {args.scale:g}'} "
            f"({time.strftime('%Y-%m-%d %H:%M')})",
            "",
            f"Machine: {machine()}; load average (1 min) before the run {load:.2f}, after "
            f"{os.getloadavg()[0]:.2f} (other jobs shared the machine when above 0).",
            f"Run folder: `{folder}`.",
            "",
            table([folder]),
            "",
            peak_lines(folder),
            "",
            core_lines(folder),
            "",
        ]
    )
    print(text)
    if args.write:
        out = REPO / "docs" / "benchmarks-run.md"
        old = out.read_text() if out.exists() else "# Main job benchmarks\n\n"
        out.write_text(old + "\n" + text)


if __name__ == "__main__":
    main()
