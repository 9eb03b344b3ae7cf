"""The models of the Spark engine.

- ``popularity``: distinct training users per video, one aggregation.
- ``itemknn``: cosine item-item similarity as a co-occurrence self-join of the training
  pairs (per user, every pair of its kept videos), pruned to each item's top
  ``neighbours`` by a window (ties: lower item index), with the local model's float32
  arithmetic reproduced step by step (``float32(a op b)`` is what a double operation
  rounded to float32 gives, for + - * / and sqrt), so binary weights give the local
  neighbours exactly. The neighbour matrix (items x neighbours) comes to the driver.
- ``spark_als``: ``pyspark.ml`` ALS fed directly from the training table, with
  spark_als's mapping of als's parameters (:mod:`kuairec.models.spark_als`); the item
  factors come to the driver, the user factors stay in Spark.
- any other registered model runs on the driver on the collected training matrix when the
  catalogue fits one machine (``max_local_items``, ``max_local_pairs``), else it is
  skipped with the reason; so do the models that need what the Spark engine does not
  build (the synthetic truth, side features).

Each fit returns a :class:`Fitted`: the top-K kernel (item side) and any per-user columns
it needs, or, for driver-side models, the lists themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.errors import ConfigError
from kuairec.models.params import config_to_dict
from kuairec.sparkengine.session import parallelism
from kuairec.sparkengine.topk import TopKKernel

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

MIN_RATING = 1e-6  # spark_als's floor: Spark drops ratings <= 0 from the positives


@dataclass
class Fitted:
    config: dict[str, Any]
    where: str  # "spark" or "driver"
    kernel: TopKKernel | None = None
    user_columns: DataFrame | None = None  # joined to the user table on user_idx
    lists: tuple[np.ndarray, np.ndarray] | None = None  # driver: (items, scores)
    info: dict[str, Any] = field(default_factory=dict)
    default_user: np.ndarray | None = None  # factors of users without any (cold users)


def weight_column(weighting: str, clip: float):  # noqa: ANN201
    """:func:`kuairec.models.matrices.weight_values` on ``watch_ratio_mean`` (float)."""
    from pyspark.sql import functions as F

    w = F.least(F.col("watch_ratio_mean"), F.lit(clip).cast("float"))
    if weighting == "binary":
        return F.lit(1.0).cast("float")
    if weighting == "linear":
        return w
    if weighting == "log":
        return F.log1p(w).cast("float")
    raise ConfigError(f"weighting must be 'binary', 'linear' or 'log', got {weighting!r}")


def kept_pairs(train: DataFrame, threshold: float) -> DataFrame:
    """Training pairs with watch_ratio >= threshold (all when threshold is 0)."""
    from pyspark.sql import functions as F

    return train if threshold <= 0 else train.filter(F.col("watch_ratio_mean") >= threshold)


# ---------------------------------------------------------------------- popularity


def fit_popularity(popularity: np.ndarray, n_items: int, k: int, cand: np.ndarray) -> Fitted:
    state = {"item_scores": popularity.astype(np.float32)}
    return Fitted({}, "spark", TopKKernel("item", n_items, k, cand, state))


# ---------------------------------------------------------------------- item-kNN


def fit_itemknn(
    name: str, train: DataFrame, params: dict[str, Any], n_items: int, k: int, cand: np.ndarray
) -> Fitted:
    import scipy.sparse as sp
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from kuairec.models.registry import check_params

    c = check_params(name, params)
    x = kept_pairs(train, c.threshold).select(
        "user_idx", "item_idx", weight_column(c.weighting, c.clip).alias("w")
    )
    f32 = "float"
    norms = x.groupBy("item_idx").agg(
        F.sqrt(F.sum(F.col("w") * F.col("w")).cast(f32).cast("double")).cast(f32).alias("norm")
    )
    a, b = x.alias("a"), x.alias("b")
    gram = (
        a.join(b, "user_idx")
        .filter(F.col("a.item_idx") != F.col("b.item_idx"))
        .groupBy(F.col("a.item_idx").alias("i"), F.col("b.item_idx").alias("j"))
        .agg(F.sum(F.col("a.w").cast("double") * F.col("b.w")).cast(f32).alias("g"))
    )
    ni, nj = norms.toDF("i", "ni"), norms.toDF("j", "nj")
    denom = F.col("ni") * F.col("nj") + F.lit(c.shrinkage).cast(f32)  # float32 arithmetic
    sim = F.when(denom > 0, (F.col("g") / denom).cast(f32)).otherwise(F.lit(0.0).cast(f32))
    scored = gram.join(ni, "i").join(nj, "j").select("i", "j", sim.alias("s")).filter("s > 0")
    keep = min(c.neighbours, n_items - 1)
    order = Window.partitionBy("i").orderBy(F.col("s").desc(), F.col("j"))
    top = scored.withColumn("_r", F.row_number().over(order)).filter(F.col("_r") <= keep)
    table = top.select("i", "j", "s").toArrow()
    s = sp.csr_matrix(
        (
            table.column("s").to_numpy().astype(np.float32),
            (table.column("i").to_numpy(), table.column("j").to_numpy()),
        ),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    s.sort_indices()
    config = config_to_dict(c)
    kernel = TopKKernel("similarity", n_items, k, cand, {"sim": s}, config)
    return Fitted(config, "spark", kernel, info={"neighbour_entries": int(s.nnz)})


# ---------------------------------------------------------------------- spark_als


def fit_spark_als(
    name: str,
    spark: SparkSession,
    train: DataFrame,
    params: dict[str, Any],
    n_items: int,
    k: int,
    cand: np.ndarray,
) -> Fitted:
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    from kuairec.models.registry import check_params

    c = check_params(name, params)
    rating = F.greatest(weight_column(c.confidence, c.clip), F.lit(MIN_RATING).cast("float"))
    ratings = kept_pairs(train, c.threshold).select(
        F.col("user_idx").alias("user"), F.col("item_idx").alias("item"), rating.alias("rating")
    )
    stats = ratings.agg(
        F.count(F.lit(1)).alias("nnz"),
        F.countDistinct("user").alias("u"),
        F.countDistinct("item").alias("i"),
    ).collect()[0]
    if not stats["nnz"]:
        raise ConfigError(f"spark_als: no training pairs left (threshold={c.threshold})")
    # spark_reg_param's geometric mapping: regularization / sqrt(mean n_u * mean m_i)
    reg_param = c.regularization / float(
        np.sqrt((stats["nnz"] / stats["u"]) * (stats["nnz"] / stats["i"]))
    )
    cores = parallelism(spark)
    blocks = (c.num_user_blocks or cores, c.num_item_blocks or cores)
    als = ALS(
        rank=c.factors, maxIter=c.iterations, regParam=reg_param, implicitPrefs=True,
        alpha=c.alpha, userCol="user", itemCol="item", ratingCol="rating",
        nonnegative=False, numUserBlocks=blocks[0], numItemBlocks=blocks[1],
        checkpointInterval=c.checkpoint_interval or -1,
        intermediateStorageLevel=c.storage_level, finalStorageLevel=c.storage_level,
        seed=c.seed,
    )  # fmt: skip
    model = als.fit(ratings)
    users = model.userFactors.select(
        F.col("id").alias("user_idx"), F.col("features").alias("factors")
    )
    default, max_user_norm = _user_summary(users, c.factors)
    state = _item_state(model.itemFactors, n_items, c.factors, max_user_norm)
    kernel = TopKKernel("factors", n_items, k, cand, state)
    info = {"reg_param": reg_param, "blocks": list(blocks), "kept_pairs": int(stats["nnz"])}
    return Fitted(config_to_dict(c), "spark", kernel, users, info=info, default_user=default)


def _item_state(
    item_factors: DataFrame, n_items: int, rank: int, max_user_norm: float
) -> dict[str, np.ndarray]:
    """Item factors (zero for items without kept pairs) and FactorModel's offsets: cold
    items below any ``|user . item|`` (the Cauchy-Schwarz bound), as ``set_factors``."""
    items = item_factors.toArrow()
    ids = items.column("id").to_numpy()
    item_f = np.zeros((n_items, rank), np.float32)
    item_f[ids] = items.column("features").combine_chunks().flatten().to_numpy().reshape(-1, rank)
    cold_items = np.ones(n_items, bool)
    cold_items[ids] = False
    bound = max_user_norm * (float(np.linalg.norm(item_f, axis=1).max()) if n_items else 0.0)
    offset = np.where(cold_items, -(2.0 * bound + 1.0), 0.0).astype(np.float32)
    return {"item_factors": item_f, "item_offset": offset}


def _user_summary(users: DataFrame, rank: int) -> tuple[np.ndarray, float]:
    """The cold-user factor (the warm users' mean, float32) and the largest user norm."""
    from pyspark.sql import functions as F

    norm2 = F.aggregate("factors", F.lit(0.0).cast("double"), lambda acc, v: acc + v * v)
    row = users.agg(
        *[F.avg(F.col("factors")[d]).alias(f"d{d}") for d in range(rank)],
        F.max(F.sqrt(norm2)).alias("norm"),
    ).collect()[0]
    default = np.array([row[f"d{d}"] or 0.0 for d in range(rank)], dtype=np.float32)
    return default, float(row["norm"] or 0.0)
