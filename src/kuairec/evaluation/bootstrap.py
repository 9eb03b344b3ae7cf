"""Percentile bootstrap over users, vectorised.

A resample draws ``n`` users with replacement: row b of a (B, n) index matrix. Its
weights ``W[b, u]`` (how often user u was drawn) turn every resampled mean into a matrix
product: ``mean_b = (W @ (x * ok)) / (W @ ok)``, where ``ok`` marks users with a value
(NaN = excluded user, e.g. no positive). The same seed and n give the same resamples, so
two models evaluated on the same users are compared on the same resamples (paired).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from kuairec.errors import ConfigError

_BLOCK = 2_000_000  # weight-matrix elements built at a time


def bootstrap_indices(n: int, n_bootstrap: int = 1000, seed: int = 0) -> np.ndarray:
    """The (n_bootstrap, n) matrix of resampled user positions (int64)."""
    _check(n_bootstrap, seed)
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, n, size=(n_bootstrap, n), dtype=np.int64)
        if n
        else np.zeros((n_bootstrap, 0), np.int64)
    )


def resampled_means(values: np.ndarray, n_bootstrap: int = 1000, seed: int = 0) -> np.ndarray:
    """Mean of each column of ``values`` (n,) or (n, m) in every resample: (B,) or (B, m).

    NaN entries are left out of their column's mean; a resample without any value in a
    column gives NaN.
    """
    x = np.asarray(values, dtype=np.float64)
    flat = x.ndim == 1
    x = x[:, None] if flat else x
    n = x.shape[0]
    idx = bootstrap_indices(n, n_bootstrap, seed)
    ok = ~np.isnan(x)
    filled = np.where(ok, x, 0.0)
    ok = ok.astype(np.float64)
    out = np.empty((n_bootstrap, x.shape[1]))
    step = max(1, _BLOCK // max(n, 1))
    for start in range(0, n_bootstrap, step):  # blocks of resamples, bounded memory
        block = idx[start : start + step]
        b = block.shape[0]
        w = np.bincount((block + (np.arange(b) * n)[:, None]).ravel(), minlength=b * n)
        w = w.reshape(b, n).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start : start + b] = (w @ filled) / (w @ ok)
    return out[:, 0] if flat else out


def bootstrap_ci(
    values: np.ndarray, n_bootstrap: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile ``1 - alpha`` interval of the mean of each column (NaN = left out)."""
    _check_alpha(alpha)
    means = resampled_means(values, n_bootstrap, seed)
    lo, hi = _percentiles(means, alpha)
    return lo, hi


def _percentiles(means: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    with warnings.catch_warnings():  # a column without any value gives a NaN interval
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(means, q, axis=0)
    return lo, hi


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    n_bootstrap: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Paired bootstrap of ``mean(a - b)`` over the users where both have a value.

    Returns ``{"diff": observed mean difference, "ci": [lo, hi], "p_le_0": share of
    resamples with a difference <= 0, "p_value": the two-sided bootstrap p-value of "no
    difference" (``min(1, 2 min(P(diff <= 0), P(diff >= 0)))`` over the resamples),
    "n_users": users compared, "n_bootstrap": B}``.
    """
    _check_alpha(alpha)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ConfigError(
            f"paired_bootstrap: a and b must be 1-D arrays over the same users, "
            f"got shapes {a.shape} and {b.shape}"
        )
    d = a - b  # NaN where either is NaN
    n_ok = int(np.sum(~np.isnan(d)))
    if n_ok == 0:
        nan = float("nan")
        return {
            "diff": nan,
            "ci": [nan, nan],
            "p_le_0": nan,
            "p_value": nan,
            "n_users": 0,
            "n_bootstrap": n_bootstrap,
        }
    means = resampled_means(d, n_bootstrap, seed)
    lo, hi = _percentiles(means, alpha)
    valid = means[~np.isnan(means)]
    return {
        "diff": float(np.nanmean(d)),
        "ci": [float(lo), float(hi)],
        "p_le_0": float(np.mean(valid <= 0)) if valid.size else float("nan"),
        "p_value": two_sided_p(valid),
        "n_users": n_ok,
        "n_bootstrap": int(n_bootstrap),
    }


def two_sided_p(resampled: np.ndarray) -> float:
    """``min(1, 2 min(P(d <= 0), P(d >= 0)))`` over resampled differences ``d``."""
    if resampled.size == 0:
        return float("nan")
    return float(min(1.0, 2.0 * min(np.mean(resampled <= 0), np.mean(resampled >= 0))))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (NaN stays NaN and is not counted
    among the m comparisons): the i-th smallest of m gets ``max_{j<=i} min(1, (m - j + 1)
    p_(j))``, which controls the family-wise error rate."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        out[i] = running
    return out.tolist()


def _check(n_bootstrap: Any, seed: Any) -> None:
    if (
        isinstance(n_bootstrap, bool)
        or not isinstance(n_bootstrap, int | np.integer)
        or n_bootstrap < 1
    ):
        raise ConfigError(f"n_bootstrap must be an integer >= 1, got {n_bootstrap!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")


def _check_alpha(alpha: Any) -> None:
    if not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
