"""Spark tests: skipped without pyspark; the ones that start Spark also without Java.

The models share one Spark session per process (:mod:`kuairec.models.spark_session`): the
suite starts it once and stops it, JVM included, at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("pyspark", reason="needs the spark extra (pip install 'kuairec[spark]')")

HOST = "127.0.0.1"


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


# ---------------------------------------------------------------------- a standalone cluster
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
