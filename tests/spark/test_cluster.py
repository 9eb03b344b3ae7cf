"""spark_als on a real Spark standalone cluster: a master and two workers on 127.0.0.1,
started from the pyspark install (``bin/spark-class``), the fit in a subprocess (a second
SparkContext cannot share the suite's process), NDCG@10 against a ``local[2]`` run of the
same settings. Every process started here is stopped by a finalizer (process groups),
also when the test fails. Nothing binds to or talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(spark_home()),
        SPARK_LOCAL_IP=HOST,
        SPARK_LOCAL_DIRS=str(tmp / "local"),
        SPARK_LOG_DIR=str(tmp / "logs"),
        SPARK_NO_DAEMONIZE="1",
        SPARK_DAEMON_MEMORY="256m",
        OPENBLAS_NUM_THREADS="1",
    )
    return env


def _wait(what: str, check, timeout: float, procs) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p, log in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what}: a process exited ({p.args[-1]}): {log.read_text()}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(1.0)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")


def _master_state(ui_port: int) -> dict:
    with urllib.request.urlopen(f"http://{HOST}:{ui_port}/json/", timeout=5) as r:
        return json.loads(r.read())


@pytest.fixture
def cluster(java: None, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A standalone master and two 1-core workers on 127.0.0.1; the master's URL."""
    env = _env(tmp_path)
    (tmp_path / "logs").mkdir()
    spark_class = str(spark_home() / "bin" / "spark-class")
    procs: list[tuple[subprocess.Popen, Path]] = []

    def stop() -> None:
        for p, _ in reversed(procs):
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
                if p.poll() is not None:
                    break
                try:
                    os.killpg(p.pid, sig)  # the worker's executors are in its group
                except ProcessLookupError:
                    break
                try:
                    p.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    continue

    request.addfinalizer(stop)

    def start(name: str, *args: str) -> None:
        log = tmp_path / "logs" / f"{name}.out"
        with log.open("wb") as out:
            p = subprocess.Popen(
                [spark_class, *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole
            )
        procs.append((p, log))

    port, ui = free_port(), free_port()
    master = f"spark://{HOST}:{port}"
    start(
        "master",
        "org.apache.spark.deploy.master.Master",
        *("--host", HOST, "--port", str(port), "--webui-port", str(ui)),
    )
    _wait("master", lambda: _master_state(ui).get("status") == "ALIVE", 180, procs)
    for i in range(2):
        work = tmp_path / f"work{i}"
        work.mkdir()
        start(
            f"worker{i}",
            "org.apache.spark.deploy.worker.Worker",
            *("--host", HOST, "--port", str(free_port()), "--webui-port", str(free_port())),
            *("--cores", "1", "--memory", "1g", "--work-dir", str(work), master),
        )
    _wait("workers", lambda: len(_master_state(ui).get("workers", [])) >= 2, 180, procs)
    alive = [w for w in _master_state(ui)["workers"] if w.get("state") == "ALIVE"]
    assert len(alive) == 2 and all(w["host"] == HOST for w in alive)
    return master


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
