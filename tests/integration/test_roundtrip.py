"""Generated synthetic data loads cleanly through the real loader, with its quirks counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kuairec.data.load import load_dataset
from kuairec.data.synthetic import generate


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("roundtrip") / "data"
    return out, generate(out, scale=0.03, seed=11, progress=False)


def test_loader_reads_every_generated_file(generated: tuple[Path, dict[str, object]],
                                           tmp_path: Path) -> None:  # fmt: skip
    folder, summary = generated
    ds = load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)
    assert ds.n_users == summary["users"] and ds.n_items == summary["videos"]
    assert ds.report.duplicates_dropped == summary["big_duplicates_added"]
    small = pl.read_csv(folder / "small_matrix.csv")
    assert ds.report.small_rows_without_time == small["time"].null_count() > 0
    assert ds.small.nnz == summary["small_rows"]
    assert ds.report.cold_test_users == 0 and ds.report.cold_test_items == 0
    # the truth file lines up with the small matrix pair for pair
    assert ds.truth is not None and ds.truth.nnz == ds.small.nnz
    assert np.array_equal(ds.truth.indices, ds.small.indices)
    # side files parsed: tags for every video, friends for the social users
    assert ds.item_tags is not None and ds.item_tags.shape == (ds.n_items, 31)
    assert np.all(np.asarray(ds.item_tags.sum(axis=1)).ravel() >= 1)
    assert ds.social is not None and ds.social.nnz >= summary["social_network_users"]
    assert ds.captions is not None and ds.captions.height == ds.n_items
