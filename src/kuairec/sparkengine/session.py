"""The engine's Spark session: the process's shared one, with the run's SQL settings.

Start-up settings (master, memory, BLAS, extra ``conf``) go through
:func:`kuairec.models.spark_session.get_session`, which keeps one session per process and
binds local masters to loopback; the SQL settings that may differ between runs (shuffle
partitions, adaptive execution, broadcast joins, Arrow batch size) are set on it per run,
so tests and tuning trials share one JVM. A checkpoint directory is always set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kuairec.sparkengine.config import SparkSettings

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession


def is_uri(location: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", location) is not None


def join(location: str, *names: str) -> str:
    """``location/name/...`` for a path or a URI."""
    if is_uri(location):
        return "/".join([location.rstrip("/"), *names])
    return str(Path(location).joinpath(*names))


def spark_uri(location: str) -> str:
    """A local path as ``file://`` (a cluster's default file system may be HDFS)."""
    return location if is_uri(location) else Path(location).resolve().as_uri()


def written(df: DataFrame, location: str) -> DataFrame:
    """``df`` written as Parquet at ``location`` (replacing what was there) and read
    back: what comes after reads its columns instead of computing ``df`` again."""
    uri = spark_uri(location)
    df.write.mode("overwrite").parquet(uri)
    return df.sparkSession.read.parquet(uri)


def start(settings: SparkSettings) -> SparkSession:
    """The shared session for ``settings`` (started now if needed)."""
    from kuairec.models.spark_session import SessionSettings, get_session

    return get_session(
        SessionSettings(
            master=settings.master,
            driver_memory=settings.driver_memory,
            executor_memory=settings.executor_memory,
            native_blas=settings.native_blas,
            extra=tuple(sorted(settings.conf.items())),
        )
    )


def apply_run_settings(spark: SparkSession, settings: SparkSettings, checkpoints: str) -> None:
    """The run's SQL settings and checkpoint directory, on the running session."""
    sql = {
        "spark.sql.adaptive.enabled": str(settings.adaptive).lower(),
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(settings.batch_rows),
        "spark.sql.session.timeZone": "UTC",
    }
    if settings.shuffle_partitions is not None:
        sql["spark.sql.shuffle.partitions"] = str(settings.shuffle_partitions)
    if settings.broadcast_threshold is not None:
        sql["spark.sql.autoBroadcastJoinThreshold"] = str(settings.broadcast_threshold)
    for key, value in sql.items():
        spark.conf.set(key, value)
    set_checkpoint_dir(spark, checkpoints)


def set_checkpoint_dir(spark: SparkSession, location: str) -> None:
    """Checkpoints (ALS's long lineage, DataFrame.checkpoint) go under ``location``."""
    uri = spark_uri(location)
    context = getattr(spark, "sparkContext", None)
    try:
        context.setCheckpointDir(uri)  # classic sessions
    except Exception:  # Spark Connect: the server's setting, where it may be changed
        spark.conf.set("spark.checkpoint.dir", uri)


def parallelism(spark: SparkSession) -> int:
    """The cluster's default parallelism (Spark Connect: the shuffle partitions)."""
    try:
        return max(1, int(spark.sparkContext.defaultParallelism))
    except Exception:  # Spark Connect has no SparkContext
        return max(1, int(spark.conf.get("spark.sql.shuffle.partitions")))


def ship_package(spark: SparkSession) -> str:
    """Send this kuairec package to the executors (a zip on their Python path, ahead of
    any installed copy), so that the kernels run the driver's code: executors need
    numpy, scipy and pyarrow, not kuairec. The zip is named by a digest of the sources,
    so a session registers each version once. Returns the zip's path."""
    import hashlib
    import tempfile
    import zipfile

    root = Path(__file__).resolve().parents[1]  # the kuairec package folder
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    digest = hashlib.blake2b(digest_size=8)
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    target = Path(tempfile.gettempdir()) / "kuairec-ship" / f"kuairec-{digest.hexdigest()}.zip"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in files:
                zf.write(path, Path("kuairec") / path.relative_to(root))
        tmp.replace(target)
    try:
        spark.sparkContext.addPyFile(str(target))
    except AttributeError:  # Spark Connect: an artifact of the session
        spark.addArtifacts(str(target), pyfile=True)
    return str(target)


def describe(spark: SparkSession, settings: SparkSettings) -> dict[str, Any]:
    """What ran: master, Spark's version, executors and the SQL settings in force."""
    out: dict[str, Any] = {"master": settings.master, "version": spark.version}
    try:
        sc = spark.sparkContext
        out["default_parallelism"] = int(sc.defaultParallelism)
        # the status lists the driver's block manager too, except in local mode where
        # the driver is the only executor (local-cluster has separate executors)
        driver = 0 if re.match(r"local(\[|$)", sc.master) else 1
        out["executors"] = int(sc._jsc.sc().getExecutorMemoryStatus().size()) - driver
    except Exception:  # Spark Connect has no SparkContext
        pass
    for key in (
        "spark.sql.shuffle.partitions",
        "spark.sql.adaptive.enabled",
        "spark.sql.autoBroadcastJoinThreshold",
    ):
        out[key] = spark.conf.get(key)
    return out
