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
    relevance entry is excluded.
    """

    __test__ = False  # not a pytest test class

    users: np.ndarray
    candidates: np.ndarray
    relevance: sp.csr_matrix
    exclude: sp.csr_matrix
    truth: sp.csr_matrix | None = None

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
    from kuairec.data.features import build_features

    user_x, item_x = build_features(ds)
    train = dataclasses.replace(ds.train_set(), interactions=big, user_x=user_x, item_x=item_x)
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


def load_interactions_csv(path: str | Path) -> tuple[IdMap, IdMap, LogArrays]:
    """Read ``user_id,video_id,timestamp,watch_ratio`` (extra columns are ignored).

    Ids are mapped to contiguous indices (sorted raw ids). Raises DataError naming the file,
    the line and the column for a missing column, a non-numeric or missing value, a
    non-finite timestamp or watch_ratio, or one outside the loader's ranges
    (:data:`kuairec.data.schema.RANGES`: timestamps between 2000-01-01 and 2100-01-01,
    watch_ratio between 0 and 10,000).
    """
    import polars as pl

    path = Path(path)
    from kuairec.data.validate import first_invalid_utf8_line, sniff

    if not path.is_file():
        raise DataError("file does not exist", file=path)
    with open(path, "rb") as fh:
        sniff(path, fh.read(1 << 16))  # compressed, UTF-16, binary, CR-only: named
    try:
        df = pl.read_csv(path, infer_schema=False)
    except Exception as exc:  # polars raises several types for unreadable files
        line = first_invalid_utf8_line(path)
        if line is not None:
            raise DataError("invalid UTF-8: expected UTF-8 text", file=path, row=line) from None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"cannot read as CSV: {first}", file=path) from None
    df = df.rename({c: c.strip() for c in df.columns})
    missing = [c for c in CSV_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"missing column(s) {missing}: expected a header with {','.join(CSV_COLUMNS)}, "
            f"found {df.columns}",
            file=path,
        )
    if df.height == 0:
        raise DataError("no data rows", file=path)
    cols = {c: _parse_column(df[c], c, path) for c in CSV_COLUMNS}
    for c in ("watch_ratio", "timestamp"):  # the loader's ranges (schema.RANGES)
        _parse_column(df[c].str.strip_chars(), c, path, ranges_of=cols[c])
    users = IdMap(np.unique(cols["user_id"]), name="user_id")
    items = IdMap(np.unique(cols["video_id"]), name="video_id")
    log = LogArrays(
        users.to_index(cols["user_id"]),
        items.to_index(cols["video_id"]),
        cols["timestamp"],
        cols["watch_ratio"],
    )
    return users, items, log


def _parse_column(
    col: Any, name: str, path: Path, ranges_of: np.ndarray | None = None
) -> np.ndarray:
    """One column of a user log, typed and checked against the loader's ranges
    (:data:`kuairec.data.schema.RANGES`: ``timestamp`` and ``watch_ratio``); every column
    is parsed before any range is checked."""
    import polars as pl

    from kuairec.data.schema import RANGES

    if ranges_of is not None:  # the range check of values already parsed
        bounds = RANGES[name]
        row = bounds.first_violation(ranges_of)
        if row is not None:
            raise DataError(
                f"expected {bounds.describe()}, found {col[row]!r}",
                file=path,
                row=row + 2,
                column=name,
            )
        return ranges_of

    is_id = name in ("user_id", "video_id")
    text = col.str.strip_chars()
    parsed = text.cast(pl.Int64 if is_id else pl.Float64, strict=False)
    bad = parsed.is_null().to_numpy()
    values = parsed.to_numpy()
    if not is_id:
        values = values.astype(np.float64)
        bad |= ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        found = text[row]
        kind = (
            "an integer id"
            if is_id
            else "a finite number" + (" >= 0" if name == "watch_ratio" else "")
        )
        raise DataError(
            f"expected {kind}, found {'a missing value' if found in (None, '') else repr(found)}",
            file=path,
            row=row + 2,
            column=name,
        )
    return values.astype(np.int64 if is_id else np.float64)


def make_train_set(interactions: Interactions, users: IdMap, items: IdMap) -> TrainSet:
    """A TrainSet without a KuaiRecDataset (no video durations, tags or user features)."""
    if interactions.shape != (len(users), len(items)):
        raise DataError(
            f"interactions have shape {interactions.shape}, expected ({len(users)}, {len(items)})"
        )
    return TrainSet(interactions=interactions, users=users, items=items)


def temporal_experiment(
    path: str | Path, test_fraction: float = 0.2, seed: int = 0
) -> tuple[TrainSet, TestSet]:
    """Read a user CSV and split it with :func:`temporal_protocol`."""
    users, items, log = load_interactions_csv(path)
    inter, test = temporal_protocol(
        *log, len(users), len(items), test_fraction=test_fraction, seed=seed
    )
    return make_train_set(inter, users, items), test
