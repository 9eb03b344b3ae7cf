"""spark_als on a real Spark standalone cluster: a master and two workers on 127.0.0.1,
started from the pyspark install (``bin/spark-class``), the fit in a subprocess (a second
SparkContext cannot share the suite's process), NDCG@10 against a ``local[2]`` run of the
same settings. Every process started here is stopped by a finalizer (process groups),
also when the test fails. Nothing binds to or talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
# the standalone master and workers: the `cluster` fixture in tests/spark/conftest.py
SETTINGS = {  # fixed blocks and seed: the cluster and local[2] run the same computation
    "factors": 8,
    "iterations": 6,
    "regularization": 0.5,
    "num_user_blocks": 2,
    "num_item_blocks": 2,
    "seed": 7,
    "driver_memory": "1g",
    "spark_conf": {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"},
}


JOB = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from kuairec.data.load import load_dataset
    from kuairec.evaluation.evaluate import evaluate
    from kuairec.evaluation.protocols import default_protocol
    from kuairec.models import create_model
    from kuairec.models.spark_session import stop_session

    folder, settings = sys.argv[1], json.loads(sys.argv[2])
    train, test = default_protocol(load_dataset(folder, progress=False))
    model = create_model("spark_als", settings).fit(train)
    items, _ = model.recommend(test.users, 10, exclude=test.exclude, candidates=test.candidates)
    res = evaluate(items, test, train, ks=(10,), labels=("wr>2",), default_label="wr>2")
    from pyspark import SparkContext
    sc = SparkContext._active_spark_context
    driver = 0 if sc.master.startswith("local") else 1  # the status lists the driver too
    executors = sc._jsc.sc().getExecutorMemoryStatus().size() - driver
    stop_session()
    print("RESULT " + json.dumps({
        "ndcg": res.to_json()["metrics"]["ndcg@10"],
        "blocks": list(model.fit_info_["blocks"]),
        "executors": executors,
        "norm": float(np.linalg.norm(model.user_factors_)),
        "warm_users": int((np.abs(model.user_factors_).sum(axis=1) > 0).sum()),
    }))
    """
)


def _run_job(folder: Path, settings: dict, tmp: Path) -> dict:
    env = dict(os.environ, SPARK_LOCAL_IP=HOST, KUAIREC_CACHE=str(tmp / "cache"))
    out = subprocess.run(
        [sys.executable, "-c", JOB, str(folder), json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=REPO,
    )
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    assert out.returncode == 0 and lines, (out.stdout + out.stderr)[-4000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


def test_cluster_fit_matches_local(cluster: str, tmp_path: Path) -> None:
    from kuairec.data.synthetic import generate

    folder = tmp_path / "data"
    generate(folder, scale=0.05, seed=3, progress=False)
    on_cluster = _run_job(
        folder, {**SETTINGS, "master": cluster, "executor_memory": "512m"}, tmp_path
    )
    local = _run_job(folder, {**SETTINGS, "master": "local[2]"}, tmp_path)
    print(f"cluster: {on_cluster}; local[2]: {local}")
    assert on_cluster["blocks"] == local["blocks"] == [2, 2]
    assert on_cluster["executors"] == 2  # the work ran on the two workers' executors
    assert on_cluster["warm_users"] > 100 and on_cluster["norm"] > 0
    assert on_cluster["ndcg"] > 0.05  # the factors reached the evaluation and rank well
    assert abs(on_cluster["ndcg"] - local["ndcg"]) <= 0.01, (on_cluster, local)
