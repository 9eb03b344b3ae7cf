"""The protocols and the validation split as Spark DataFrame work, equal to the local ones.

- ``kuairec`` (:func:`kuairec.evaluation.protocols.default_protocol`): train on the big
  matrix less any pair the small matrix holds, test on the small matrix; test users and
  candidates are the small matrix's.
- ``temporal`` (:func:`~kuairec.evaluation.protocols.temporal_protocol`): each user's last
  ``max(1, floor(f * rows))`` rows of a one-log CSV by (time, tie hash, item,
  watch_ratio) are test rows; test pairs the user also trains on are dropped.
- the validation splits (:mod:`kuairec.evaluation.validation`): ``temporal`` (pairs first
  seen in the last 7 days) and ``random`` (per user, the first ``round(f * n)`` pairs by
  tie hash).

Rows are ordered only by values and by :func:`kuairec.data.ties.tie_hash`, never by
partitioning or file order, so any number of partitions gives the same split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kuairec.errors import DataError
from kuairec.evaluation.validation import SECONDS_PER_DAY
from kuairec.sparkengine.ties import with_tie_hash

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

PAIR = ["user_idx", "item_idx"]


@dataclass
class Split:
    """A protocol's tables: training pairs, test pairs (relevance = watch_ratio_mean),
    and the test users and candidate items (one column each)."""

    train: DataFrame
    test: DataFrame
    users: DataFrame  # user_idx
    candidates: DataFrame  # item_idx
    n_users: int
    n_items: int
    description: dict[str, Any] = field(default_factory=dict)


def kuairec_split(pairs: DataFrame, n_users: int, n_items: int) -> Split:
    """KuaiRec's protocol on the cleaned pairs (``matrix`` = big / small)."""
    big = pairs.filter("matrix = 'big'").drop("matrix")
    small = pairs.filter("matrix = 'small'").drop("matrix")
    train = big.join(small.select(*PAIR), PAIR, "left_anti")
    return Split(
        train=train,
        test=small,
        users=small.select("user_idx").distinct(),
        candidates=small.select("item_idx").distinct(),
        n_users=n_users,
        n_items=n_items,
    )


def aggregate_rows(rows: DataFrame) -> DataFrame:
    """Per (user, item): :meth:`kuairec.data.dataset.Interactions.from_log`'s aggregate."""
    from pyspark.sql import functions as F

    return rows.groupBy(*PAIR).agg(
        F.count(F.lit(1)).cast("int").alias("views"),
        F.avg("watch_ratio").cast("float").alias("watch_ratio_mean"),
        F.max("watch_ratio").cast("float").alias("watch_ratio_max"),
        F.min("timestamp").alias("first_timestamp"),
        F.max("timestamp").alias("last_timestamp"),
    )


def temporal_split(
    log: DataFrame, n_users: int, n_items: int, test_fraction: float, seed: int
) -> Split:
    """Each user's last rows of a row-level log (user_idx, item_idx, timestamp,
    watch_ratio) are its test rows (see the module docstring)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    counts = log.groupBy("user_idx").agg(F.count(F.lit(1)).alias("_n"))
    n_test = F.when(
        F.col("_n") >= 2, F.greatest(F.floor(F.col("_n") * F.lit(test_fraction)), F.lit(1))
    ).otherwise(0)
    rows = with_tie_hash(log, seed, "user_idx", "item_idx").join(counts, "user_idx")
    time = F.coalesce(F.col("timestamp"), F.lit(float("-inf")))
    order = Window.partitionBy("user_idx").orderBy(time, "tie", "item_idx", "watch_ratio")
    rows = rows.withColumn("_is_test", F.row_number().over(order) > F.col("_n") - n_test)
    train = aggregate_rows(rows.filter(~F.col("_is_test")))
    test = aggregate_rows(rows.filter(F.col("_is_test"))).join(
        train.select(*PAIR), PAIR, "left_anti"
    )
    return Split(
        train=train,
        test=test,
        users=test.select("user_idx").distinct(),
        candidates=log.sparkSession.range(n_items).select(
            F.col("id").cast("int").alias("item_idx")
        ),
        n_users=n_users,
        n_items=n_items,
    )


# ---------------------------------------------------------------------- validation


def validation_split(
    train: DataFrame,
    kind: str,
    users: DataFrame | None = None,
    fraction: float = 0.2,
    seed: int = 0,
    holdout_days: float = 7.0,
) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame]:
    """(fit pairs, validation pairs, validation users, candidates) of training pairs, as
    :func:`kuairec.evaluation.validation.validation_split` splits them."""
    if kind == "temporal":
        held = _temporal_held(train, holdout_days)
    elif kind == "random":
        held = _random_held(train, users, fraction, seed)
    else:
        raise DataError(f"validation split must be 'temporal' or 'random', got {kind!r}")
    return _split(held)


def _temporal_held(train: DataFrame, holdout_days: float) -> DataFrame:
    from pyspark.sql import functions as F

    ts = F.col("first_timestamp")
    span = train.agg(F.min(ts).alias("lo"), F.max(ts).alias("hi")).collect()[0]
    if span["lo"] is None:
        raise DataError("temporal_holdout: no training pair has a timestamp")
    lo, hi = float(span["lo"]), float(span["hi"])
    window = holdout_days * SECONDS_PER_DAY
    cut = hi - window if hi - lo >= 2 * window else hi - 0.2 * (hi - lo)
    return train.withColumn("_held", F.coalesce(ts > F.lit(cut), F.lit(False)))


def _random_held(
    train: DataFrame, users: DataFrame | None, fraction: float, seed: int
) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    counts = train.groupBy("user_idx").agg(F.count(F.lit(1)).alias("_n"))
    if users is not None:
        chosen = users.select("user_idx").distinct().withColumn("_chosen", F.lit(True))
        counts = counts.join(chosen, "user_idx", "left")
    else:
        counts = counts.withColumn("_chosen", F.lit(True))
    n = F.col("_n")
    n_held = F.when(
        F.coalesce(F.col("_chosen"), F.lit(False)) & (n >= 2),
        F.least(F.greatest(F.rint(n * F.lit(fraction)), F.lit(1.0)), n - 1),
    ).otherwise(0)
    rows = with_tie_hash(train, seed, "user_idx", "item_idx").join(counts, "user_idx")
    rank = F.row_number().over(Window.partitionBy("user_idx").orderBy("tie", "item_idx")) - 1
    return rows.withColumn("_held", rank < n_held).drop("tie", "_n", "_chosen")


def _split(marked: DataFrame) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame]:
    """Fit part = not held; validation = held pairs on fit-part items, for users with
    pairs on both sides (the local ``_split``)."""
    from pyspark.sql import functions as F

    fit = marked.filter(~F.col("_held")).drop("_held")
    candidates = fit.select("item_idx").distinct()
    held = marked.filter(F.col("_held")).drop("_held").join(candidates, "item_idx", "left_semi")
    users = (
        held.select("user_idx")
        .distinct()
        .join(fit.select("user_idx").distinct(), "user_idx", "left_semi")
    )
    if users.limit(1).count() == 0:
        raise DataError(
            "validation split: no user has both pairs in the fit part and held-out pairs"
        )
    return fit, held.join(users, "user_idx", "left_semi"), users, candidates
