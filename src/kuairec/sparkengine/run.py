"""The main job on Spark: :func:`run_spark` (the entry point the pipeline calls).

Stages, each timed: start the session; read, check and clean the data (or the one-log
CSV of the temporal protocol); split; the per-run tables (test users' training lists,
their test pairs grouped per user); then per model: fit, top-K (written as Parquet, in
index space and with raw ids), evaluate. Every table that grows with the log is Spark
DataFrame work written to ``work_dir``; the driver holds per-item, per-test-user and
per-label arrays only (and, for the driver-side models, the collected training matrix
when it is small enough).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.errors import KuaiRecError, ModelError
from kuairec.sparkengine import evaluate as E
from kuairec.sparkengine import models as M
from kuairec.sparkengine.config import SparkModelResult, SparkRunConfig, SparkRunResult
from kuairec.sparkengine.driver import collect_train, driver_reason, fit_on_driver, not_on_spark
from kuairec.sparkengine.session import (
    apply_run_settings,
    describe,
    join,
    parallelism,
    ship_package,
    spark_uri,
    start,
    written,
)
from kuairec.sparkengine.topk import top_k

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession


class SparkEngineError(KuaiRecError):
    """Spark failed in a stage every model needs (the data, the split): one line."""

    exit_code = 3


@dataclass(eq=False)
class Prepared:
    """What every model of the run shares."""

    split: Any  # protocols.Split with train/test read back from Parquet
    users_map: DataFrame
    items_map: DataFrame
    user_table: DataFrame  # test users: user_idx, excl, excl_wr
    ctx: E.SparkEvalContext
    users_raw: np.ndarray
    video_duration: np.ndarray | None
    n_train_pairs: int
    cleaning: dict[str, Any]
    tables: dict[str, str]
    protocol: dict[str, Any]
    train_set: Any = None  # the collected TrainSet, for driver-side models (built once)


class _Stages:
    def __init__(self, display: Any) -> None:
        self.display = display
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        with self.display.stage(name):
            yield
        self.seconds[name] = round(time.perf_counter() - t0, 3)


def run_spark(cfg: SparkRunConfig, progress: Any = False) -> SparkRunResult:
    """Run the main job on Spark; see :class:`SparkRunConfig` and docs/scale.md."""
    from kuairec.display.progress import using
    from kuairec.models.registry import check_params

    cfg = SparkRunConfig.from_dict({**cfg.to_dict(), "spark": cfg.spark})  # checked
    for name in cfg.models:  # unknown names and bad parameters fail before any work
        check_params(name, cfg.model_params.get(name, {}))
    work = cfg.work_dir or tempfile.mkdtemp(prefix="kuairec-spark-run-")
    with using(progress) as display:
        stages = _Stages(display)
        with stages("spark session"):
            spark = start(cfg.spark)
            apply_run_settings(spark, cfg.spark, join(work, "checkpoints"))
            if cfg.spark.ships_package:
                ship_package(spark)
        try:
            prep = _prepare(spark, cfg, work, stages)
        except _spark_errors() as exc:  # Spark's own errors (py4j, analysis): one line
            raise SparkEngineError(
                f"Spark failed while preparing the data: {_reason(exc)}"
            ) from None
        models: dict[str, SparkModelResult] = {}
        skipped: dict[str, str] = {}
        for name in cfg.models:
            reason = _unavailable(name, prep, cfg)
            if reason:
                skipped[name] = reason
                continue
            try:
                models[name] = _run_model(spark, name, prep, cfg, work, stages)
            except KuaiRecError as exc:
                skipped[name] = f"failed: {exc}"
            except _spark_errors() as exc:  # a failure inside Spark: the run goes on
                skipped[name] = f"failed: Spark: {_reason(exc)}"
        if not models:
            reasons = "; ".join(f"{n}: {r}" for n, r in skipped.items())
            raise ModelError(f"no model could be trained and evaluated on Spark ({reasons})")
        return SparkRunResult(
            protocol=prep.protocol, models=models, skipped=skipped,
            stage_seconds=dict(stages.seconds), cleaning=prep.cleaning, tables=prep.tables,
            test_users=prep.ctx.users, test_users_raw=prep.users_raw,
            n_users=prep.split.n_users, n_items=prep.split.n_items,
            spark=describe(spark, cfg.spark), notes=list(prep.ctx.notes),
        )  # fmt: skip


def _partitions(spark: SparkSession, cfg: SparkRunConfig) -> int:
    if cfg.spark.shuffle_partitions:
        return cfg.spark.shuffle_partitions
    return max(2, parallelism(spark))


def _prepare(spark: SparkSession, cfg: SparkRunConfig, work: str, stages: _Stages) -> Prepared:

    tables = join(work, "tables")
    parts = _partitions(spark, cfg)
    with stages("read, check and clean"):
        split, maps, video_duration, cleaning, description = _load(spark, cfg, tables, parts)
    with stages("split"):
        for name in ("train", "test"):
            table = getattr(split, name).repartition(parts, "user_idx")
            setattr(split, name, written(table, join(tables, "split", name)))
        split.users = split.test.select("user_idx").distinct()
        if cfg.protocol == "kuairec":
            split.candidates = split.test.select("item_idx").distinct()
    with stages("per-run tables"):
        arrays = _driver_arrays(split, maps)
        user_table = _user_table(spark, split, join(tables, "user_lists"), parts)
        ctx = E.prepare(
            split.train, split.test, arrays["users"], arrays["activity"], arrays["candidates"],
            arrays["item_popularity"], video_duration, ks=tuple(cfg.ks), labels=tuple(cfg.labels),
            default_label=cfg.label,
        )  # fmt: skip
        rel_uri = spark_uri(join(tables, "test_lists"))
        ctx.rel_lists.write.mode("overwrite").parquet(rel_uri)
        ctx.rel_lists = spark.read.parquet(rel_uri)
    protocol = {
        **description,
        "engine": "spark",
        "n_test_users": int(arrays["users"].size),
        "n_candidates": int(arrays["candidates"].size),
        "default_label": cfg.label,
        "labels": list(ctx.labels),
        "ks": list(cfg.ks),
        "n_bootstrap": cfg.n_bootstrap,
        "seed": cfg.seed,
        "validation_split": cfg.validation,
    }
    return Prepared(
        split, maps[0], maps[1], user_table, ctx, arrays["users_raw"], video_duration,
        arrays["n_train_pairs"], cleaning, {"tables": tables}, protocol,
    )  # fmt: skip


def _load(spark: SparkSession, cfg: SparkRunConfig, tables: str, parts: int) -> tuple:
    from kuairec.sparkengine import protocols as P

    if cfg.protocol == "temporal":
        from kuairec.sparkengine.userlog import read_user_log

        log, n_rows, n_users, n_items = read_user_log(
            spark, cfg.interactions, tables, cfg.spark.id_map_rows
        )
        split = P.temporal_split(log, n_users, n_items, cfg.test_fraction, cfg.seed)
        maps = (spark.read.parquet(spark_uri(join(tables, "users"))),
                spark.read.parquet(spark_uri(join(tables, "items"))))  # fmt: skip
        description = {
            "name": "temporal",
            "train": "each user's earlier rows",
            "test": f"each user's last {cfg.test_fraction:.0%} of rows",
            "data": cfg.interactions,
        }
        return split, maps, None, {"rows_read": {"interactions": n_rows}}, description
    from kuairec.sparkengine.clean import clean_matrices

    cleaned = clean_matrices(spark, cfg.data, tables, cfg.spark.id_map_rows, parts)
    split = P.kuairec_split(spark.read.parquet(cleaned.pairs), cleaned.n_users, cleaned.n_items)
    items = spark.read.parquet(cleaned.items)
    duration = np.zeros(cleaned.n_items)
    table = items.select("item_idx", "video_duration").toArrow()
    duration[table.column("item_idx").to_numpy()] = table.column("video_duration").to_numpy()
    description = {
        "name": "kuairec-small",
        "train": "big_matrix",
        "test": "small_matrix (fully observed)",
        "data": cfg.data,
        "synthetic": cleaned.sources.get("truth") is not None,
    }
    maps = (spark.read.parquet(cleaned.users), items)
    cleaning = cleaning_with_tables(cleaned)
    if cfg.side_files:
        from kuairec.sparkengine.side import clean_side_files

        side_maps = {"users": maps[0], "items": items.select("video_id", "item_idx")}
        written, side = clean_side_files(spark, cleaned.sources, side_maps, tables)
        cleaning["rows_read"].update(side.pop("rows_read"))
        cleaning["notes"] += side.pop("notes")
        cleaning.update(side, side_tables=written)
    return split, maps, duration, cleaning, description


def cleaning_with_tables(cleaned: Any) -> dict[str, Any]:
    return {**cleaned.report, "n_users": cleaned.n_users, "n_items": cleaned.n_items}


def _driver_arrays(split: Any, maps: tuple) -> dict[str, Any]:
    """Per test user and per item arrays (O(users + items)) for the evaluation."""
    from pyspark.sql import functions as F

    train = split.train
    per_item = train.groupBy("item_idx").agg(F.count(F.lit(1)).alias("n")).toArrow()
    popularity = np.zeros(split.n_items, np.int64)
    popularity[per_item.column("item_idx").to_numpy()] = per_item.column("n").to_numpy()
    per_user = (
        split.users.join(
            train.groupBy("user_idx").agg(F.count(F.lit(1)).alias("n")), "user_idx", "left"
        )
        .join(maps[0], "user_idx")
        .orderBy("user_idx")
        .toArrow()
    )
    cand = np.sort(split.candidates.toArrow().column("item_idx").to_numpy().astype(np.int64))
    activity = per_user.column("n").to_numpy(zero_copy_only=False)
    return {
        "users": per_user.column("user_idx").to_numpy().astype(np.int64),
        "users_raw": per_user.column("user_id").to_numpy(),
        "activity": np.nan_to_num(np.asarray(activity, dtype=np.float64)).astype(np.int64),
        "candidates": cand,
        "item_popularity": popularity,
        "n_train_pairs": int(popularity.sum()),
    }


def _user_table(spark: SparkSession, split: Any, location: str, parts: int) -> DataFrame:
    """Each test user's training items (sorted) and their watch ratios; written once."""
    from pyspark.sql import functions as F

    entries = F.sort_array(F.collect_list(F.struct("item_idx", "watch_ratio_mean")))
    lists = (
        split.train.join(split.users, "user_idx", "left_semi")
        .groupBy("user_idx")
        .agg(entries.alias("_e"))
    )
    table = split.users.join(lists, "user_idx", "left").select(
        "user_idx",
        F.col("_e.item_idx").alias("excl"),
        F.col("_e.watch_ratio_mean").alias("excl_wr"),
    )
    return written(table.repartition(parts, "user_idx"), location)


def _unavailable(name: str, prep: Prepared, cfg: SparkRunConfig) -> str | None:
    from kuairec.models.registry import get_model_class

    if get_model_class(name).spark_kind is not None:  # an unknown name: a ConfigError
        return None
    return not_on_spark(name) or driver_reason(
        name, prep.split.n_items, prep.n_train_pairs, cfg.max_local_items, cfg.max_local_pairs
    )


def _run_model(
    spark: SparkSession, name: str, prep: Prepared, cfg: SparkRunConfig, work: str, stages: _Stages
) -> SparkModelResult:
    params = dict(cfg.model_params.get(name, {}))
    k, cand = max(cfg.ks), prep.ctx.candidates
    n_items = prep.split.n_items
    t: dict[str, float] = {}
    with stages(f"{name}: fit"):
        t0 = time.perf_counter()
        fitted = _fit(spark, name, params, prep, cfg, k, cand, n_items)
        t["fit"] = time.perf_counter() - t0
    with stages(f"{name}: recommend"):
        t0 = time.perf_counter()
        top = _write_top(spark, name, fitted, prep, work)
        recs = _write_recommendations(name, top, prep, work)
        t["recommend"] = time.perf_counter() - t0
    with stages(f"{name}: evaluate"):
        t0 = time.perf_counter()
        result, items, scores = E.evaluate_lists(prep.ctx, top, cfg.n_bootstrap, cfg.seed)
        t["evaluate"] = time.perf_counter() - t0
    return SparkModelResult(
        name=name, result=result, top_items=items, top_scores=scores, recommendations=recs,
        config=fitted.config, where=fitted.where, fit_info=fitted.info,
        seconds={key: round(v, 3) for key, v in t.items()},
    )  # fmt: skip


def _fit(spark, name, params, prep, cfg, k, cand, n_items) -> M.Fitted:  # noqa: ANN001
    from kuairec.models.registry import get_model_class

    kind = get_model_class(name).spark_kind  # how the model declares it trains on Spark
    if kind == "counts":
        return M.fit_popularity(prep.ctx.popularity, n_items, k, cand)
    if kind == "cooccurrence":
        return M.fit_itemknn(name, prep.split.train, params, n_items, k, cand)
    if kind == "factorization":
        return M.fit_spark_als(name, spark, prep.split.train, params, n_items, k, cand)
    if prep.train_set is None:
        prep.train_set = collect_train(
            prep.split.train, prep.users_map, prep.items_map, prep.video_duration
        )
    return fit_on_driver(
        name, params, prep.train_set, prep.ctx.users, k, cand, cfg.validation, cfg.seed
    )


def _write_top(spark: SparkSession, name: str, fitted: M.Fitted, prep: Prepared, work: str):  # noqa: ANN202
    """The model's top-K lists (user_idx, items, scores) written as Parquet, read back."""
    from pyspark.sql import functions as F

    uri = spark_uri(join(work, "tables", "top", name))
    if fitted.kernel is not None:
        table = prep.user_table
        if fitted.user_columns is not None:
            default = F.array(*[F.lit(float(v)).cast("float") for v in fitted.default_user])
            table = table.join(fitted.user_columns, "user_idx", "left").withColumn(
                "factors", F.coalesce(F.col("factors"), default)
            )
        top_k(table, fitted.kernel).write.mode("overwrite").parquet(uri)
        if fitted.kernel.kind == "factors":  # ALS keeps its factors cached: drop them now
            from kuairec.models.spark_als import unpersist_all

            with contextlib.suppress(Exception):  # Spark Connect: the server's business
                unpersist_all(spark.sparkContext)
    else:
        items, scores = fitted.lists
        spark.createDataFrame(_lists_table(prep.ctx.users, items, scores)).write.mode(
            "overwrite"
        ).parquet(uri)
    return spark.read.parquet(uri)


def _lists_table(users: np.ndarray, items: np.ndarray, scores: np.ndarray):  # noqa: ANN202
    import pyarrow as pa

    n, width = items.shape
    offsets = np.arange(0, n * width + 1, width, dtype=np.int32)
    return pa.table(
        {
            "user_idx": pa.array(users.astype(np.int32)),
            "items": pa.ListArray.from_arrays(offsets, pa.array(items.ravel().astype(np.int32))),
            "scores": pa.ListArray.from_arrays(
                offsets, pa.array(scores.ravel().astype(np.float32))
            ),
        }
    )


def _write_recommendations(name: str, top: DataFrame, prep: Prepared, work: str) -> str:
    """``user_id, rank, video_id, score`` in raw ids, padding dropped (Parquet)."""
    from pyspark.sql import functions as F

    exploded = top.select(
        "user_idx", F.posexplode(F.arrays_zip("items", "scores")).alias("pos", "e")
    ).filter(F.col("e.items") >= 0)
    recs = (
        exploded.join(prep.users_map, "user_idx")
        .join(
            prep.items_map.select("video_id", F.col("item_idx").alias("e_item")),
            F.col("e.items") == F.col("e_item"),
        )  # fmt: skip
        .select(
            "user_id",
            (F.col("pos") + 1).cast("int").alias("rank"),
            "video_id",
            F.col("e.scores").alias("score"),
        )
    )
    uri = spark_uri(join(work, "recommendations", name))
    recs.write.mode("overwrite").parquet(uri)
    return uri


def _spark_errors() -> tuple[type[BaseException], ...]:
    """The exceptions Spark raises (the JVM's through py4j, pyspark's own)."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return (Py4JError, PySparkException)


def _reason(exc: BaseException) -> str:
    from kuairec.models.spark_als import java_reason

    return java_reason(exc)
