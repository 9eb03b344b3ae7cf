"""Shared fixtures: an isolated cache folder and small generated datasets (fixed seeds)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# the suites' shared helper modules (tests/unit/_kuairec_fixtures.py,
# tests/contract/_contract_data.py) are imported by name: one definition each
for _helpers in ("unit", "contract"):
    sys.path.insert(0, str(Path(__file__).parent / _helpers))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never read or write the user's real cache from tests."""
    cache = tmp_path_factory.mktemp("kuairec-cache")
    old = os.environ.get("KUAIREC_CACHE")
    os.environ["KUAIREC_CACHE"] = str(cache)
    os.environ.pop("KUAIREC_DATA", None)
    yield
    if old is None:
        os.environ.pop("KUAIREC_CACHE", None)
    else:
        os.environ["KUAIREC_CACHE"] = old


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def small_synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated KuaiRec-shaped folder at scale 0.05 (about 360 users x 540 videos)."""
    from kuairec.data.synthetic import generate

    out = tmp_path_factory.mktemp("synthetic-0.05")
    generate(out, scale=0.05, seed=3, progress=False)
    return out


@pytest.fixture(scope="session")
def small_dataset(small_synthetic_dir: Path):
    from kuairec.data.load import load_dataset

    return load_dataset(small_synthetic_dir, progress=False)


@pytest.fixture(scope="session")
def shared_item_categories() -> Path:
    path = SHARED / "kuairec" / "item_categories.csv"
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI must have ../shared beside the repository")
        pytest.skip(f"{path} not present (no ../shared beside the repository)")
    return path
