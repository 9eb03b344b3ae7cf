"""Weighted ALS for implicit feedback on Spark (``pyspark.ml.recommendation.ALS``).

``spark_als`` learns what ``als`` learns (Hu, Koren & Volinsky 2008), on Spark, so that it
can run on a cluster. It trains on the same per-pair table as ``als``
(:func:`kuairec.models.matrices.weighted_matrix`), written once as Parquet with pyarrow
and read by Spark's own Parquet reader (the rows never pass through pandas or the Spark
driver), and hands its factors to the shared factor-model code
(:class:`~kuairec.models.factors.FactorModel`): scoring, new users, saving and evaluation
are every factor model's, and a saved model loads and serves without Spark.

The two engines define two things differently (docs/spark.md has the derivation):

- confidence: implicit is given ``c = 1 + alpha * f(w)`` per pair; Spark computes
  ``1 + alpha * r`` from the rating ``r`` it is given, so Spark gets ``r = f(w)`` and the
  same ``alpha``: identical confidences. (``r`` is floored at 1e-6: Spark ignores
  ratings <= 0, implicit keeps a zero-weight pair with confidence 1.)
- regularisation: implicit adds ``lambda`` to every user's (item's) normal equations,
  Spark adds ``n_u * regParam`` (ALS-WR: ``n_u`` the row's number of ratings). The exact
  mapping ``regParam = lambda / n_u`` differs per row; spark_als takes ``regularization``
  on implicit's scale and uses ``regParam = regularization / sqrt(mean n_u * mean m_i)``
  (the geometric mean of the mean ratings per user and per item, which makes the two
  total penalties equal when factor norms are even). New users are folded in with
  Spark's own rule, ``n * regParam`` for a history of ``n`` kept pairs, against which the
  item factors were fitted: a known user's own history gives back its training factors.

Sessions: :mod:`kuairec.models.spark_session` (one per process, loopback-only for local
masters, :func:`~kuairec.models.spark_session.stop_session` at the end of a run).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.errors import ConfigError, KuaiRecError, ModelError
from kuairec.models.factors import FactorModel, solve_users
from kuairec.models.matrices import Weighting, weight_values, weighted_matrix, weighted_rows
from kuairec.models.params import Param, param

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import TrainSet
    from kuairec.evaluation.protocols import TestSet

__all__ = ["SparkALSConfig", "SparkALSRecommender", "from_als_params", "spark_reg_param"]

MIN_RATING = 1e-6  # Spark drops ratings <= 0 from the positives; implicit keeps them
STORAGE_LEVELS = ("MEMORY_ONLY", "MEMORY_ONLY_SER", "MEMORY_AND_DISK", "MEMORY_AND_DISK_SER")
# the fields spark_als shares with als, with the same meaning and defaults
SHARED_WITH_ALS = (
    "factors",
    "regularization",
    "iterations",
    "confidence",
    "alpha",
    "clip",
    "threshold",
    "seed",
)
ALS_ONLY = ("use_cg", "num_threads")  # implicit's solver settings: nothing to map


@dataclass(frozen=True)
class SparkALSConfig:
    # the model's fields have als's defaults (ALSConfig): both learn the same thing
    factors: int = param(32, ge=1, doc="latent dimensions (Spark's rank)")
    regularization: float = param(
        0.05, ge=0, doc="L2 penalty on implicit's scale (Spark's regParam is derived)"
    )
    iterations: int = param(15, ge=1, doc="ALS sweeps (Spark's maxIter)")
    confidence: Weighting = "linear"
    alpha: float = param(2.0, ge=0, doc="confidence = 1 + alpha * f(watch_ratio)")
    clip: float = param(5.0, gt=0, doc="watch_ratio is clipped at this value")
    threshold: float = param(1.0, ge=0, doc="pairs with watch_ratio below it are dropped")
    seed: int = param(0, ge=0)
    # where and how Spark runs
    master: str = param("local[*]", doc="local[N], spark://host:7077, yarn, k8s://...")
    num_user_blocks: int = param(0, ge=0, doc="0 = the session's default parallelism")
    num_item_blocks: int = param(0, ge=0, doc="0 = the session's default parallelism")
    checkpoint_interval: int = param(10, ge=0, doc="checkpoint every N sweeps; 0 = never")
    storage_level: str = param("MEMORY_AND_DISK", doc="Spark storage of ALS's blocks")
    data_dir: str | None = param(
        None, doc="folder (path or URI) every executor can read: training Parquet, checkpoints"
    )
    driver_memory: str = param("4g", doc="spark.driver.memory (local mode: all of Spark)")
    executor_memory: str | None = param(None, doc="spark.executor.memory (clusters)")
    native_blas: str = param("auto", doc="'auto' (system libblas.so.3), 'java' or a library")
    spark_conf: dict[str, str] = param({}, doc="more Spark settings, e.g. spark.executor.cores")

    def check(self) -> None:
        if not self.master.strip():
            raise ConfigError("spark_als: parameter 'master' must not be empty")
        if self.storage_level not in STORAGE_LEVELS:
            raise ConfigError(
                f"spark_als: parameter 'storage_level' must be one of "
                f"{', '.join(STORAGE_LEVELS)}, got {self.storage_level!r}"
            )
        for key in ("driver_memory", "executor_memory"):
            value = getattr(self, key)
            if value is not None and not re.fullmatch(r"\d+[kmgt]?", value.lower()):
                raise ConfigError(
                    f"spark_als: parameter {key!r} must be a size like '4g' or '512m', "
                    f"got {value!r}"
                )
        if not self.native_blas.strip():
            raise ConfigError("spark_als: parameter 'native_blas' must not be empty")


def from_als_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The spark_als parameters that learn what ``als`` learns with ``params``.

    ``params`` is an als config dict (``config_to_dict(als_model.config)``, tuned or not,
    or just the tuned subset: spark_als's other defaults are als's). The shared fields
    carry over unchanged (``regularization`` stays on implicit's scale; spark_als turns it
    into Spark's regParam on the training data, :func:`spark_reg_param`); implicit's
    solver settings (``use_cg``, ``num_threads``) have no Spark counterpart.
    """
    unknown = sorted(set(params) - set(SHARED_WITH_ALS) - set(ALS_ONLY))
    if unknown:
        raise ConfigError(f"from_als_params: not als parameters: {', '.join(unknown)}")
    return {k: params[k] for k in SHARED_WITH_ALS if k in params}


def row_counts(x: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Ratings per user and per item of the training matrix (Spark's ``n_u``, ``m_i``)."""
    return np.diff(x.indptr), np.bincount(x.indices, minlength=x.shape[1])


def spark_reg_param(regularization: float, x: sp.csr_matrix, how: str = "geometric") -> float:
    """Spark's regParam for implicit's ``regularization`` on the training matrix ``x``.

    Spark adds ``n * regParam`` to a row with ``n`` ratings, implicit adds
    ``regularization``: the exact mapping is per row. ``how`` picks the global one:
    ``geometric`` (default) divides by ``sqrt(mean n_u * mean m_i)`` over the users and
    items with ratings; ``user_mean``, ``item_mean``, ``user_median`` and ``pooled``
    (``2 nnz / (U + I)``) are the alternatives docs/spark.md compares.
    """
    n_u, m_i = row_counts(x)
    n_u, m_i = n_u[n_u > 0], m_i[m_i > 0]
    if n_u.size == 0:
        raise ModelError("spark_als: no training pairs")
    counts = {
        "geometric": float(np.sqrt(n_u.mean() * m_i.mean())),
        "user_mean": float(n_u.mean()),
        "item_mean": float(m_i.mean()),
        "user_median": float(np.median(n_u)),
        "pooled": float(2 * x.nnz / (n_u.size + m_i.size)),
    }
    if how not in counts:
        raise ConfigError(f"spark_reg_param: how must be one of {', '.join(counts)}")
    return float(regularization) / counts[how]


#: netlib's class when a native BLAS is loaded (else its Java fallback, ``VectorBLAS``)
NATIVE_BLAS = "JNIBLAS"


def java_blas_remark(blas: str, choice: str) -> str:
    """What a fit on netlib's Java BLAS says in its row (docs/spark.md: a native one makes
    a sweep about 2.7x cheaper)."""
    if choice == "java":
        return f"Spark's ALS ran on Java BLAS ({blas}), as native_blas='java' asks"
    from kuairec.models.spark_session import native_blas_library

    lib = native_blas_library(choice)
    why = f"{lib} did not load" if lib else "no system libblas.so.3 was found"
    return (
        f"Spark's ALS ran on Java BLAS ({blas}): {why}; with a native one (Debian: apt-get "
        "install libopenblas0-pthread) its sweeps cost about 2.7x less CPU"
    )


class SparkALSRecommender(FactorModel):
    """Weighted ALS on Spark (pyspark.ml ALS, implicit preferences, exact solves)."""

    name = "spark_als"
    spark_kind = "factorization"  # sparkengine: fed from the cleaned pair table
    cost = "heavy"  # a JVM session of its own: minutes to start and fit at full size
    Config = SparkALSConfig
    requires = ("pyspark",)
    extra = "spark"
    supports_history = True
    tune_in_run = False  # every trial is a Spark fit
    follows = "als"  # the run hands over als's chosen (tuned) parameters, mapped

    @classmethod
    def params_from(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        return from_als_params(params)

    search_space = {  # als's: tuned values mean the same on both
        "factors": Param("int", 16, 128, log=True),
        "regularization": Param("float", 1e-3, 10.0, log=True),
        "alpha": Param("float", 0.5, 40.0, log=True),
        "threshold": Param("choice", choices=(0.0, 1.0, 2.0)),
    }
    test_settings = {
        "factors": 4,
        "regularization": 2.0,
        "iterations": 5,
        "master": "local[1]",
        "num_user_blocks": 1,
        "num_item_blocks": 1,
        "driver_memory": "1g",
        # tiny fits: the JVM's C1 compiler alone warms up in half the CPU time
        "spark_conf": {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"},
    }
    reg_how = "geometric"  # spark_reg_param's global mapping (benchmarks compare others)

    @classmethod
    def unavailable_reason(cls, train: TrainSet) -> str | None:
        return _java_problem()

    # ------------------------------------------------------------------ confidence
    def ratings(self, watch_ratio: np.ndarray) -> np.ndarray:
        """The rating Spark is given per kept pair: ``f(watch_ratio)`` (floored > 0)."""
        c = self.config
        return np.maximum(weight_values(watch_ratio, c.confidence, c.clip), MIN_RATING)

    def confidence(self, watch_ratio: np.ndarray) -> np.ndarray:
        """``1 + alpha * r``: the confidence Spark computes from the rating ``r``."""
        return 1.0 + np.float32(self.config.alpha) * self.ratings(watch_ratio)

    def fold_in_confidence(self, history: sp.csr_matrix) -> sp.csr_matrix:
        x = weighted_rows(history, "linear", np.inf, self.config.threshold)
        x.data = self.confidence(x.data).astype(np.float32)
        return x

    @property
    def fold_in_regularization(self) -> float:
        """Spark's regParam: per kept pair, so a history of n pairs gets ``n * regParam``."""
        return float(self.reg_param_)

    def fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """New users' factors by Spark's own normal equations (ALS-WR: the regularisation
        grows with the history's number of kept pairs), solved exactly."""
        conf = self.fold_in_confidence(history)
        counts = np.diff(conf.indptr)
        out = np.empty((conf.shape[0], self.item_factors_.shape[1]), dtype=np.float32)
        for n in np.unique(counts):  # one shared solve per history length
            rows = np.flatnonzero(counts == n)
            reg = float(n) * self.fold_in_regularization
            out[rows] = solve_users(self.item_factors_, conf[rows], reg, self.default_user_)
        return out

    # ------------------------------------------------------------------ fitting
    def session_settings(self) -> Any:
        from kuairec.models.spark_session import SessionSettings

        c = self.config
        return SessionSettings(
            master=c.master,
            driver_memory=c.driver_memory,
            executor_memory=c.executor_memory,
            native_blas=c.native_blas,
            extra=tuple(sorted(c.spark_conf.items())),
        )

    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None:
        import time

        from kuairec.models.spark_session import (
            blas_implementation,
            get_session,
            is_local_master,
            session_tmp,
        )

        c = self.config
        x = weighted_matrix(train.interactions, "linear", np.inf, c.threshold)
        if x.nnz == 0:
            raise ModelError(f"{self.name}: no training pairs left (threshold={c.threshold})")
        if c.data_dir is None and not is_local_master(c.master):
            raise ConfigError(
                f"{self.name}: master {c.master!r} is a cluster: set data_dir to a folder "
                "(path or URI) every executor and the driver can read (HDFS, NFS...)"
            )
        reg_param = spark_reg_param(c.regularization, x, self.reg_how)
        start = time.perf_counter()
        spark = get_session(self.session_settings())
        session_s = time.perf_counter() - start
        location = c.data_dir or str(self.scratch_dir or session_tmp() / "data")
        start = time.perf_counter()
        data_uri = write_ratings(x, self.ratings(x.data), location)
        write_s = time.perf_counter() - start
        start = time.perf_counter()
        try:
            user_f, item_f, blocks = self._spark_fit(spark, data_uri, location, reg_param, x)
        except KuaiRecError:
            raise
        except Exception as exc:  # the JVM's errors (py4j): one line, the run goes on
            raise ModelError(f"{self.name}: Spark failed: {java_reason(exc)}") from None
        self.reg_param_ = reg_param
        self.set_factors(user_f, item_f, x)
        try:
            blas = blas_implementation(spark)["blas"]
        except Exception:  # a JVM without netlib's classes: the finished fit stands
            blas = "unknown"
        if blas not in (NATIVE_BLAS, "unknown"):
            self.fit_remark_ = java_blas_remark(blas, c.native_blas)
        self.fit_info_ = {
            "reg_param": reg_param,
            "blocks": blocks,
            "blas": blas,
            "session_seconds": round(session_s, 3),
            "write_seconds": round(write_s, 3),
            "spark_seconds": round(time.perf_counter() - start, 3),
            "data": data_uri,
        }

    def _spark_fit(
        self, spark: Any, data_uri: str, location: str, reg_param: float, x: sp.csr_matrix
    ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        from pyspark.ml.recommendation import ALS

        c = self.config
        sc = spark.sparkContext
        parallelism = max(1, int(sc.defaultParallelism))
        blocks = (c.num_user_blocks or parallelism, c.num_item_blocks or parallelism)
        checkpoints = _join(location, f"checkpoints-{uuid.uuid4().hex[:12]}")
        sc.setCheckpointDir(_spark_uri(checkpoints))
        try:
            ratings = spark.read.parquet(data_uri)
            als = ALS(
                rank=c.factors,
                maxIter=c.iterations,
                regParam=reg_param,
                implicitPrefs=True,
                alpha=c.alpha,
                userCol="user",
                itemCol="item",
                ratingCol="rating",
                nonnegative=False,
                numUserBlocks=blocks[0],
                numItemBlocks=blocks[1],
                checkpointInterval=c.checkpoint_interval or -1,
                intermediateStorageLevel=c.storage_level,
                finalStorageLevel=c.storage_level,
                seed=c.seed,
            )
            model = als.fit(ratings)
            user_f = _factors(model.userFactors, x.shape[0], c.factors)
            item_f = _factors(model.itemFactors, x.shape[1], c.factors)
        finally:
            unpersist_all(sc)
            _remove(checkpoints)
        return user_f, item_f, blocks

    # ------------------------------------------------------------------ state
    def _get_state(self) -> dict[str, np.ndarray]:
        return {**super()._get_state(), "reg_param": np.array([self.reg_param_], np.float64)}

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        super()._set_state(state)
        self.reg_param_ = float(np.asarray(state["reg_param"]).ravel()[0])


# ---------------------------------------------------------------------- the data
def write_ratings(x: sp.csr_matrix, rating: np.ndarray, location: str) -> str:
    """Write the (user, item, rating) rows of ``x`` as a Parquet folder under ``location``
    (once: the folder is named by a digest of the rows) and return its URI for Spark."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rating = np.asarray(rating, dtype=np.float32)
    digest = hashlib.blake2b(digest_size=10)
    for arr in (np.asarray(x.shape, np.int64), x.indptr, x.indices, rating):
        digest.update(np.ascontiguousarray(arr).tobytes())
    folder = _join(location, f"ratings-{digest.hexdigest()}")
    fs, path = _filesystem(folder)
    done = f"{path}/_SUCCESS"  # Spark skips files starting with "_"
    if _exists(fs, done):
        return _spark_uri(folder)
    fs.create_dir(path, recursive=True)
    users = np.repeat(np.arange(x.shape[0], dtype=np.int32), np.diff(x.indptr))
    items = x.indices.astype(np.int32, copy=False)
    rows_per_file = 2_000_000  # several files: Spark reads them in parallel
    n_files = max(1, -(-x.nnz // rows_per_file))
    bounds = np.linspace(0, x.nnz, n_files + 1).astype(np.int64)
    for part, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        table = pa.table({"user": users[lo:hi], "item": items[lo:hi], "rating": rating[lo:hi]})
        pq.write_table(table, f"{path}/part-{part:05d}.parquet", filesystem=fs)
    with fs.open_output_stream(done) as out:
        out.write(b"")
    return _spark_uri(folder)


def _is_uri(location: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", location) is not None


def _join(location: str, name: str) -> str:
    return f"{location.rstrip('/')}/{name}" if _is_uri(location) else str(Path(location) / name)


def _spark_uri(location: str) -> str:
    """A local path as file:// (a cluster's default file system may be HDFS), URIs as is."""
    return location if _is_uri(location) else Path(location).resolve().as_uri()


def _filesystem(location: str) -> tuple[Any, str]:
    from pyarrow import fs

    if _is_uri(location):
        return fs.FileSystem.from_uri(location)
    return fs.LocalFileSystem(), str(Path(location).resolve())


def _exists(filesystem: Any, path: str) -> bool:
    from pyarrow import fs

    return filesystem.get_file_info(path).type != fs.FileType.NotFound


def _remove(location: str) -> None:
    if not _is_uri(location):
        shutil.rmtree(location, ignore_errors=True)
        return
    try:
        filesystem, path = _filesystem(location)
        filesystem.delete_dir(path)
    except Exception:  # a checkpoint folder left on shared storage is harmless
        pass


# ---------------------------------------------------------------------- Spark helpers
def _factors(frame: Any, n: int, rank: int) -> np.ndarray:
    """A Spark factor DataFrame (id, features) as a dense (n, rank) array; ids absent
    from Spark's data (rows without ratings) stay zero."""
    out = np.zeros((n, rank), dtype=np.float32)
    if hasattr(frame, "toArrow"):  # pyspark >= 4: columnar, no Python rows
        table = frame.select("id", "features").toArrow()
        ids = table.column("id").to_numpy()
        feats = table.column("features").combine_chunks().flatten().to_numpy()
        values = feats.reshape(ids.size, rank)
    else:  # pragma: no cover - pyspark 3.5
        rows = frame.select("id", "features").collect()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        values = np.array([r[1] for r in rows], dtype=np.float32).reshape(ids.size, rank)
    out[ids] = values
    return out


def unpersist_all(sc: Any) -> None:
    """Drop every cached RDD (ALS leaves its final factors cached): nothing accumulates
    across fits in the shared session."""
    try:
        for rdd in list(sc._jsc.getPersistentRDDs().values()):
            rdd.unpersist(False)
    except Exception:  # the JVM is gone: nothing is cached any more
        pass


def java_reason(exc: BaseException) -> str:
    java = getattr(exc, "java_exception", None)
    text = ""
    if java is not None:
        try:
            text = str(java.toString())
        except Exception:
            text = ""
    text = text or str(exc) or type(exc).__name__
    return " ".join(text.split())[:300]


@lru_cache(maxsize=1)
def _java_problem() -> str | None:
    from kuairec.models.spark_session import java_problem

    return java_problem()
