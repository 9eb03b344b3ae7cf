"""The five side files, read and checked with Spark, written beside the cleaned tables.

The local loader's rules (:mod:`kuairec.data.side`): every file but the caption file is
checked strictly (types, missing values, minimums, ranges, the ``[1, 2]`` lists); rows
whose ids are not in the matrices' id maps are dropped and counted; a repeated id in
user_features or the caption file keeps its first row (file order, as Spark reads a
single file); the caption file's free text is read leniently (quoted newlines; a row
whose video_id is not an integer is dropped and reported). A missing side file is listed
and skipped. The models the Spark engine trains use none of them: they are there for
checking the data and for later stages (features), as Parquet under ``tables/side``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kuairec.data.validate import LIST_PATTERN
from kuairec.errors import DataError
from kuairec.sparkengine.checks import N_SHOWN, validate
from kuairec.sparkengine.read import CORRUPT, Source, read_raw
from kuairec.sparkengine.session import join, spark_uri

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

SIDE_KEYS = (
    "item_categories",
    "user_features",
    "item_daily_features",
    "social_network",
    "caption_category",
)
ID_OF = {  # file key -> (id column, the map it goes through)
    "item_categories": ("video_id", "items"),
    "user_features": ("user_id", "users"),
    "item_daily_features": ("video_id", "items"),
    "social_network": ("user_id", "users"),
    "caption_category": ("video_id", "items"),
}
LISTS = {"item_categories": "feat", "social_network": "friend_list"}
FIRST_PER_ID = ("user_features", "caption_category")


def clean_side_files(
    spark: SparkSession,
    sources: dict[str, Source | None],
    maps: dict[str, DataFrame],
    tables: str,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Check, map and write every side file present: (Parquet locations, counts)."""
    written: dict[str, str] = {}
    report: dict[str, Any] = {"rows_read": {}, "side_ids_dropped": {}, "missing_files": [],
                              "notes": []}  # fmt: skip
    for key in SIDE_KEYS:
        source = sources.get(key)
        if source is None:
            from kuairec.data.schema import FILES_BY_KEY

            report["missing_files"].append(FILES_BY_KEY[key].name)
            continue
        df, n = _read(spark, source, report)
        report["rows_read"][key] = n
        df = _map_ids(df, key, maps, report)
        uri = spark_uri(join(tables, "side", key))
        df.write.mode("overwrite").parquet(uri)
        written[key] = uri
    return written, report


def _read(spark: SparkSession, source: Source, report: dict[str, Any]) -> tuple[DataFrame, int]:
    from pyspark.sql import functions as F

    key = source.spec.key
    raw = read_raw(spark, source).withColumn("_order", F.monotonically_increasing_id())
    if key == "caption_category":
        return _lenient_captions(raw, source, report)
    df, n = validate(raw, source)
    column = LISTS.get(key)
    if column is not None:
        df = _parse_list(df, source, column)
    return df, n


def _parse_list(df: DataFrame, source: Source, column: str) -> DataFrame:
    """``[8]`` / ``[27, 9]`` text as array<long>; a malformed list or an id below 0 is a
    DataError (:func:`kuairec.data.validate.parse_int_lists`' rules)."""
    from pyspark.sql import functions as F

    text = F.col(column)
    parts = F.split(F.regexp_replace(text, r"[\[\]\s]", ""), ",")
    values = F.filter(parts, lambda p: p != "")
    parsed = F.transform(values, lambda p: p.try_cast("long"))
    df = df.withColumn("_list", parsed)
    checks = [
        (
            ~F.coalesce(text.rlike(LIST_PATTERN), F.lit(False)),
            "expected a list of integers like [1, 2]",
        ),
        (
            F.exists("_list", lambda v: v.isNull()),
            "expected integers of at most 19 digits (64-bit)",
        ),
        (F.exists("_list", lambda v: v < 0), "expected ids >= 0"),
    ]
    if not df.filter(checks[0][0] | checks[1][0] | checks[2][0]).limit(1).collect():
        return df.withColumn(column, F.col("_list")).drop("_list")  # one job when valid
    for bad, expected in checks:
        rows = df.filter(bad).select(column).limit(N_SHOWN).collect()
        if rows:
            shown = "; ".join(repr(r[0]) for r in rows)
            raise DataError(f"{expected}, found {rows[0][0]!r}; e.g. {shown}",
                            file=source.location, column=column)  # fmt: skip
    return df.withColumn(column, F.col("_list")).drop("_list")


def _lenient_captions(
    raw: DataFrame, source: Source, report: dict[str, Any]
) -> tuple[DataFrame, int]:
    from pyspark.sql import functions as F

    counts = raw.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(F.col("video_id").isNull() | (F.col("video_id") < 0), 1).otherwise(0)).alias(
            "bad"
        ),
        F.sum(F.when(F.col(CORRUPT).isNotNull(), 1).otherwise(0)).alias("ragged"),
    ).collect()[0]
    name = source.name
    if counts["bad"]:
        report["notes"].append(
            f"{name}: dropped {counts['bad']} rows whose video_id is not an integer"
        )
    if counts["ragged"]:
        report["notes"].append(
            f"{name}: {counts['ragged']} rows do not split into "
            f"{len(source.spec.columns)} fields (unquoted commas in the free text): their "
            "text columns may be shifted"
        )
    keep = F.col("video_id").isNotNull() & (F.col("video_id") >= 0)
    return raw.filter(keep).drop(CORRUPT), int(counts["rows"])


def _map_ids(df: DataFrame, key: str, maps: dict[str, DataFrame], report: dict[str, Any]):  # noqa: ANN202
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    id_col, which = ID_OF[key]
    index = "user_idx" if which == "users" else "item_idx"
    mapped = df.join(maps[which], id_col, "left")
    if key == "social_network":
        friends = maps["users"].toDF("friend_id", "friend_idx")
        mapped = mapped.select(index, F.explode_outer(LISTS[key]).alias("friend_id")).join(
            friends, "friend_id", "left"
        )
    known = F.col(index).isNotNull()
    counts = mapped.agg(
        F.sum(F.when(F.col(index).isNull(), 1).otherwise(0)).alias("unknown"),
        (F.sum(known.cast("int")) - F.countDistinct(index)).alias("repeats"),
        *(
            [F.sum(F.when(F.col("friend_id").isNotNull() & F.col("friend_idx").isNull(), 1)
                   .otherwise(0)).alias("friends")]
            if key == "social_network" else []
        ),
    ).collect()[0]  # fmt: skip
    report["side_ids_dropped"][key] = int(counts["unknown"] or 0)
    if key == "social_network":
        report["side_ids_dropped"]["social_network.friends"] = int(counts["friends"] or 0)
        return mapped.filter(F.col(index).isNotNull() & F.col("friend_idx").isNotNull()).select(
            index, "friend_idx"
        )
    mapped = mapped.filter(F.col(index).isNotNull())
    if key in FIRST_PER_ID:
        first = F.row_number().over(Window.partitionBy(index).orderBy("_order"))
        ranked = mapped.withColumn("_first", first)
        repeats = int(counts["repeats"] or 0)
        if repeats:
            report["notes"].append(f"{key}: {repeats} rows repeat an earlier id; kept the first")
        mapped = ranked.filter(F.col("_first") == 1).drop("_first")
    return mapped.drop("_order")
