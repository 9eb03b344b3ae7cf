"""The serve suite's shared run: a small generated dataset, five models trained once per
session by ``kuairec run``, loaded once into a :class:`ServeState` and an ASGI client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

MODELS = "popularity,als,ease,itemknn,bpr"
HOST = "127.0.0.1"


@pytest.fixture(scope="session")
def serve_run(small_synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kuairec.cli import main

    runs = tmp_path_factory.mktemp("serve-runs")
    argv = ["run", "--data", str(small_synthetic_dir), "--runs-dir", str(runs)]
    argv += ["--models", MODELS, "--no-eda", "--no-tune", "--bootstrap", "20", "-q"]
    assert main(argv) == 0
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run


@pytest.fixture(scope="session")
def serve_state(serve_run: Path):
    from kuairec.serve.state import load_state

    return load_state(serve_run)


@pytest.fixture(scope="session")
def client(serve_state):
    from fastapi.testclient import TestClient

    from kuairec.serve.app import create_app

    with TestClient(create_app(serve_state), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def known_user(serve_state) -> int:
    """A user with training videos (the first by raw id)."""
    counts = serve_state.train.interactions.user_counts()
    return int(serve_state.train.users.raw[(counts > 5).argmax()])


@pytest.fixture(scope="session")
def popular_videos(serve_state) -> list[int]:
    order = serve_state.catalogue.by_popularity[:20]
    return [int(v) for v in serve_state.train.items.raw[order]]


# ---------------------------------------------------------------------- a real server
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    run: Path, *args: str, timeout: float = 120.0, port: int | None = None, preexec_fn=None
) -> Iterator[tuple[str, float]]:
    """A running ``kuairec serve``: (base url, seconds until the port opened)."""
    with server_process(run, *args, timeout=timeout, port=port, preexec_fn=preexec_fn) as (
        url,
        seconds,
        _,
        _,
    ):
        yield url, seconds


@contextmanager
def server_process(
    run: Path, *args: str, timeout: float = 120.0, port: int | None = None, preexec_fn=None
) -> Iterator[tuple[str, float, subprocess.Popen, Any]]:
    """A running ``kuairec serve``: (base url, seconds until the port opened, the process,
    its combined stdout/stderr log file); ``port`` (default: a free one) and
    ``preexec_fn`` (run in the child, e.g. a lower open-file limit) as given."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "kuairec", "serve", "--run", str(run), "--port", str(port)]
    log = tempfile.TemporaryFile()  # never a pipe nobody reads: the server cannot block
    proc = subprocess.Popen(
        [*cmd, "-q", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
        preexec_fn=preexec_fn,
    )
    start = time.monotonic()
    try:
        while not _accepts(port):
            if proc.poll() is not None or time.monotonic() - start > timeout:
                log.seek(0)
                raise AssertionError(f"no server on port {port}: {log.read().decode()[-2000:]}")
            time.sleep(0.1)
        yield f"http://{HOST}:{port}", time.monotonic() - start, proc, log
    finally:
        stop(proc)
        log.close()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    try:  # workers left behind by a parent that died first (a failing test): never leak
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    assert proc.returncode is not None


@pytest.fixture(scope="session")
def live_server(serve_run: Path) -> Iterator[str]:
    """The base url of one ``kuairec serve`` process on the session's run."""
    with running_server(serve_run) as (url, _):
        yield url


@pytest.fixture(scope="session")
def server():
    """Start more servers: ``with server(run, *args) as (url, seconds_to_listen):``."""
    return running_server


@pytest.fixture
def server_with_process():
    """``with server_with_process(run, *args) as (url, seconds, proc, log):``."""
    return server_process
