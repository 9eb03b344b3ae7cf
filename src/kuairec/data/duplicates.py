"""Exact duplicate rows of an interaction matrix, found without comparing every pair.

Only rows of (user, video) pairs seen twice or more can repeat one another; among them a
hash of (pair, timestamp, watch_ratio) proposes candidates, every candidate is confirmed
column by column, and the rare ambiguous groups are resolved by an exact sort.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Columns = dict[str, Any]

_MIX = np.uint64(0x9E3779B97F4A7C15)


def _row_hash(columns: list[np.ndarray]) -> np.ndarray:
    """A 64-bit hash of each row from its columns' bits (vectorised, wrapping)."""
    h = np.zeros(columns[0].size, dtype=np.uint64)
    for col in columns:
        h ^= _bits(col)
        h *= _MIX
        h ^= h >> np.uint64(29)
    return h


def _bits(col: np.ndarray) -> np.ndarray:
    """uint64 bit patterns, equal exactly when the values are (NaN == NaN, -0.0 == 0.0)."""
    if col.dtype.kind == "f":
        col = np.where(np.isnan(col), np.nan, col.astype(np.float64) + 0.0)
    elif col.dtype.itemsize != 8:
        col = col.astype(np.int64)
    return col.view(np.uint64)


def duplicate_free_mask(
    cols: Columns, key_sorted: np.ndarray, order: np.ndarray
) -> np.ndarray | None:
    """Boolean mask over the file's rows keeping the first of each set of exactly equal
    rows (None: no duplicates). ``order`` is a stable argsort of the pair key and
    ``key_sorted`` the sorted keys: only rows of pairs seen twice or more can repeat.

    Equal rows share (pair, timestamp, watch_ratio). When every pair's rows come in time
    order (a log sorted by time per user, as KuaiRec's are), the runs of rows sharing pair
    and instant are the candidates; otherwise a hash of (pair, timestamp, watch_ratio)
    proposes them. Each candidate is compared column by column with its run's earliest
    row; a run whose members are not all equal to it (a different row at the same
    instant, or a hash collision) is resolved exactly by sorting its rows on every column.
    """
    same_as_prev = key_sorted[1:] == key_sorted[:-1]
    if not same_as_prev.any():
        return None
    in_multi = np.zeros(key_sorted.size, dtype=bool)
    in_multi[1:] |= same_as_prev
    in_multi[:-1] |= same_as_prev
    del same_as_prev
    rows = order[in_multi]  # grouped by pair, file order inside a pair
    pair = key_sorted[in_multi]
    del in_multi
    ts = cols["timestamp"][rows]
    if _in_time_order(pair, ts):  # a log sorted by time per user: runs of equal instants
        by_hash = np.arange(rows.size)
        new_run = np.concatenate([[True], (pair[1:] != pair[:-1]) | (ts[1:] != ts[:-1])])
    else:
        by_hash, new_run = _hash_runs([pair, ts, cols["watch_ratio"][rows]])
    del pair, ts
    if new_run.all():
        return None
    run_id = np.cumsum(new_run) - 1
    earliest = np.minimum.reduceat(by_hash, np.flatnonzero(new_run))  # first in file order
    rep = earliest[run_id]
    later = by_hash != rep
    cand, first, cand_run = by_hash[later], rep[later], run_id[later]
    same = _rows_equal(cols, rows[cand], rows[first])
    drop = rows[cand[same]]
    mixed = np.unique(cand_run[~same])
    if mixed.size:  # rare: resolve those runs exactly
        members = rows[by_hash[np.isin(run_id, mixed)]]
        drop = np.concatenate([drop[~np.isin(drop, members)], _exact_repeats(cols, members)])
    if drop.size == 0:
        return None
    keep = np.ones(key_sorted.size, dtype=bool)
    keep[drop] = False
    return keep


def _in_time_order(pair: np.ndarray, ts: np.ndarray) -> bool:
    """Whether every pair's rows (in file order) have non-decreasing timestamps, none
    missing: then exactly equal rows, sharing pair and instant, are neighbours."""
    if np.isnan(ts).any():
        return False
    return bool(np.all((ts[1:] >= ts[:-1]) | (pair[1:] != pair[:-1])))


def _hash_runs(proposal: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Positions ordered by a hash of (pair, timestamp, watch_ratio), and where each run
    of equal hashes starts (in that order)."""
    import polars as pl  # its multi-threaded sort: half numpy's time for ~4M hashes

    h = _row_hash(proposal)
    by_hash = pl.Series(h).arg_sort().to_numpy()  # not stable: see `earliest` below
    by_hash = by_hash.astype(np.int64, copy=False)
    h = h[by_hash]
    return by_hash, np.concatenate([[True], h[1:] != h[:-1]])


def _rows_equal(cols: Columns, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether file rows ``a[k]`` and ``b[k]`` are equal in every column."""
    same = np.ones(a.size, dtype=bool)
    for col in cols.values():
        x, y = col[a], col[b]
        same &= (x == y) | (np.isnan(x) & np.isnan(y)) if col.dtype.kind == "f" else x == y
    return same


def _exact_repeats(cols: Columns, rows: np.ndarray) -> np.ndarray:
    """The rows (of ``rows``) equal to an earlier one: a stable sort on every column."""
    rows = np.sort(rows)
    values = [_bits(col[rows]) for col in cols.values()]
    order = np.lexsort(values[::-1])  # stable: file order among equal rows
    equal = np.ones(rows.size - 1, dtype=bool)
    for v in values:
        sorted_v = v[order]
        equal &= sorted_v[1:] == sorted_v[:-1]
    return rows[order[1:][equal]]
