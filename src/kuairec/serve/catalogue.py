"""What the server says about videos and users, precomputed once at start-up.

Every response carries each video's metadata (tags by name, caption, category names,
duration, how many training users watched it). Building it per request would read the
side tables again and again, so :class:`Catalogue` turns them into one plain dict per
video when the server starts; requests only read it (it is never modified afterwards,
so concurrent requests may share it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from kuairec.data.side import tag_ids

CATEGORY_LEVELS = ("first", "second", "third")


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Per-video metadata dicts (index = item_idx) and per-user training histories."""

    videos: tuple[dict[str, Any], ...]
    by_popularity: np.ndarray  # item_idx, most watched first (ties: lower item_idx)
    tags: Any  # scipy CSR (n_items, n_tags) 0/1, or None
    user_ids: np.ndarray  # raw user_id per user_idx
    history: Any  # Interactions of the training log (read only)

    def video(self, item: int) -> dict[str, Any]:
        return self.videos[item]

    def recent_history(self, user: int, limit: int) -> list[dict[str, Any]]:
        """A user's training videos, the most recently watched first."""
        inter = self.history
        lo, hi = int(inter.indptr[user]), int(inter.indptr[user + 1])
        last = inter.last_timestamp[lo:hi]
        order = np.lexsort((inter.indices[lo:hi], -np.nan_to_num(last, nan=-np.inf)))
        rows = []
        for j in order[:limit].tolist():
            ts = float(last[j])
            rows.append(
                {
                    **self.videos[int(inter.indices[lo + j])],
                    "watch_ratio": _finite(inter.watch_ratio_mean[lo + j]),
                    "views": int(inter.views[lo + j]),
                    "last_timestamp": ts if math.isfinite(ts) else None,
                }
            )
        return rows

    def n_history(self, user: int) -> int:
        return int(self.history.indptr[user + 1] - self.history.indptr[user])


def build_catalogue(dataset: Any, train: Any) -> Catalogue:
    """The catalogue of a run's data (``dataset`` is None for the temporal protocol)."""
    n_items = train.n_items
    counts = train.interactions.item_counts()
    tags = getattr(dataset, "item_tags", None)
    tag_of_column = None if tags is None else tag_ids(tags)  # column -> the tag's own id
    tag_names = _tag_names(dataset)
    captions = _captions(dataset, n_items)
    duration = getattr(train, "video_duration", None)
    videos = []
    for item, video_id in enumerate(train.items.raw.tolist()):
        tags_of = (
            []
            if tags is None
            else tag_of_column[tags.indices[tags.indptr[item] : tags.indptr[item + 1]]]
        )
        caption, categories = captions[item]
        ms = float(duration[item]) if duration is not None else math.nan
        videos.append(
            {
                "video_id": video_id,  # int or str, as the data wrote it
                "caption": caption,
                "categories": categories,
                "tags": [tag_names.get(int(t), f"tag {int(t)}") for t in tags_of],
                "duration_s": round(ms / 1000.0, 3) if math.isfinite(ms) else None,
                "popularity": int(counts[item]),
            }
        )
    order = np.lexsort((np.arange(n_items), -counts))
    binary = None
    if tags is not None:
        binary = tags.copy().tocsr()
        binary.data = np.ones_like(binary.data, dtype=np.float32)
    return Catalogue(tuple(videos), order, binary, train.users.raw, train.interactions)


def _tag_names(dataset: Any) -> dict[int, str]:
    """Tag id -> name, from item_daily_features' (video_tag_id, video_tag_name) pairs."""
    daily = getattr(dataset, "item_daily", None)
    if daily is None or not {"video_tag_id", "video_tag_name"} <= set(daily.columns):
        return {}
    pairs = daily.select("video_tag_id", "video_tag_name").drop_nulls().unique()
    names: dict[int, str] = {}
    ids, tag_names = pairs["video_tag_id"].to_list(), pairs["video_tag_name"].to_list()
    for tag, name in zip(ids, tag_names, strict=True):
        if name and name != "UNKNOWN":
            names.setdefault(int(tag), str(name))
    return names


def _captions(dataset: Any, n_items: int) -> list[tuple[str | None, list[str]]]:
    out: list[tuple[str | None, list[str]]] = [(None, []) for _ in range(n_items)]
    caps = getattr(dataset, "captions", None)
    if caps is None or "item_idx" not in caps.columns:
        return out
    cols = [f"{lvl}_level_category_name" for lvl in CATEGORY_LEVELS]
    cols = [c for c in cols if c in caps.columns]
    text = caps["caption"].to_list() if "caption" in caps.columns else [None] * caps.height
    levels = [caps[c].to_list() for c in cols]
    for row, item in enumerate(caps["item_idx"].to_list()):
        names = [lv[row] for lv in levels if lv[row] and lv[row] != "UNKNOWN"]
        caption = text[row] if text[row] and text[row] != "UNKNOWN" else None
        if 0 <= item < n_items:
            out[item] = (caption, names)
    return out


def _finite(value: Any) -> float | None:
    v = float(value)
    return round(v, 4) if math.isfinite(v) else None
