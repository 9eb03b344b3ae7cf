"""Is the synthetic data learnable the way it should be? NDCG@10 on the small matrix.

Generates (or reads) synthetic data and ranks each small-matrix user's small-matrix videos
with: the oracle (expected watch_ratio from small_matrix_truth.csv), EASE (binary, lambda
500, on the deduplicated big-matrix pairs), implicit ALS (64 factors, confidence
1 + 2 * min(watch_ratio, 5)), popularity (distinct big-matrix users per video) and random.
Label: watch_ratio > 2. Users with no positive are skipped. 95% CIs: 1,000 bootstrap
resamples of the users. Then the exposure bias: popularity's lift over random on a
per-user time holdout of the logged big matrix versus on the small matrix. A plain,
self-contained check (dense numpy, scale <= ~0.5).

    python benchmarks/synthetic_signal.py                    # scale 0.2, seeds 0 1 2
    python benchmarks/synthetic_signal.py --seeds 0 --scale 0.1
    python benchmarks/synthetic_signal.py --data /path/to/generated
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

K = 10


def ndcg_at_k(scores: np.ndarray, labels: np.ndarray, k: int = K) -> np.ndarray:
    """Per-user NDCG@k (binary gains) for users with at least one positive."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (np.take_along_axis(labels, top, axis=1) * disc).sum(axis=1)
    n_pos = labels.sum(axis=1).astype(np.int64)
    idcg = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_pos, k)]
    ok = n_pos > 0
    return dcg[ok] / idcg[ok]


def bootstrap(x: np.ndarray, n: int = 1_000, seed: int = 0) -> tuple[float, float, float]:
    idx = np.random.default_rng(seed).integers(0, x.size, (n, x.size))
    means = x[idx].mean(axis=1)
    return float(x.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def ease_scores(x: np.ndarray, users: np.ndarray, lam: float = 500.0) -> np.ndarray:
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return x[users] @ b


def als_scores(pairs: pl.DataFrame, n: int, m: int, users: np.ndarray) -> np.ndarray | None:
    try:
        import implicit
        import scipy.sparse as sp
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    conf = 1.0 + 2.0 * np.minimum(pairs["wr"].to_numpy(), 5.0)
    x = sp.csr_matrix((conf, (pairs["user_id"], pairs["video_id"])), shape=(n, m))
    model = implicit.cpu.als.AlternatingLeastSquares(
        factors=64, regularization=0.05, iterations=15, alpha=1.0, random_state=0
    )
    with threadpool_limits(1, "blas"):
        model.fit(x.astype(np.float32), show_progress=False)
    return np.asarray(model.user_factors)[users] @ np.asarray(model.item_factors).T


def evaluate(folder: Path) -> dict[str, np.ndarray]:
    big = pl.read_csv(folder / "big_matrix.csv", columns=["user_id", "video_id", "watch_ratio"])
    small = pl.read_csv(folder / "small_matrix.csv", columns=["user_id", "video_id", "watch_ratio"])
    truth = pl.read_csv(folder / "small_matrix_truth.csv")
    n, m = int(big["user_id"].max()) + 1, int(big["video_id"].max()) + 1
    su = np.unique(small["user_id"].to_numpy())
    sv = np.unique(small["video_id"].to_numpy())
    ui = np.searchsorted(su, small["user_id"].to_numpy())
    vi = np.searchsorted(sv, small["video_id"].to_numpy())
    labels = np.zeros((su.size, sv.size))
    labels[ui, vi] = small["watch_ratio"].to_numpy() > 2.0
    oracle = np.full(labels.shape, -1.0)
    oracle[ui, vi] = truth["expected_watch_ratio"].to_numpy()
    pairs = big.group_by("user_id", "video_id").agg(pl.col("watch_ratio").mean().alias("wr"))
    x = np.zeros((n, m), dtype=np.float32)
    x[pairs["user_id"].to_numpy(), pairs["video_id"].to_numpy()] = 1.0
    pop = x.sum(axis=0)[sv]
    rng = np.random.default_rng(0)
    res = {
        "oracle": ndcg_at_k(oracle, labels),
        "ease": ndcg_at_k(ease_scores(x, su)[:, sv], labels),
    }
    als = als_scores(pairs, n, m, su)
    if als is not None:
        res["als"] = ndcg_at_k(als[:, sv], labels)
    res["popularity"] = ndcg_at_k(np.tile(pop, (su.size, 1)) + 1e-6 * rng.random(labels.shape),
                                  labels)  # fmt: skip
    res["random"] = ndcg_at_k(rng.random(labels.shape), labels)
    return res


def logged_popularity(folder: Path, holdout: float = 0.2) -> dict[str, np.ndarray]:
    """Popularity and random on the logged big matrix itself: each user's last 20% of pairs
    (by first view) as test, popularity from the rest, every unseen video a candidate.
    Exposure bias makes popularity look better here than on the small matrix."""
    big = pl.read_csv(
        folder / "big_matrix.csv", columns=["user_id", "video_id", "timestamp", "watch_ratio"]
    )
    pairs = big.group_by("user_id", "video_id").agg(
        pl.col("timestamp").min(), pl.col("watch_ratio").mean()
    )
    pairs = pairs.with_columns(
        (pl.col("timestamp").rank("ordinal").over("user_id") / pl.len().over("user_id")).alias("q")
    )
    n, m = int(big["user_id"].max()) + 1, int(big["video_id"].max()) + 1
    train, test = pairs.filter(pl.col("q") <= 1 - holdout), pairs.filter(pl.col("q") > 1 - holdout)
    seen = np.zeros((n, m), dtype=bool)
    seen[train["user_id"].to_numpy(), train["video_id"].to_numpy()] = True
    labels = np.zeros((n, m))
    labels[test["user_id"].to_numpy(), test["video_id"].to_numpy()] = (
        test["watch_ratio"].to_numpy() > 2.0
    )
    pop = np.tile(seen.sum(axis=0).astype(np.float64), (n, 1))
    rng = np.random.default_rng(1)
    rand = rng.random((n, m))
    pop[seen] = rand[seen] = -np.inf
    return {"popularity": ndcg_at_k(pop, labels), "random": ndcg_at_k(rand, labels)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--data", type=Path, default=None, help="an already generated folder")
    args = ap.parse_args()
    runs = [(None, args.data)] if args.data else [(s, None) for s in args.seeds]
    for seed, folder in runs:
        with tempfile.TemporaryDirectory(prefix="kuairec-signal-") as tmp:
            if folder is None:
                from kuairec.data.synthetic import generate

                folder = Path(tmp) / "data"
                generate(folder, scale=args.scale, seed=seed, progress=False)
            res = evaluate(folder)
            logged = logged_popularity(folder)
        print(f"seed {seed} scale {args.scale:g}" if seed is not None else f"data {args.data}")
        print("  small matrix (label watch_ratio > 2):")
        for name, values in res.items():
            mean, lo, hi = bootstrap(values)
            print(f"    {name:10s} NDCG@10 {mean:.3f}  95% CI [{lo:.3f}, {hi:.3f}]  "
                  f"users {values.size}")  # fmt: skip
        print("  big matrix, last 20% of each user's pairs held out (exposure-biased):")
        for name, values in logged.items():
            print(f"    {name:10s} NDCG@10 {values.mean():.3f}  users {values.size}")
        lift_logged = logged["popularity"].mean() / logged["random"].mean()
        lift_small = res["popularity"].mean() / res["random"].mean()
        print(f"    popularity lift over random: {lift_logged:.1f}x on the logs, "
              f"{lift_small:.1f}x on the small matrix")  # fmt: skip


if __name__ == "__main__":
    main()
