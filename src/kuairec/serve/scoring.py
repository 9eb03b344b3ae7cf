"""What each endpoint computes, on a read-only :class:`~kuairec.serve.state.ServeState`.

No FastAPI here: plain functions that take checked request values and return plain dicts
(the JSON bodies) or raise :class:`ServeError` with an HTTP status and a message. Work per
request is proportional to the request (one user's row, one history, one video), never
to all users: the models score only the rows asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from kuairec.errors import KuaiRecError
from kuairec.models.matrices import select_rows
from kuairec.serve.state import ServedModel, ServeState


class ServeError(Exception):
    """A request the server answers with ``status`` and ``message`` (never a 500)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------- lookups
def served_model(state: ServeState, name: str | None) -> ServedModel:
    name = name or state.default_model
    if name not in state.models:
        raise ServeError(400, f"model {name!r} is not served; served: {', '.join(state.models)}")
    return state.models[name]


def user_index(state: ServeState, user_id: int) -> int:
    idx = _index(state.train.users.raw, user_id)
    if idx < 0:
        raise ServeError(404, f"user_id {user_id} is not a user of this run's training data")
    return idx


def video_index(state: ServeState, video_id: int) -> int:
    idx = _index(state.train.items.raw, video_id)
    if idx < 0:
        raise ServeError(404, f"video_id {video_id} is not a video of this run's data")
    return idx


def _index(raw: np.ndarray, value: int) -> int:
    pos = int(np.searchsorted(raw, value)) if -(2**63) <= value < 2**63 else len(raw)
    return pos if pos < len(raw) and int(raw[pos]) == value else -1


def candidate_items(state: ServeState, candidates: str, k: int) -> np.ndarray | None:
    """None (every video) or the test matrix's videos; k must not exceed their count."""
    cand = None if candidates == "all" else state.small_candidates
    n = state.n_items if cand is None else cand.size
    if k > n:
        raise ServeError(422, f"k={k} is more than the {n} candidate videos ({candidates!r})")
    return cand


# ---------------------------------------------------------------------- recommendations
def recommend_users(
    state: ServeState,
    user_ids: list[int],
    k: int,
    model: str | None,
    exclude_seen: bool,
    candidates: str,
) -> list[dict[str, Any]]:
    """Top-k lists for known users (their training videos excluded when asked)."""
    served = served_model(state, model)
    users = np.array([_index(state.train.users.raw, u) for u in user_ids], dtype=np.int64)
    missing = [u for u, i in zip(user_ids, users.tolist(), strict=True) if i < 0]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ServeError(404, f"{len(missing)} unknown user_id(s): {shown}")
    cand = candidate_items(state, candidates, k)
    exclude = select_rows(state.seen, users) if exclude_seen else None
    items, scores = _call(served, lambda m: m.recommend(users, k, exclude, cand))
    out = []
    for row, user_id in enumerate(user_ids):
        out.append(
            {
                "user_id": int(user_id),
                "model": served.name,
                "k": k,
                "candidates": candidates,
                "items": ranked(state, items[row], scores[row]),
            }
        )
    return out


def recommend_history(
    state: ServeState,
    history: Iterable[tuple[int, float]],
    k: int,
    model: str | None,
    exclude_seen: bool,
    candidates: str,
    user_features: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Top-k for a user the models never saw, from a history of (video_id, watch_ratio)."""
    (out,) = recommend_histories(
        state, [history], k, model, exclude_seen, candidates, user_features
    )
    return out


def recommend_histories(
    state: ServeState,
    histories: Sequence[Iterable[tuple[int, float]]],
    k: int,
    model: str | None,
    exclude_seen: bool,
    candidates: str,
    user_features: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """:func:`recommend_history` for several new users at once: one model call, one row
    each (``user_features``, when given, are those of every row)."""
    served = served_model(state, model)
    if not served.supports_history:
        able = [m.name for m in state.models.values() if m.supports_history]
        raise ServeError(
            422,
            f"{served.name} cannot score a new user's history: {served.history_reason}; "
            f"models that can: {', '.join(able) or 'none'}",
        )
    features = check_user_features(state, user_features)
    x, unknown, used = history_rows(state, histories)
    cand = candidate_items(state, candidates, k)
    extra = {"user_features": features} if served.takes_user_features and features else {}
    items, scores = _call(
        served,
        lambda m: m.recommend(k=k, candidates=cand, history=x, exclude_seen=exclude_seen, **extra),
    )
    return [
        {
            "user_id": None,
            "model": served.name,
            "k": k,
            "candidates": candidates,
            "items": ranked(state, items[row], scores[row]),
            "history_used": used[row],
            "unknown_videos": unknown[row],
            "user_features_used": bool(extra),
        }
        for row in range(len(used))
    ]


def history_rows(
    state: ServeState, histories: Sequence[Iterable[tuple[int, float]]]
) -> tuple[Any, list[list[int]], list[int]]:
    """An (n, n_items) CSR of mean watch ratios per known video, one row per history;
    per row the unknown video ids (in order, once each) and the number of distinct known
    videos."""
    import scipy.sparse as sp

    raw, n_items = state.train.items.raw, state.n_items
    lengths, video_ids, ratios = [], [], []
    for history in histories:
        pairs = list(history)
        lengths.append(len(pairs))
        video_ids += [p[0] for p in pairs]
        ratios += [p[1] for p in pairs]
    n_rows = len(lengths)
    vids = np.array(video_ids, dtype=np.int64)  # the request schema bounds ids to int64
    row_of = np.repeat(np.arange(n_rows, dtype=np.int64), lengths)
    pos = np.searchsorted(raw, vids)
    known = pos < raw.size
    known[known] = raw[pos[known]] == vids[known]
    # one entry per (row, video), mean of repeats; np.unique sorts keys row-major: CSR order
    keys, inverse = np.unique(row_of[known] * n_items + pos[known], return_inverse=True)
    sums = np.bincount(inverse, weights=np.asarray(ratios, dtype=np.float64)[known])
    vals = (sums / np.bincount(inverse)).astype(np.float32)
    used = np.bincount(keys // n_items, minlength=n_rows)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(used, out=indptr[1:])
    x = sp.csr_matrix((vals, keys % n_items, indptr), shape=(n_rows, n_items))
    unknown_all: list[dict[int, None]] = [{} for _ in range(n_rows)]
    for r, v in zip(row_of[~known].tolist(), vids[~known].tolist(), strict=True):
        unknown_all[r].setdefault(v, None)  # in order of first appearance, once each
    return x, [list(u) for u in unknown_all], used.tolist()


def check_user_features(
    state: ServeState, features: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    if not features:
        return None
    bad = sorted(set(features) - set(state.user_feature_columns))
    if bad:
        cols = ", ".join(state.user_feature_columns) or "none (the run's data has no file)"
        raise ServeError(422, f"unknown user_features {bad}; user_features.csv's columns: {cols}")
    return dict(features)


# ---------------------------------------------------------------------- videos
def similar_videos(state: ServeState, video_id: int, k: int, model: str | None) -> dict[str, Any]:
    """The model's own item-item similarity, or tag overlap (Jaccard) when it has none."""
    served = served_model(state, model)
    item = video_index(state, video_id)
    if k > state.n_items - 1:
        raise ServeError(422, f"k={k} is more than the {state.n_items - 1} other videos")
    source, reason = "model", None
    try:
        items, scores = served.model.similar_items(np.array([item]), k)
        items, scores = items[0], scores[0]
        if not (items >= 0).any():
            source, reason = "tags", f"{served.name} knows no video similar to this one"
    except KuaiRecError as exc:
        source, reason = "tags", str(exc)
    if source == "tags":
        items, scores = tag_overlap(state, item, k)
    return {
        "video": state.catalogue.video(item),
        "model": served.name,
        "similarity": source,
        "similarity_note": reason,
        "k": k,
        "items": ranked(state, items, scores),
    }


def tag_overlap(state: ServeState, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Videos sharing tags with ``item`` by Jaccard overlap (ties: lower item_idx)."""
    from kuairec.models.base import top_k

    tags = state.catalogue.tags
    if tags is None:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    inter = np.asarray((tags @ tags[item].T).todense()).ravel()
    sizes = np.diff(tags.indptr)
    union = sizes + sizes[item] - inter
    jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0).astype(np.float32)
    jac[jac <= 0] = -np.inf
    jac[item] = -np.inf
    cols, vals = top_k(jac[None, :], min(k, jac.size))
    return cols[0], vals[0]


def ranked(state: ServeState, items: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    """Response rows for one list (padding -1 dropped), with each video's metadata."""
    videos = state.catalogue.videos
    out = []
    for item, score in zip(items.tolist(), scores.tolist(), strict=True):
        if item < 0:
            continue
        s = float(score)
        out.append({**videos[item], "rank": len(out) + 1, "score": s if math.isfinite(s) else None})
    return out


def _call(served: ServedModel, fn: Any) -> tuple[np.ndarray, np.ndarray]:
    """Run a model call; a library error on checked input is the model's 4xx answer."""
    try:
        return fn(served.model)
    except KuaiRecError as exc:
        raise ServeError(422, f"{served.name}: {exc}") from None
