"""The cut at time T that makes the ranker's training leakage-free by construction.

The training log is cut at T (by default the temporal validation split's cut-off, the
last 7 days: :func:`kuairec.evaluation.validation.temporal_cutoff`):

- the *history* is the pairs whose every view is at or before T (pairs without a
  timestamp count as before, as in the validation split). The retrievers are fitted on
  it and every feature of a training row is read from it (and from the daily
  statistics of the days over by T);
- the *targets* are the pairs first seen after T: they label the candidates, and
  nothing else reads them;
- a pair first seen before T and seen again after it ("straddling") is in neither: its
  aggregated watch ratio mixes views from both sides of T. It stays *seen* (the user
  had the video before T), so it is never a candidate.

A log on which few users have pairs after T (a per-user log such as MovieLens, where
users rate in bursts years apart) is cut per user instead (``kind = "user"``): each
user's last 20% of pairs by time are the targets, the rule the temporal protocol's own
test follows. The cut then holds no single T: a target of one user may be older than
another user's history, as in that protocol's training set; the targets still never
reach a feature. A log without timestamps is cut at random (``kind = "random"``). In
both, the daily statistics (KuaiRec files only) are read in full; the summary says
which cut was made.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kuairec.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import Interactions, TrainSet

RANDOM_SHARE = 0.2  # of each user's pairs, as targets, when the log has no timestamps
USER_SHARE = 0.2  # of each user's last pairs, as targets, in the per-user cut
MIN_TIME_USERS = 100  # "auto": fewer users with a pair after T than this: cut per user


@dataclass(eq=False)
class CutoffSplit:
    """A training log cut at ``cutoff`` (see the module docstring)."""

    cutoff: float  # unix seconds; +inf for the per-user and random cuts (every day counts)
    kind: str  # "temporal", "user" or "random"
    history: TrainSet  # pairs wholly before T, with the log's side tables
    seen: sp.csr_matrix  # bool (n_users, n_items): pairs first seen at or before T
    targets: sp.csr_matrix  # float64 watch_ratio_mean of the pairs first seen after T
    n_straddling: int  # pairs first seen before T and again after: in neither part

    @property
    def target_users(self) -> np.ndarray:
        """Users with at least one target pair (int64, ascending)."""
        return np.flatnonzero(np.diff(self.targets.indptr) > 0)


def cut_at(train: TrainSet, holdout_days: float, seed: int = 0, mode: str = "auto") -> CutoffSplit:
    """Cut ``train``: ``mode`` "time" at its temporal validation cut-off T, "user" at each
    user's own last ``USER_SHARE`` of pairs, "auto" by time unless fewer users than
    ``MIN_TIME_USERS`` and than a tenth of all users have a pair after T. A log without
    timestamps is cut at random (seeded) whatever the mode."""
    from kuairec.evaluation.validation import temporal_cutoff

    inter = train.interactions
    cutoff = temporal_cutoff(inter.first_timestamp, holdout_days)
    if np.isnan(cutoff):
        after = _random_targets(train, seed)
        return split_by_mask(train, after, np.zeros(inter.nnz, bool), float("inf"), "random")
    first = np.nan_to_num(inter.first_timestamp, nan=-np.inf)
    after = first > cutoff
    users_after = np.unique(inter.row_users()[after]).size
    few = users_after < min(MIN_TIME_USERS, max(1, -(-inter.n_users // 10)))
    if mode == "user" or (mode == "auto" and few):
        after = _last_share(inter, first)
        return split_by_mask(train, after, np.zeros(inter.nnz, bool), float("inf"), "user")
    if not after.any():
        raise ModelError("two_stage: no training pair lies after the cut-off: nothing to learn")
    last = np.nan_to_num(inter.last_timestamp, nan=-np.inf)
    return split_by_mask(train, after, ~after & (last > cutoff), cutoff, "temporal")


def _last_share(inter: Interactions, first: np.ndarray) -> np.ndarray:
    """Each user's last ``USER_SHARE`` of pairs by first view (users with 2+ pairs; ties:
    by item), the rule of the temporal protocol's test one step earlier."""
    rows = inter.row_users().astype(np.int64)
    counts = inter.user_counts()
    n_held = np.where(counts >= 2, np.clip(np.floor(USER_SHARE * counts), 1, None), 0)
    order = np.lexsort((inter.indices, first, rows))
    rank = np.empty(rows.size, dtype=np.int64)
    rank[order] = np.arange(rows.size) - inter.indptr[rows[order]]
    return rank >= (counts - n_held)[rows]


def split_by_mask(
    train: TrainSet, after: np.ndarray, straddle: np.ndarray, cutoff: float, kind: str
) -> CutoffSplit:
    """The split for given per-pair masks: ``after`` (targets), ``straddle`` (neither)."""
    inter = train.interactions
    history = dataclasses.replace(train, interactions=inter.select(~after & ~straddle))
    seen = inter.select(~after).csr("ones", dtype=bool)
    targets = inter.select(after).csr("watch_ratio_mean", dtype=np.float64)
    return CutoffSplit(cutoff, kind, history, seen, targets, int(straddle.sum()))


def _random_targets(train: TrainSet, seed: int) -> np.ndarray:
    """A seeded ``RANDOM_SHARE`` of each user's pairs (users with 2+ pairs), as a mask."""
    inter = train.interactions
    counts = inter.user_counts()
    n_held = np.where(counts >= 2, np.clip(np.rint(RANDOM_SHARE * counts), 1, counts - 1), 0)
    rows = inter.row_users().astype(np.int64)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(rows.size), rows))  # rows grouped, shuffled inside
    rank = np.empty(rows.size, dtype=np.int64)
    rank[order] = np.arange(rows.size) - inter.indptr[rows[order]]
    return rank < n_held[rows]
