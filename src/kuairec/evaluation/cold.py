"""The cold-items protocol: videos that never reached the training log.

:func:`cold_items_protocol` holds a seeded ``fraction`` of the small matrix's videos out
of training entirely: their big-matrix pairs are removed, and in ``item_x`` their daily
statistics (``item_daily_features.csv``, which a new video does not have yet) are zeroed
with ``daily_missing`` set to 1, exactly what a video without a row in that file gets.
Tags, caption categories and duration (known at upload) are kept. The test ranks only
the cold videos, for every small-matrix user with a pair on one of them: relevance is
their small-matrix pairs. See docs/metrics.md ("Cold items").
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from kuairec.data.dataset import FeatureMatrix
from kuairec.errors import ConfigError
from kuairec.evaluation.protocols import TestSet, default_protocol

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import KuaiRecDataset, TrainSet

#: item_x columns that come from item_daily_features.csv (docs/features.md).
DAILY_PREFIX = "daily_"
DAILY_MISSING = "daily_missing"


def cold_items_protocol(
    ds: KuaiRecDataset, fraction: float = 0.1, seed: int = 0
) -> tuple[TrainSet, TestSet]:
    """``(train, test)`` with ``round(fraction * n)`` of the n small-matrix videos cold.

    The cold videos are a uniform draw without replacement (``numpy.random.default_rng
    (seed)``, at least one video). ``train`` is :func:`default_protocol`'s training set
    minus every pair on a cold video, with the cold videos' daily columns blanked (see
    :func:`blank_daily`). ``test``: candidates = the cold videos only, users = the
    small-matrix users with at least one pair on them, relevance (and truth) = those pairs,
    exclude = the users' remaining training pairs (none on a candidate).
    """
    if not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise ConfigError(f"fraction must be in (0, 1), got {fraction!r}")
    train, full = default_protocol(ds)
    cold = choose_cold(full.candidates, fraction, seed)
    is_cold = np.zeros(train.n_items, bool)
    is_cold[cold] = True
    inter = train.interactions.select(~is_cold[train.interactions.indices])
    item_x = None if train.item_x is None else blank_daily(train.item_x, cold)
    train = dataclasses.replace(train, interactions=inter, item_x=item_x)
    relevance = keep_columns(full.relevance, is_cold)
    rows = np.flatnonzero(np.diff(relevance.indptr) > 0)
    users = full.users[rows]
    truth = None if full.truth is None else keep_columns(full.truth, is_cold)[rows]
    test = TestSet(
        users=users,
        candidates=cold,
        relevance=relevance[rows],
        exclude=inter.csr("ones", bool)[users],
        truth=truth,
    )
    return train, test


def choose_cold(candidates: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The sorted cold videos: a seeded draw of ``max(1, round(fraction * n))``."""
    n_cold = max(1, round(fraction * candidates.size))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=n_cold, replace=False)).astype(np.int64)


def blank_daily(item_x: FeatureMatrix, items: np.ndarray) -> FeatureMatrix:
    """``item_x`` with the daily-statistics columns of ``items`` as for a video without a
    row in item_daily_features.csv: every ``daily_*`` column 0, ``daily_missing`` 1.
    The other blocks (tags, captions, duration) are unchanged. Returns a copy."""
    values = item_x.values.copy()
    daily = [j for j, c in enumerate(item_x.columns) if c.startswith(DAILY_PREFIX)]
    if daily:
        values[np.ix_(items, daily)] = 0.0
    if DAILY_MISSING in item_x.columns:
        values[items, item_x.columns.index(DAILY_MISSING)] = 1.0
    note = f"{items.size} cold videos: daily statistics blanked (daily_missing = 1)"
    return FeatureMatrix(values, item_x.columns, [*item_x.notes, note])


def keep_columns(m: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """The stored entries of ``m`` on the columns where ``keep`` is True (explicit zeros
    included: they are observed pairs); same shape."""
    import scipy.sparse as sp

    m = sp.csr_matrix(m)
    mask = keep[m.indices]
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))[mask]
    indptr = np.zeros(m.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=m.shape[0]), out=indptr[1:])
    return sp.csr_matrix((m.data[mask], m.indices[mask], indptr), shape=m.shape)
