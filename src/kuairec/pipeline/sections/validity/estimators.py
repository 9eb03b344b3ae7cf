"""Offline-evaluation validity: the logged-data protocols people use, and how far their
numbers and model orderings are from the fully observed truth (docs/validity.md).

Pure array code: model scores come in through a callable, so nothing here imports a
model.

- :func:`sampled_lists` / :func:`sampled_metrics`: RecBole's ``uni100`` / ``pop100``
  full-user sampled evaluation. For a holdout user u with P_u positives (held-out pairs
  positive under the label), 100 * P_u negatives are drawn (seeded, with replacement)
  from the candidates the user has no logged pair with, uniformly or in proportion to
  popularity; the positives and those negatives form u's list, ranked by score (ties:
  lower item_idx first). With r_i the 1-based rank of positive i in that list and
  D_r = 1 / log2(r + 1): NDCG@10 = sum_{i: r_i <= 10} D_{r_i} / sum_{j <= min(10, P_u)} D_j
  and Recall@10 = |{i: r_i <= 10}| / P_u.
- :func:`ips_metrics`: Yang et al. (2018) debiased estimates on the logged holdout with
  popularity propensities ``p_i = (n_i / max_j n_j) ** gamma`` (n_i = distinct training
  users of i). With c_i = D_{r_i} when the full-catalogue rank r_i <= 10 (else 0):
  IPS_u = (1 / P_u) sum_{i in S_u} c_i / p_i and SNIPS_u = sum c_i / p_i / sum 1 / p_i.
  Both estimate the fully observed per-positive DCG@10 ``(1 / P_u) sum c_i``.
- :func:`agreement`: Kendall's tau-b and Spearman's rho between two model orderings, with
  a bootstrap interval that resamples each protocol's own users independently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kuairec.errors import ConfigError
from kuairec.evaluation import metrics as M

K = 10


@dataclass(frozen=True)
class SampledLists:
    """Flat per-user lists: entries ``[starts[u], starts[u+1])`` belong to ``users[u]``;
    ``positive`` marks the user's positives (placed first)."""

    users: np.ndarray  # user_idx, one per list
    starts: np.ndarray  # int64, len(users) + 1
    items: np.ndarray  # int32 item_idx of every entry
    positive: np.ndarray  # bool, every entry
    n_pos: np.ndarray  # positives per list


def sampled_lists(
    users: np.ndarray,
    positives: Any,
    logged: Any,
    candidates: np.ndarray,
    popularity: np.ndarray | None = None,
    n_negatives: int = 100,
    seed: int = 0,
) -> SampledLists:
    """Each user's positives plus ``n_negatives`` sampled negatives per positive.

    ``positives`` and ``logged`` are CSR matrices with one row per entry of ``users``:
    the positive held-out pairs and every logged pair (training and held out) of the
    user. Negatives come from ``candidates`` minus the logged pairs, uniformly
    (``popularity=None``) or with probability proportional to ``popularity``. Users
    without a positive, or logged with every candidate, get no list.
    """
    if isinstance(n_negatives, bool) or not isinstance(n_negatives, int) or n_negatives < 1:
        raise ConfigError(f"n_negatives must be an integer >= 1, got {n_negatives!r}")
    pos, logged = positives.tocsr(), logged.tocsr()
    n_pos = np.diff(pos.indptr).astype(np.int64)
    free = len(candidates) - logged[:, np.asarray(candidates)].getnnz(axis=1)
    keep = (n_pos > 0) & (free > 0)  # a user logged with every candidate has no negative
    users, n_pos = np.asarray(users)[keep], n_pos[keep]
    pos, logged = pos[keep], logged[keep]
    neg = _draw_negatives(n_pos * n_negatives, logged, candidates, popularity, seed)
    sizes = n_pos * (n_negatives + 1)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    # item indices fit int32 (the id maps are int32): half the memory of int64 at full
    # size (67 MB less per list set)
    items = np.empty(int(starts[-1]), dtype=np.int32)
    positive = np.zeros(items.size, dtype=bool)
    neg_starts = np.concatenate([[0], np.cumsum(n_pos * n_negatives)])
    for r in range(users.size):  # a copy per user: O(users) slices, no per-entry loop
        a, p = starts[r], n_pos[r]
        items[a : a + p] = pos.indices[pos.indptr[r] : pos.indptr[r + 1]]
        positive[a : a + p] = True
        items[a + p : starts[r + 1]] = neg[neg_starts[r] : neg_starts[r + 1]]
    return SampledLists(users, starts, items, positive, n_pos)


def _draw_negatives(
    counts: np.ndarray, logged: Any, candidates: np.ndarray, popularity: Any, seed: int
) -> np.ndarray:
    """``counts[u]`` draws per row from the candidates, redrawn while they hit a logged
    pair of the row (rejection sampling, vectorised over all rows)."""
    rng = np.random.default_rng(seed)
    cand = np.asarray(candidates, dtype=np.int64)
    p = None
    if popularity is not None:
        w = np.asarray(popularity, dtype=np.float64)[cand] + 1e-12
        p = w / w.sum()
    # rows and draws as int32 (row and item indices fit): 134 MB less at full size
    rows = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
    out = np.full(rows.size, -1, dtype=np.int32)
    keys = M.entry_keys(logged)
    todo = np.arange(rows.size)
    for _ in range(20):
        if todo.size == 0:
            break
        draw = cand[rng.choice(cand.size, size=todo.size, p=p)]
        query = np.multiply(rows[todo], logged.shape[1], dtype=np.int64) + draw
        pos = np.minimum(np.searchsorted(keys, query), max(keys.size - 1, 0))
        hit = (keys[pos] == query) if keys.size else np.zeros(todo.size, bool)
        out[todo[~hit]] = draw[~hit]
        todo = todo[hit]
    for r in np.unique(rows[todo]):  # rows with few free candidates: draw from them directly
        mine = todo[rows[todo] == r]
        free = ~np.isin(cand, logged.indices[logged.indptr[r] : logged.indptr[r + 1]])
        q = None if p is None else p[free] / p[free].sum()
        out[mine] = cand[free][rng.choice(int(free.sum()), size=mine.size, p=q)]
    return out


def score_entries(
    score: Callable[[np.ndarray], np.ndarray], lists: SampledLists, batch: int = 512
) -> np.ndarray:
    """The model's score of every list entry; ``score(users)`` returns dense
    (len(users), n_items) scores for a batch of users (never all users at once)."""
    return score_entries_of(score, [lists], batch)[0]


def score_entries_of(
    score: Callable[[np.ndarray], np.ndarray], many: Sequence[SampledLists], batch: int = 512
) -> list[np.ndarray]:
    """:func:`score_entries` of several list sets drawn for the same users (uni100 and
    pop100), each batch of users scored once for all of them."""
    users = many[0].users
    gather = EntryGatherer(users, many)
    for lo in range(0, users.size, batch):
        hi = min(lo + batch, users.size)
        gather(lo, hi, score(users[lo:hi]))
    return gather.result()


class EntryGatherer:
    """Collects the list entries' scores from score blocks of ``users`` (rows ``[lo,
    hi)`` of ``users`` at a time, in any batches): a caller that scores those users for
    another reason (ranking them) hands each block here too, and no user is scored twice.

    Every list set holds the same users, each of them in ``users`` and in its order."""

    def __init__(self, users: np.ndarray, many: Sequence[SampledLists]) -> None:
        first = many[0].users
        if any(not np.array_equal(ls.users, first) for ls in many[1:]):
            raise ConfigError("score_entries_of: the list sets must hold the same users")
        users = np.asarray(users)
        pos = _positions(users, first)
        if first.size and (
            users.size == 0 or not np.array_equal(users[pos], first) or np.any(np.diff(pos) <= 0)
        ):
            raise ConfigError("EntryGatherer: every list's user must be in users, in order")
        self.many, self.pos = many, pos  # pos[j]: list j's user's row in users
        # in the score blocks' own precision (float32 for every model: 133 MB less per
        # list set at full size than float64), allocated with the first block
        self.outs: list[np.ndarray] | None = None
        self.seen = np.zeros(pos.size, dtype=bool)

    def __call__(self, lo: int, hi: int, block: np.ndarray) -> None:
        j0, j1 = np.searchsorted(self.pos, [lo, hi])  # the lists whose users are in [lo, hi)
        if j0 == j1:
            return
        self.seen[j0:j1] = True
        if self.outs is None:
            dtype = np.result_type(block.dtype, np.float32)
            self.outs = [np.empty(ls.items.size, dtype=dtype) for ls in self.many]
        for ls, out in zip(self.many, self.outs, strict=True):
            a, b = ls.starts[j0], ls.starts[j1]
            rows = np.repeat(self.pos[j0:j1] - lo, np.diff(ls.starts[j0 : j1 + 1]))
            out[a:b] = block[rows, ls.items[a:b]]

    def result(self) -> list[np.ndarray]:
        """Each set's entry scores (NaN -> -inf); every list's user must have been in a
        block."""
        if not self.seen.all():
            raise ConfigError(
                f"EntryGatherer: {int((~self.seen).sum())} lists' users were never scored"
            )
        outs = self.outs if self.outs is not None else [np.empty(0) for _ in self.many]
        for out in outs:  # in place: no second copy of every entry
            out[np.isnan(out)] = -np.inf
        return outs


def _positions(users: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Where each of ``wanted`` is in ``users`` (some position where it is not)."""
    order = np.argsort(users, kind="stable")
    at = np.minimum(np.searchsorted(users[order], wanted), max(users.size - 1, 0))
    return order[at] if users.size else np.zeros(wanted.size, np.int64)


_BLOCK_ENTRIES = 1 << 21  # list entries ranked at a time by sampled_metrics


def sampled_metrics(
    scores: np.ndarray, lists: SampledLists, block: int = _BLOCK_ENTRIES
) -> dict[str, np.ndarray]:
    """Per-list NDCG@10 and Recall@10 (see the module docstring), ranked a block of
    whole lists (about ``block`` entries) at a time: every list is ranked on its own, so
    the values are those of one pass, and the sort's buffers stay small (one pass over
    the 17M entries of a full-size list set held 680 MB more at its peak)."""
    n = lists.users.size
    dcg, hits = np.zeros(n), np.zeros(n, dtype=np.int64)
    d = M.discounts(K)
    starts = lists.starts
    lo = 0
    while lo < n:  # lists [lo, hi): at least one, then as many as fit in the block
        hi = max(int(np.searchsorted(starts, starts[lo] + block, side="right")) - 1, lo + 1)
        hi = min(hi, n)
        a, b = starts[lo], starts[hi]
        rows = np.repeat(np.arange(hi - lo), np.diff(starts[lo : hi + 1]))
        # list, score desc, item asc
        order = M.row_score_order(rows, scores[a:b], lists.items[a:b])
        rank = np.empty(order.size, dtype=np.int64)
        rank[order] = np.arange(order.size) - (starts[lo:hi] - a)[rows[order]]  # 0-based
        top = lists.positive[a:b] & (rank < K)
        dcg[lo:hi] = np.bincount(rows[top], weights=d[rank[top]], minlength=hi - lo)
        hits[lo:hi] = np.bincount(rows[top], minlength=hi - lo)
        lo = hi
    ideal = np.cumsum(d)[np.minimum(lists.n_pos, K) - 1]
    return {"ndcg@10": dcg / ideal, "recall@10": hits / lists.n_pos}


def propensities(popularity: np.ndarray, gamma: float) -> np.ndarray:
    """``p_i = (n_i / max n) ** gamma``; items nobody watched get the smallest positive
    popularity (they cannot be logged, so their weight never enters)."""
    if not isinstance(gamma, int | float) or not np.isfinite(gamma) or gamma < 0:
        raise ConfigError(f"gamma must be a finite number >= 0, got {gamma!r}")
    n = np.asarray(popularity, dtype=np.float64)
    floor = n[n > 0].min() if (n > 0).any() else 1.0
    return (np.maximum(n, floor) / max(n.max(), floor)) ** gamma


def ips_metrics(
    top_items: np.ndarray, positives: Any, propensity: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-user IPS and SNIPS estimates of the per-positive DCG@10, and the unweighted
    per-positive DCG@10 itself (``top_items``: (n, >= 10) item_idx lists, row-aligned
    with the CSR ``positives``). NaN for users without a positive."""
    pos = positives.tocsr()
    top = M.pad_columns(np.asarray(top_items, dtype=np.int64), K)[:, :K]
    at = M.lookup(pos, top)  # position in pos.data of each top-10 item, -1 if not positive
    w_entry = 1.0 / propensity[pos.indices]  # weight of every positive pair
    d = M.discounts(K)[None, :]
    hit = at >= 0
    c_w = np.where(hit, d * w_entry[np.maximum(at, 0)], 0.0).sum(axis=1)
    c = np.where(hit, d, 0.0).sum(axis=1)
    n_pos = np.diff(pos.indptr).astype(np.float64)
    rows = np.repeat(np.arange(n_pos.size), np.diff(pos.indptr))
    w_sum = np.bincount(rows, weights=w_entry, minlength=n_pos.size)
    w_sum = np.where(n_pos > 0, w_sum, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "ips_dcg@10": np.where(n_pos > 0, c_w / n_pos, np.nan),
            "snips_dcg@10": c_w / w_sum,
            "dcg@10_per_positive": np.where(n_pos > 0, c / n_pos, np.nan),
        }


def ordering(values: Sequence[float]) -> list[int]:
    """Ranks (1 = best) of the values, ties sharing the better rank."""
    v = np.asarray(values, dtype=np.float64)
    return [int(np.sum(v > x)) + 1 for x in v]


def kendall_spearman(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Kendall's tau-b and Spearman's rho between two value vectors (NaN when either is
    constant)."""
    tau, rho = rank_correlations(np.asarray(a, np.float64)[None], np.asarray(b, np.float64)[None])
    return float(tau[0]), float(rho[0])


def rank_correlations(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise Kendall tau-b and Spearman rho of two (rows, models) matrices, vectorised
    over the rows (the bootstrap replicates): tau-b = sum s_a s_b / sqrt(sum s_a^2 sum
    s_b^2) over model pairs, s = sign of the pair's difference; rho = Pearson correlation
    of average ranks."""
    from scipy.stats import rankdata

    i, j = np.triu_indices(a.shape[1], k=1)
    sa, sb = np.sign(a[:, i] - a[:, j]), np.sign(b[:, i] - b[:, j])
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = (sa * sb).sum(1) / np.sqrt((sa * sa).sum(1) * (sb * sb).sum(1))
        ra = rankdata(a, axis=1) - (a.shape[1] + 1) / 2
        rb = rankdata(b, axis=1) - (a.shape[1] + 1) / 2
        rho = (ra * rb).sum(1) / np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    return tau, rho


def agreement(
    reference: np.ndarray, other: np.ndarray, n_bootstrap: int = 200, seed: int = 0
) -> dict[str, Any]:
    """Tau and rho between the model orderings of two protocols, with 95% intervals.

    ``reference`` and ``other`` are (users, models) per-user metric matrices of each
    protocol's own users (NaN = no positive); every resample draws each protocol's users
    independently and recomputes both orderings.
    """
    from kuairec.evaluation.bootstrap import resampled_means

    ref_mean, oth_mean = np.nanmean(reference, axis=0), np.nanmean(other, axis=0)
    tau, rho = kendall_spearman(ref_mean, oth_mean)
    out: dict[str, Any] = {"tau": tau, "rho": rho, "tau_ci": None, "rho_ci": None}
    if n_bootstrap > 0:
        ra = resampled_means(reference, n_bootstrap, seed)
        rb = resampled_means(other, n_bootstrap, seed + 1)
        taus, rhos = rank_correlations(ra, rb)
        out["tau_ci"] = _interval(taus)
        out["rho_ci"] = _interval(rhos)
    return out


def _interval(values: np.ndarray) -> list[float] | None:
    v = values[np.isfinite(values)]
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v.size else None


def flipped_pairs(names: Sequence[str], ref: Sequence[float], other: Sequence[float]) -> list:
    """The model pairs ordered one way by ``ref`` and the other way by ``other``."""
    out = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = ref[i] - ref[j], other[i] - other[j]
            if a * b < 0:
                first, second = (names[i], names[j]) if a > 0 else (names[j], names[i])
                out.append([first, second])  # first is ahead under the reference
    return out
