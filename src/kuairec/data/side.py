"""Side files -> index-space features: tags, user features, daily item stats, captions,
friends and (synthetic data only) the truth matrix.

Rows whose ids are absent from the matrices' id maps are dropped and counted in
``report.side_ids_dropped`` (never an error). Every file but the caption file is validated
strictly (:func:`kuairec.data.validate.read_checked`); the caption file holds free text
with commas, quotes and newlines and is parsed leniently, its problems reported.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.data import schema
from kuairec.data.aggregate import aggregate_sorted
from kuairec.data.dataset import CleaningReport, IdMap, Interactions
from kuairec.data.matrices import IdIndex, sort_keys
from kuairec.data.validate import check_header, parse_int_lists, read_checked

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl
    import scipy.sparse as sp

log = logging.getLogger("kuairec.data")

_UNKNOWN_TEXT = ("UNKNOWN", "")


def _map_and_drop(
    df: pl.DataFrame, ids: IdMap, id_col: str, idx_col: str, key: str, report: CleaningReport
) -> pl.DataFrame:
    """Add ``idx_col`` from ``id_col``; drop (and count) rows whose id is unknown."""
    import polars as pl

    idx = ids.to_index(df[id_col].to_numpy(), unknown="mask")
    known = idx >= 0
    dropped = int(known.size - known.sum())
    report.side_ids_dropped[key] = report.side_ids_dropped.get(key, 0) + dropped
    df = df.with_columns(pl.Series(idx_col, idx.astype(np.int32)))
    return df.filter(pl.Series(known)) if dropped else df


def read_item_categories(path: Path) -> pl.DataFrame:
    """``video_id`` and ``feat`` as ``list[int64]`` (tag ids), every row of the file."""
    df = read_checked(path, schema.ITEM_CATEGORIES)
    return df.with_columns(parse_int_lists(df["feat"], path, "feat"))


def _read_item_tags(path: Path, report: CleaningReport) -> pl.DataFrame:
    cats = read_item_categories(path)
    report.rows_read["item_categories"] = cats.height
    return cats


def _build_item_tags(
    cats: pl.DataFrame, users: IdMap, items: IdMap, report: CleaningReport
) -> sp.csr_matrix:
    """(n_items, n_tags) multi-hot float32 CSR: the 31 standard tags' columns, then one
    column per other tag id present (see :func:`item_tags_matrix`)."""
    return item_tags_matrix(cats, items, report)


def item_tags_matrix(cats: pl.DataFrame, items: IdMap, report: CleaningReport) -> sp.csr_matrix:
    """The tag matrix from :func:`read_item_categories`' frame (unknown videos dropped).

    Tag ids are mapped to contiguous columns, never used as a size: column ``t`` is tag
    ``t`` for the standard ids 0..30 (the real data's), and any other id present gets one
    of the columns after them, in ascending order (a tag id of 10**9 costs one column).
    The column -> tag id map is the matrix's ``tag_ids`` (:func:`tag_ids`).
    """
    import scipy.sparse as sp

    cats = _map_and_drop(cats, items, "video_id", "item_idx", "item_categories", report)
    exploded = cats.select("item_idx", "feat").explode("feat").drop_nulls("feat")
    rows = exploded["item_idx"].to_numpy()
    tags = exploded["feat"].to_numpy().astype(np.int64)
    standard = tags < schema.N_TAGS
    extra = np.unique(tags[~standard])
    cols = tags.copy()
    cols[~standard] = schema.N_TAGS + np.searchsorted(extra, tags[~standard])
    ids = np.concatenate([np.arange(schema.N_TAGS, dtype=np.int64), extra])
    if extra.size:
        report.notes.append(
            f"item_categories.csv: {extra.size} tag ids outside 0..30 (largest {extra[-1]}), "
            f"in columns {schema.N_TAGS}.. of item_tags (tag_ids maps them)"
        )
    data = np.ones(rows.size, dtype=np.float32)
    mat = sp.csr_matrix((data, (rows, cols)), shape=(len(items), ids.size))
    mat.sum_duplicates()
    mat.data[:] = 1.0
    mat.tag_ids = ids
    return mat


def tag_ids(item_tags: sp.spmatrix) -> np.ndarray:
    """The tag id of each column of ``item_tags`` (int64): ``item_tags.tag_ids`` when the
    loader set it, else the column numbers (a matrix built by hand)."""
    ids = getattr(item_tags, "tag_ids", None)
    if ids is None or len(ids) != item_tags.shape[1]:
        return np.arange(item_tags.shape[1], dtype=np.int64)
    return np.asarray(ids, dtype=np.int64)


def _read_user_features(path: Path, report: CleaningReport) -> pl.DataFrame:
    df = read_checked(path, schema.USER_FEATURES)
    report.rows_read["user_features"] = df.height
    return df


def _build_user_features(
    df: pl.DataFrame, users: IdMap, items: IdMap, report: CleaningReport
) -> pl.DataFrame:
    """One row per user_idx, in order: user_idx, user_id, then the file's other columns
    (null for users absent from the file)."""
    import polars as pl

    df = _map_and_drop(df, users, "user_id", "user_idx", "user_features", report)
    df = _first_per_id(df, "user_idx", schema.USER_FEATURES.name, report)
    base = pl.DataFrame({"user_idx": np.arange(len(users), dtype=np.int32), "user_id": users.raw})
    out = base.join(df.drop("user_id"), on="user_idx", how="left", maintain_order="left")
    return out.sort("user_idx")


def _first_per_id(
    df: pl.DataFrame, idx_col: str, file_name: str, report: CleaningReport
) -> pl.DataFrame:
    dup = df[idx_col].is_duplicated()
    if dup.any():
        n = int(dup.sum() - df.filter(dup)[idx_col].n_unique())
        report.notes.append(f"{file_name}: {n} rows repeat an earlier id; kept the first")
        return df.unique(idx_col, keep="first", maintain_order=True)
    return df


#: The daily counts kept by date (the ``days`` column of :func:`_build_item_daily`): what
#: time-windowed features need (:func:`kuairec.data.features.daily_stats`).
DAILY_BY_DATE = (
    "show_cnt", "play_cnt", "complete_play_cnt", "valid_play_cnt", "play_duration",
    "like_cnt", "comment_cnt", "follow_cnt", "share_cnt",
)  # fmt: skip


def _read_item_daily(path: Path, report: CleaningReport) -> pl.DataFrame:
    df = read_checked(path, schema.ITEM_DAILY_FEATURES)
    report.rows_read["item_daily_features"] = df.height
    return df


def _build_item_daily(
    df: pl.DataFrame, users: IdMap, items: IdMap, report: CleaningReport
) -> pl.DataFrame:
    """One row per item_idx with daily data: attributes of its first day, sums of the
    daily counts, mean play_progress, rates (complete plays / plays ...) and days seen;
    ``days`` keeps the video's rows by date (a list of ``date`` + :data:`DAILY_BY_DATE`
    structs, ascending), so that a window of days can be summed later without leaking
    the days after it."""
    import polars as pl

    df = _map_and_drop(df, items, "video_id", "item_idx", "item_daily_features", report)
    attrs = (
        "video_id author_id video_type upload_dt upload_type visible_status video_width "
        "video_height music_id video_tag_id video_tag_name"
    ).split()
    not_counts = {*attrs, "date", "video_duration", "play_progress"}
    counts = [
        c.name
        for c in schema.ITEM_DAILY_FEATURES.columns
        if c.kind in ("int", "float") and c.name not in not_counts
    ]
    plays = pl.col("play_cnt")

    def rate(name: str) -> pl.Expr:
        return pl.when(plays > 0).then(pl.col(name) / plays).otherwise(None)

    agg = (
        df.sort("item_idx", "date")
        .group_by("item_idx", maintain_order=True)
        .agg(
            *[pl.col(a).first() for a in attrs],
            pl.col("video_duration").median(),
            pl.col("date").n_unique().cast(pl.Int32).alias("days_observed"),
            pl.col("date").min().alias("first_date"),
            pl.col("date").max().alias("last_date"),
            pl.col("play_progress").mean().alias("mean_play_progress"),
            *[pl.col(c).sum() for c in counts],
            pl.struct("date", *DAILY_BY_DATE).alias("days"),  # one entry per day, by date
        )
    )
    return agg.with_columns(
        rate("complete_play_cnt").alias("complete_play_rate"),
        rate("valid_play_cnt").alias("valid_play_rate"),
        rate("like_cnt").alias("like_rate"),
        rate("share_cnt").alias("share_rate"),
        rate("comment_cnt").alias("comment_rate"),
    )


def _read_social(path: Path, report: CleaningReport) -> pl.DataFrame:
    df = read_checked(path, schema.SOCIAL_NETWORK)
    report.rows_read["social_network"] = df.height
    return df.with_columns(parse_int_lists(df["friend_list"], path, "friend_list"))


def _build_social(
    df: pl.DataFrame, users: IdMap, items: IdMap, report: CleaningReport
) -> sp.csr_matrix:
    """(n_users, n_users) symmetric 0/1 float32 friend adjacency."""
    import scipy.sparse as sp

    df = _map_and_drop(df, users, "user_id", "user_idx", "social_network", report)
    pairs = df.select("user_idx", "friend_list").explode("friend_list").drop_nulls()
    friend = users.to_index(pairs["friend_list"].to_numpy(), unknown="mask")
    known = friend >= 0
    report.side_ids_dropped["social_network.friends"] = int(known.size - known.sum())
    rows = pairs["user_idx"].to_numpy()[known]
    cols = friend[known]
    n = len(users)
    both_r = np.concatenate([rows, cols])
    both_c = np.concatenate([cols, rows])
    mat = sp.csr_matrix((np.ones(both_r.size, np.float32), (both_r, both_c)), shape=(n, n))
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat


def _read_truth(path: Path, report: CleaningReport) -> pl.DataFrame:
    import polars as pl

    compact = {"user_id": pl.Int32(), "video_id": pl.Int32()}
    df = read_checked(path, schema.TRUTH, require_rows=True, compact=compact)
    report.rows_read["truth"] = df.height
    return df


def _build_truth(
    df: pl.DataFrame, users: IdIndex, items: IdIndex, report: CleaningReport
) -> Interactions:
    """The synthetic expected watch_ratio per small pair (views 1, no timestamps)."""
    u = users.lookup(df["user_id"].to_numpy())
    i = items.lookup(df["video_id"].to_numpy())
    known = (u >= 0) & (i >= 0)
    report.side_ids_dropped["truth"] = int(known.size - known.sum())
    wr = df["expected_watch_ratio"].to_numpy()
    n_users, n_items = len(users.map), len(items.map)
    key = u[known].astype(np.int64) * n_items + i[known]
    key, order = sort_keys(key, n_users * n_items, width=n_items)
    truth = aggregate_sorted(key, order, wr[known], None, n_users, n_items)
    if truth.views.size and truth.views.max() > 1:
        report.notes.append(f"{schema.TRUTH.name}: repeated pairs averaged")
    truth.views = np.ones_like(truth.views)
    return truth


def _read_captions(path: Path, report: CleaningReport) -> pl.DataFrame:
    caps = read_captions(path, report)
    report.rows_read["caption_category"] = caps.height
    return caps


def _build_captions(
    caps: pl.DataFrame, users: IdMap, items: IdMap, report: CleaningReport
) -> pl.DataFrame:
    """item_idx + the caption columns, sorted by item_idx, one row per known video."""
    caps = _map_and_drop(caps, items, "video_id", "item_idx", "caption_category", report)
    caps = _first_per_id(caps, "item_idx", schema.CAPTION_CATEGORY.name, report)
    return caps.select("item_idx", *caps.columns[:-1]).sort("item_idx")


def read_captions(path: Path, report: CleaningReport) -> pl.DataFrame:
    """Parse the caption file leniently: a real CSV parser (quoted commas, quotes,
    newlines), ``topic_tag`` split by hand, ``UNKNOWN``/empty text and ``-124`` ids as
    null. Rows whose video_id is not an integer are dropped and reported."""
    import polars as pl

    spec = schema.CAPTION_CATEGORY
    check_header(path, spec)
    try:
        raw = pl.read_csv(path, infer_schema=False, raise_if_empty=False)
    except pl.exceptions.PolarsError:
        raw = _read_captions_by_python(path, spec)
    vid = raw["video_id"].str.strip_chars().cast(pl.Int64, strict=False)
    bad = vid.is_null() | (vid < 0)
    if bad.any():
        first = int(bad.arg_true()[0])
        msg = (
            f"{path.name}: dropped {int(bad.sum())} rows whose video_id is not an integer "
            f"(first: record {first + 1}, video_id {raw['video_id'][first]!r})"
        )
        report.notes.append(msg)
        log.warning(msg)
    out = raw.with_columns(vid.alias("video_id")).filter(~bad)
    text = [c.name for c in spec.columns if c.kind == "str" and c.name != "topic_tag"]
    ids = [c.name for c in spec.columns if c.kind == "int" and c.name != "video_id"]
    return out.with_columns(
        *[_null_unknown_text(pl.col(c)).alias(c) for c in text],
        *[_category_id(pl.col(c)).alias(c) for c in ids],
        _topic_tags(pl.col("topic_tag")).alias("topic_tag"),
    )


def _null_unknown_text(col: pl.Expr) -> pl.Expr:
    import polars as pl

    return pl.when(col.str.strip_chars().is_in(_UNKNOWN_TEXT)).then(None).otherwise(col)


def _category_id(col: pl.Expr) -> pl.Expr:
    import polars as pl

    value = col.str.strip_chars().cast(pl.Int64, strict=False)
    return pl.when(value == schema.MISSING_CATEGORY_ID).then(None).otherwise(value)


def _topic_tags(col: pl.Expr) -> pl.Expr:
    """``[a,b,c]`` (unquoted items) -> list[str]; ``[]``/empty -> empty list."""
    import polars as pl

    return (
        col.fill_null("")
        .str.strip_chars()
        .str.strip_prefix("[")
        .str.strip_suffix("]")
        .str.split(",")
        .list.eval(pl.element().str.strip_chars(" '\"").filter(pl.element().str.len_chars() > 0))
    )


def _read_captions_by_python(path: Path, spec: schema.FileSpec) -> pl.DataFrame:
    """Fallback: Python's csv module, re-joining an unquoted ``[a,b,c]`` topic_tag that
    the commas split into several fields."""
    import polars as pl

    n = len(spec.columns)
    topic = spec.header.index("topic_tag")
    rows = []
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        for fields in list(csv.reader(fh))[1:]:
            if len(fields) > n and fields[topic].startswith("["):
                end = next((k for k in range(topic, len(fields)) if fields[k].endswith("]")), None)
                if end is not None:
                    tag = ",".join(fields[topic : end + 1])
                    fields = [*fields[:topic], tag, *fields[end + 1 :]]
            if len(fields) == n:
                rows.append(fields)
            elif any(f.strip() for f in fields):
                rows.append([""] * n)  # counted below as a row without a numeric video_id
    return pl.DataFrame(rows, schema=spec.header, orient="row")


@dataclass(frozen=True)
class SideFile:
    """How one side file becomes a dataset field: ``read(path, report)`` parses and checks
    it without the id maps (so it can run while the matrices are parsed); ``build(parsed,
    users, items, report)`` maps its ids (``IdMap``s; ``IdIndex``es when ``index``)."""

    field: str
    read: Callable[[Path, CleaningReport], Any]
    build: Callable[[Any, Any, Any, CleaningReport], Any]
    index: bool = False


SIDE_FILES = {  # file key -> SideFile, in the order they are read and built
    "item_categories": SideFile("item_tags", _read_item_tags, _build_item_tags),
    "user_features": SideFile("user_features", _read_user_features, _build_user_features),
    "item_daily_features": SideFile("item_daily", _read_item_daily, _build_item_daily),
    "social_network": SideFile("social", _read_social, _build_social),
    "caption_category": SideFile("captions", _read_captions, _build_captions),
    "truth": SideFile("truth", _read_truth, _build_truth, index=True),
}
