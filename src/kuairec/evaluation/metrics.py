"""Vectorised ranking, beyond-accuracy and rating metrics (pure numpy).

Everything works on a users x K *hit matrix*: ``hits[u, j]`` is the relevance (1/0, or a
graded gain) of the item at rank ``j + 1`` of user ``u``'s list. Items padded with -1
never hit. With ``P_u`` = the user's positives among the candidates, ``h_j`` = hits at
rank ``j`` (1-based) and ``D_j = 1 / log2(j + 1)``:

- Precision@K = sum_{j<=K} h_j / K (K fixed, even when fewer than K items are returned)
- Recall@K    = sum_{j<=K} h_j / P_u (not capped at K)
- NDCG@K      = sum_{j<=K} h_j D_j / sum_{j<=min(K, P_u)} D_j
- graded NDCG@K = sum_{j<=K} g_j D_j / sum_{j<=K} g*_j D_j, with g*_1 >= g*_2 >= ... the
  user's best gains among the candidates (linear gains)
- MAP@K       = sum_{j<=K} Precision@j * h_j / min(K, P_u)
- Hit@K       = 1 if any h_j = 1 for j <= K else 0
- MRR         = 1 / rank of the first hit in the whole returned list (0 if none)

Users with P_u = 0 get NaN (excluded from means). See docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

RANKING = ("precision", "recall", "ndcg", "map", "hit")
_DENSE_BLOCK = 4_000_000  # elements per dense block in ideal_gains


def discounts(k: int) -> np.ndarray:
    """``D_j = 1 / log2(j + 1)`` for ranks j = 1 .. k."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def entry_keys(m: sp.csr_matrix) -> np.ndarray:
    """``row * n_cols + col`` of every stored entry: ascending for a canonical CSR."""
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return rows * m.shape[1] + m.indices


def lookup(m: sp.csr_matrix, top_items: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
    """Position in ``m.data`` of every ``(row, top_items[row, j])``, -1 where not stored
    (or padded with -1). ``m`` must be canonical (sorted indices, no duplicates)."""
    keys = entry_keys(m) if keys is None else keys
    top = np.asarray(top_items, dtype=np.int64)
    rows = np.arange(top.shape[0], dtype=np.int64)[:, None]
    query = rows * m.shape[1] + np.maximum(top, 0)
    pos = np.searchsorted(keys, query)
    pos_c = np.minimum(pos, max(keys.size - 1, 0))
    found = (top >= 0) & (keys[pos_c] == query) if keys.size else np.zeros(top.shape, bool)
    return np.where(found, pos_c, -1)


def gather(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``values[pos]`` with 0 where ``pos == -1`` (float64)."""
    out = np.asarray(values, dtype=np.float64)[np.maximum(pos, 0)]
    out[pos < 0] = 0.0
    return out


def hit_matrix(top_items: np.ndarray, relevance: sp.csr_matrix) -> np.ndarray:
    """``relevance[u, top_items[u, j]]`` as an (n, K) float64 array (0 when absent or -1)."""
    return gather(relevance.data, lookup(relevance, top_items))


def row_counts(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Per row, how many stored values are > 0 (positives per user)."""
    indptr = np.asarray(indptr)
    lengths = np.diff(indptr)
    out = np.zeros(lengths.size, dtype=np.int64)
    full = lengths > 0
    if full.any():  # reduceat over the non-empty rows' starts sums exactly each row
        out[full] = np.add.reduceat(np.asarray(values) > 0, indptr[:-1][full], dtype=np.int64)
    return out


def pad_columns(top_items: np.ndarray, k: int) -> np.ndarray:
    """``top_items`` with at least k columns (missing ones padded with -1)."""
    top = np.asarray(top_items, dtype=np.int64)
    if top.shape[1] >= k:
        return top
    pad = np.full((top.shape[0], k - top.shape[1]), -1, dtype=np.int64)
    return np.concatenate([top, pad], axis=1)


def ranking_metrics(
    hits: np.ndarray, n_pos: np.ndarray, ks: Sequence[int]
) -> dict[str, np.ndarray]:
    """Per-user binary metrics ``{"precision@K", "recall@K", "ndcg@K", "map@K", "hit@K",
    "mrr"}``; NaN for users without positives. ``hits`` needs at least max(ks) columns."""
    h = np.asarray(hits, dtype=np.float64) > 0
    width = h.shape[1]
    if ks and max(ks) > width:
        raise ValueError(f"hits has {width} columns, fewer than K = {max(ks)}")
    n_pos = np.asarray(n_pos, dtype=np.float64)
    none = n_pos <= 0
    disc = discounts(width)
    ideal = np.concatenate([[0.0], np.cumsum(disc)])  # ideal[m] = sum of the first m discounts
    cum = np.cumsum(h, axis=1, dtype=np.float64)
    dcg = np.cumsum(h * disc, axis=1)
    ap = np.cumsum(h * cum / np.arange(1, width + 1), axis=1)
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in ks:
            hk = cum[:, k - 1]
            m = np.minimum(k, n_pos).astype(np.int64)
            out[f"precision@{k}"] = hk / k
            out[f"recall@{k}"] = hk / n_pos
            out[f"ndcg@{k}"] = dcg[:, k - 1] / ideal[m]
            out[f"map@{k}"] = ap[:, k - 1] / m
            out[f"hit@{k}"] = (hk > 0).astype(np.float64)
        first = np.argmax(h, axis=1)
        out["mrr"] = np.where(h.any(axis=1), 1.0 / (first + 1), 0.0)
    for v in out.values():
        v[none] = np.nan
    return out


def graded_ndcg(gains: np.ndarray, ideal: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-user graded ``{"ndcg@K"}`` from the gains of the returned items (n, >= K) and the
    user's best gains sorted descending (n, >= K); NaN for users whose best gain is 0."""
    gains = np.asarray(gains, dtype=np.float64)
    disc = discounts(max(ks))
    dcg = np.cumsum(gains[:, : disc.size] * disc, axis=1)
    idcg = np.cumsum(ideal[:, : disc.size] * disc, axis=1)
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in ks:
            v = dcg[:, k - 1] / idcg[:, k - 1]
            v[~(idcg[:, k - 1] > 0)] = np.nan
            out[f"ndcg@{k}"] = v
    return out


def ideal_gains(values: np.ndarray, indptr: np.ndarray, k: int) -> np.ndarray:
    """The k largest values of every CSR row, descending, zero-padded: (n_rows, k).

    Rows are laid out densely by their position within the row, a block of rows at a time,
    and reduced with ``np.partition``: no per-row Python loop.
    """
    values = np.asarray(values, dtype=np.float64)
    lengths = np.diff(indptr)
    n = lengths.size
    out = np.zeros((n, k))
    width = int(lengths.max()) if n else 0
    if width == 0:
        return out
    block = max(1, _DENSE_BLOCK // width)
    for start in range(0, n, block):  # a handful of blocks, not one per user
        stop = min(n, start + block)
        lo, hi = indptr[start], indptr[stop]
        rows = np.repeat(np.arange(stop - start), lengths[start:stop])
        neg = np.zeros((stop - start, width))  # negated values: ascending = best first
        neg[rows, np.arange(hi - lo) - (indptr[start:stop] - lo)[rows]] = -values[lo:hi]
        if width > k:
            neg.partition(k - 1, axis=1)  # in place: the k smallest (best) come first
            neg = neg[:, :k]
        neg.sort(axis=1)
        out[start:stop, : neg.shape[1]] = -neg
    return out


# ---------------------------------------------------------------- beyond accuracy


def coverage(top_items: np.ndarray, k: int, n_candidates: int) -> float:
    """Distinct items in the top-k lists / number of candidates."""
    top = np.asarray(top_items)[:, :k]
    return float(np.unique(top[top >= 0]).size / n_candidates) if n_candidates else float("nan")


def mean_popularity(top_items: np.ndarray, k: int, popularity: np.ndarray) -> float:
    """Mean popularity (distinct training users) of the recommended items, over all
    returned (non-padded) top-k slots of all users."""
    top = np.asarray(top_items)[:, :k]
    top = top[top >= 0]
    return float(np.asarray(popularity, dtype=np.float64)[top].mean()) if top.size else float("nan")


def gini(top_items: np.ndarray, k: int, candidates: np.ndarray) -> float:
    """Gini coefficient of exposure (times in a top-k list) over the candidates:
    0 = every candidate shown equally often, -> 1 = all exposure on one item.
    ``G = sum_i (2i - n - 1) x_(i) / (n sum x)`` with x sorted ascending, i = 1 .. n."""
    top = np.asarray(top_items)[:, :k]
    candidates = np.asarray(candidates, dtype=np.int64)
    n_items = int(max(candidates.max(initial=-1), top.max(initial=-1))) + 1
    x = np.sort(np.bincount(top[top >= 0], minlength=n_items)[candidates]).astype(np.float64)
    n, total = x.size, x.sum()
    if n == 0 or total == 0:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * total))


# ---------------------------------------------------------------- rating error


def rating_errors(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R2 = 1 - SS_res / SS_tot over all pairs."""
    y, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if y.size == 0:
        return {"rmse": float("nan"), "mae": float("nan"), "r2": float("nan")}
    err = p - y
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan"),
    }


def top_k_from_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k best scores per row; ties go to the lower column, NaN ranks
    last. A reference ranking for tests and benchmarks (models have their own)."""
    s = np.where(np.isnan(scores), -np.inf, np.asarray(scores, dtype=np.float64))
    return np.argsort(-s, axis=1, kind="stable")[:, :k].astype(np.int64)


def row_score_order(rows: np.ndarray, scores: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``np.lexsort((items, -scores, rows))``: entries by row, score descending, item
    ascending (a stable order). When the scores are float32 values (every model's) and
    the three fit in 64 bits, one stable argsort of a packed key gives the same order
    (7x faster on 21M entries: 2.0 s against 14.2 s); otherwise the lexsort itself. The
    order of :func:`top_k`'s candidates and of the validity section's sampled lists."""
    rows = np.asarray(rows, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    scores = np.asarray(scores)
    if not _packable(rows, scores, items):
        return np.lexsort((items, -scores.astype(np.float64), rows))
    item_bits = int(items.max()).bit_length()
    bits = scores.astype(np.float32)  # a copy, turned into the key's score part in place
    bits += np.float32(0.0)  # -0.0 -> 0.0: equal scores, equal keys
    bits = bits.view(np.uint32)
    negative = (bits >> np.uint32(31)).astype(bool)
    np.invert(bits, out=bits, where=negative)  # float order as unsigned order
    np.bitwise_or(bits, np.uint32(0x80000000), out=bits, where=~negative)
    del negative
    np.invert(bits, out=bits)  # higher score first
    key = bits.astype(np.uint64)
    del bits
    key <<= np.uint64(item_bits)
    key |= items.view(np.uint64)
    part = rows.astype(np.uint64)
    part <<= np.uint64(32 + item_bits)
    key |= part
    del part
    return np.argsort(key, kind="stable")


def _packable(rows: np.ndarray, scores: np.ndarray, items: np.ndarray) -> bool:
    """Whether :func:`row_score_order` may pack: non-negative ids whose bits and 32 score
    bits fit in 64, and scores that are float32 values without NaN."""
    if rows.size == 0 or rows.min() < 0 or items.min() < 0:
        return False
    if int(rows.max()).bit_length() + 32 + int(items.max()).bit_length() > 64:
        return False
    s32 = scores if scores.dtype == np.float32 else scores.astype(np.float32)
    if s32 is not scores and not np.array_equal(s32, scores, equal_nan=True):  # as float64
        return False
    return not np.isnan(s32).any()
