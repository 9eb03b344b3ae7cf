"""The main job on Apache Spark: the same stages and results as the local engine.

``run_spark(SparkRunConfig(...)) -> SparkRunResult`` reads, checks and cleans the data,
splits it, trains and evaluates every model as Spark DataFrame work where a stage grows
with the log; see docs/scale.md. pyspark is imported only inside the functions that use
it, so importing this package is cheap.
"""

from kuairec.sparkengine.config import (
    SparkModelResult,
    SparkRunConfig,
    SparkRunResult,
    SparkSettings,
)

__all__ = ["SparkModelResult", "SparkRunConfig", "SparkRunResult", "SparkSettings", "run_spark"]


def __getattr__(name: str):  # noqa: ANN202 - the entry point, imported on first use
    if name == "run_spark":
        from kuairec.sparkengine.run import run_spark

        return run_spark
    raise AttributeError(name)
