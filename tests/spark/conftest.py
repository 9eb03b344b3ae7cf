"""Spark tests: skipped without pyspark; the ones that start Spark also without Java.

The models share one Spark session per process (:mod:`kuairec.models.spark_session`): the
suite starts it once and stops it, JVM included, at the end.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pyspark", reason="needs the spark extra (pip install 'kuairec[spark]')")


@pytest.fixture(scope="session")
def java() -> None:
    """Skip a test that starts Spark where no usable Java is installed."""
    from kuairec.models.spark_session import java_problem

    problem = java_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="session", autouse=True)
def _stop_spark_at_the_end():  # noqa: ANN202
    yield
    from kuairec.models.spark_session import stop_session

    stop_session()
