"""The real KuaiRec item_categories.csv (../shared/kuairec, beside the repository) through
the loader, inside a small hand-made folder whose matrices cover videos 0..7999."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from kuairec.data import schema, side
from kuairec.data.load import load_dataset

N_COVERED = 8000  # videos 0..7999 appear in the matrices; the file holds 0..10727


def _write_matrices(folder: Path) -> None:
    header = ",".join(schema.BIG.header)
    big = [
        f"{v % 10},{v},5000,10000,2020-07-05 00:00:00.000,20200705,1593878400.0,0.5"
        for v in range(N_COVERED)
    ]
    small = [
        f"{u},{v},1000,10000,2020-07-06 00:00:00.000,20200706.0,1593964800.0,0.1"
        for u in range(2)
        for v in range(N_COVERED - 3, N_COVERED)
    ]
    (folder / "big_matrix.csv").write_text(header + "\n" + "\n".join(big) + "\n")
    (folder / "small_matrix.csv").write_text(header + "\n" + "\n".join(small) + "\n")


def test_real_item_categories(shared_item_categories: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(shared_item_categories, folder / "item_categories.csv")
    _write_matrices(folder)

    cats = side.read_item_categories(folder / "item_categories.csv")
    assert cats.height == 10_728
    counts = cats["feat"].list.len().value_counts().sort("feat")
    assert dict(counts.iter_rows()) == {1: 8970, 2: 1562, 3: 185, 4: 11}
    assert cats["video_id"].to_list() == list(range(10_728))

    ds = load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)
    assert ds.report.rows_read["item_categories"] == 10_728
    assert ds.report.side_ids_dropped["item_categories"] == 10_728 - N_COVERED
    tags = ds.item_tags
    assert tags.shape == (N_COVERED, schema.N_TAGS)
    per_video = np.diff(tags.indptr)
    expected = cats["feat"].list.unique().list.len().to_numpy()[:N_COVERED]
    assert np.array_equal(per_video, expected)
    first = cats.row(1, named=True)["feat"]  # the file's "[27, 9]"
    assert sorted(tags[1].indices.tolist()) == sorted(first) == [9, 27]
    assert "item_categories.csv" not in ds.report.missing_files
