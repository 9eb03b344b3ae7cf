"""Contiguous int32 id maps built with DataFrame operations, sorted by raw id.

The local loader's rule (:class:`kuairec.data.dataset.IdMap`): index = position of the
raw id in the sorted distinct ids. At scale a global sort into one partition would put
every id through one task, so the distinct ids are cut into sorted buckets by a few
quantiles fixed on the driver (any cut points give the same answer: they only decide
which task numbers which ids), each bucket is numbered by a window inside it, and each
bucket's offset is the number of ids in the buckets before it. The map is written as
Parquet and read back, so every later stage sees the same numbers. An index that does
not fit int32 is an error, not a silent wrap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kuairec.errors import DataError
from kuairec.sparkengine.session import written

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

INT32_MAX = 2**31 - 1


def build_id_map(
    raw_ids: DataFrame,
    raw: str,
    index: str,
    location: str,
    rows_per_bucket: int,
) -> tuple[DataFrame, int]:
    """Write ``(raw, index)`` for the distinct values of ``raw_ids[raw]`` to
    ``location`` (Parquet) and return the map read back, and its size."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ids = raw_ids.select(F.col(raw).cast("long").alias(raw)).distinct()
    distinct = written(ids, location.rstrip("/") + "-distinct")
    n = distinct.count()
    if n - 1 > INT32_MAX:
        raise DataError(
            f"{n} distinct {raw} values: their indices do not fit int32 (at most "
            f"{INT32_MAX + 1}); split the log or extend kuairec's index type"
        )
    bucket = _bucket_column(distinct, raw, n, rows_per_bucket)
    bucketed = distinct.withColumn("_bucket", bucket)
    if n <= rows_per_bucket:  # one bucket: no counts to fetch
        counts = {0: n}
    else:
        counts = {r["_bucket"]: r["count"] for r in bucketed.groupBy("_bucket").count().collect()}
    sizes = np.array([counts.get(b, 0) for b in range(max(counts, default=-1) + 1)], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
    offset = F.element_at(F.array(*[F.lit(int(o)) for o in offsets]), F.col("_bucket") + 1)
    position = F.row_number().over(Window.partitionBy("_bucket").orderBy(raw))
    mapped = bucketed.select(raw, (offset + position - 1).cast("int").alias(index))
    return written(mapped, location), int(n)


def _bucket_column(distinct: DataFrame, raw: str, n: int, rows_per_bucket: int):  # noqa: ANN202
    """Bucket of every id: how many cut points are <= it (cut points from quantiles)."""
    from pyspark.sql import functions as F

    n_buckets = max(1, -(-n // rows_per_bucket))
    if n_buckets == 1:
        return F.lit(0)
    probabilities = [b / n_buckets for b in range(1, n_buckets)]
    cuts = sorted(set(distinct.approxQuantile(raw, probabilities, 0.001)))
    return sum((F.col(raw) >= F.lit(int(c))).cast("int") for c in cuts)
