"""Per-pair aggregation of interaction rows already sorted by pair key.

Views, mean and max watch_ratio, first and last timestamp of every (user, video) pair,
with ``reduceat`` over the sorted rows: used for the two matrices
(:mod:`kuairec.data.matrices`) and the synthetic truth (:mod:`kuairec.data.side`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from kuairec.data.dataset import Interactions

_SPLIT_ROWS = 1 << 21  # from this many rows on, the aggregation runs in two threads


def aggregate_sorted(
    key_sorted: np.ndarray,
    order: np.ndarray,
    watch_ratio: np.ndarray,
    timestamp: np.ndarray | None,
    n_users: int,
    n_items: int,
    dropped: np.ndarray | None = None,
) -> Interactions:
    """Per-pair aggregate of rows already sorted by pair key (``order`` gives the rows).

    Same result as :meth:`Interactions.from_log`, with less memory and no second sort.
    ``dropped`` lists sorted positions of exact duplicates to leave out: they only count
    in the sum and the number of views (an exact copy changes no max or timestamp).
    Large inputs are cut in two at a pair boundary and the halves aggregated in two
    threads (numpy releases the GIL): each pair is reduced alone, so the result is the
    same; the row-sized buffer is shared, so the memory too.
    """
    n = key_sorted.size
    if n == 0:
        return Interactions.from_log(key_sorted, key_sorted, [], None, (n_users, n_items))
    starts = np.flatnonzero(np.concatenate([[True], key_sorted[1:] != key_sorted[:-1]]))
    n_pairs = starts.size
    views = np.empty(n_pairs, dtype=np.int32)
    np.subtract(starts[1:], starts[:-1], out=views[:-1], casting="unsafe")
    views[-1] = n - starts[-1]
    if dropped is not None and dropped.size:
        group = np.searchsorted(starts, dropped, side="right") - 1
        views -= np.bincount(group, minlength=n_pairs).astype(np.int32)
    else:
        dropped = None
    out = _PairAggregates(n_pairs, timestamp is None)
    part = _PairReducer(starts, order, watch_ratio, timestamp, dropped, views, out, n)
    mid = int(np.searchsorted(starts, n // 2)) if n >= _SPLIT_ROWS else n_pairs
    if 0 < mid < n_pairs:
        with ThreadPoolExecutor(max_workers=1) as pool:
            second = pool.submit(part, mid, n_pairs)
            part(0, mid)
            second.result()
    else:
        part(0, n_pairs)
    del part
    pair = out.buf.view(np.int64)
    np.take(key_sorted, starts, out=pair)
    indptr = np.searchsorted(pair, np.arange(n_users + 1, dtype=np.int64) * n_items)
    np.remainder(pair, n_items, out=pair)
    return Interactions(
        indptr=indptr.astype(np.int64),
        indices=pair.astype(np.int32),
        views=views,
        watch_ratio_mean=out.mean,
        watch_ratio_max=out.mx,
        first_timestamp=out.first,
        last_timestamp=out.last,
        n_items=n_items,
    )


class _PairAggregates:
    """The per-pair outputs of :func:`aggregate_sorted` (``buf``: a float64 per pair,
    the max, then the sum, then the pair keys)."""

    def __init__(self, n_pairs: int, no_time: bool) -> None:
        self.buf = np.empty(n_pairs, dtype=np.float64)
        self.mx = np.empty(n_pairs, dtype=np.float32)
        self.mean = np.empty(n_pairs, dtype=np.float32)
        self.first = np.full(n_pairs, np.nan) if no_time else np.empty(n_pairs)
        self.last = np.full(n_pairs, np.nan) if no_time else np.empty(n_pairs)


class _PairReducer:
    """Reduces the pairs ``lo .. hi - 1`` of :func:`aggregate_sorted` into ``out``."""

    def __init__(self, starts, order, wr, ts, dropped, views, out, n) -> None:  # noqa: ANN001
        self.starts, self.order, self.views, self.out, self.n = starts, order, views, out, n
        self.wr = np.asarray(wr, dtype=np.float64)
        self.ts = None if ts is None else np.asarray(ts, dtype=np.float64)
        self.dropped = dropped
        self.values = np.empty(n, dtype=np.float64)  # the rows' values, in pair order

    def __call__(self, lo: int, hi: int) -> None:
        o, starts = self.out, self.starts
        r0, r1 = int(starts[lo]), int(starts[hi]) if hi < starts.size else self.n
        seg = starts[lo:hi] - r0
        v, rows = self.values[r0:r1], self.order[r0:r1]
        if self.ts is not None:
            np.take(self.ts, rows, out=v)
            np.fmin.reduceat(v, seg, out=o.first[lo:hi])  # fmin/fmax skip NaN
            np.fmax.reduceat(v, seg, out=o.last[lo:hi])  # (all-NaN stays NaN)
        np.take(self.wr, rows, out=v)
        b = o.buf[lo:hi]
        np.maximum.reduceat(v, seg, out=b)
        o.mx[lo:hi] = b
        if self.dropped is not None:
            a, z = np.searchsorted(self.dropped, [r0, r1])
            v[self.dropped[a:z] - r0] = 0.0
        np.add.reduceat(v, seg, out=b)
        b /= self.views[lo:hi]
        o.mean[lo:hi] = b
