"""Benchmark the classical models on a full-size-shaped training matrix.

Builds, with numpy, a random but popularity-skewed 7,176 x 10,728 matrix with about 11M
user-item pairs (KuaiRec's big matrix after deduplication), then fits every classical
model in its own child process and prints, per model: fit seconds, the fit's peak RSS
(the high-water mark is reset after the data is built) and the seconds to recommend the
top 10 for all users with their training items excluded. ALS is measured twice, through
our wrapper and with implicit alone on the same confidence matrix and parameters.
It is not a timed test; record its figures in docs/benchmarks-models.md with the machine.

    python benchmarks/bench_models.py                      # every model
    python benchmarks/bench_models.py --models als implicit_als --bpr-epochs 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from machine_info import machine  # benchmarks/ is on sys.path when run as a script

MODELS = ["random", "popularity", "popularity_weighted", "als", "implicit_als", "bpr"]
MODELS += ["ease", "itemknn"]
ALS_PARAMS = {"factors": 64, "regularization": 0.05, "iterations": 15, "alpha": 2.0}


def rss_mb(field: str = "VmHWM") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def build_train(n_users: int, n_items: int, nnz: int, seed: int = 0):
    """A TrainSet whose pattern is Bernoulli(min(1, c * activity_u * popularity_i))."""
    from kuairec.data.dataset import IdMap, Interactions, TrainSet

    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 0.5, n_users)
    popularity = rng.permutation((np.arange(n_items) + 10.0) ** -0.8)
    sample = activity[:1000]  # bisection on c for the expected number of pairs
    lo, hi = 0.0, 1e6
    for _ in range(40):
        c = (lo + hi) / 2
        expected = np.minimum(1.0, c * sample[:, None] * popularity[None, :]).sum()
        lo, hi = (c, hi) if expected * n_users / sample.size < nnz else (lo, c)
    indptr, indices = [np.zeros(1, np.int64)], []
    for s in range(0, n_users, 512):
        p = np.minimum(1.0, c * activity[s : s + 512, None] * popularity[None, :])
        rows, cols = np.nonzero(rng.random(p.shape) < p)
        indptr.append(indptr[-1][-1] + np.cumsum(np.bincount(rows, minlength=p.shape[0])))
        indices.append(cols.astype(np.int32))
    indices = np.concatenate(indices)
    wr = rng.lognormal(-0.35, 0.8, indices.size).astype(np.float32)
    nan = np.full(indices.size, np.nan)
    inter = Interactions(
        indptr=np.concatenate(indptr).astype(np.int64),
        indices=indices,
        views=np.ones(indices.size, np.int32),
        watch_ratio_mean=wr,
        watch_ratio_max=wr,
        first_timestamp=nan,
        last_timestamp=nan,
        n_items=n_items,
    )
    return TrainSet(inter, IdMap(np.arange(n_users)), IdMap(np.arange(n_items)))


def _time_implicit_fit() -> dict:
    """Time implicit's own ALS fit inside our wrapper (same process, same load)."""
    from implicit.cpu.als import AlternatingLeastSquares

    inner: dict = {}
    original = AlternatingLeastSquares.fit

    def timed(self, *a, **kw):
        start = time.perf_counter()
        try:
            return original(self, *a, **kw)
        finally:
            inner["s"] = time.perf_counter() - start

    AlternatingLeastSquares.fit = timed
    return inner


def child(name: str, args: argparse.Namespace) -> dict:
    from threadpoolctl import threadpool_limits

    from kuairec.models import create_model
    from kuairec.models.matrices import weighted_matrix

    if name in ("als", "implicit_als", "bpr"):
        import implicit.cpu.als  # noqa: F401  (import cost, ~0.2 s once, kept out of fit time)
        import implicit.cpu.bpr  # noqa: F401
    train = build_train(args.users, args.items, args.nnz, args.seed)
    seen = train.interactions.csr("ones")
    out = {"model": name, "nnz": train.interactions.nnz, "data_rss_mb": rss_mb("VmRSS")}
    if name == "implicit_als":
        from implicit.cpu.als import AlternatingLeastSquares

        x = weighted_matrix(train.interactions, "linear", 5.0, 0.0)
        x.data = 1.0 + np.float32(ALS_PARAMS["alpha"]) * x.data
        reset_peak()
        start = time.perf_counter()
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=64, regularization=0.05, iterations=15, random_state=0, alpha=1.0
            )
            model.fit(x, show_progress=False)
        out["fit_s"] = time.perf_counter() - start
        out["fit_peak_mb"] = rss_mb()
        return out
    params = {"als": ALS_PARAMS, "bpr": {"iterations": args.bpr_epochs}}.get(name, {})
    model = create_model(name, params)
    inner = _time_implicit_fit() if name == "als" else {}
    reset_peak()
    start = time.perf_counter()
    model.fit(train)
    out["fit_s"] = time.perf_counter() - start
    out["fit_peak_mb"] = rss_mb()
    if name == "bpr":
        out["note"] = f"{args.bpr_epochs} epochs"
    if inner:
        out["note"] = (
            f"of which implicit's fit {inner['s']:.2f} s: wrapper overhead "
            f"{out['fit_s'] - inner['s']:.2f} s ({out['fit_s'] / inner['s']:.3f}x)"
        )
    reset_peak()
    start = time.perf_counter()
    model.recommend(np.arange(train.n_users), 10, exclude=seen)
    out["recommend_s"] = time.perf_counter() - start
    out["recommend_peak_mb"] = rss_mb()
    return out


def _schedule(models: list[str], rounds: int) -> list[str]:
    """Each model once; the ALS pair ``rounds`` times each, interleaved ABBA so that a
    change in machine load hits both alike."""
    pair = [m for m in ("als", "implicit_als") if m in models]
    order: list[str] = []
    for m in models:
        if m not in pair:
            order.append(m)
        elif m == pair[0]:
            for r in range(rounds):
                order += pair if r % 2 == 0 else pair[::-1]
    return order


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    ap.add_argument("--users", type=int, default=7176)
    ap.add_argument("--items", type=int, default=10728)
    ap.add_argument("--nnz", type=int, default=11_000_000)
    ap.add_argument("--bpr-epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--als-rounds", type=int, default=2, help="ALS pair runs, interleaved ABBA")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    print(f"machine: {machine()}")
    print(f"matrix: {args.users} x {args.items}, ~{args.nnz:,} pairs; one process per model\n")
    print("| model | fit s | fit peak RSS MB | top-10 all users s | note |")
    print("|---|---:|---:|---:|---|")
    base = [sys.executable, __file__, *sys.argv[1:]]
    results: dict[str, list[dict]] = {}
    for name in _schedule(args.models, args.als_rounds):
        proc = subprocess.run([*base, "--child", name], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"| {name} | failed: {proc.stderr.strip().splitlines()[-1]} | | | |")
            continue
        results.setdefault(name, []).append(json.loads(proc.stdout.strip().splitlines()[-1]))
    for name, runs in results.items():
        r = min(runs, key=lambda x: x["fit_s"])
        rec = f"{r['recommend_s']:.2f}" if "recommend_s" in r else "-"
        note = r.get("note", "")
        if name == "implicit_als":
            note = "implicit alone, same confidence matrix and parameters"
        if len(runs) > 1:
            times = ", ".join(f"{x['fit_s']:.1f}" for x in runs)
            note += f" (best of {times} s)"
        print(f"| {name} | {r['fit_s']:.2f} | {r['fit_peak_mb']:.0f} | {rec} | {note} |")
    if "als" in results and "implicit_als" in results:
        best = {n: min(x["fit_s"] for x in results[n]) for n in ("als", "implicit_als")}
        print(
            f"\nALS wrapper / implicit alone: {best['als'] / best['implicit_als']:.2f}x, best "
            "runs (goal <= 1.1x)"
        )
    if results:
        r = next(iter(results.values()))[0]
        print(f"pairs: {r['nnz']:,}; RSS after building the data: {r['data_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
