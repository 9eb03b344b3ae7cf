"""BPR's fit time and NDCG@10, this tree against an older one, side by side in one run.

Each fit runs in a child process (``--child``): load the data, fit ``bpr`` with its
defaults (the given seed), recommend 10 and evaluate (label wr>2, 95% bootstrap
interval). The parent alternates the trees (``--before SRC``, e.g. ``git archive <commit>
src | tar -x -C /tmp/before``) for every data set and repeat, so the two are timed under
the same load. Fit time is wall and process CPU around ``fit`` alone (the first fit of a
process includes numba's compile, or loading its on-disk cache).

Data sets: ``synthetic`` (the default protocol of the synthetic data at ``--scale``) and
every folder of ``--devdata`` holding ``interactions.csv`` (real public logs, temporal
protocol: each user's last 20% of pairs is the test; /work/devdata/README.md).

    python benchmarks/bench_bpr.py --before /tmp/before/src --scale 0.2 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def child(data: str, scale: float, seed: int) -> dict:
    """Fit and evaluate BPR once (in this process): a dict of figures."""
    import numpy as np

    import kuairec
    from kuairec.evaluation.evaluate import evaluate

    if data == "synthetic":
        ds = kuairec.load_dataset(kuairec.synthetic_data(scale=scale, seed=0), progress=False)
        train, test = kuairec.default_protocol(ds)
    else:
        from kuairec.evaluation.protocols import temporal_experiment

        train, test = temporal_experiment(Path(data) / "interactions.csv")
    model = kuairec.create_model("bpr", {"seed": seed})
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(train)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    items, _ = model.recommend(test.users, 10, exclude=test.exclude, candidates=test.candidates)
    res = evaluate(items, test, train, ks=(10,), labels=("wr>2",), default_label="wr>2")
    ci = res.ci.get("ndcg@10", (np.nan, np.nan))
    return {
        "fit_wall": wall,
        "fit_cpu": cpu,
        "ndcg": float(res.metrics["ndcg@10"]),
        "ci": [float(ci[0]), float(ci[1])],
        "positives": int((train.interactions.watch_ratio_mean >= 1.0).sum()),
    }


def run_child(src: Path, data: str, scale: float, seed: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--child", data, "--scale", str(scale), "--seed", str(seed)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"child failed ({src}, {data}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def datasets(devdata: Path | None) -> list[str]:
    found = ["synthetic"]
    if devdata is not None and devdata.is_dir():
        found += [str(p.parent) for p in sorted(devdata.glob("*/interactions.csv"))]
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--before", type=Path, default=None, help="an older tree's src/")
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--devdata", type=Path, default=Path("/work/devdata"))
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.scale, args.seed)))
        return
    here = Path(__file__).resolve().parents[1] / "src"
    trees = {"after": here} if args.before is None else {"before": args.before, "after": here}
    print(f"load average {os.getloadavg()[0]:.2f}; trees: {trees}")
    print("| data | seed | tree | fit wall (s) | fit CPU (s) | NDCG@10 (wr>2) [95% CI] |")
    print("|---|---|---|---|---|---|")
    for data in datasets(args.devdata):
        for seed in args.seeds:
            for tree, src in trees.items():
                r = run_child(src, data, args.scale, seed)
                name = data if data == "synthetic" else Path(data).name
                print(
                    f"| {name} | {seed} | {tree} | {r['fit_wall']:.2f} | {r['fit_cpu']:.2f} | "
                    f"{r['ndcg']:.4f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] |",
                    flush=True,
                )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
