"""The dataset's side information as model-ready numeric matrices (``FeatureMatrix``).

:func:`build_features` turns the parsed side files (:mod:`kuairec.data.side`) into one
float32 matrix per user_idx and one per item_idx, with readable column names
(``user_active_degree=high_active``, ``tag=12``, ``caption_first_level=3``,
``daily_like_rate`` ...). Every block, its transform and its fill are listed in
``docs/features.md``. The rules in short:

- categorical columns one-hot; a level seen on fewer than ``min_count`` rows is pooled
  into one ``<name>=other`` column, a null into ``<name>=null``;
- counts as ``log1p``, rates as they are, durations as ``log1p`` of seconds;
- a user or item without a row in its file gets zeros and ``<block>_missing = 1``;
- a missing side file gives a block of zero columns and a note, never an error;
- no NaN or inf: an undefined value (a rate over zero shows) is 0.

Cheap to build (well under a second at the default scale), so never cached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.data.dataset import FeatureMatrix

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl
    import scipy.sparse as sp

    from kuairec.data.dataset import DailyStats, KuaiRecDataset

#: A categorical level seen on fewer rows (users, videos) than this is pooled into "other".
MIN_LEVEL_COUNT = 10

#: user_features.csv: one-hot columns, 0/1 flags kept as they are, counts as log1p.
USER_CATEGORICAL = (
    "user_active_degree",
    "follow_user_num_range",
    "fans_user_num_range",
    "friend_user_num_range",
    "register_days_range",
    *[f"onehot_feat{i}" for i in range(18)],
)
USER_FLAGS = ("is_lowactive_period", "is_live_streamer", "is_video_author")
USER_COUNTS = ("follow_user_num", "fans_user_num", "friend_user_num", "register_days")

CAPTION_LEVELS = (("first", "first_level_category_id"),
                  ("second", "second_level_category_id"),
                  ("third", "third_level_category_id"))  # fmt: skip

#: item_daily_features.csv (summed per video by the item_daily builder of ``side.SIDE_FILES``).
DAILY_CATEGORICAL = ("video_type", "upload_type", "visible_status")
DAILY_PER_PLAY = ("complete_play_cnt", "valid_play_cnt", "long_time_play_cnt",
                  "short_time_play_cnt")  # fmt: skip
DAILY_PER_SHOW = ("play_cnt", "like_cnt", "cancel_like_cnt", "comment_cnt", "follow_cnt",
                  "cancel_follow_cnt", "share_cnt", "download_cnt", "report_cnt",
                  "reduce_similar_cnt")  # fmt: skip


def build_features(
    ds: KuaiRecDataset, min_count: int = MIN_LEVEL_COUNT
) -> tuple[FeatureMatrix, FeatureMatrix]:
    """``(user_x, item_x)`` of a dataset: one row per user_idx and per item_idx."""
    user_x = user_matrix(ds.user_features, ds.n_users, min_count=min_count)
    item_x = item_matrix(
        ds.item_tags, ds.captions, ds.video_duration, ds.item_daily, ds.n_items, min_count
    )
    return user_x, item_x


# ---------------------------------------------------------------- users


def user_matrix(
    user_features: pl.DataFrame | None, n_users: int, min_count: int = MIN_LEVEL_COUNT
) -> FeatureMatrix:
    """user_features.csv: ``user_missing``, the 0/1 flags, counts as ``<name>_log1p``,
    then every categorical column one-hot (rare levels pooled, null its own level)."""
    if user_features is None:
        return FeatureMatrix.empty(n_users, "user_features.csv missing: no user features")
    frame = _by_index(user_features, "user_idx", n_users)
    # user_active_degree is never null in the file: null means the user has no row
    present = frame["user_active_degree"].is_not_null().to_numpy()
    blocks = [_missing_block("user_missing", present, "user_features.csv", "users")]
    flags = np.column_stack([_numbers(frame[c], present) for c in USER_FLAGS])
    blocks.append(FeatureMatrix(flags, USER_FLAGS))
    counts = np.column_stack([np.log1p(_numbers(frame[c], present)) for c in USER_COUNTS])
    blocks.append(FeatureMatrix(counts, tuple(f"{c}_log1p" for c in USER_COUNTS)))
    blocks += [_onehot(frame[c], c, present, min_count) for c in USER_CATEGORICAL]
    return FeatureMatrix.hstack(blocks)


# ---------------------------------------------------------------- items


def item_matrix(
    item_tags: sp.csr_matrix | None,
    captions: pl.DataFrame | None,
    video_duration: np.ndarray | None,
    item_daily: pl.DataFrame | None,
    n_items: int,
    min_count: int = MIN_LEVEL_COUNT,
) -> FeatureMatrix:
    """Tags, caption categories, duration and the daily statistics, side by side."""
    return FeatureMatrix.hstack(
        [
            tag_block(item_tags, n_items),
            caption_block(captions, n_items, min_count),
            duration_block(video_duration, n_items),
            daily_block(item_daily, n_items, min_count),
        ]
    )


def tag_block(item_tags: sp.csr_matrix | None, n_items: int) -> FeatureMatrix:
    """Multi-hot ``tag=<id>`` (every tag id of the matrix) and ``tag_none`` (no tag)."""
    if item_tags is None:
        return FeatureMatrix.empty(n_items, "item_categories.csv missing: no tag columns")
    if item_tags.shape[0] != n_items:
        raise ValueError(f"item_tags has {item_tags.shape[0]} rows, expected {n_items}")
    tags = (np.asarray(item_tags.todense()) > 0).astype(np.float32)
    none = (tags.sum(axis=1) == 0).astype(np.float32)[:, None]
    from kuairec.data.side import tag_ids

    columns = (*[f"tag={t}" for t in tag_ids(item_tags)], "tag_none")
    return FeatureMatrix(np.hstack([tags, none]), columns)


def caption_block(
    captions: pl.DataFrame | None, n_items: int, min_count: int = MIN_LEVEL_COUNT
) -> FeatureMatrix:
    """``caption_missing`` and the three category levels one-hot: ``caption_first_level=3``,
    ``caption_first_level=other`` (levels on fewer than ``min_count`` videos) and
    ``caption_first_level=null`` (id -124 in the file)."""
    if captions is None:
        return FeatureMatrix.empty(
            n_items, "kuairec_caption_category.csv missing: no caption category columns"
        )
    frame = _by_index(captions, "item_idx", n_items, marker=True)
    present = frame["_present"].to_numpy()
    name = "kuairec_caption_category.csv"
    blocks = [_missing_block("caption_missing", present, name, "videos")]
    for level, column in CAPTION_LEVELS:
        blocks.append(_onehot(frame[column], f"caption_{level}_level", present, min_count))
    return FeatureMatrix.hstack(blocks)


def duration_block(video_duration: np.ndarray | None, n_items: int) -> FeatureMatrix:
    """``duration_log1p_s``: log1p of the video's duration in seconds (median over the
    matrices' rows); an unknown duration is 0 with ``duration_missing`` = 1."""
    if video_duration is None:
        return FeatureMatrix.empty(n_items, "no video durations: no duration column")
    ms = np.asarray(video_duration, dtype=np.float64)
    if ms.shape != (n_items,):
        raise ValueError(f"video_duration has shape {ms.shape}, expected ({n_items},)")
    known = np.isfinite(ms) & (ms >= 0)
    value = np.where(known, np.log1p(np.where(known, ms, 0.0) / 1000.0), 0.0)
    if known.all():
        return FeatureMatrix(value[:, None], ("duration_log1p_s",))
    note = f"{int((~known).sum())} videos without a duration: 0, duration_missing = 1"
    values = np.column_stack([value, ~known])
    return FeatureMatrix(values, ("duration_log1p_s", "duration_missing"), [note])


def daily_block(
    item_daily: pl.DataFrame | None, n_items: int, min_count: int = MIN_LEVEL_COUNT
) -> FeatureMatrix:
    """item_daily_features.csv per video: ``daily_missing``, volumes as log1p, per-show and
    per-play rates of the summed counts, the mean daily play_progress, categoricals."""
    if item_daily is None:
        return FeatureMatrix.empty(
            n_items, "item_daily_features.csv missing: no daily statistics columns"
        )
    frame = _by_index(item_daily, "item_idx", n_items, marker=True)
    present = frame["_present"].to_numpy()
    cols = {c: _numbers(frame[c], present) for c in (*DAILY_PER_SHOW, *DAILY_PER_PLAY)}
    show, play = _numbers(frame["show_cnt"], present), cols["play_cnt"]
    values = {
        "daily_days_observed_log1p": np.log1p(_numbers(frame["days_observed"], present)),
        "daily_show_cnt_log1p": np.log1p(show),
        "daily_play_seconds_log1p": np.log1p(
            _ratio(_numbers(frame["play_duration"], present), play) / 1000.0
        ),
        "daily_play_progress": _numbers(frame["mean_play_progress"], present),
    }
    for c in DAILY_PER_SHOW:
        values[f"daily_{c.removesuffix('_cnt')}_rate"] = _ratio(cols[c], show)
    for c in DAILY_PER_PLAY:
        values[f"daily_{c.removesuffix('_cnt')}_rate"] = _ratio(cols[c], play)
    blocks = [
        _missing_block("daily_missing", present, "item_daily_features.csv", "videos"),
        FeatureMatrix(np.column_stack(list(values.values())), tuple(values)),
    ]
    blocks += [_onehot(frame[c], f"daily_{c}", present, min_count) for c in DAILY_CATEGORICAL]
    return FeatureMatrix.hstack(blocks)


# ---------------------------------------------------------------- daily statistics by date


def daily_stats(item_daily: pl.DataFrame | None, n_items: int) -> DailyStats | None:
    """The daily statistics by date (:class:`~kuairec.data.dataset.DailyStats`) from the
    ``days`` column that the item_daily builder keeps (:data:`kuairec.data.side.SIDE_FILES`);
    None when the file is missing or the frame has no ``days`` (built by hand or by an
    older loader). ``upload_dt`` that does not parse as a date is NaN."""
    import polars as pl

    from kuairec.data.dataset import DailyStats
    from kuairec.data.side import DAILY_BY_DATE

    if item_daily is None or "days" not in item_daily.columns:
        return None
    rows = (
        item_daily.select("item_idx", "days")
        .explode("days")
        .unnest("days")
        .drop_nulls("date")
        .with_columns(_date_days(pl.col("date").cast(pl.String), "%Y%m%d").alias("day"))
        .drop_nulls("day")
        .sort("item_idx", "day")
    )
    values = np.column_stack(
        [rows[c].cast(pl.Float64).fill_null(0.0).to_numpy() for c in DAILY_BY_DATE]
    ).astype(np.float32)
    upload = np.full(n_items, np.nan)
    if "upload_dt" in item_daily.columns:
        up = item_daily.select(
            "item_idx", _date_days(pl.col("upload_dt").str.slice(0, 10), "%Y-%m-%d").alias("u")
        ).drop_nulls("u")
        upload[up["item_idx"].to_numpy()] = up["u"].to_numpy()
    return DailyStats(
        item_idx=rows["item_idx"].to_numpy().astype(np.int32),
        day=rows["day"].to_numpy().astype(np.int32),
        values=values.reshape(rows.height, len(DAILY_BY_DATE)),
        columns=DAILY_BY_DATE,
        upload_day=upload,
    )


def _date_days(text: pl.Expr, fmt: str) -> pl.Expr:
    """Days since 1970-01-01 of a date string (null where it does not parse)."""
    import polars as pl

    return text.str.to_date(fmt, strict=False).cast(pl.Int32)


# ---------------------------------------------------------------- helpers


def _by_index(df: pl.DataFrame, idx_col: str, n: int, marker: bool = False) -> pl.DataFrame:
    """One row per index 0..n-1 in order (null where ``df`` has none); ``_present`` marks
    the rows ``df`` had when ``marker``."""
    import polars as pl

    if marker:
        df = df.with_columns(pl.lit(True).alias("_present"))
    base = pl.DataFrame({idx_col: np.arange(n, dtype=np.int32)})
    df = df.with_columns(pl.col(idx_col).cast(pl.Int32)).unique(idx_col, keep="first")
    out = base.join(df, on=idx_col, how="left").sort(idx_col)
    if marker:
        out = out.with_columns(pl.col("_present").fill_null(False))
    return out


def _missing_block(name: str, present: np.ndarray, file: str, what: str) -> FeatureMatrix:
    """``<block>_missing`` (1 for rows without a row in the file) and a note if any."""
    absent = ~present
    notes = []
    if absent.any():
        notes.append(f"{int(absent.sum())} {what} without a row in {file}: zeros, {name} = 1")
    return FeatureMatrix(absent[:, None].astype(np.float32), (name,), notes)


def _numbers(col: pl.Series, present: np.ndarray) -> np.ndarray:
    """A numeric column as float64, 0 where absent, null or not finite."""
    import polars as pl

    values = col.cast(pl.Float64).fill_null(0.0).to_numpy().astype(np.float64)
    return np.where(present & np.isfinite(values), values, 0.0)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0."""
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def _codes(col: pl.Series) -> tuple[np.ndarray, list[str]]:
    """Level code per row (-1 for null) and the level names (sorted values; integral
    floats written as ints: ``1.0`` -> ``1``)."""
    import polars as pl

    null = col.is_null().to_numpy()
    if col.dtype == pl.String:
        values: np.ndarray = col.fill_null("").to_numpy().astype(str)
    else:
        values = col.cast(pl.Float64).fill_null(0.0).to_numpy()
        known = values[~null]
        if np.all(np.isfinite(known) & (known == np.round(known))):
            values = values.astype(np.int64)
    levels, inverse = np.unique(values[~null], return_inverse=True)
    codes = np.full(values.size, -1, dtype=np.int64)
    codes[~null] = inverse.ravel()
    return codes, [_level_name(v) for v in levels.tolist()]


def _level_name(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _onehot(col: pl.Series, name: str, present: np.ndarray, min_count: int) -> FeatureMatrix:
    """``name=<level>`` for levels on >= ``min_count`` present rows, ``name=other`` for
    the rarer ones, ``name=null`` for null values; rows not present are all zeros."""
    codes, names = _codes(col)
    valid = present & (codes >= 0)
    counts = np.bincount(codes[valid], minlength=len(names))
    common = np.flatnonzero(counts >= max(min_count, 1))
    column_of = np.full(len(names), common.size, dtype=np.int64)  # rare -> "other"
    column_of[common] = np.arange(common.size)
    columns = [f"{name}={names[i]}" for i in common]
    if ((counts > 0) & (counts < max(min_count, 1))).any():
        columns.append(f"{name}=other")
    null = present & (codes < 0)
    if null.any():
        columns.append(f"{name}=null")
    out = np.zeros((codes.size, len(columns)), dtype=np.float32)
    rows = np.flatnonzero(valid)
    out[rows, column_of[codes[rows]]] = 1.0
    out[null, len(columns) - 1] = 1.0
    return FeatureMatrix(out, tuple(columns))
