"""What each endpoint computes, on a read-only :class:`~kuairec.serve.state.ServeState`.

No FastAPI here: plain functions that take checked request values and return plain dicts
(the JSON bodies) or raise :class:`ServeError` with an HTTP status and a message. Work per
request is proportional to the request (one user's row, one history, one video), never
to all users: the models score only the rows asked for.
"""

from __future__ import annotations

import math
import re
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


# ---------------------------------------------------------------------- ids
#: an integer id in a URL as a program writes it: no '+', '_', spaces or leading zeros
CANONICAL_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
_RANGES = {"int": (-(2**63), 2**63 - 1), "uint": (0, 2**64 - 1)}


def path_id(ids: Any, text: str, what: str) -> int | str:
    """A raw id from a URL path, in the type of the run's id map ``ids``: an integer
    written canonically (``1_0``, ``+0``, ``010`` and `` 1`` are refused, not read as 10,
    0 and 1) where the ids are integers, the text itself where they are text."""
    if ids.kind == "text":
        return text
    if not CANONICAL_INTEGER.fullmatch(text):
        raise ServeError(
            422, f"{what} must be an integer written plainly (digits, an optional leading "
            f"'-', no leading zeros, '+', '_' or spaces), got {text[:50]!r}",
        )  # fmt: skip
    return body_id(ids, int(text), what)


def body_id(ids: Any, value: int | str, what: str) -> int | str:
    """A raw id from a request body (an int or a str) in the type of the id map ``ids``:
    an integer run refuses strings and values outside its 64-bit range; a text run reads
    an integer as the text that spells it."""
    if ids.kind == "text":
        return value if isinstance(value, str) else str(value)
    if isinstance(value, str):
        raise ServeError(422, f"{what} must be an integer (this run's ids are), got {value[:50]!r}")
    low, high = _RANGES[ids.kind]
    if not low <= value <= high:
        raise ServeError(422, f"{what} {value} is outside this run's 64-bit id range")
    return value


# ---------------------------------------------------------------------- lookups
def served_model(state: ServeState, name: str | None) -> ServedModel:
    name = name or state.default_model
    if name not in state.models:
        raise ServeError(400, f"model {name!r} is not served; served: {', '.join(state.models)}")
    return state.models[name]


def user_index(state: ServeState, user_id: int | str) -> int:
    idx = _index(state.train.users.raw, user_id)
    if idx < 0:
        raise ServeError(404, f"user_id {user_id} is not a user of this run's training data")
    return idx


def video_index(state: ServeState, video_id: int | str) -> int:
    idx = _index(state.train.items.raw, video_id)
    if idx < 0:
        raise ServeError(404, f"video_id {video_id} is not a video of this run's data")
    return idx


def _index(raw: np.ndarray, value: int | str) -> int:
    """Position of ``value`` (already in the id map's type: :func:`body_id`) or -1."""
    pos = int(np.searchsorted(raw, value))
    return pos if pos < len(raw) and raw[pos] == value else -1


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
    user_ids: list[int | str],
    k: int,
    model: str | None,
    exclude_seen: bool,
    candidates: str,
) -> list[dict[str, Any]]:
    """Top-k lists for known users (their training videos excluded when asked); the ids
    are raw ids in the run's type (:func:`body_id`)."""
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
                "user_id": user_id,
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
    empty = _no_signal(x)
    if empty.any():  # nothing to go on: the most watched videos, said so
        items[empty], scores[empty] = most_watched(state, x[empty], k, cand, exclude_seen)
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
            "fallback": FALLBACK if empty[row] else None,
        }
        for row in range(len(used))
    ]


FALLBACK = "most_watched"  # the answer when a history gives the model nothing to go on


def _no_signal(x: Any) -> np.ndarray:
    """Rows of a history matrix with no known video watched (no entry above 0): an empty
    or all-zero history, or one of unknown videos only."""
    positive = x.copy()
    positive.data = (positive.data > 0).astype(np.float32)
    return np.asarray(positive.sum(axis=1)).ravel() == 0


def most_watched(
    state: ServeState, x: Any, k: int, cand: np.ndarray | None, exclude_seen: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The k most watched videos (training users per video) for each row of ``x``,
    among ``cand`` (None: all), without the row's own videos when ``exclude_seen``."""
    order = state.catalogue.by_popularity
    if cand is not None:
        order = order[np.isin(order, cand)]
    videos = state.catalogue.videos
    items = np.full((x.shape[0], k), -1, dtype=np.int64)
    scores = np.full((x.shape[0], k), -np.inf, dtype=np.float32)
    for row in range(x.shape[0]):
        keep = order
        if exclude_seen and x.indptr[row + 1] > x.indptr[row]:
            keep = order[~np.isin(order, x.indices[x.indptr[row] : x.indptr[row + 1]])]
        top = keep[:k]
        items[row, : top.size] = top
        scores[row, : top.size] = [videos[i]["popularity"] for i in top.tolist()]
    return items, scores


def history_rows(
    state: ServeState, histories: Sequence[Iterable[tuple[int, float]]]
) -> tuple[Any, list[list[int]], list[int]]:
    """An (n, n_items) CSR of mean watch ratios per known video, one row per history;
    per row the unknown video ids (in order, once each) and the number of distinct known
    videos."""
    import scipy.sparse as sp

    ids = state.train.items
    raw, n_items = ids.raw, state.n_items
    lengths, video_ids, ratios = [], [], []
    for history in histories:
        pairs = list(history)
        lengths.append(len(pairs))
        video_ids += [body_id(ids, p[0], "video_id") for p in pairs]
        ratios += [p[1] for p in pairs]
    n_rows = len(lengths)
    vids = np.array(video_ids, dtype=raw.dtype)  # body_id: every id fits the map's type
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
def similar_videos(
    state: ServeState, video_id: int | str, k: int, model: str | None
) -> dict[str, Any]:
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
