"""Headline metrics broken down by user and item segments.

Families (keys of ``EvalResult.segments``), each ``{group: {"n_users": ..., metric: ...}}``:

- ``user_activity``: terciles ("low", "medium", "high") of the test users' number of
  training pairs; a user's metrics are those of the whole list.
- ``duration_bucket``: video-duration buckets (log-spaced, edges from the training
  videos). Item-side: relevance and hits are restricted to the bucket's items, so a user's
  recall in a bucket is hits on bucket items / positives among bucket items.
- ``item_coldness``: "cold" (no training interaction) and "warm" videos, item-side too.

Users without a positive in a segment are left out of its means; ``n_users`` counts the
users that were averaged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kuairec.evaluation.metrics import ranking_metrics

HEADLINE = ("ndcg", "recall", "precision", "hit")
ACTIVITY_GROUPS = ("low", "medium", "high")


def headline_k(ks: Sequence[int]) -> int:
    """K of the headline metrics: 10 when evaluated, else the K closest to 10."""
    return 10 if 10 in ks else min(ks, key=lambda k: (abs(k - 10), k))


def _mean(v: np.ndarray) -> float:
    ok = ~np.isnan(v)
    return float(v[ok].mean()) if ok.any() else float("nan")


def _summary(per_user: dict[str, np.ndarray], rows: np.ndarray, k: int) -> dict[str, float]:
    ref = per_user[f"ndcg@{k}"][rows]
    out: dict[str, float] = {"n_users": int(np.sum(~np.isnan(ref)))}
    for name in HEADLINE:
        out[f"{name}@{k}"] = _mean(per_user[f"{name}@{k}"][rows])
    return out


def user_activity(
    per_user: dict[str, np.ndarray], activity: np.ndarray, k: int
) -> dict[str, dict[str, float]]:
    """Headline metrics per tercile of ``activity`` (training pairs of each test user)."""
    activity = np.asarray(activity, dtype=np.float64)
    if activity.size == 0:
        return {}
    cuts = np.quantile(activity, [1 / 3, 2 / 3])
    group = np.searchsorted(cuts, activity, side="left")  # a <= q1: low; a <= q2: medium
    out = {}
    for g, name in enumerate(ACTIVITY_GROUPS):
        rows = np.flatnonzero(group == g)
        if rows.size:
            entry = _summary(per_user, rows, k)
            entry["pairs_min"] = int(activity[rows].min())
            entry["pairs_max"] = int(activity[rows].max())
            out[name] = entry
    return out


def group_positives(
    values: np.ndarray,
    entry_rows: np.ndarray,
    entry_items: np.ndarray,
    item_group: np.ndarray,
    n_groups: int,
    n_users: int,
) -> np.ndarray:
    """Positives (value > 0) of every user in every item group: (n_users, n_groups).

    ``values``, ``entry_rows`` and ``entry_items`` describe the relevance entries (one
    binary label); ``item_group`` gives every item's group (-1: none).
    """
    g_entry = np.asarray(item_group, dtype=np.int64)[entry_items]
    ok = (np.asarray(values) > 0) & (g_entry >= 0)
    flat = np.bincount(entry_rows[ok] * n_groups + g_entry[ok], minlength=n_users * n_groups)
    return flat.reshape(n_users, n_groups)


def item_segments(
    hits: np.ndarray,
    top_items: np.ndarray,
    n_pos: np.ndarray,
    item_group: np.ndarray,
    names: Sequence[str],
    candidates: np.ndarray,
    k: int,
) -> dict[str, dict[str, float]]:
    """Headline metrics with relevance and hits restricted to each item group.

    ``hits`` (n, >= k) come from one binary label and ``n_pos`` from
    :func:`group_positives` with the same label; groups without candidates are left out.
    """
    per_group = item_segment_users(hits, top_items, n_pos, item_group, len(names), k)
    return summarise_item_segments(per_group, item_group, names, candidates, k)


def item_segment_users(
    hits: np.ndarray,
    top_items: np.ndarray,
    n_pos: np.ndarray,
    item_group: np.ndarray,
    n_groups: int,
    k: int,
) -> list[dict[str, np.ndarray]]:
    """Per item group, every user's headline metrics@k with relevance and hits restricted
    to the group's items (the per-user half of :func:`item_segments`; the Spark engine
    runs it on batches of users)."""
    item_group = np.asarray(item_group, dtype=np.int64)
    top = np.asarray(top_items)[:, :k]
    top_group = np.where(top >= 0, item_group[np.maximum(top, 0)], -1)
    return [  # one pass per group (a handful), never per user
        ranking_metrics(hits[:, :k] * (top_group == g), n_pos[:, g], [k]) for g in range(n_groups)
    ]


def summarise_item_segments(
    per_group: list[dict[str, np.ndarray]],
    item_group: np.ndarray,
    names: Sequence[str],
    candidates: np.ndarray,
    k: int,
) -> dict[str, dict[str, float]]:
    """The means of :func:`item_segment_users`' values over all users, per group with
    candidates (the summary half of :func:`item_segments`)."""
    cand_group = np.asarray(item_group, dtype=np.int64)[candidates]
    n_items = np.bincount(cand_group[cand_group >= 0], minlength=len(names))
    out = {}
    for g, name in enumerate(names):
        if n_items[g] == 0:
            continue
        per_user = per_group[g]
        entry = _summary(per_user, np.arange(next(iter(per_user.values())).size), k)
        entry["n_items"] = int(n_items[g])
        out[name] = entry
    return out


def duration_names(edges: np.ndarray) -> list[str]:
    """Readable bucket names from edges in milliseconds, e.g. ``"6.55-14.1s"``."""
    s = np.asarray(edges) / 1000.0
    return [f"{s[i]:.3g}-{s[i + 1]:.3g}s" for i in range(s.size - 1)]
