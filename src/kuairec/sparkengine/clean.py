"""Clean the two matrices as the local loader does, as Spark DataFrame work.

Per matrix: the CSV parsed once into Parquet (:func:`~kuairec.sparkengine.read.read_staged`:
the checks, both id maps and the deduplication read its columns), the rows checked
(:mod:`kuairec.sparkengine.checks`), exact duplicate rows dropped (every column but
``time`` equal, NaN equal to NaN: the local rule), ids mapped
through the shared id maps (users and videos of both matrices, sorted by raw id), the
row-level log written as Parquet, then one row per (user, video): views, mean and max
watch_ratio (float32, as locally), first and last timestamp. Per video: the median of
its positive durations over both logs (0 when none), as locally. Everything is written
under ``work/tables`` (Parquet, partitioned by matrix and spread over several files) and
read back by the next stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kuairec.data import schema
from kuairec.sparkengine.checks import validate
from kuairec.sparkengine.idmap import build_id_map
from kuairec.sparkengine.read import Source, locate, read_staged
from kuairec.sparkengine.session import join, spark_uri

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

#: the columns compared to find exact duplicates (the local loader skips ``time``)
ROW_COLUMNS = (
    "user_id",
    "video_id",
    "play_duration",
    "video_duration",
    "date",
    "timestamp",
    "watch_ratio",
)
MATRICES = ("big", "small")


@dataclass
class Cleaned:
    """The cleaned tables (Parquet locations) and what cleaning counted."""

    pairs: str  # user_idx, item_idx, views, watch_ratio_mean/max, first/last_timestamp; matrix
    log: str  # the deduplicated rows, ids mapped; partitioned by matrix
    users: str  # user_id, user_idx
    items: str  # video_id, item_idx, video_duration
    n_users: int
    n_items: int
    report: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, Source | None] = field(default_factory=dict)


def clean_matrices(
    spark: SparkSession, folder: str, tables: str, rows_per_bucket: int, partitions: int
) -> Cleaned:
    """Read, check, deduplicate, map and aggregate the two matrices of ``folder``."""
    from pyspark.sql import functions as F

    sources = locate(spark, folder)
    checked = {
        m: validate(
            read_staged(spark, sources[m], join(tables, "parsed", m)), sources[m], require_rows=True
        )
        for m in MATRICES
    }
    frames = {m: df.drop("time").withColumn("matrix", F.lit(m)) for m, (df, _) in checked.items()}
    both = frames["big"].unionByName(frames["small"])
    users, n_users = build_id_map(
        both, "user_id", "user_idx", join(tables, "users"), rows_per_bucket
    )
    items, n_items = build_id_map(
        both, "video_id", "item_idx", join(tables, "items-ids"), rows_per_bucket
    )
    rows = both.dropDuplicates(["matrix", *ROW_COLUMNS])
    log_uri = spark_uri(join(tables, "log"))
    (
        rows.join(users, "user_id")
        .join(items, "video_id")
        .drop("user_id", "video_id")
        .repartition(partitions, "user_idx")
        .write.mode("overwrite")
        .partitionBy("matrix")
        .parquet(log_uri)
    )
    log = spark.read.parquet(log_uri)
    pairs_uri = spark_uri(join(tables, "pairs"))
    aggregate_pairs(log).repartition(partitions, "user_idx").write.mode("overwrite").partitionBy(
        "matrix"
    ).parquet(pairs_uri)
    items_uri = spark_uri(join(tables, "items"))
    durations(log, items).write.mode("overwrite").parquet(items_uri)
    cleaned = Cleaned(pairs_uri, log_uri, spark_uri(join(tables, "users")), items_uri,
                      n_users, n_items, sources=sources)  # fmt: skip
    cleaned.report = cleaning_report(spark, cleaned, {m: n for m, (_, n) in checked.items()})
    return cleaned


def aggregate_pairs(log: DataFrame) -> DataFrame:
    """One row per (matrix, user, video): the local loader's per-pair aggregate."""
    from pyspark.sql import functions as F

    return log.groupBy("matrix", "user_idx", "item_idx").agg(
        F.count(F.lit(1)).cast("int").alias("views"),
        F.avg("watch_ratio").cast("float").alias("watch_ratio_mean"),
        F.max("watch_ratio").cast("float").alias("watch_ratio_max"),
        F.min("timestamp").alias("first_timestamp"),  # nulls skipped; all null -> null
        F.max("timestamp").alias("last_timestamp"),
    )


def durations(log: DataFrame, items: DataFrame) -> DataFrame:
    """video_id, item_idx and the median positive video_duration (0.0 when none)."""
    from pyspark.sql import functions as F

    positive = F.when(F.col("video_duration") > 0, F.col("video_duration").cast("double"))
    med = log.groupBy("item_idx").agg(F.median(positive).alias("video_duration"))
    return items.join(med, "item_idx", "left").select(
        "video_id", "item_idx", F.coalesce("video_duration", F.lit(0.0)).alias("video_duration")
    )


def cleaning_report(spark: SparkSession, cleaned: Cleaned, rows_read: dict[str, int]) -> dict:
    """The local CleaningReport's counts, from the written tables (two small jobs)."""
    from pyspark.sql import functions as F

    log = spark.read.parquet(cleaned.log)
    kept = {
        r["matrix"]: r
        for r in log.groupBy("matrix")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.when(F.col("timestamp").isNull(), 1).otherwise(0)).alias("no_time"),
            F.sum(F.when(F.col("video_duration") == 0, 1).otherwise(0)).alias("zero"),
        )
        .collect()
    }
    pairs = spark.read.parquet(cleaned.pairs)
    big_u = pairs.filter("matrix = 'big'").select("user_idx").distinct()
    big_i = pairs.filter("matrix = 'big'").select("item_idx").distinct()
    small = pairs.filter("matrix = 'small'")
    cold_users = small.select("user_idx").distinct().join(big_u, "user_idx", "left_anti").count()
    cold_items = small.select("item_idx").distinct().join(big_i, "item_idx", "left_anti").count()
    dup = {m: rows_read[m] - int(kept[m]["rows"]) if m in kept else rows_read[m] for m in MATRICES}
    notes = []
    if dup["small"]:
        notes.append(f"small_matrix.csv: {dup['small']} exact duplicate rows dropped")
    for m in MATRICES:
        zero = int(kept[m]["zero"]) if m in kept else 0
        if zero:
            notes.append(
                f"{schema.FILES_BY_KEY[m].name}: {zero} rows with video_duration 0 (unknown "
                "duration: left out of the per-video duration)"
            )
    return {
        "rows_read": dict(rows_read),
        "duplicates_dropped": dup["big"],
        "small_duplicates_dropped": dup["small"],
        "small_rows_without_time": int(kept["small"]["no_time"]) if "small" in kept else 0,
        "cold_test_users": int(cold_users),
        "cold_test_items": int(cold_items),
        "notes": notes,
    }
