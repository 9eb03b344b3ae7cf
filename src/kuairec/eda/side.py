"""The numbers behind the side-data figures: tags, categories, users, daily stats, friends.

Each function takes one side field of the dataset (which may be missing columns; the
caller checks for ``None``) plus per-item views or per-user activity from the big matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl
    import scipy.sparse as sp

    from kuairec.data.dataset import IdMap

MISSING_CATEGORY = -124
USER_NUMERIC = (
    "follow_user_num",
    "fans_user_num",
    "friend_user_num",
    "register_days",
    "is_lowactive_period",
    "is_live_streamer",
    "is_video_author",
)
DAILY_PREFERRED = (
    "show_cnt",
    "play_cnt",
    "play_duration",
    "play_progress",
    "complete_play_cnt",
    "valid_play_cnt",
    "long_time_play_cnt",
    "short_time_play_cnt",
    "like_cnt",
    "comment_cnt",
    "follow_cnt",
    "share_cnt",
    "download_cnt",
    "collect_cnt",
    "report_cnt",
    "reduce_similar_cnt",
    "video_duration",
)
DAILY_RATES = ("complete_play_rate", "valid_play_rate", "like_rate", "share_rate")
AGG_SUFFIXES = ("sum", "mean", "total", "avg", "median", "max")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation over the pairs where both are finite (NaN if < 3)."""
    from scipy.stats import rankdata

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    ra, rb = rankdata(a[ok]), rankdata(b[ok])
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


@dataclass
class TagStats:
    videos: np.ndarray  # videos carrying each tag
    views: np.ndarray  # views of the videos carrying each tag
    n_tagged: int  # videos with at least one tag
    n_multi: int  # videos with two tags or more
    n_items: int  # videos in the id space
    tag_ids: np.ndarray | None = None  # the tag id of each entry (None: the positions)

    def tag_id(self, k: int) -> int:
        return int(self.tag_ids[k]) if self.tag_ids is not None else int(k)


def tag_popularity(item_tags: sp.csr_matrix, views: np.ndarray) -> TagStats:
    """Videos and views per tag column (a video with k tags counts once for each); tag
    ids come from the matrix's column map (:func:`kuairec.data.side.tag_ids`), never
    used as sizes."""
    from kuairec.data.side import tag_ids

    ids = tag_ids(item_tags)
    tags = item_tags.tocsr().astype(bool).astype(np.float64)
    n = min(tags.shape[0], views.size)
    tags, v = tags[:n], np.asarray(views[:n], dtype=np.float64)
    per_video = tags.getnnz(axis=1)
    return TagStats(
        videos=np.asarray(tags.sum(axis=0)).ravel().astype(np.int64),
        views=np.asarray(tags.T @ v).ravel(),
        n_tagged=int((per_video > 0).sum()),
        n_multi=int((per_video > 1).sum()),
        n_items=n,
        tag_ids=ids,
    )


def category_popularity(captions: pl.DataFrame, views: np.ndarray) -> pl.DataFrame | None:
    """Videos and views per first-level category (id, name), most viewed first.

    None when the captions lack both ``first_level_category_id`` and ``_name``.
    """
    import polars as pl

    cols = set(captions.columns)
    key = next(
        (c for c in ("first_level_category_id", "first_level_category_name") if c in cols), None
    )
    if key is None or "item_idx" not in cols:
        return None
    idx = captions["item_idx"].to_numpy().astype(np.int64)
    ok = (idx >= 0) & (idx < views.size)
    named = "first_level_category_name" in cols
    ids = captions[key].filter(pl.Series(ok))
    if ids.dtype.is_integer():  # the loader maps the missing id -124 to null
        ids = ids.fill_null(MISSING_CATEGORY)
    frame = pl.DataFrame(
        {
            "id": ids,
            "name": (captions["first_level_category_name"] if named else captions[key])
            .cast(pl.String)
            .filter(pl.Series(ok)),
            "views": views[idx[ok]],
        }
    )
    agg = frame.group_by("id").agg(
        pl.col("name").drop_nulls().mode().first().alias("name"),
        pl.len().alias("videos"),
        pl.col("views").sum().alias("views"),
    )
    total_v, total_n = float(agg["views"].sum()) or 1.0, float(agg["videos"].sum()) or 1.0
    return agg.with_columns(
        (pl.col("videos") / total_n).alias("video_share"),
        (pl.col("views") / total_v).alias("view_share"),
        (pl.col("views") / pl.col("videos")).alias("views_per_video"),
    ).sort(["views", "id"], descending=[True, False])


def align_users(frame: pl.DataFrame, users: IdMap) -> np.ndarray | None:
    """user_idx of every row of a per-user frame, or None when it cannot be told."""
    if "user_idx" in frame.columns:
        return frame["user_idx"].to_numpy().astype(np.int64)
    if "user_id" in frame.columns:
        return users.to_index(frame["user_id"].to_numpy(), unknown="mask")
    if frame.height == len(users):
        return np.arange(frame.height, dtype=np.int64)
    return None


@dataclass
class UserStats:
    degrees: list[str]  # user_active_degree values, most users first ([] if absent)
    users: np.ndarray  # users per degree
    activity: list[np.ndarray]  # activity of the users of each degree
    correlations: dict[str, float]  # numeric feature -> Spearman rho with activity
    n_users: int  # users matched to the activity vector


def user_activity(frame: pl.DataFrame, users: IdMap, activity: np.ndarray) -> UserStats | None:
    """User features against activity (distinct videos watched in the big matrix)."""
    idx = align_users(frame, users)
    if idx is None:
        return None
    ok = (idx >= 0) & (idx < activity.size)
    act = np.asarray(activity, dtype=np.float64)[idx[ok]]
    degrees, per_users, per_act = [], [], []
    if "user_active_degree" in frame.columns:
        deg = frame["user_active_degree"].cast(str).fill_null("missing").to_numpy()[ok]
        names, counts = np.unique(deg, return_counts=True)
        for j in np.argsort(-counts, kind="stable"):
            degrees.append(str(names[j]))
            per_users.append(int(counts[j]))
            per_act.append(act[deg == names[j]])
    corr = {}
    for col in USER_NUMERIC:
        if col in frame.columns and frame[col].dtype.is_numeric():
            corr[col] = spearman(frame[col].cast(float).to_numpy()[ok], act)
    return UserStats(degrees, np.array(per_users, dtype=np.int64), per_act, corr, int(ok.sum()))


def find_column(columns: list[str], base: str) -> str | None:
    """``base`` itself, else ``base_<agg>`` (``play_cnt_sum``) or ``<agg>_base``
    (``mean_play_progress``), else None."""
    if base in columns:
        return base
    for agg in AGG_SUFFIXES:
        for name in (f"{base}_{agg}", f"{agg}_{base}"):
            if name in columns:
                return name
    return None


@dataclass
class DailyStats:
    names: list[str]  # columns of the correlation matrix
    corr: np.ndarray  # Spearman correlation matrix
    n_items: int  # items with every chosen column present
    progress: np.ndarray | None  # play_progress per item (if present)
    complete_rate: np.ndarray | None  # complete plays / plays per item (if present)


def _daily_numeric(item_daily: pl.DataFrame, views: np.ndarray) -> dict[str, np.ndarray]:
    cols = item_daily.columns
    out: dict[str, np.ndarray] = {}
    for base in DAILY_PREFERRED:
        col = find_column(cols, base)
        if col is not None and item_daily[col].dtype.is_numeric():
            out[base] = item_daily[col].cast(float).fill_nan(None).to_numpy()
    if "item_idx" in cols:
        idx = item_daily["item_idx"].to_numpy().astype(np.int64)
        ok = (idx >= 0) & (idx < views.size)
        out["big_views"] = np.where(ok, views[np.clip(idx, 0, views.size - 1)], np.nan)
    for rate in DAILY_RATES:  # rates the loader computed (complete plays / plays ...)
        if rate in cols and item_daily[rate].dtype.is_numeric():
            out[rate] = item_daily[rate].cast(float).fill_nan(None).to_numpy()
    if "complete_play_rate" not in out and "play_cnt" in out and "complete_play_cnt" in out:
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = out["complete_play_cnt"] / out["play_cnt"]
        out["complete_play_rate"] = np.where(out["play_cnt"] > 0, rate, np.nan)
    return out


def daily_correlations(item_daily: pl.DataFrame, views: np.ndarray) -> DailyStats | None:
    """Spearman correlations among the per-item daily statistics (and big-matrix views)."""
    from scipy.stats import rankdata

    data = _daily_numeric(item_daily, views)
    usable = {k: v for k, v in data.items() if np.isfinite(v).mean() >= 0.5 and np.nanstd(v) > 0}
    if len(usable) < 2:
        return None
    names = list(usable)
    mat = np.column_stack([usable[k] for k in names])
    rows = np.isfinite(mat).all(axis=1)
    if rows.sum() < 3:
        return None
    ranks = np.column_stack([rankdata(mat[rows, j]) for j in range(len(names))])
    corr = np.corrcoef(ranks, rowvar=False)
    return DailyStats(
        names, corr, int(rows.sum()), data.get("play_progress"), data.get("complete_play_rate")
    )


@dataclass
class SocialStats:
    degree: np.ndarray  # friends listed per user_idx
    n_users: int
    with_friends: int
    median_activity_with: float  # median activity of users with / without friends
    median_activity_without: float


def social_degrees(social: sp.csr_matrix, activity: np.ndarray) -> SocialStats:
    deg = np.asarray(social.tocsr().getnnz(axis=1), dtype=np.int64)
    n = min(deg.size, activity.size)
    deg, act = deg[:n], np.asarray(activity[:n], dtype=np.float64)
    has = deg > 0

    def med(x: np.ndarray) -> float:
        return float(np.median(x)) if x.size else float("nan")

    return SocialStats(deg, n, int(has.sum()), med(act[has]), med(act[~has]))


def summary_rows(summary: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Flatten a nested summary dict into (dotted key, value) rows."""
    rows: list[tuple[str, Any]] = []
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(summary_rows(value, prefix=f"{name}."))
        else:
            rows.append((name, value))
    return rows
