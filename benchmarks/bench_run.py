"""Benchmark the main job: `kuairec run` on the default data, classical models at scale 1.0.

Prints figures (it is not a timed test) and, with --write, records them in
docs/benchmarks-run.md together with the machine they came from.

    python benchmarks/bench_run.py                 # default synthetic data (scale 0.2)
    python benchmarks/bench_run.py --scale 1.0     # classical models at full size
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_info import machine  # benchmarks/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parents[1]
CLASSICAL = "random,popularity,popularity_weighted,als,bpr,ease,itemknn,oracle"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--models", default=None, help=f"default: all (scale 1.0: {CLASSICAL})")
    ap.add_argument("--cache", type=Path, default=None, help="KUAIREC_CACHE to use")
    ap.add_argument("--write", action="store_true", help="append the figures to docs/")
    args = ap.parse_args()
    env = dict(os.environ)
    cache = args.cache or Path(tempfile.mkdtemp(prefix="kuairec-bench-"))
    env["KUAIREC_CACHE"] = str(cache)
    kuairec = [sys.executable, "-m", "kuairec"]
    runs = Path(tempfile.mkdtemp(prefix="kuairec-runs-"))

    # generate + cold-load outside the timed region: the job itself is what we measure
    subprocess.run(
        [*kuairec, "data", "describe"]
        if args.scale == 0.2
        else [
            *kuairec,
            "data",
            "generate",
            "--scale",
            str(args.scale),
            "--out",
            str(cache / "bench-data"),
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    data = [] if args.scale == 0.2 else ["--data", str(cache / "bench-data")]
    if data:
        subprocess.run(
            [*kuairec, "data", "describe", *data], env=env, check=True, stdout=subprocess.DEVNULL
        )
    models = args.models or (None if args.scale == 0.2 else CLASSICAL)
    cmd = [*kuairec, "run", *data, "--runs-dir", str(runs), "-q"]
    if models:
        cmd += ["--models", models]
    seconds, rss = timed(cmd, env)
    (folder,) = list(runs.iterdir())
    from kuairec.pipeline import metrics_file

    result = metrics_file.read(folder / "metrics.json")
    lines = [
        f"## kuairec run, scale {args.scale:g} ({time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {machine()}",
        "",
        f"Whole `kuairec run` ({models or 'all models'}): **{seconds:.1f} s**, "
        f"peak RSS {rss:.0f} MB (data generated and cached beforehand).",
        "",
        "| model | ndcg@10 | 95% CI | fit s | eval s | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for name in result.ranked():
        e = result.models[name]
        lo, hi = e.ci["ndcg@10"]
        lines.append(
            f"| {name} | {e.value():.4f} | [{lo:.4f}, {hi:.4f}] | "
            f"{e.cost.fit_seconds:.1f} | {e.cost.eval_seconds:.2f} | {e.cost.peak_rss_mb:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        out = REPO / "docs" / "benchmarks-run.md"
        old = out.read_text() if out.exists() else "# Main job benchmarks\n\n"
        out.write_text(old + "\n" + text)


if __name__ == "__main__":
    main()
