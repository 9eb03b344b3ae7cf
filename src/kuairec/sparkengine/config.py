"""What the Spark engine is asked to do, and what it gives back (typed, JSON-ready).

:class:`SparkRunConfig` holds a run's settings (the local engine's ``RunConfig`` fields
that apply, plus where and how Spark runs); :class:`SparkRunResult` holds, per model,
what the local engine has for one: an :class:`~kuairec.evaluation.evaluate.EvalResult`,
the top-K lists (as arrays and as the Parquet folder Spark wrote), the configuration it
ran with and its timings; plus the protocol, the skipped models with their reasons, the
cleaning counts and the per-stage timings.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np

from kuairec.errors import ConfigError
from kuairec.evaluation.evaluate import DEFAULT_KS, DEFAULT_LABELS, EvalResult
from kuairec.models.params import config_from_dict, param


def spark_native_models() -> list[str]:
    """The registered models that declare how they train as Spark DataFrame work
    (``spark_kind``), in the registry's order: the engine's default models. Every other
    model runs on the driver on the collected training matrix when the catalogue is
    small enough."""
    from kuairec.models.registry import default_models, get_model_class

    return [n for n in default_models() if get_model_class(n).spark_kind is not None]


@dataclass(frozen=True)
class SparkSettings:
    """Where and how Spark runs (start-up settings restart the shared session when they
    change; the SQL settings are applied to it at the start of every run)."""

    owner_name: ClassVar[str] = "spark"
    master: str = param("local[*]", doc="local[N], spark://host:7077, yarn, k8s://...")
    driver_memory: str = param("4g", doc="spark.driver.memory (local mode: all of Spark)")
    executor_memory: str | None = param(None, doc="spark.executor.memory (clusters)")
    shuffle_partitions: int | None = param(None, ge=1, doc="None: Spark's (AQE coalesces)")
    adaptive: bool = True  # spark.sql.adaptive.enabled
    broadcast_threshold: int | None = param(None, ge=-1, doc="bytes; -1 = no broadcast joins")
    native_blas: str = param("auto", doc="'auto' (system libblas.so.3), 'java' or a library")
    batch_rows: int = param(2048, ge=1, doc="users per Arrow batch in the Python kernels")
    id_map_rows: int = param(2_000_000, ge=1, doc="ids per sorted bucket of an id map")
    conf: dict[str, str] = param({}, doc="more Spark settings, e.g. spark.executor.cores")
    ship_package: bool | None = param(None, doc="send kuairec to executors; None: not local[N]")

    @property
    def ships_package(self) -> bool:
        """Whether executors get this kuairec (any master but plain ``local[N]``, where
        the driver's own interpreter runs the kernels)."""
        if self.ship_package is not None:
            return self.ship_package
        return re.match(r"local(\[[^]]*\])?$", self.master) is None


@dataclass(frozen=True)
class SparkRunConfig:
    """One run of the main job on Spark (see docs/scale.md for the contract)."""

    owner_name: ClassVar[str] = "spark run"
    data: str | None = None  # folder (path or URI) with the seven files (CSV or Parquet)
    protocol: Literal["kuairec", "temporal"] = "kuairec"
    interactions: str | None = None  # temporal: user_id,video_id,timestamp,watch_ratio
    test_fraction: float = param(0.2, gt=0, lt=1, doc="temporal: last rows held out")
    label: str = "wr>2"
    labels: list[str] = param(list(DEFAULT_LABELS))
    ks: list[int] = param(list(DEFAULT_KS), doc="cut-offs K")
    seed: int = param(0, ge=0)
    n_bootstrap: int = param(1000, ge=0, doc="bootstrap resamples (0 = no intervals)")
    models: list[str] = field(default_factory=spark_native_models)
    model_params: dict[str, dict[str, Any]] = param({})
    validation: Literal["temporal", "random"] = "temporal"  # driver-side early stopping
    work_dir: str | None = None  # tables, recommendations, checkpoints; None = a temp folder
    side_files: bool = True  # read, check and write the five side files too
    max_local_items: int = param(20_000, ge=0, doc="driver-side models: at most this many")
    max_local_pairs: int = param(50_000_000, ge=0, doc="driver-side models: training pairs")
    spark: SparkSettings = field(default_factory=SparkSettings)

    def check(self) -> None:
        if self.protocol == "kuairec" and not self.data:
            raise ConfigError("spark run: protocol 'kuairec' needs data (the data folder)")
        if self.protocol == "temporal" and not self.interactions:
            raise ConfigError("spark run: protocol 'temporal' needs interactions (a CSV file)")
        if not self.ks or any(isinstance(k, bool) or k <= 0 for k in self.ks):
            raise ConfigError(f"spark run: setting 'ks' must be integers >= 1, got {self.ks}")
        if not self.models:
            raise ConfigError("spark run: setting 'models' must name at least one model")
        unused = sorted(set(self.model_params) - set(self.models))
        if unused:
            raise ConfigError(f"spark run: parameters given for models that are not run: {unused}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SparkRunConfig:
        """Checked config from plain values (``spark`` may be a dict of SparkSettings)."""
        values = dict(values)
        spark = values.pop("spark", None)
        if spark is None:
            spark = SparkSettings()
        elif not isinstance(spark, SparkSettings):
            if not isinstance(spark, dict):
                raise ConfigError(f"spark run: setting 'spark' must be a table, got {spark!r}")
            spark = config_from_dict(SparkSettings, spark)
        return replace(config_from_dict(cls, values), spark=spark)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(eq=False)
class SparkModelResult:
    """One model's run on the Spark engine: what the local engine has for a model."""

    name: str
    result: EvalResult
    top_items: np.ndarray  # (n_test_users, w) item_idx, -1 padded; rows = result.users
    top_scores: np.ndarray  # float32, -inf padded
    recommendations: str  # Parquet folder written by Spark: user_id, rank, video_id, score
    config: dict[str, Any]  # the model's parameters as run
    where: Literal["spark", "driver"]  # Spark DataFrame work, or the collected matrix
    seconds: dict[str, float] = field(default_factory=dict)  # fit, recommend, evaluate
    fit_info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``metrics.json``'s model entry: the EvalResult's JSON plus how it ran."""
        return {
            **self.result.to_json(),
            "config": self.config,
            "engine": {"name": "spark", "where": self.where, **self.fit_info},
            "recommendations": self.recommendations,
            "stage_seconds": self.seconds,
        }


@dataclass(eq=False)
class SparkRunResult:
    """Everything one Spark run produced (the lead's RunResult is built from it)."""

    protocol: dict[str, Any]
    models: dict[str, SparkModelResult]
    skipped: dict[str, str]
    stage_seconds: dict[str, float]
    cleaning: dict[str, Any]  # rows read, duplicates dropped, ids dropped, notes
    tables: dict[str, str]  # Parquet folders written: pairs, users, items, splits...
    test_users: np.ndarray  # user_idx of the test users (rows of every result)
    test_users_raw: np.ndarray  # their raw user_id
    n_users: int
    n_items: int
    spark: dict[str, Any]  # master, version, executors, settings as applied
    notes: list[str] = field(default_factory=list)
