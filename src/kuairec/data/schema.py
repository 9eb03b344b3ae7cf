"""The KuaiRec 2.0 file schema: every file, its columns in order, their types and rules.

This module is the single source of truth for both the loader (validation) and the
synthetic generator (writing). See ``docs/data.md`` for the quirks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

Kind = Literal["int", "float", "str", "list"]

#: unix seconds: any date is legal (a log from 1997 too); |t| >= 1e11 (after the year
#: 5138) is a time in milliseconds or finer, or a damaged value such as 1e308
TIMESTAMP_MAX_ABS = 1e11
WATCH_RATIO_MAX = 10_000.0  # the real KuaiRec reaches about 573
DATE_MIN, DATE_MAX = 10000101, 99991231  # yyyymmdd: eight digits, any year
#: a row's date may differ from its timestamp's UTC day by up to two days: one for its
#: time zone (the KuaiRec files write Beijing days, UTC+8; any zone is within one day of
#: UTC), one for the files' own quirk (about 0.1% of rows carry a neighbouring day)
DATE_SLACK_DAYS = 2


@dataclass(frozen=True)
class Bounds:
    """The legal values of a column: ``low <= x <= high`` (inclusive; None = unbounded)
    and, for ``calendar`` columns, a real calendar day written yyyymmdd."""

    low: float | None = None
    high: float | None = None
    calendar: bool = False
    text: str = ""  # how a message states the range

    def describe(self) -> str:
        if self.text:
            return self.text
        if self.high is None:
            return f">= {self.low:g}"
        if self.low is None:
            return f"<= {self.high:g}"
        return f"between {self.low:g} and {self.high:g}"

    def first_violation(self, values: np.ndarray) -> int | None:
        """Index of the first value outside the bounds (NaN counts as missing, not as a
        violation: the caller checks missing values), or None."""
        import numpy as np

        v = np.asarray(values)
        bad = np.zeros(v.shape, dtype=bool)
        if self.low is not None:
            bad |= v < self.low
        if self.high is not None:
            bad |= v > self.high
        if self.calendar:
            bad |= ~_calendar_days(v)
        if not bad.any():
            return None
        return int(np.flatnonzero(bad)[0])


def _calendar_days(v: np.ndarray) -> np.ndarray:
    """True where ``v`` is a whole yyyymmdd number naming a real day (or NaN)."""
    import numpy as np

    with np.errstate(invalid="ignore"):
        nan = np.isnan(v) if v.dtype.kind == "f" else np.zeros(v.shape, dtype=bool)
        whole = nan | (np.floor(v) == v) if v.dtype.kind == "f" else ~nan
        d = np.where(whole & ~nan & (np.abs(v) < 1e9), v, 0).astype(np.int64)
    year, month, day = d // 10_000, d // 100 % 100, d % 100
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_days = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    last = month_days[np.clip(month, 0, 12)] + ((month == 2) & leap)
    ok = (month >= 1) & (month <= 12) & (day >= 1) & (day <= last)
    return nan | (whole & ok)


#: The ranges shared by the loader and the user-log reader
#: (:func:`kuairec.evaluation.protocols.load_interactions_csv`); see docs/data.md.
RANGES: dict[str, Bounds] = {
    "duration": Bounds(0, None, text="a duration >= 0 (milliseconds)"),
    "watch_ratio": Bounds(
        0, WATCH_RATIO_MAX, text=f"a watch_ratio between 0 and {WATCH_RATIO_MAX:.0f}"
    ),
    "timestamp": Bounds(
        -TIMESTAMP_MAX_ABS,
        TIMESTAMP_MAX_ABS,
        text=f"a unix time in seconds (|t| < {TIMESTAMP_MAX_ABS:.0e}: a larger value is in "
        "milliseconds or finer)",
    ),
    "date": Bounds(
        DATE_MIN, DATE_MAX, calendar=True, text="a calendar day written yyyymmdd (eight digits)"
    ),
}


def first_date_mismatch(date: np.ndarray, timestamp: np.ndarray) -> int | None:
    """Index of the first row whose ``date`` (yyyymmdd, already checked as a calendar day)
    is more than :data:`DATE_SLACK_DAYS` from its ``timestamp``'s UTC day, or None. Rows
    missing either (NaN) are not compared. The window of legal dates is thus the data's
    own: a 1997 log is as good as a 2020 one, a date that contradicts its time is not."""
    import numpy as np

    d, t = np.asarray(date), np.asarray(timestamp, dtype=np.float64)
    missing = np.isnan(t)
    if d.dtype.kind == "f":
        missing |= np.isnan(d)
    if missing.all():
        return None
    if missing.any():  # a present date stands in for the missing ones (not compared)
        d = np.where(missing, d[np.argmax(~missing)], d)
    d = d.astype(np.int64)
    low, high = int(d.min()), int(d.max())
    if high - low < 2_000_000:  # a few years of yyyymmdd: one table, no per-row arithmetic
        days = days_since_epoch(np.arange(low, high + 1))[d - low]
    else:
        uniq, inverse = np.unique(d, return_inverse=True)
        days = days_since_epoch(uniq)[inverse]
    days -= np.floor(np.where(missing, days * 86_400.0, t) / 86_400.0)
    bad = np.abs(days) > DATE_SLACK_DAYS
    return int(np.argmax(bad)) if bad.any() else None


def days_since_epoch(yyyymmdd: np.ndarray) -> np.ndarray:
    """Calendar days (yyyymmdd, proleptic Gregorian) as days since 1970-01-01, vectorised
    (H. Hinnant's ``days_from_civil``)."""
    import numpy as np

    n = np.asarray(yyyymmdd).astype(np.int64)
    year, month, day = n // 10_000, n // 100 % 100, n % 100
    year = year - (month <= 2)
    era = np.floor_divide(year, 400)
    year_of_era = year - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return (era * 146_097 + day_of_era - 719_468).astype(np.float64)


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = False  # NaN / empty allowed
    min_value: float | None = None  # inclusive lower bound, numeric columns only
    bounds: Bounds | None = None  # the full legal range (checked after min_value)


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
            Column("play_duration", "int", min_value=0, bounds=RANGES["duration"]),
            Column("video_duration", "int", min_value=0, bounds=RANGES["duration"]),
            Column("time", "str", nullable=time_nullable),  # yyyy-mm-dd hh:mm:ss[.fff]
            # `date` reads as float in small_matrix because of its NaNs
            Column(
                "date",
                "int" if not time_nullable else "float",
                nullable=time_nullable,
                bounds=RANGES["date"],
            ),
            Column("timestamp", "float", nullable=time_nullable, bounds=RANGES["timestamp"]),
            Column("watch_ratio", "float", min_value=0, bounds=RANGES["watch_ratio"]),
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
        Column("date", "int", min_value=0, bounds=RANGES["date"]),
        Column("author_id", "int", min_value=0),
        Column("video_type", "str"),
        Column("upload_dt", "str"),
        Column("upload_type", "str"),
        Column("visible_status", "str"),
        Column("video_duration", "float", min_value=0, bounds=RANGES["duration"]),
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
        Column("expected_watch_ratio", "float", min_value=0, bounds=RANGES["watch_ratio"]),
    ),
)

N_TAGS = 31  # tag ids 0..30 in item_categories.feat
#: ``time`` of the matrices: Beijing wall-clock ``yyyy-mm-dd hh:mm:ss`` with optional
#: fractional seconds, as in the real files (``2020-07-05 00:08:23.438``)
TIME_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]) "
    r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?$"
)
MISSING_CATEGORY_ID = -124
