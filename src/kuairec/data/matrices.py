"""The two interaction matrices: strict read, exact-duplicate removal, the row-level log
and the per-pair aggregate.

All vectorised over the whole file: one stable argsort of the pair key serves both the
duplicate search (only rows of pairs seen more than once can be duplicates: they are
hashed and compared) and the per-pair aggregation (``reduceat`` over the sorted rows).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kuairec.data.aggregate import aggregate_sorted
from kuairec.data.dataset import IdMap, Interactions
from kuairec.data.describe import matrix_summary
from kuairec.data.duplicates import duplicate_free_mask
from kuairec.data.schema import FileSpec
from kuairec.data.validate import read_checked
from kuairec.errors import DataError

_FIRST_DATA_LINE = 2


Columns = dict[str, np.ndarray]
_LUT_MAX_ID = 1 << 26  # ids below this map through a lookup table, above by binary search


class IdIndex:
    """Raw ids -> indices for the matrices' id map (the sorted union of ``raw_arrays``):
    a lookup table for small ids, binary search otherwise."""

    def __init__(self, *raw_arrays: Any, name: str) -> None:
        raw_arrays = tuple(np.asarray(a) for a in raw_arrays)
        top = max(int(a.max()) for a in raw_arrays)
        if top < _LUT_MAX_ID:
            seen = np.zeros(top + 1, dtype=bool)
            for a in raw_arrays:
                seen[a] = True
            raw = np.flatnonzero(seen)
            self.lut: np.ndarray | None = np.full(top + 1, -1, dtype=np.int32)
            self.lut[raw] = np.arange(raw.size, dtype=np.int32)
        else:
            raw = np.unique(np.concatenate(raw_arrays))
            self.lut = None
        self.map = IdMap(raw, name=name)

    def __call__(self, raw_ids: Any) -> np.ndarray:
        """Indices (int32) of ids known to be in the map (the matrices' own ids), from a
        numpy array or a polars Series (gathered by polars: no copy of the ids)."""
        if self.lut is not None and not isinstance(raw_ids, np.ndarray):
            import polars as pl

            return pl.Series(self.lut).gather(raw_ids).to_numpy()
        raw_ids = np.asarray(raw_ids)
        if self.lut is not None:
            return self.lut[raw_ids]
        return np.searchsorted(self.map.raw, raw_ids).astype(np.int32)

    def lookup(self, raw_ids: np.ndarray) -> np.ndarray:
        """Indices of any ids, -1 for those not in the map."""
        if self.lut is None:
            return self.map.to_index(raw_ids, unknown="mask").astype(np.int32)
        raw_ids = np.asarray(raw_ids)
        inside = (raw_ids >= 0) & (raw_ids < self.lut.size)
        out = np.full(raw_ids.shape, -1, dtype=np.int32)
        out[inside] = self.lut[raw_ids[inside]]
        return out


# one numpy array per matrix column (time skipped)


def read_matrix(path: Path, spec: FileSpec) -> Columns:
    """Read a matrix strictly into numpy columns, without materialising ``time``
    (``timestamp`` holds the same instant). Ids, durations and dates are read as int32
    when they fit; nulls (the small matrix's rows without time) become NaN."""
    import polars as pl

    compact = {
        name: pl.Int32()
        for name in ("user_id", "video_id", "play_duration", "video_duration", "date")
        if spec.column(name).kind == "int"
    }
    df = read_checked(path, spec, skip=("time",), require_rows=True, compact=compact)
    cols: Columns = {}
    for name in list(df.columns):  # column by column: one copy alive at a time
        series = df.drop_in_place(name)
        if name in ("user_id", "video_id"):
            cols[name] = series  # mapped to indices by a polars gather, no copy
        else:
            cols[name] = series.to_numpy()  # a copy: the parser leaves many chunks
        del series
    date = cols["date"]
    if date.dtype.kind == "f":
        whole = np.isnan(date) | (date == np.floor(date))
        if not whole.all():
            row = int(np.flatnonzero(~whole)[0])
            raise DataError(
                f"expected a whole yyyymmdd date, found {date[row]!r}",
                file=path,
                row=row + _FIRST_DATA_LINE,
                column="date",
            )
    return cols


@dataclass
class MatrixResult:
    interactions: Interactions
    summary: dict[str, Any]
    duplicates: int
    rows_without_time: int
    zero_durations: int  # rows with video_duration 0 (no duration: see DurationStats)
    users_seen: np.ndarray  # bool per user_idx
    items_seen: np.ndarray  # bool per item_idx


def process_matrix(
    cols: Columns,
    users: Any,
    items: Any,
    log_path: Path,
    durations: DurationStats,
) -> MatrixResult:
    """Map ids, drop exact duplicates, write the log (IPC) and aggregate per pair.

    ``cols`` is consumed: its arrays are released as soon as they are used, which keeps
    the peak memory of a full-size load under 2 GB.
    """
    n_users, n_items = len(users.map), len(items.map)
    u = users(cols.pop("user_id"))
    i = items(cols.pop("video_id"))
    cols = {"user_idx": u, "item_idx": i, **cols}  # indices stand for the ids from here on
    key = u.astype(np.int64)
    key *= n_items
    key += i
    key, order = sort_keys(key, n_users * n_items, width=n_items)
    keep = duplicate_free_mask(cols, key, order)
    with ThreadPoolExecutor(max_workers=1) as pool:  # polars writes while numpy aggregates
        written = pool.submit(_write_log, dict(cols), u, i, keep, log_path)
        del u
        result = _aggregate_and_summarise(cols, i, key, order, keep, durations, n_users, n_items)
        written.result()
    return result


def sort_keys(
    key: np.ndarray, key_bound: int, width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(sorted keys, the stable argsort), consuming ``key``.

    When key and row number fit together in 63 bits, one in-place sort of the packed
    ``key << row_bits | row`` replaces an argsort and a gather (about 3x faster), with no
    other buffer. ``width`` says keys are ``row * width + column`` (user x item): a file
    grouped by user (KuaiRec's are) then splits into two blocks at a user boundary, and
    the blocks are sorted in two threads (numpy releases the GIL)."""
    n = key.size
    row_bits = max(int(n - 1).bit_length(), 1)
    if max(int(key_bound - 1).bit_length(), 1) + row_bits > 63:
        order = np.argsort(key, kind="stable")
        return key[order], order
    order = np.arange(n, dtype=np.int64)
    key <<= row_bits
    key |= order
    _sort_packed(key, row_bits, width)
    np.bitwise_and(key, (1 << row_bits) - 1, out=order)
    key >>= row_bits
    return key, order


_SPLIT_SORT_ROWS = 1 << 20  # from this many rows on, a user-grouped sort runs in two halves


def _sort_packed(packed: np.ndarray, row_bits: int, width: int | None) -> None:
    """Sort ``packed`` in place: in two threads when the rows below the middle row's
    user come first (the two blocks then sort independently), else in one."""
    n = packed.size
    if width and n >= _SPLIT_SORT_ROWS:
        first_of_middle_user = (int(packed[n // 2]) >> row_bits) // width * width << row_bits
        below = packed < first_of_middle_user
        cut = int(np.count_nonzero(below))
        if 0 < cut < n and below[:cut].all():
            with ThreadPoolExecutor(max_workers=1) as pool:
                second = pool.submit(packed[cut:].sort)
                packed[:cut].sort()
                second.result()
            return
    packed.sort()


def _aggregate_and_summarise(
    cols: Columns,
    i: np.ndarray,
    key: np.ndarray,
    order: np.ndarray,
    keep: np.ndarray | None,
    durations: DurationStats,
    n_users: int,
    n_items: int,
) -> MatrixResult:
    rows_raw = cols["watch_ratio"].size
    n_kept = rows_raw if keep is None else int(np.count_nonzero(keep))

    # duplicates change neither min/max durations, nor which users/videos are present
    durations.update(i, cols["video_duration"])
    zero = cols["video_duration"] == 0
    zero_durations = int(np.count_nonzero(zero if keep is None else zero & keep))
    del zero
    items_seen = np.bincount(i, minlength=n_items) > 0
    date = cols["date"]
    date_range = (int(np.nanmin(date)), int(np.nanmax(date))) if np.any(date == date) else None
    wr, ts = cols["watch_ratio"], cols["timestamp"]
    cols.clear()  # the log writer holds its own references until it is done
    dropped = None if keep is None else np.flatnonzero(~keep[order])
    inter = aggregate_sorted(key, order, wr, ts, n_users, n_items, dropped=dropped)
    del key, order, dropped
    no_time = np.isnan(ts)
    if keep is not None:
        no_time &= keep
        wr = wr[keep]
    else:
        wr = wr.copy()  # the summary sorts it in place
    no_time = int(np.count_nonzero(no_time))
    users_seen = np.diff(inter.indptr) > 0
    summary = matrix_summary(
        rows_raw=rows_raw,
        watch_ratio=wr,
        users=int(users_seen.sum()),
        videos=int(items_seen.sum()),
        unique_pairs=inter.nnz,
        rows_without_time=no_time,
        date_range=date_range or (None, None),
        overwrite=True,
    )
    summary["zero_duration_rows"] = zero_durations
    return MatrixResult(
        interactions=inter,
        summary=summary,
        duplicates=rows_raw - n_kept,
        rows_without_time=no_time,
        zero_durations=zero_durations,
        users_seen=users_seen,
        items_seen=items_seen,
    )


def _write_log(
    cols: Columns, u: np.ndarray, i: np.ndarray, keep: np.ndarray | None, path: Path
) -> None:
    """Stream the deduplicated rows, ids replaced by indices, to an IPC file (the frame
    wraps the numpy arrays without copying them)."""
    import polars as pl

    names = ("play_duration", "video_duration", "date", "timestamp", "watch_ratio")
    frame = pl.DataFrame({"user_idx": u, "item_idx": i, **{c: cols[c] for c in names}}).lazy()
    if keep is not None:
        frame = frame.filter(pl.lit(pl.Series(keep)))
    date = pl.col("date")
    if cols["date"].dtype.kind == "f":
        date = date.fill_nan(None)
    columns = [
        pl.col("user_idx"),
        pl.col("item_idx"),
        pl.col("play_duration").cast(pl.Int64),
        pl.col("video_duration").cast(pl.Int64),
        date.cast(pl.Int32),
        pl.col("timestamp").fill_nan(None),
        pl.col("watch_ratio"),
    ]
    frame.select(columns).sink_ipc(path, compression="uncompressed")


class DurationStats:
    """video_duration per item: the median over both matrices' (deduplicated) rows.

    Durations are nearly always constant per video, so only min and max are tracked;
    the exact median is computed from the cached logs for the few items where they
    differ. A duration of 0 means "unknown": it is left out of the median, and an item
    with no positive duration gets 0 (which the duration label treats as no duration,
    :func:`kuairec.evaluation.labels.duration_bucket`)."""

    def __init__(self, n_items: int) -> None:
        self.lo = np.full(n_items, np.inf)
        self.hi = np.full(n_items, -np.inf)
        self._lock = threading.Lock()  # safe to update from several threads

    def update(self, item_idx: np.ndarray, duration: np.ndarray) -> None:
        # min/max in the durations' own dtype: ufunc.at's fast path needs equal dtypes
        info = np.iinfo(duration.dtype) if duration.dtype.kind in "iu" else None
        top, bottom = (info.max, info.min) if info else (np.inf, -np.inf)
        lo = np.full(self.lo.size, top, dtype=duration.dtype)
        hi = np.full(self.hi.size, bottom, dtype=duration.dtype)
        positive = duration > 0
        if not positive.all():  # zero durations are unknown ones (rare: a copy is fine)
            item_idx, duration = item_idx[positive], duration[positive]
        np.minimum.at(lo, item_idx, duration)
        np.maximum.at(hi, item_idx, duration)
        seen = np.zeros(self.lo.size, dtype=bool)
        seen[item_idx] = True
        with self._lock:
            self.lo[seen] = np.minimum(self.lo[seen], lo[seen])
            self.hi[seen] = np.maximum(self.hi[seen], hi[seen])

    def medians(self, log_dir: Path) -> np.ndarray:
        out = self.lo.copy()
        out[~np.isfinite(out)] = 0.0  # no positive duration seen
        varying = np.flatnonzero(np.isfinite(self.lo) & (self.lo != self.hi))
        if varying.size == 0:
            return out
        import polars as pl

        logs = [pl.scan_ipc(log_dir / f"log_{w}.arrow") for w in ("big", "small")]
        med = (
            pl.concat([lf.select("item_idx", "video_duration") for lf in logs])
            .filter(pl.col("item_idx").is_in(pl.Series(varying.astype(np.int32)).implode()))
            .filter(pl.col("video_duration") > 0)
            .group_by("item_idx")
            .agg(pl.col("video_duration").cast(pl.Float64).median())
            .collect()
        )
        out[med["item_idx"].to_numpy()] = med["video_duration"].to_numpy()
        return out
