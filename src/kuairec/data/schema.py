"""The KuaiRec 2.0 file schema: every file, its columns in order, their types and rules.

This module is the single source of truth for both the loader (validation) and the
synthetic generator (writing). See ``docs/data.md`` for the quirks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["int", "float", "str", "list"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = False  # NaN / empty allowed
    min_value: float | None = None  # inclusive lower bound, numeric columns only


@dataclass(frozen=True)
class FileSpec:
    name: str  # file name inside the data folder
    key: str  # short name used in code: "big", "small", ...
    columns: tuple[Column, ...]
    required: bool = False

    @property
    def header(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _ints(*names: str, nullable: bool = False, min_value: float | None = 0) -> list[Column]:
    return [Column(n, "int", nullable=nullable, min_value=min_value) for n in names]


def _matrix(name: str, key: str, *, time_nullable: bool) -> FileSpec:
    return FileSpec(
        name=name,
        key=key,
        required=True,
        columns=(
            Column("user_id", "int", min_value=0),
            Column("video_id", "int", min_value=0),
            Column("play_duration", "int", min_value=0),
            Column("video_duration", "int", min_value=0),
            Column("time", "str", nullable=time_nullable),
            # `date` reads as float in small_matrix because of its NaNs
            Column("date", "int" if not time_nullable else "float", nullable=time_nullable),
            Column("timestamp", "float", nullable=time_nullable),
            Column("watch_ratio", "float", min_value=0),
        ),
    )


BIG = _matrix("big_matrix.csv", "big", time_nullable=False)
SMALL = _matrix("small_matrix.csv", "small", time_nullable=True)

ITEM_CATEGORIES = FileSpec(
    name="item_categories.csv",
    key="item_categories",
    columns=(Column("video_id", "int", min_value=0), Column("feat", "list")),
)

SOCIAL_NETWORK = FileSpec(
    name="social_network.csv",
    key="social_network",
    columns=(Column("user_id", "int", min_value=0), Column("friend_list", "list")),
)

USER_FEATURES = FileSpec(
    name="user_features.csv",
    key="user_features",
    columns=(
        Column("user_id", "int", min_value=0),
        Column("user_active_degree", "str"),
        *_ints("is_lowactive_period", "is_live_streamer", "is_video_author"),
        Column("follow_user_num", "int", min_value=0),
        Column("follow_user_num_range", "str"),
        Column("fans_user_num", "int", min_value=0),
        Column("fans_user_num_range", "str"),
        Column("friend_user_num", "int", min_value=0),
        Column("friend_user_num_range", "str"),
        Column("register_days", "int", min_value=0),
        Column("register_days_range", "str"),
        *_ints(*[f"onehot_feat{i}" for i in range(12)]),
        *[Column(f"onehot_feat{i}", "float", nullable=True) for i in range(12, 18)],
    ),
)

_DAILY_COUNTS = (
    "show_cnt show_user_num play_cnt play_user_num play_duration complete_play_cnt "
    "complete_play_user_num valid_play_cnt valid_play_user_num long_time_play_cnt "
    "long_time_play_user_num short_time_play_cnt short_time_play_user_num"
).split()
_DAILY_COUNTS_2 = (
    "comment_stay_duration like_cnt like_user_num click_like_cnt double_click_cnt "
    "cancel_like_cnt cancel_like_user_num comment_cnt comment_user_num direct_comment_cnt "
    "reply_comment_cnt delete_comment_cnt delete_comment_user_num comment_like_cnt "
    "comment_like_user_num follow_cnt follow_user_num cancel_follow_cnt "
    "cancel_follow_user_num share_cnt share_user_num download_cnt download_user_num "
    "report_cnt report_user_num reduce_similar_cnt reduce_similar_user_num"
).split()
COLLECT_COLUMNS = (
    "collect_cnt",
    "collect_user_num",
    "cancel_collect_cnt",
    "cancel_collect_user_num",
)

ITEM_DAILY_FEATURES = FileSpec(
    name="item_daily_features.csv",
    key="item_daily_features",
    columns=(
        Column("video_id", "int", min_value=0),
        Column("date", "int", min_value=0),
        Column("author_id", "int", min_value=0),
        Column("video_type", "str"),
        Column("upload_dt", "str"),
        Column("upload_type", "str"),
        Column("visible_status", "str"),
        Column("video_duration", "float", min_value=0),
        Column("video_width", "int", min_value=0),
        Column("video_height", "int", min_value=0),
        Column("music_id", "int", min_value=0),
        Column("video_tag_id", "int", min_value=None),
        Column("video_tag_name", "str"),
        *_ints(*_DAILY_COUNTS),
        Column("play_progress", "float", min_value=0),
        *_ints(*_DAILY_COUNTS_2),
        *[Column(c, "float", nullable=True, min_value=0) for c in COLLECT_COLUMNS],
    ),
)

CAPTION_CATEGORY = FileSpec(
    name="kuairec_caption_category.csv",
    key="caption_category",
    columns=(
        Column("video_id", "int", min_value=0),
        Column("manual_cover_text", "str", nullable=True),
        Column("caption", "str", nullable=True),
        Column("topic_tag", "str", nullable=True),  # `[a,b,c]`, unquoted: split by hand
        Column("first_level_category_id", "int", min_value=None),  # -124 = missing
        Column("first_level_category_name", "str", nullable=True),
        Column("second_level_category_id", "int", min_value=None),
        Column("second_level_category_name", "str", nullable=True),
        Column("third_level_category_id", "int", min_value=None),
        Column("third_level_category_name", "str", nullable=True),
    ),
)

FILES: tuple[FileSpec, ...] = (
    BIG,
    SMALL,
    ITEM_CATEGORIES,
    USER_FEATURES,
    ITEM_DAILY_FEATURES,
    SOCIAL_NETWORK,
    CAPTION_CATEGORY,
)
FILES_BY_KEY: dict[str, FileSpec] = {f.key: f for f in FILES}

#: Written by the synthetic generator only (the real data has no such file).
TRUTH = FileSpec(
    name="small_matrix_truth.csv",
    key="truth",
    columns=(
        Column("user_id", "int", min_value=0),
        Column("video_id", "int", min_value=0),
        Column("expected_watch_ratio", "float", min_value=0),
    ),
)

N_TAGS = 31  # tag ids 0..30 in item_categories.feat
MISSING_CATEGORY_ID = -124
