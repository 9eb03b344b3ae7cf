"""Does BPR hold up on data of other shapes? NDCG@10 (wr>2) with 95% intervals per shape.

Every shape starts from generated synthetic data and the default protocol (train on the
big matrix, test on the fully observed small matrix) and changes one thing:

- ``default``: as generated;
- ``few_rows``: each user keeps a random 10-50 of her big-matrix pairs (tens, not hundreds);
- ``sparse``: a random 15% of the big-matrix pairs (density 13% -> 2%);
- ``ratings``: watch_ratio quantised to five values, ``rating / 2`` for ratings 1..5
  (cut at the big matrix's quantiles 6/17/44/78%, MovieLens-like shares), in train and
  test; the label wr>2 is then "rating 5";
- ``holdout``: no small matrix; a random 20% of each user's big-matrix pairs is the test
  (exposure-biased: popularity looks strong here).

Rows: popularity, bpr with the old defaults (before the defaults were chosen on these
shapes), bpr with the current defaults, and als (defaults) for reference.

    python benchmarks/bpr_shapes.py                         # scale 0.2, seeds 0 1
    python benchmarks/bpr_shapes.py --scale 0.1 --seeds 0 --shapes default ratings

The shape functions are also used by tests/integration/test_bpr_shapes.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# BPR's defaults before they were chosen on these shapes (for the "bpr (old)" row)
OLD_BPR = {"factors": 64, "learning_rate": 0.05, "regularization": 0.01, "iterations": 50,
           "threshold": 1.0, "uniform_negatives": 0.0}  # fmt: skip
RATING_CUTS = (0.06, 0.17, 0.44, 0.78)  # shares of ratings <= 1, 2, 3, 4


def _subsample(train: Any, keep: np.ndarray) -> Any:
    return dataclasses.replace(train, interactions=train.interactions.select(keep))


def _rank_in_row(inter: Any, rng: np.random.Generator) -> np.ndarray:
    """Each stored pair's position in a random order of its user's pairs."""
    rows = inter.row_users().astype(np.int64)
    order = np.lexsort((rng.random(rows.size), rows))
    rank = np.empty(rows.size, dtype=np.int64)
    rank[order] = np.arange(rows.size) - inter.indptr[rows[order]]
    return rank


def few_rows(train: Any, test: Any, seed: int = 0, low: int = 10, high: int = 50) -> tuple:
    """Each user keeps a random ``low``..``high`` of her training pairs."""
    from kuairec.evaluation.protocols import TestSet

    rng = np.random.default_rng([seed, 1])
    inter = train.interactions
    n_keep = rng.integers(low, high + 1, inter.n_users)
    keep = _rank_in_row(inter, rng) < n_keep[inter.row_users()]
    small = _subsample(train, keep)
    exclude = small.interactions.csr("ones", bool)[test.users]
    return small, TestSet(test.users, test.candidates, test.relevance, exclude)


def sparse(train: Any, test: Any, seed: int = 0, share: float = 0.15) -> tuple:
    """A random ``share`` of the training pairs."""
    from kuairec.evaluation.protocols import TestSet

    rng = np.random.default_rng([seed, 2])
    small = _subsample(train, rng.random(train.interactions.nnz) < share)
    exclude = small.interactions.csr("ones", bool)[test.users]
    return small, TestSet(test.users, test.candidates, test.relevance, exclude)


def quantise(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """watch_ratio -> rating 1..5 (by the given cut points) -> rating / 2."""
    return (np.searchsorted(cuts, values, side="right") + 1) / 2.0


def ratings(train: Any, test: Any, seed: int = 0) -> tuple:
    """Watch ratios quantised to 0.5, 1.0, ..., 2.5 (ratings 1..5 / 2), train and test."""
    from kuairec.evaluation.protocols import TestSet

    inter = train.interactions
    cuts = np.quantile(inter.watch_ratio_mean, RATING_CUTS)
    q = quantise(inter.watch_ratio_mean, cuts).astype(np.float32)
    inter = dataclasses.replace(inter, watch_ratio_mean=q, watch_ratio_max=q)
    rel = test.relevance.copy()
    rel.data = quantise(rel.data, cuts)
    new = dataclasses.replace(train, interactions=inter)
    return new, TestSet(test.users, test.candidates, rel, test.exclude)


def holdout(train: Any, test: Any, seed: int = 0) -> tuple:
    """A random 20% of each user's training pairs as the test; the small matrix unused."""
    from kuairec.evaluation.validation import random_holdout

    return random_holdout(train, fraction=0.2, users=None, seed=seed)


def default(train: Any, test: Any, seed: int = 0) -> tuple:
    return train, test


SHAPES: dict[str, Callable[..., tuple]] = {
    "default": default,
    "few_rows": few_rows,
    "sparse": sparse,
    "ratings": ratings,
    "holdout": holdout,
}


def load(folder: Path) -> tuple:
    """The default protocol's (train, test) of a generated folder."""
    from kuairec.data.load import load_dataset
    from kuairec.evaluation.protocols import default_protocol

    ds = load_dataset(folder, cache_dir=folder / ".cache", progress=False)
    return default_protocol(ds)


def ndcg(name: str, params: dict, train: Any, test: Any, n_bootstrap: int = 1000) -> dict:
    """Fit, recommend 10 and evaluate: NDCG@10 (wr>2), its 95% interval and per-user values."""
    from kuairec.evaluation.evaluate import evaluate
    from kuairec.models import create_model

    t0 = time.perf_counter()
    model = create_model(name, params).fit(train)
    items, _ = model.recommend(test.users, 10, exclude=test.exclude, candidates=test.candidates)
    res = evaluate(items, test, train, ks=(10,), labels=("wr>2",), default_label="wr>2",
                   n_bootstrap=n_bootstrap)  # fmt: skip
    return {
        "ndcg": float(res.metrics["ndcg@10"]),
        "ci": tuple(float(v) for v in res.ci.get("ndcg@10", (np.nan, np.nan))),
        "per_user": np.asarray(res.per_user["ndcg@10"], dtype=np.float64),
        "seconds": time.perf_counter() - t0,
    }


ROWS: dict[str, tuple[str, dict]] = {
    "popularity": ("popularity", {}),
    "bpr (old)": ("bpr", OLD_BPR),
    "bpr (new)": ("bpr", {}),
    "als": ("als", {}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    args = ap.parse_args()
    import datetime

    from machine_info import machine

    from kuairec.data.synthetic import generate

    print(f"{machine()}, {datetime.date.today()}")
    print(f"NDCG@10 (label wr>2), 95% bootstrap interval over test users; scale {args.scale:g}")
    print(f"| seed | shape | train pairs | test users | {' | '.join(args.rows)} |")
    print("|---" * (4 + len(args.rows)) + "|")
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="kuairec-bpr-") as tmp:
            folder = Path(tmp) / "data"
            generate(folder, scale=args.scale, seed=seed, progress=False)
            base = load(folder)
            for shape in args.shapes:
                train, test = SHAPES[shape](*base, seed=seed)
                cells = []
                for row in args.rows:
                    name, params = ROWS[row]
                    r = ndcg(name, params, train, test)
                    cells.append(f"{r['ndcg']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]")
                print(f"| {seed} | {shape} | {train.interactions.nnz:,} | {test.users.size} | "
                      f"{' | '.join(cells)} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
