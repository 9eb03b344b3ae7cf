"""The numbers behind the dataset report's interaction figures (plain numpy and polars).

Every function takes arrays or :class:`~kuairec.data.dataset.Interactions` and returns
arrays or small dataclasses, so each number can be checked against a hand computation.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.data.dataset import Interactions

BEIJING_OFFSET_S = 8 * 3600  # KuaiRec's `time` column is Beijing time (UTC+8)
LABELS = ("wr > 2", "wr >= 1", "top 20% in duration bucket")


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0: all equal, -> 1: one holds everything)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.dot(ranks, x) / (n * total) - (n + 1) / n)


def top_share(values: np.ndarray, fraction: float) -> float:
    """Share of the total held by the top ``ceil(fraction * n)`` values (at least one)."""
    x = np.asarray(values, dtype=np.float64)
    total = x.sum()
    if x.size == 0 or total <= 0:
        return 0.0
    k = max(1, math.ceil(fraction * x.size - 1e-9))
    return float(np.partition(x, x.size - k)[x.size - k :].sum() / total)


def lorenz(values: np.ndarray, points: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The Lorenz curve (share of items, share of total), ascending, thinned to ``points``."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    cum = np.concatenate([[0.0], np.cumsum(x)])
    share = cum / cum[-1] if cum[-1] > 0 else np.linspace(0, 1, cum.size)
    pos = np.unique(np.linspace(0, x.size, min(points, x.size + 1)).round().astype(np.int64))
    return pos / max(x.size, 1), share[pos]


@dataclass
class Popularity:
    views: np.ndarray  # views (deduplicated log rows) per item_idx
    gini: float
    top1: float  # share of views of the top 1% of videos
    top10: float
    n_items: int  # videos with at least one view
    zero_items: int  # videos in the id space without a view


def popularity(inter: Interactions) -> Popularity:
    """Views per video over the videos that appear in ``inter`` (at least one view)."""
    views = np.bincount(inter.indices, weights=inter.views, minlength=inter.n_items)
    seen = views[views > 0]
    return Popularity(
        views=views,
        gini=gini(seen),
        top1=top_share(seen, 0.01),
        top10=top_share(seen, 0.10),
        n_items=int(seen.size),
        zero_items=int((views == 0).sum()),
    )


def count_summary(counts: np.ndarray) -> dict[str, float]:
    c = np.asarray(counts, dtype=np.float64)
    if c.size == 0:
        return {"min": 0.0, "median": 0.0, "mean": 0.0, "max": 0.0}
    return {"min": c.min(), "median": float(np.median(c)), "mean": c.mean(), "max": c.max()}


@dataclass
class DensityGrid:
    grid: np.ndarray  # (bins_u, bins_i) fraction of filled cells, users/items by activity
    n_users: int  # active users (at least one entry)
    n_items: int
    density: float  # filled / (n_users * n_items)
    top_block: float  # density among the top `block` share of users x of videos
    bottom_block: float  # density among the bottom `block` share of both


def _activity_rank(counts: np.ndarray) -> tuple[np.ndarray, int]:
    """Rank 0 = most active; inactive ones get -1. Returns (ranks, number active)."""
    order = np.argsort(-counts, kind="stable")
    rank = np.empty(counts.size, dtype=np.int64)
    rank[order] = np.arange(counts.size)
    n_active = int((counts > 0).sum())
    rank[counts == 0] = -1
    return rank, n_active


def density_grid(inter: Interactions, bins: int = 200, block: float = 0.1) -> DensityGrid:
    """Bin the user x video pattern, both sorted by activity, into at most bins x bins."""
    ur, nu = _activity_rank(inter.user_counts())
    ir, ni = _activity_rank(inter.item_counts())
    bu, bi = max(1, min(bins, nu)), max(1, min(bins, ni))
    if inter.nnz == 0:
        return DensityGrid(np.zeros((bu, bi)), 0, 0, 0.0, 0.0, 0.0)
    ru, ri = ur[inter.row_users()], ir[inter.indices]
    ub, ib = ru * bu // nu, ri * bi // ni
    filled = np.bincount(ub * bi + ib, minlength=bu * bi).reshape(bu, bi)
    size_u = np.bincount(np.arange(nu) * bu // nu, minlength=bu)
    size_i = np.bincount(np.arange(ni) * bi // ni, minlength=bi)
    grid = filled / np.outer(size_u, size_i)
    ku, ki = max(1, math.ceil(block * nu - 1e-9)), max(1, math.ceil(block * ni - 1e-9))
    top = np.count_nonzero((ru < ku) & (ri < ki)) / (ku * ki)
    bottom = np.count_nonzero((ru >= nu - ku) & (ri >= ni - ki)) / (ku * ki)
    return DensityGrid(grid, nu, ni, inter.nnz / (nu * ni), float(top), float(bottom))


def log_histogram(
    values: np.ndarray, lo: float, hi: float, n_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of positive values in ``n_bins`` log-spaced bins over [lo, hi] (clipped)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[v > 0]
    logs = np.clip(np.log10(v), math.log10(lo), math.log10(hi))
    counts, edges = np.histogram(logs, bins=n_bins, range=(math.log10(lo), math.log10(hi)))
    return 10.0**edges, counts


def quantiles(values: np.ndarray, qs: tuple[float, ...]) -> dict[float, float]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {q: float("nan") for q in qs}
    return dict(zip(qs, np.quantile(v, qs).tolist(), strict=True))


def duration_edges(durations: np.ndarray, n_buckets: int) -> np.ndarray:
    """``n_buckets + 1`` log-spaced edges from the shortest to the longest duration."""
    d = np.asarray(durations, dtype=np.float64)
    d = d[d > 0]
    lo, hi = (float(d.min()), float(d.max())) if d.size else (1.0, 10.0)
    if hi <= lo:
        hi = lo * 10.0
    return np.logspace(np.log10(lo), np.log10(hi), n_buckets + 1)


def bucket_of(durations: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket index (0 .. len(edges) - 2) of each duration; out-of-range values clip."""
    idx = np.searchsorted(edges, np.asarray(durations, dtype=np.float64), side="right") - 1
    return np.clip(idx, 0, edges.size - 2).astype(np.int16)


@dataclass
class DurationProfile:
    edges: np.ndarray  # duration bucket edges (ms)
    rows: np.ndarray  # rows per bucket
    q: dict[float, np.ndarray]  # watch_ratio quantile -> value per bucket (NaN if empty)
    above2: np.ndarray  # share of rows with watch_ratio > 2 per bucket


def duration_profile(
    wr: np.ndarray,
    durations: np.ndarray,
    n_buckets: int = 20,
    qs: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9),
) -> DurationProfile:
    """watch_ratio quantiles per log-spaced video-duration bucket."""
    import polars as pl

    edges = duration_edges(durations, n_buckets)
    frame = pl.DataFrame({"b": bucket_of(durations, edges), "wr": np.asarray(wr)})
    agg = (
        frame.group_by("b")
        .agg(
            pl.len().alias("n"),
            (pl.col("wr") > 2).mean().alias("above2"),
            *[pl.col("wr").quantile(q, interpolation="linear").alias(f"q{q}") for q in qs],
        )
        .sort("b")
    )
    b = agg["b"].to_numpy().astype(np.int64)

    def full(col: str, fill: float) -> np.ndarray:
        out = np.full(n_buckets, fill, dtype=np.float64)
        out[b] = agg[col].to_numpy()
        return out

    return DurationProfile(
        edges=edges,
        rows=full("n", 0).astype(np.int64),
        q={q: full(f"q{q}", np.nan) for q in qs},
        above2=full("above2", np.nan),
    )


@dataclass
class LabelRates:
    edges: np.ndarray  # duration bucket edges (ms)
    rows: np.ndarray  # rows per bucket
    per_bucket: np.ndarray  # (len(LABELS), n_buckets) positive rate, NaN for empty buckets
    overall: np.ndarray  # (len(LABELS),) positive rate over all rows
    thresholds: np.ndarray  # per-bucket watch_ratio cut-off of the duration-aware label


def label_rates(
    wr: np.ndarray,
    durations: np.ndarray,
    edges: np.ndarray,
    thresholds: np.ndarray | None = None,
    top: float = 0.2,
) -> LabelRates:
    """Positive rate of the three label definitions, overall and per duration bucket.

    The duration-aware label marks ``watch_ratio > t[b]``, ``t[b]`` being the ``1 - top``
    quantile (linear interpolation) of watch_ratio in duration bucket ``b``: of these rows
    unless ``thresholds`` (e.g. the training matrix's) are given. A bucket without rows
    falls back to the quantile over all rows.
    """
    import polars as pl

    wr = np.asarray(wr, dtype=np.float64)
    n_buckets = edges.size - 1
    b = bucket_of(durations, edges)
    if thresholds is None:
        agg = (
            pl.DataFrame({"b": b, "wr": wr})
            .group_by("b")
            .agg(pl.col("wr").quantile(1.0 - top, interpolation="linear").alias("t"))
        )
        fallback = float(np.quantile(wr, 1.0 - top)) if wr.size else np.inf
        thresholds = np.full(n_buckets, fallback)
        thresholds[agg["b"].to_numpy().astype(np.int64)] = agg["t"].to_numpy()
    masks = (wr > 2.0, wr >= 1.0, wr > thresholds[b])
    rows = np.bincount(b, minlength=n_buckets)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.stack([np.bincount(b, weights=m, minlength=n_buckets) / rows for m in masks])
    overall = np.array([m.mean() if m.size else np.nan for m in masks])
    return LabelRates(edges, rows, per, overall, np.asarray(thresholds, dtype=np.float64))


def activity_by_day(dates: np.ndarray) -> tuple[list[dt.date], np.ndarray]:
    """Rows per calendar day from ``date`` values like 20200705 (NaN/null ignored)."""
    d = np.asarray(dates, dtype=np.float64)
    d = d[np.isfinite(d)].astype(np.int64)
    if d.size == 0:
        return [], np.zeros(0, dtype=np.int64)
    lo = int(d.min())
    per = np.bincount(d - lo)  # yyyymmdd spans at most a few thousand values a year
    days = np.flatnonzero(per) + lo
    counts = per[per > 0]
    out = [dt.date(int(x) // 10000, int(x) // 100 % 100, int(x) % 100) for x in days]
    return out, counts


def activity_by_hour(timestamps: np.ndarray) -> np.ndarray:
    """Rows per hour of the day, Beijing time (UTC+8), from unix-second timestamps."""
    ts = np.asarray(timestamps, dtype=np.float64)
    ts = ts[np.isfinite(ts)]
    hours = ((ts + BEIJING_OFFSET_S) // 3600 % 24).astype(np.int64)
    return np.bincount(hours, minlength=24)
