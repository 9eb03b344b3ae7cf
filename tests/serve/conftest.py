"""The serve suite's shared run: a small generated dataset, five models trained once per
session by ``kuairec run``, loaded once into a :class:`ServeState` and an ASGI client."""

from __future__ import annotations

from pathlib import Path

import pytest

MODELS = "popularity,als,ease,itemknn,bpr"


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
