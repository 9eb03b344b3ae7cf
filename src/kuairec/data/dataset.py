"""The typed dataset object: id maps, per-pair interaction matrices and features.

Ids are mapped once, here, at the data boundary: raw KuaiRec ids (``user_id``,
``video_id``) become contiguous indices (``user_idx``, ``item_idx``). Models and metrics
only ever see indices.

Index spaces: users are the union of the big and small matrices' users, items the union
of their videos, both sorted by raw id. Side-file rows whose ids are absent from the
matrices are dropped (and counted) by the loader.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from kuairec.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl
    import scipy.sparse as sp

Unknown = Literal["error", "drop", "mask"]


@dataclass(frozen=True, eq=False)
class IdMap:
    """Raw ids <-> contiguous indices. ``raw`` is sorted ascending; index = position.

    Raw ids are 64-bit integers (``int64``: KuaiRec's ids and most people's), unsigned
    64-bit integers (``uint64``: hashes beyond ``2**63 - 1``, such as
    ``18446744073709500202``) or text (``str``: ids such as ``"u_17"``). ``to_raw`` gives
    back the ids as the data wrote them, in that type.

    Unknown raw ids follow an explicit rule: ``"error"`` raises :class:`DataError`,
    ``"drop"`` removes them (returning only known ids' indices), ``"mask"`` maps them to -1.
    """

    raw: np.ndarray
    name: str = "id"

    def __post_init__(self) -> None:
        raw = _raw_ids(self.raw, self.name)
        if raw.ndim != 1 or (raw.size > 1 and not np.all(raw[1:] > raw[:-1])):
            raise ValueError(f"IdMap({self.name}): raw ids must be 1-D, sorted and unique")
        object.__setattr__(self, "raw", raw)

    def __len__(self) -> int:
        return int(self.raw.size)

    @property
    def kind(self) -> Literal["int", "uint", "text"]:
        """How the raw ids are typed: ``int`` (int64), ``uint`` (uint64) or ``text``."""
        return {"i": "int", "u": "uint"}.get(self.raw.dtype.kind, "text")  # type: ignore[return-value]

    def to_index(self, raw_ids: Any, unknown: Unknown = "error") -> np.ndarray:
        ids, valid = self._cast(raw_ids)
        pos = np.searchsorted(self.raw, ids)
        pos_c = np.minimum(pos, max(len(self) - 1, 0))
        known = (
            valid & (pos < len(self)) & (self.raw[pos_c] == ids)
            if len(self)
            else np.zeros(ids.size, bool)
        )
        if known.all():
            return pos.astype(np.int64)
        if unknown == "error":
            bad = ids[~known][:5].tolist()
            raise DataError(f"unknown {self.name} {bad} (not in the training data's id map)")
        if unknown == "drop":
            return pos[known].astype(np.int64)
        return np.where(known, pos, -1).astype(np.int64)

    def _cast(self, raw_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """``raw_ids`` in the map's type, and which of them can be ids at all (a negative
        number is never a uint64 id; an integer matches the text id that spells it)."""
        if self.kind == "text":
            ids = np.asarray(raw_ids).ravel().astype(str)
            return ids, np.ones(ids.size, bool)
        if self.kind == "int":
            ids = np.asarray(raw_ids, dtype=np.int64).ravel()
            return ids, np.ones(ids.size, bool)
        arr = np.asarray(raw_ids).ravel()
        if arr.dtype.kind == "u":
            return arr.astype(np.uint64), np.ones(arr.size, bool)
        if arr.dtype.kind == "i":
            return np.where(arr >= 0, arr, 0).astype(np.uint64), arr >= 0
        # Python ints beyond int64 beside smaller ones make numpy choose float64: read them
        # one by one, exactly
        values = np.asarray(raw_ids, dtype=object).ravel().tolist()
        valid = np.array([isinstance(v, int | np.integer) and 0 <= v < 2**64 for v in values])
        ids = [int(v) if ok else 0 for v, ok in zip(values, valid.tolist(), strict=True)]
        return np.array(ids, dtype=np.uint64), valid.astype(bool)

    def to_raw(self, index: Any) -> np.ndarray:
        idx = np.asarray(index, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise DataError(f"{self.name} index out of range [0, {len(self)})")
        return self.raw[idx]

    def fingerprint(self) -> str:
        """A short hash of the raw ids: two maps with equal fingerprints map ids alike."""
        data = self.raw.tobytes()
        if self.kind != "int":  # int64 maps hash as before (saved models stay valid)
            data = self.raw.dtype.str.encode() + data
        return hashlib.sha256(data).hexdigest()[:16]


def _raw_ids(values: Any, name: str) -> np.ndarray:
    """The raw ids as int64, uint64 (only when some exceed int64) or str."""
    raw = np.asarray(values)
    text = raw.dtype.kind == "O" and raw.size and isinstance(raw.flat[0], str)
    if raw.dtype.kind in "US" or text:
        return raw.astype(str)
    if raw.dtype.kind == "u" and raw.size and raw.max() > np.iinfo(np.int64).max:
        return raw.astype(np.uint64)
    return raw.astype(np.int64)


@dataclass(eq=False)
class Interactions:
    """A per-pair aggregate of an interaction log as CSR arrays over (n_users, n_items).

    One stored entry per (user, item) pair, rows sorted by user and, inside a row, by item.
    ``views`` counts the (deduplicated) log rows of the pair; ``watch_ratio_mean`` and
    ``watch_ratio_max`` aggregate their watch_ratio; timestamps are NaN when the log had
    none (the small matrix's rows without time).
    """

    indptr: np.ndarray  # int64, n_users + 1
    indices: np.ndarray  # int32, item_idx
    views: np.ndarray  # int32
    watch_ratio_mean: np.ndarray  # float32
    watch_ratio_max: np.ndarray  # float32
    first_timestamp: np.ndarray  # float64, NaN = unknown
    last_timestamp: np.ndarray  # float64, NaN = unknown
    n_items: int

    VALUE_FIELDS = (
        "views",
        "watch_ratio_mean",
        "watch_ratio_max",
        "first_timestamp",
        "last_timestamp",
    )

    @property
    def n_users(self) -> int:
        return int(self.indptr.size - 1)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    @property
    def nnz(self) -> int:
        return int(self.indices.size)

    def row_users(self) -> np.ndarray:
        """user_idx of every stored entry (the COO row array)."""
        return np.repeat(np.arange(self.n_users, dtype=np.int32), np.diff(self.indptr))

    def user_counts(self) -> np.ndarray:
        """Number of distinct items per user."""
        return np.diff(self.indptr)

    def item_counts(self) -> np.ndarray:
        """Number of distinct users per item."""
        return np.bincount(self.indices, minlength=self.n_items)

    def csr(self, values: str = "watch_ratio_mean", dtype: Any = np.float32) -> sp.csr_matrix:
        """A scipy CSR matrix of one value field, or ``"ones"`` for the binary pattern."""
        import scipy.sparse as sp

        if values == "ones":
            data = np.ones(self.nnz, dtype=dtype)
        elif values in self.VALUE_FIELDS:
            data = np.asarray(getattr(self, values), dtype=dtype)
        else:
            raise ValueError(f"values must be 'ones' or one of {self.VALUE_FIELDS}, got {values!r}")
        return sp.csr_matrix((data, self.indices, self.indptr), shape=self.shape)

    def select(self, mask: np.ndarray) -> Interactions:
        """Keep the entries where ``mask`` (length nnz) is True."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.nnz,):
            raise ValueError(
                f"mask must have one entry per stored pair ({self.nnz}), got {mask.shape}"
            )
        kept_before = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        indptr = kept_before[self.indptr]  # entries kept before each row's start
        return Interactions(
            indptr=indptr,
            indices=self.indices[mask],
            n_items=self.n_items,
            **{f: getattr(self, f)[mask] for f in self.VALUE_FIELDS},
        )

    @classmethod
    def from_log(
        cls,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        watch_ratio: np.ndarray,
        timestamp: np.ndarray | None,
        shape: tuple[int, int],
    ) -> Interactions:
        """Aggregate a row-level log (repeated views allowed) into per-pair entries."""
        user_idx = np.asarray(user_idx, dtype=np.int64)
        item_idx = np.asarray(item_idx, dtype=np.int64)
        wr = np.asarray(watch_ratio, dtype=np.float64)
        ts = (
            np.full(wr.shape, np.nan)
            if timestamp is None
            else np.asarray(timestamp, dtype=np.float64)
        )
        n_users, n_items = shape
        key = user_idx * n_items + item_idx
        order = np.argsort(key, kind="stable")
        key = key[order]
        starts = (
            np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
            if key.size
            else np.array([], np.int64)
        )
        wr, ts = wr[order], ts[order]
        views = np.diff(np.append(starts, key.size)).astype(np.int32)
        if key.size:
            mean = np.add.reduceat(wr, starts) / views
            mx = np.maximum.reduceat(wr, starts)
            ts_filled_lo = np.where(np.isnan(ts), np.inf, ts)
            ts_filled_hi = np.where(np.isnan(ts), -np.inf, ts)
            first = np.minimum.reduceat(ts_filled_lo, starts)
            last = np.maximum.reduceat(ts_filled_hi, starts)
            first[~np.isfinite(first)] = np.nan
            last[~np.isfinite(last)] = np.nan
        else:
            mean = mx = first = last = np.array([], np.float64)
        pair = key[starts] if key.size else key
        rows = pair // n_items
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
        return cls(
            indptr=indptr,
            indices=(pair % n_items).astype(np.int32),
            views=views,
            watch_ratio_mean=mean.astype(np.float32),
            watch_ratio_max=mx.astype(np.float32),
            first_timestamp=first,
            last_timestamp=last,
            n_items=n_items,
        )


@dataclass(eq=False)
class FeatureMatrix:
    """Model-ready numeric features: one float32 row per user_idx (or item_idx), named
    columns, no NaN or inf (built by :mod:`kuairec.data.features`, see docs/features.md).

    ``notes`` says what was left out or filled (a missing side file, rows without data).
    """

    values: np.ndarray  # float32 (n_rows, n_features), C-contiguous
    columns: tuple[str, ...]
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        values = np.ascontiguousarray(self.values, dtype=np.float32)
        self.columns = tuple(self.columns)
        if values.ndim != 2 or values.shape[1] != len(self.columns):
            raise ValueError(
                f"FeatureMatrix: values of shape {values.shape} for {len(self.columns)} columns"
            )
        if len(set(self.columns)) != len(self.columns):
            raise ValueError("FeatureMatrix: column names must be unique")
        if not np.isfinite(values).all():
            raise ValueError("FeatureMatrix: values must be finite (no NaN or inf)")
        self.values = values

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.values.shape[1])

    @classmethod
    def empty(cls, n_rows: int, note: str | None = None) -> FeatureMatrix:
        """No columns (a missing side file), with a note saying why."""
        return cls(np.zeros((n_rows, 0), np.float32), (), [note] if note else [])

    @classmethod
    def hstack(cls, blocks: list[FeatureMatrix]) -> FeatureMatrix:
        """Blocks side by side (same rows): columns and notes concatenated."""
        if not blocks:
            raise ValueError("FeatureMatrix.hstack needs at least one block")
        n_rows = {b.n_rows for b in blocks}
        if len(n_rows) != 1:
            raise ValueError(f"FeatureMatrix.hstack: blocks have different row counts {n_rows}")
        return cls(
            np.hstack([b.values for b in blocks]),
            tuple(c for b in blocks for c in b.columns),
            [n for b in blocks for n in b.notes],
        )

    def column(self, name: str) -> np.ndarray:
        """One column by name (a view)."""
        return self.values[:, self.columns.index(name)]

    def select(self, rows: Any) -> FeatureMatrix:
        """The given rows (indices or a boolean mask), same columns and notes."""
        return FeatureMatrix(self.values[np.asarray(rows)], self.columns, list(self.notes))


#: KuaiRec's clock: its ``date`` columns are Beijing calendar days (UTC+8).
BEIJING_OFFSET_S = 8 * 3600
SECONDS_PER_DAY = 86_400


@dataclass(eq=False)
class DailyStats:
    """Per-video daily platform statistics by date (item_daily_features.csv), in index
    space: one row per (video, day), sorted by item then day; built once at the data
    boundary by :func:`kuairec.data.features.daily_stats`.

    ``day`` counts Beijing calendar days since 1970-01-01. A day's counts are complete
    only when the day is over, so a model that must not see the future after a cut-off
    time keeps the days :meth:`ended_by` it (never the day the cut-off falls in).
    ``upload_day`` is each video's ``upload_dt`` on the same scale (NaN = unknown).
    """

    item_idx: np.ndarray  # int32 (n_rows,)
    day: np.ndarray  # int32 (n_rows,)
    values: np.ndarray  # float32 (n_rows, n_columns): the daily counts
    columns: tuple[str, ...]
    upload_day: np.ndarray  # float64 (n_items,)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.columns = tuple(self.columns)
        n = self.item_idx.shape[0]
        if self.day.shape != (n,) or self.values.shape != (n, len(self.columns)):
            raise ValueError(
                f"DailyStats: item_idx {self.item_idx.shape}, day {self.day.shape} and values "
                f"{self.values.shape} do not describe {n} rows of {len(self.columns)} columns"
            )

    @property
    def n_items(self) -> int:
        return int(self.upload_day.shape[0])

    def column(self, name: str) -> np.ndarray:
        """One count column by name (a view)."""
        return self.values[:, self.columns.index(name)]

    @staticmethod
    def last_day_ended_by(cutoff: float) -> int:
        """The last Beijing day that is over at the unix time ``cutoff`` (+inf: every day)."""
        if not np.isfinite(cutoff):
            return np.iinfo(np.int32).max
        return int((cutoff + BEIJING_OFFSET_S) // SECONDS_PER_DAY) - 1

    @staticmethod
    def day_of(timestamp: float) -> int:
        """The Beijing day a unix time falls in."""
        return int((timestamp + BEIJING_OFFSET_S) // SECONDS_PER_DAY)


@dataclass
class CleaningReport:
    """What the loader did to the raw files, for ``describe()`` and the reports."""

    rows_read: dict[str, int] = field(default_factory=dict)  # file key -> data rows read
    duplicates_dropped: int = 0  # exact duplicate rows dropped from big_matrix
    small_rows_without_time: int = 0
    side_ids_dropped: dict[str, int] = field(default_factory=dict)  # file key -> rows dropped
    missing_files: list[str] = field(default_factory=list)  # optional files absent
    cold_test_users: int = 0  # small-matrix users absent from big_matrix
    cold_test_items: int = 0  # small-matrix videos absent from big_matrix
    notes: list[str] = field(default_factory=list)


@dataclass(eq=False)
class KuaiRecDataset:
    """Everything a model, an evaluation or a report needs, in index space.

    Built by :func:`kuairec.data.load.load_dataset` (which validates, cleans and caches);
    tests may build one directly from arrays.
    """

    users: IdMap
    items: IdMap
    big: Interactions  # training log aggregated per pair (duplicates dropped)
    small: Interactions  # fully observed test matrix, one row per pair
    video_duration: np.ndarray  # float64 ms per item_idx (median over the matrices' rows)
    item_tags: sp.csr_matrix | None = None  # (n_items, 31) multi-hot from item_categories
    user_features: pl.DataFrame | None = None  # one row per user_idx, in order; raw columns
    item_daily: pl.DataFrame | None = None  # one row per item_idx with data: aggregated stats
    captions: pl.DataFrame | None = None  # item_idx + caption/category columns
    social: sp.csr_matrix | None = None  # (n_users, n_users) friend adjacency
    truth: Interactions | None = None  # synthetic only: expected watch_ratio on small pairs
    report: CleaningReport = field(default_factory=CleaningReport)
    source: Path | None = None  # the data folder
    source_checksum: str = ""  # identity of the source files (see cache.py)
    cache_path: Path | None = None  # row-level logs cached here (see load.read_log)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def fingerprint(self) -> str:
        """Identity of the id maps: a saved model is only valid for an equal fingerprint."""
        return f"{self.users.fingerprint()}-{self.items.fingerprint()}"

    def train_set(self) -> TrainSet:
        """The default protocol's training data: the big matrix and the features."""
        return TrainSet(
            interactions=self.big,
            users=self.users,
            items=self.items,
            video_duration=self.video_duration,
            item_tags=self.item_tags,
            user_features=self.user_features,
            captions=self.captions,
            social=self.social,
        )


@dataclass(eq=False)
class TrainSet:
    """What ``Recommender.fit`` receives: training interactions plus side information.

    It never holds the synthetic truth: only the oracle is given that, explicitly.
    """

    interactions: Interactions
    users: IdMap
    items: IdMap
    video_duration: np.ndarray | None = None
    item_tags: sp.csr_matrix | None = None
    user_features: pl.DataFrame | None = None
    user_x: FeatureMatrix | None = None  # numeric user features (data.features)
    item_x: FeatureMatrix | None = None  # numeric item features (data.features)
    # side tables for models that need more than the matrices above (the two-stage
    # ranker): None where the file is missing; never the test matrix's outcomes
    captions: pl.DataFrame | None = None  # item_idx + caption category columns
    social: sp.csr_matrix | None = None  # (n_users, n_users) friend adjacency
    daily: DailyStats | None = None  # daily statistics by date (data.features.daily_stats)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def fingerprint(self) -> str:
        return f"{self.users.fingerprint()}-{self.items.fingerprint()}"
