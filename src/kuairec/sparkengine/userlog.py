"""The temporal protocol's one-log CSV, read and checked with Spark.

``user_id,video_id,timestamp,watch_ratio`` (extra columns ignored, names stripped), the
rules of :func:`kuairec.evaluation.protocols.load_interactions_csv`: integer ids, finite
numbers, the loader's ranges (:data:`kuairec.data.schema.RANGES`); a bad value is a
:class:`~kuairec.errors.DataError` naming the file and the column with a few offending
rows. Ids are mapped through id maps of this log (sorted raw ids), as locally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kuairec.data.schema import RANGES
from kuairec.errors import DataError
from kuairec.evaluation.protocols import CSV_COLUMNS
from kuairec.sparkengine.checks import N_SHOWN, bounds_violated
from kuairec.sparkengine.idmap import build_id_map
from kuairec.sparkengine.session import join, spark_uri, written

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession


def read_user_log(
    spark: SparkSession, path: str, tables: str, rows_per_bucket: int
) -> tuple[DataFrame, int, int, int]:
    """The log in index space (user_idx, item_idx, timestamp, watch_ratio), its rows, the
    numbers of users and items; id maps written under ``tables``."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    try:
        raw = spark.read.csv(spark_uri(path), header=True, inferSchema=False)
    except AnalysisException as exc:
        raise DataError(f"cannot read the file: {str(exc).splitlines()[0]}", file=path) from None
    raw = raw.toDF(*[c.strip() for c in raw.columns])
    missing = [c for c in CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(
            f"missing column(s) {missing}: expected a header with {','.join(CSV_COLUMNS)}, "
            f"found {raw.columns}",
            file=path,
        )
    text = {c: F.trim(F.col(f"`{c}`")) for c in CSV_COLUMNS}
    typed = raw.select(
        *[text[c].alias(f"_{c}") for c in CSV_COLUMNS],
        text["user_id"].try_cast("long").alias("user_id"),
        text["video_id"].try_cast("long").alias("video_id"),
        text["timestamp"].try_cast("double").alias("timestamp"),
        text["watch_ratio"].try_cast("double").alias("watch_ratio"),
    )
    typed = written(typed, join(tables, "parsed"))  # parsed once: the checks and id maps
    n_rows = _check(typed, path)
    log = typed.select(*CSV_COLUMNS)
    users, n_users = build_id_map(
        log, "user_id", "user_idx", join(tables, "users"), rows_per_bucket
    )
    items, n_items = build_id_map(
        log, "video_id", "item_idx", join(tables, "items"), rows_per_bucket
    )
    mapped = log.join(users, "user_id").join(items, "video_id")
    return (
        mapped.select("user_idx", "item_idx", "timestamp", "watch_ratio"),
        n_rows,
        n_users,
        n_items,
    )


def _check(typed: DataFrame, path: str) -> int:
    from pyspark.sql import functions as F

    rules = []
    for c in CSV_COLUMNS:
        value = F.col(c)
        bad = value.isNull()
        if c in ("timestamp", "watch_ratio"):
            bad = bad | F.isnan(value) | value.isin(float("inf"), float("-inf"))
        kind = "an integer id" if c.endswith("_id") else "a finite number"
        rules.append((c, bad, f"expected {kind}"))
    for c in ("watch_ratio", "timestamp"):  # ranges after every value parsed, as locally
        rules.append((c, bounds_violated(F.col(c), RANGES[c]), f"expected {RANGES[c].describe()}"))
    counts = typed.agg(
        F.count(F.lit(1)).alias("rows"),
        *[F.sum(F.when(bad, 1).otherwise(0)).alias(f"r{i}") for i, (_, bad, _) in enumerate(rules)],
    ).collect()[0]
    if counts["rows"] == 0:
        raise DataError("no data rows", file=path)
    for i, (column, bad, expected) in enumerate(rules):
        if counts[f"r{i}"]:
            rows = typed.filter(bad).limit(N_SHOWN).collect()
            found = rows[0][f"_{column}"]
            shown = "; ".join(
                "(" + ", ".join(f"{c}={r['_' + c]!r}" for c in CSV_COLUMNS) + ")" for r in rows
            )
            raise DataError(
                f"{expected}, found {'a missing value' if found in (None, '') else repr(found)}; "
                f"{counts[f'r{i}']} offending row(s), e.g. {shown}",
                file=path,
                column=column,
            )
    return int(counts["rows"])
