"""Evaluation protocols: who is tested, on which candidates, against which observed pairs.

- :func:`default_protocol`: KuaiRec's own. Train on the big matrix, test on the fully
  observed small matrix; every small-matrix video is a candidate (cold ones included) and
  every candidate is ranked, no sampling.
- the validation splits of a training log (temporal and random): see
  :mod:`kuairec.evaluation.validation`.
- :func:`temporal_protocol` / :func:`temporal_experiment`: a per-user temporal holdout on
  one interaction log, e.g. a user CSV ``user_id,video_id,timestamp,watch_ratio``.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from kuairec.data.dataset import IdMap, Interactions, TrainSet
from kuairec.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import KuaiRecDataset

SECONDS_PER_DAY = 86_400.0
CSV_COLUMNS = ("user_id", "video_id", "timestamp", "watch_ratio")


@dataclass(eq=False)
class TestSet:
    """The test half of a protocol, row-aligned with ``users``.

    ``relevance[i, j]`` is the observed watch_ratio of ``(users[i], j)`` (explicit zeros are
    kept: every stored entry is an observed pair); ``exclude[i, j]`` is True for the user's
    training pairs, which are never ranked; ``truth`` (synthetic data only) holds expected
    watch ratios aligned the same way. Every relevance entry is on a candidate item and no
    relevance entry is excluded. ``label`` is the positive label this split is scored
    under when a model scores it while it trains (early stopping) or a tuner does; the
    evaluation of a run names its labels itself.
    """

    __test__ = False  # not a pytest test class

    users: np.ndarray
    candidates: np.ndarray
    relevance: sp.csr_matrix
    exclude: sp.csr_matrix
    truth: sp.csr_matrix | None = None
    label: str = "wr>2"

    def __post_init__(self) -> None:
        self.users = _sorted_ids(self.users, "users")
        self.candidates = _sorted_ids(self.candidates, "candidates")
        self.relevance = _canonical_csr(self.relevance, "relevance", np.float64)
        n_rows, n_items = self.relevance.shape
        if n_rows != self.users.size:
            raise DataError(
                f"TestSet: relevance has {n_rows} rows, expected one per test user "
                f"({self.users.size})"
            )
        if self.candidates.size and self.candidates[-1] >= n_items:
            raise DataError(
                f"TestSet: candidate item_idx {int(self.candidates[-1])} is out of range "
                f"[0, {n_items}) (relevance has {n_items} columns)"
            )
        self.exclude = _canonical_csr(self.exclude, "exclude", bool)
        self.exclude.eliminate_zeros()
        if self.truth is not None:
            self.truth = _canonical_csr(self.truth, "truth", np.float64)
        for name in ("exclude", "truth"):
            m = getattr(self, name)
            if m is not None and m.shape != self.relevance.shape:
                raise DataError(
                    f"TestSet: {name} has shape {m.shape}, expected {self.relevance.shape}"
                )
        self._check_entries()

    def _check_entries(self) -> None:
        rel = self.relevance
        if not np.all(np.isfinite(rel.data)) or np.any(rel.data < 0):
            bad = np.flatnonzero(~(np.isfinite(rel.data) & (rel.data >= 0)))[0]
            raise DataError(
                f"TestSet: relevance holds {rel.data[bad]!r}, expected watch ratios >= 0"
            )
        off = ~self.candidate_mask[rel.indices]
        if off.any():
            raise DataError(
                f"TestSet: {int(off.sum())} relevance entries are on items that are not "
                f"candidates (e.g. item_idx {int(rel.indices[off][0])}); they could never be hit"
            )
        overlap = self.relevance_pattern().multiply(self.exclude).nnz
        if overlap:
            raise DataError(
                f"TestSet: {overlap} test pairs are also excluded (training) pairs; "
                "a pair cannot be both trained on and tested"
            )

    @property
    def n_items(self) -> int:
        return int(self.relevance.shape[1])

    @cached_property
    def candidate_mask(self) -> np.ndarray:
        """Boolean (n_items,): True for candidate items."""
        mask = np.zeros(self.n_items, dtype=bool)
        mask[self.candidates] = True
        return mask

    @cached_property
    def entry_rows(self) -> np.ndarray:
        """Test-user row (0 .. len(users) - 1) of every stored relevance entry."""
        return np.repeat(np.arange(self.users.size, dtype=np.int64), np.diff(self.relevance.indptr))

    def relevance_pattern(self) -> sp.csr_matrix:
        import scipy.sparse as sp

        rel = self.relevance
        return sp.csr_matrix((np.ones(rel.nnz, bool), rel.indices, rel.indptr), shape=rel.shape)

    def restrict(self, rows: np.ndarray) -> TestSet:
        """The same split for a subset of its users: ``rows`` is a boolean mask over
        ``users`` (or positions into it); candidates and label stay."""
        rows = np.asarray(rows)
        pos = np.flatnonzero(rows) if rows.dtype == bool else np.sort(rows.astype(np.int64))
        truth = None if self.truth is None else self.truth[pos]
        return TestSet(
            self.users[pos], self.candidates, self.relevance[pos], self.exclude[pos], truth,
            self.label,
        )  # fmt: skip

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(user_idx, item_idx)`` of every observed test pair, in ``relevance.data`` order:
        the order in which ``evaluate(predictions=...)`` expects predicted watch ratios."""
        return self.users[self.entry_rows], self.relevance.indices.astype(np.int64)


def _sorted_ids(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"TestSet: {name} must be a 1-D integer array, got {arr.dtype} {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.size and (arr[0] < 0 or np.any(arr[1:] <= arr[:-1])):
        raise DataError(f"TestSet: {name} must be sorted, unique and >= 0")
    return arr


def _canonical_csr(m: Any, name: str, dtype: Any) -> sp.csr_matrix:
    import scipy.sparse as sp

    if not sp.issparse(m):
        raise DataError(f"TestSet: {name} must be a scipy sparse matrix, got {type(m).__name__}")
    out = sp.csr_matrix(m, dtype=dtype, copy=True)
    out.sort_indices()
    if out.nnz:
        key = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr)) * out.shape[1] + out.indices
        if np.any(key[1:] == key[:-1]):
            raise DataError(f"TestSet: {name} stores some (user, item) pair twice")
    return out


def _rows_csr(inter: Interactions, users: np.ndarray, values: str, dtype: Any) -> sp.csr_matrix:
    return inter.csr(values, dtype=dtype)[users]


# ---------------------------------------------------------------- KuaiRec's protocol


def default_protocol(ds: KuaiRecDataset) -> tuple[TrainSet, TestSet]:
    """KuaiRec's own protocol: train on the big matrix, test on the small one.

    Test users: every small-matrix user. Candidates: every small-matrix video (including
    videos without training interactions: cold, and positives when they are). Every
    candidate is ranked; a video in the user's training pairs is excluded. Small-matrix
    pairs never enter training: should the big matrix hold any, they are dropped from it
    (with a warning).
    """
    small, big = ds.small, ds.big
    users = np.flatnonzero(small.user_counts() > 0)
    candidates = np.flatnonzero(small.item_counts() > 0)
    test_pattern = _rows_csr(small, users, "ones", bool)
    leaked = _rows_csr(big, users, "ones", bool).multiply(test_pattern).nnz
    if leaked:
        big = big.select(~_in_pattern(big, small))
        warnings.warn(
            f"{leaked} small-matrix pairs are also in the big matrix: dropped from training",
            stacklevel=2,
        )
    from kuairec.data.features import build_features, daily_stats

    user_x, item_x = build_features(ds)
    daily = daily_stats(ds.item_daily, ds.n_items)
    train = dataclasses.replace(
        ds.train_set(), interactions=big, user_x=user_x, item_x=item_x, daily=daily
    )
    truth = None
    if ds.truth is not None:
        truth = _rows_csr(ds.truth, users, "watch_ratio_mean", np.float64)
    test = TestSet(
        users=users,
        candidates=candidates,
        relevance=_rows_csr(small, users, "watch_ratio_mean", np.float64),
        exclude=_rows_csr(big, users, "ones", bool),
        truth=truth,
    )
    return train, test


def _in_pattern(a: Interactions, b: Interactions) -> np.ndarray:
    """For every entry of ``a``: is the same (user, item) pair stored in ``b``?"""
    key_a = a.row_users().astype(np.int64) * a.n_items + a.indices
    key_b = b.row_users().astype(np.int64) * b.n_items + b.indices  # sorted (canonical)
    pos = np.minimum(np.searchsorted(key_b, key_a), max(key_b.size - 1, 0))
    return (key_b[pos] == key_a) if key_b.size else np.zeros(a.nnz, bool)


# ---------------------------------------------------------------- one-log protocol


def temporal_protocol(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    timestamp: np.ndarray,
    watch_ratio: np.ndarray,
    n_users: int,
    n_items: int,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[Interactions, TestSet]:
    """A per-user temporal holdout of one row-level log.

    Each user's last ``max(1, floor(test_fraction * rows))`` rows by time are test rows;
    rows without a timestamp count as the oldest; rows at the same time are ordered by
    :func:`kuairec.data.ties.tie_hash` of ``(seed, user, item)``, then item, then
    watch_ratio (never by file order: the Spark engine, which has none, orders them the
    same way). Users with fewer than 2 rows stay train-only. Test pairs that the user also
    has in training are dropped (they are excluded from ranking, so they could never be
    hit). Candidates: every item.
    """
    if not isinstance(test_fraction, int | float) or not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    u, i, ts, wr = _check_log(user_idx, item_idx, timestamp, watch_ratio, n_users, n_items)
    counts = np.bincount(u, minlength=n_users)
    n_test = np.where(counts >= 2, np.clip(np.floor(test_fraction * counts), 1, None), 0)
    from kuairec.data.ties import tie_hash

    time = np.where(np.isnan(ts), -np.inf, ts)
    order = np.lexsort((wr, i, tie_hash(seed, u, i), time, u))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(u.size) - starts[u[order]]
    is_test = np.empty(u.size, bool)
    is_test[order] = rank >= (counts - n_test)[u[order]]
    shape = (n_users, n_items)
    train = Interactions.from_log(u[~is_test], i[~is_test], wr[~is_test], ts[~is_test], shape)
    test_int = Interactions.from_log(u[is_test], i[is_test], wr[is_test], ts[is_test], shape)
    test_int = test_int.select(~_in_pattern(test_int, train))
    users = np.flatnonzero(test_int.user_counts() > 0)
    test = TestSet(
        users=users,
        candidates=np.arange(n_items, dtype=np.int64),
        relevance=_rows_csr(test_int, users, "watch_ratio_mean", np.float64),
        exclude=_rows_csr(train, users, "ones", bool),
    )
    return train, test


def _check_log(u: Any, i: Any, ts: Any, wr: Any, n_users: int, n_items: int) -> tuple:
    arrays = [np.asarray(a) for a in (u, i, ts, wr)]
    names = ("user_idx", "item_idx", "timestamp", "watch_ratio")
    for a, name in zip(arrays, names, strict=True):
        if a.ndim != 1 or a.size != arrays[0].size:
            raise DataError(
                f"{name}: expected a 1-D array of {arrays[0].size} values, got {a.shape}"
            )
    u, i = arrays[0].astype(np.int64), arrays[1].astype(np.int64)
    for a, n, name in ((u, n_users, "user_idx"), (i, n_items, "item_idx")):
        if a.size and (a.min() < 0 or a.max() >= n):
            raise DataError(f"{name}: values must lie in [0, {n}), found [{a.min()}, {a.max()}]")
    wr = arrays[3].astype(np.float64)
    if not np.all(np.isfinite(wr) & (wr >= 0)):
        raise DataError("watch_ratio: expected finite values >= 0")
    return u, i, arrays[2].astype(np.float64), wr


class LogArrays(NamedTuple):
    """A row-level log in index space (one entry per CSV row, in file order)."""

    user_idx: np.ndarray  # int64
    item_idx: np.ndarray  # int64
    timestamp: np.ndarray  # float64 unix seconds
    watch_ratio: np.ndarray  # float64


def load_interactions_csv(
    path: str | Path, notes: list[str] | None = None
) -> tuple[IdMap, IdMap, LogArrays]:
    """Read a user's log ``user_id,video_id,timestamp,watch_ratio`` (extra columns are
    ignored): CSV, gzip-compressed CSV or Parquet; see :mod:`kuairec.data.own_log` for
    the timestamp units and id types understood. What was understood is appended to
    ``notes``.

    Ids are mapped to contiguous indices (sorted raw ids). Raises DataError naming the file,
    the line and the column for a missing column, a missing id or watch_ratio, a value
    that does not parse, or a watch_ratio outside ``kuairec.data.schema.RANGES``.
    """
    from kuairec.data.own_log import read_own_log

    log = read_own_log(path)
    if notes is not None:
        notes.extend(log.notes)
    arrays = LogArrays(log.user_idx, log.item_idx, log.timestamp, log.watch_ratio)
    return log.users, log.items, arrays


def make_train_set(interactions: Interactions, users: IdMap, items: IdMap) -> TrainSet:
    """A TrainSet without a KuaiRecDataset (no video durations, tags or user features)."""
    if interactions.shape != (len(users), len(items)):
        raise DataError(
            f"interactions have shape {interactions.shape}, expected ({len(users)}, {len(items)})"
        )
    return TrainSet(interactions=interactions, users=users, items=items)


def temporal_experiment(
    path: str | Path,
    test_fraction: float = 0.2,
    notes: list[str] | None = None,
    seed: int = 0,
) -> tuple[TrainSet, TestSet]:
    """Read a user's log and split it with :func:`temporal_protocol` (ties in time broken
    by the seeded hash); what was understood of the file is appended to ``notes``. A log
    that leaves nothing to test (one row per user, one video, the same pairs repeated) is
    refused here, before any training."""
    users, items, log = load_interactions_csv(path, notes)
    if len(items) < 2:
        raise DataError(
            f"the log names {len(items)} video: ranking needs at least 2 videos", file=path
        )
    inter, test = temporal_protocol(
        *log, len(users), len(items), test_fraction=test_fraction, seed=seed
    )
    if test.relevance.nnz == 0:
        raise DataError(_nothing_to_test(log, len(users)), file=path)
    return make_train_set(inter, users, items), test


def _nothing_to_test(log: LogArrays, n_users: int) -> str:
    """Why a log's temporal split holds no test pair."""
    rows = np.bincount(log.user_idx, minlength=n_users)
    pairs = np.unique(log.user_idx * (int(log.item_idx.max()) + 1) + log.item_idx).size
    return (
        f"no test pair: {log.user_idx.size:,} rows, {n_users:,} users ({int((rows >= 2).sum()):,} "
        f"with 2 rows or more), {pairs:,} distinct (user, video) pairs; a user's last rows "
        "are held out only when the user has 2 rows or more, and a held-out pair that is also "
        "a training pair is dropped: expected users with several rows on different videos"
    )
