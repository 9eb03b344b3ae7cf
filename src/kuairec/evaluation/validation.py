"""Validation splits of a training log: for tuning and for early stopping, never the test.

Two kinds, both holding out whole (user, video) pairs (every view of a pair falls on one
side):

- ``"temporal"`` (the default): the pairs first seen in the last days of the log
  (:func:`temporal_holdout`);
- ``"random"``: a seeded random ``fraction`` of each user's pairs, for the test set's
  users when the protocol defines them (KuaiRec: the small matrix's users): the same
  users as the test, no shift in time.

Either way the fit part is the rest of the log, candidates are the videos seen in the fit
part, and a validation user has at least one pair on each side. Which split makes tuning
help on the fully observed test was measured, and is the reason for the default: see
docs/tuning.md.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from kuairec.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.data.dataset import Interactions, TrainSet
    from kuairec.evaluation.protocols import TestSet

SECONDS_PER_DAY = 86_400.0
SplitKind = Literal["random", "temporal"]
SPLITS: tuple[str, ...] = ("random", "temporal")
DEFAULT_SPLIT: SplitKind = "temporal"

WHY = {
    "random": "a random 20% of each test user's training pairs (docs/tuning.md)",
    "temporal": "the pairs first seen in the last 7 days of the training log: on the "
    "synthetic data, parameters tuned there did best on the fully observed test "
    "(docs/tuning.md)",
    "temporal/user": "each user's last 20% of training pairs: too few users have pairs "
    "in the log's last 7 days to validate on (docs/tuning.md)",
}


def validation_split(
    train: TrainSet,
    kind: str = DEFAULT_SPLIT,
    users: Any = None,
    fraction: float = 0.2,
    seed: int = 0,
    label: str = "wr>2",
) -> tuple[TrainSet, TestSet]:
    """The ``(fit part, validation TestSet)`` of ``train`` (see the module docstring);
    the validation set carries ``label``, the run's positive label."""
    if kind == "temporal":
        fit, valid = temporal_holdout(train)
    elif kind == "random":
        fit, valid = random_holdout(train, fraction=fraction, users=users, seed=seed)
    else:
        raise ConfigError(f"validation split must be one of {', '.join(SPLITS)}, got {kind!r}")
    return fit, dataclasses.replace(valid, label=label)


HALVES_RULE = (
    "user u is in the selection half when tie_hash(seed, u, 0) is even, else in the "
    "confirmation half (u = user_idx; tie_hash: kuairec.data.ties, both engines' hash)"
)


def selection_half(users: np.ndarray, seed: int) -> np.ndarray:
    """Boolean mask over ``users``: True for the validation users whose numbers choose
    (tuning's best trial, early stopping), False for the confirmation half that checks
    the choice (:data:`HALVES_RULE`)."""
    from kuairec.data.ties import tie_hash

    users = np.asarray(users, dtype=np.int64)
    return (tie_hash(seed, users, np.zeros_like(users)) & 1) == 0


MIN_TIME_USERS = 100  # fewer users than this (and than a tenth) after the cut: per user
USER_SHARE = 0.2  # the per-user cut: each user's last 20% of pairs by first view


def temporal_holdout(train: TrainSet, holdout_days: float = 7.0) -> tuple[TrainSet, TestSet]:
    """Split a training set in time.

    Pairs whose ``first_timestamp`` falls in the last ``holdout_days`` of the data (the last
    20% of the time span when it is shorter than ``2 * holdout_days``) are held out; the
    rest (pairs without a timestamp included) is the fit part. Held-out pairs never enter
    the fit part.

    A log on which few users have pairs after that cut (:func:`few_after_cut`: users who
    rate in bursts years apart, as on MovieLens, where the last week holds 11 of 943
    users) is cut per user instead: each user's last :data:`USER_SHARE` of pairs by first
    view are held out (:func:`last_share`), the rule the temporal protocol's test follows.
    """
    if (
        not isinstance(holdout_days, int | float)
        or not math.isfinite(holdout_days)
        or holdout_days <= 0
    ):
        raise ConfigError(f"holdout_days must be a positive number of days, got {holdout_days!r}")
    inter = train.interactions
    ts = inter.first_timestamp
    known = np.isfinite(ts)
    if not known.any():
        raise DataError("temporal_holdout: no training pair has a timestamp")
    held = known & (ts > temporal_cutoff(ts, holdout_days))
    if few_after_cut(inter, held):
        held = last_share(inter)
    if not held.any():
        raise DataError(
            "temporal_holdout: every timestamped training pair has the same time; "
            "nothing can be held out"
        )
    return _split(train, inter, held, "temporal_holdout")


def few_after_cut(inter: Interactions, after: np.ndarray) -> bool:
    """Whether the pairs ``after`` a time cut belong to too few users to validate on:
    fewer than :data:`MIN_TIME_USERS` and than a tenth of all users."""
    users_after = np.unique(inter.row_users()[after]).size
    return users_after < min(MIN_TIME_USERS, max(1, -(-inter.n_users // 10)))


def last_share(inter: Interactions, share: float = USER_SHARE) -> np.ndarray:
    """Per-pair mask: each user's last ``share`` of pairs by first view (users with 2+
    pairs, at least one pair each; ties by item; pairs without a time count as oldest)."""
    first = np.nan_to_num(inter.first_timestamp, nan=-np.inf)
    rows = inter.row_users().astype(np.int64)
    counts = inter.user_counts()
    n_held = np.where(counts >= 2, np.clip(np.floor(share * counts), 1, None), 0)
    order = np.lexsort((inter.indices, first, rows))
    rank = np.empty(rows.size, dtype=np.int64)
    rank[order] = np.arange(rows.size) - inter.indptr[rows[order]]
    return rank >= (counts - n_held)[rows]


def temporal_kind(train: TrainSet, holdout_days: float = 7.0) -> str:
    """Which cut :func:`temporal_holdout` makes on ``train``: "time" or "user"."""
    inter = train.interactions
    ts = inter.first_timestamp
    held = np.isfinite(ts) & (ts > temporal_cutoff(ts, holdout_days))
    return "user" if few_after_cut(inter, held) else "time"


def temporal_cutoff(first_timestamp: np.ndarray, holdout_days: float = 7.0) -> float:
    """The cut-off time of :func:`temporal_holdout`: ``holdout_days`` before the last
    first view (the last 20% of the time span when it is shorter than twice that); NaN
    when no pair has a timestamp. Pairs first seen after it are held out."""
    ts = np.asarray(first_timestamp, dtype=np.float64)
    known = ts[np.isfinite(ts)]
    if known.size == 0:
        return float("nan")
    t_lo, t_hi = float(known.min()), float(known.max())
    window = holdout_days * SECONDS_PER_DAY
    return t_hi - window if t_hi - t_lo >= 2 * window else t_hi - 0.2 * (t_hi - t_lo)


def random_holdout(
    train: TrainSet, fraction: float = 0.2, users: Any = None, seed: int = 0
) -> tuple[TrainSet, TestSet]:
    """Hold out a seeded random ``fraction`` of each user's pairs.

    Only ``users`` (user indices; None = every user) are held out from; a user with n
    pairs, n >= 2, gives ``max(1, round(fraction * n))`` of them, at most n - 1: the ones
    first in the order of :func:`kuairec.data.ties.tie_hash` ``(seed, user, item)``.
    """
    if not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise ConfigError(f"fraction must be in (0, 1), got {fraction!r}")
    inter = train.interactions
    chosen = np.ones(inter.n_users, bool)
    if users is not None:
        chosen = np.zeros(inter.n_users, bool)
        chosen[np.asarray(users, dtype=np.int64)] = True
    counts = inter.user_counts()
    n_held = np.where(
        chosen & (counts >= 2), np.clip(np.rint(fraction * counts), 1, counts - 1), 0
    ).astype(np.int64)
    rows = inter.row_users().astype(np.int64)
    rank = _random_rank_in_row(rows, inter.indices, inter.indptr, seed)
    held = rank < n_held[rows]
    if not held.any():
        raise DataError(
            "random_holdout: no user has 2 or more training pairs; nothing can be held out"
        )
    return _split(train, inter, held, "random_holdout")


def _random_rank_in_row(
    rows: np.ndarray, items: np.ndarray, indptr: np.ndarray, seed: int
) -> np.ndarray:
    """For every stored entry, its position in a seeded random order of its row's entries:
    by :func:`kuairec.data.ties.tie_hash` of ``(seed, user, item)``, then item. A hash of
    the pair, not a random stream: the Spark engine holds out exactly the same pairs."""
    from kuairec.data.ties import tie_hash

    order = np.lexsort((items, tie_hash(seed, rows, items), rows))  # rows stay grouped
    rank = np.empty(rows.size, dtype=np.int64)
    rank[order] = np.arange(rows.size) - indptr[rows[order]]
    return rank


def _split(
    train: TrainSet, inter: Interactions, held: np.ndarray, who: str
) -> tuple[TrainSet, TestSet]:
    """Fit part = entries not ``held``; validation = held entries on fit-part items."""
    from kuairec.evaluation.protocols import TestSet

    fit, held_out = inter.select(~held), inter.select(held)
    candidates = np.flatnonzero(fit.item_counts() > 0)
    cand_mask = np.zeros(inter.n_items, bool)
    cand_mask[candidates] = True
    held_out = held_out.select(cand_mask[held_out.indices])
    users = np.flatnonzero((held_out.user_counts() > 0) & (fit.user_counts() > 0))
    if users.size == 0:
        raise DataError(
            f"{who}: no user has both pairs in the fit part and held-out pairs on its items"
        )
    test = TestSet(
        users=users,
        candidates=candidates,
        relevance=held_out.csr("watch_ratio_mean", np.float64)[users],
        exclude=fit.csr("ones", bool)[users],
    )
    return dataclasses.replace(train, interactions=fit), test
