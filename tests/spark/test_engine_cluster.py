"""The whole Spark engine with separate executor processes: ``local-cluster[2,1,1024]``
(two executor JVMs, real shuffles between processes) and the standalone master and two
workers on 127.0.0.1 (the ``cluster`` fixture). Each run is a subprocess (its own
SparkContext); its lists and metrics must equal the local engine's, both executors
must have worked, and Spark's start-up lines must not reach the terminal. Every process
started here is stopped here (the subprocess ends its JVM; the fixture kills the
cluster's process groups).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STARTUP_LINES = ("Using incubator modules", "Setting default log level", "setLogLevel")
JOB = textwrap.dedent(
    """
    import json, sys
    from kuairec.models.spark_session import stop_session
    from kuairec.sparkengine import SparkRunConfig, run_spark

    folder, work, master = sys.argv[1:4]
    cfg = SparkRunConfig.from_dict({
        "data": folder, "work_dir": work, "models": ["popularity", "itemknn"],
        "n_bootstrap": 50, "side_files": False,
        "spark": {"master": master, "driver_memory": "1g", "executor_memory": "512m",
                  "shuffle_partitions": 4, "adaptive": False, "broadcast_threshold": -1},
    })
    res = run_spark(cfg)
    stop_session()
    print("RESULT " + json.dumps({
        "executors": res.spark.get("executors"),
        "skipped": res.skipped,
        "models": {n: {"metrics": m.result.to_json()["metrics"], "top": m.top_items.tolist()}
                   for n, m in res.models.items()},
    }))
    """
)


@pytest.fixture(scope="module")
def local_results(small_dataset):  # noqa: ANN001, ANN201
    from kuairec.evaluation.fitted import rank_and_evaluate
    from kuairec.evaluation.protocols import default_protocol
    from kuairec.models import create_model

    train, test = default_protocol(small_dataset)
    out = {}
    for name in ("popularity", "itemknn"):
        model = create_model(name, {}).fit(train)
        result, items, _ = rank_and_evaluate(model, test, train, n_bootstrap=50, seed=0)
        out[name] = (result.to_json()["metrics"], items)
    return out


def _run(master: str, folder: Path, work: Path) -> tuple[dict, str]:
    import pyspark

    # local-cluster's workers put their executors' folders in $SPARK_HOME/work, which no
    # setting moves: a SPARK_HOME of links to the pyspark install keeps them in tmp
    home = work / "spark-home"
    home.mkdir(parents=True)
    for entry in Path(pyspark.__file__).parent.iterdir():
        if entry.name != "work":
            (home / entry.name).symlink_to(entry)
    env = dict(os.environ, SPARK_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1")
    out = subprocess.run(
        [sys.executable, "-c", JOB, str(folder), str(work), master],
        capture_output=True, text=True, timeout=900, env=env, cwd=REPO,
    )  # fmt: skip
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    assert out.returncode == 0 and lines, (out.stdout + out.stderr)[-4000:]
    return json.loads(lines[-1].removeprefix("RESULT ")), out.stderr


def _check(got: dict, stderr: str, local_results: dict) -> None:
    assert got["executors"] == 2, got["executors"]  # both executors took part
    assert not got["skipped"]
    for name, (metrics, items) in local_results.items():
        np.testing.assert_array_equal(np.array(got["models"][name]["top"]), items)
        for key, value in metrics.items():
            other = got["models"][name]["metrics"][key]
            assert (value is None and other is None) or abs(value - other) <= 1e-9, key
    leaked = [line for line in STARTUP_LINES if line in stderr]
    assert not leaked, stderr[-2000:]


def test_local_cluster_run_equals_local(
    java: None, small_synthetic_dir: Path, tmp_path: Path, local_results
) -> None:  # noqa: ANN001
    got, stderr = _run("local-cluster[2,1,1024]", small_synthetic_dir, tmp_path / "work")
    _check(got, stderr, local_results)


def test_standalone_cluster_run_equals_local(
    cluster: str, small_synthetic_dir: Path, tmp_path: Path, local_results
) -> None:  # noqa: ANN001
    got, stderr = _run(cluster, small_synthetic_dir, tmp_path / "work")
    _check(got, stderr, local_results)
