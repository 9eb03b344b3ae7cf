"""Numeric feature matrices (kuairec.data.features) on the tiny hand-made folder of
tests/unit/_kuairec_fixtures.py: users raw [3, 7, 10, 12] (3 and 7 have a user_features
row, 7 with NaN in onehot_feat12..17), items raw [100, 200, 300, 400, 500]. Every expected
value below is computed by hand from the fixture files."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import _kuairec_fixtures as fx  # on sys.path through tests/conftest.py
import numpy as np
import pytest

from kuairec.data import schema
from kuairec.data.dataset import FeatureMatrix
from kuairec.data.features import MIN_LEVEL_COUNT, build_features, caption_block, user_matrix
from kuairec.data.load import load_dataset


def _load(tmp: Path, **kwargs):
    folder = fx.write_tiny_folder(tmp / "data", **kwargs)
    return load_dataset(folder, cache_dir=tmp / "cache", progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return _load(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tiny_x(tiny) -> tuple[FeatureMatrix, FeatureMatrix]:
    return build_features(tiny, min_count=1)


def _user_csv(rows: list[dict[str, object]]) -> str:
    """user_features.csv text: the fixture's user 3 row, overridden per user."""
    base = next(csv.reader(io.StringIO(fx.user_features_row(3))))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(schema.USER_FEATURES.header)
    for row in rows:
        values = dict(zip(schema.USER_FEATURES.header, base, strict=True))
        values.update({k: str(v) for k, v in row.items()})
        writer.writerow(values.values())
    return out.getvalue()


def _captions_csv(levels: dict[int, int]) -> str:
    """The caption file with one row per video: first level id, second/third -124."""
    lines = [",".join(schema.CAPTION_CATEGORY.header)]
    lines += [f"{vid},x,y,[],{lv},a,-124,b,-124,c" for vid, lv in levels.items()]
    return "\n".join(lines) + "\n"


def test_user_onehot_null_is_its_own_level_and_absent_users_are_zero(tiny_x) -> None:
    user_x, _ = tiny_x
    assert user_x.values.shape[0] == 4 and user_x.values.dtype == np.float32
    assert user_x.column("user_missing").tolist() == [0, 0, 1, 1]  # users 10 and 12
    # onehot_feat12: 1.0 for user 3, NaN for user 7 -> names without ".0"
    feat12 = [c for c in user_x.columns if c.startswith("onehot_feat12=")]
    assert feat12 == ["onehot_feat12=1", "onehot_feat12=null"]
    assert user_x.column("onehot_feat12=1").tolist() == [1, 0, 0, 0]
    assert user_x.column("onehot_feat12=null").tolist() == [0, 1, 0, 0]
    assert user_x.column("onehot_feat13=0").tolist() == [1, 0, 0, 0]  # 0.0 is a level
    assert user_x.column("user_active_degree=high_active").tolist() == [1, 1, 0, 0]
    assert user_x.column("follow_user_num_range=(0,10]").tolist() == [1, 1, 0, 0]
    assert user_x.column("is_video_author").tolist() == [1, 1, 0, 0]  # 0/1 flag as is
    # a user absent from the file is never in a null column: only user_missing is set
    assert user_x.values[2:].sum() == 2


def test_user_counts_are_log1p(tmp_path: Path) -> None:
    text = _user_csv(
        [
            {"user_id": 3, "follow_user_num": 0, "fans_user_num": 99, "register_days": 1},
            {"user_id": 7, "follow_user_num": 1000, "fans_user_num": 0, "register_days": 365},
        ]
    )
    ds = _load(tmp_path, replace={"user_features.csv": text})
    user_x = user_matrix(ds.user_features, ds.n_users)
    assert user_x.column("follow_user_num_log1p") == pytest.approx([0, math.log(1001), 0, 0])
    assert user_x.column("fans_user_num_log1p") == pytest.approx([math.log(100), 0, 0, 0])
    assert user_x.column("register_days_log1p") == pytest.approx([math.log(2), math.log(366), 0, 0])


def test_user_rare_levels_pooled_into_other(tmp_path: Path) -> None:
    rows = [{"user_id": 3, "user_active_degree": "full_active", "onehot_feat2": 40}]
    rows += [{"user_id": 7, "user_active_degree": "UNKNOWN", "onehot_feat2": 40}]
    rows += [{"user_id": 10, "user_active_degree": "full_active", "onehot_feat2": 5}]
    ds = _load(tmp_path, replace={"user_features.csv": _user_csv(rows)})
    user_x = user_matrix(ds.user_features, ds.n_users, min_count=2)
    degree = [c for c in user_x.columns if c.startswith("user_active_degree=")]
    assert degree == ["user_active_degree=full_active", "user_active_degree=other"]
    assert user_x.column("user_active_degree=full_active").tolist() == [1, 0, 1, 0]
    assert user_x.column("user_active_degree=other").tolist() == [0, 1, 0, 0]
    # numeric codes sort numerically (5 before 40) and pool the same way
    feat2 = [c for c in user_x.columns if c.startswith("onehot_feat2=")]
    assert feat2 == ["onehot_feat2=40", "onehot_feat2=other"]
    assert user_x.column("onehot_feat2=other").tolist() == [0, 0, 1, 0]
    assert user_x.column("user_missing").tolist() == [0, 0, 0, 1]


def test_tags_are_multi_hot(tiny_x) -> None:
    _, item_x = tiny_x
    # 100: [8]; 200: [27, 9]; 300: []; 400: [0, 30, 30]; 500: no row
    tags = [c for c in item_x.columns if c.startswith("tag=")]
    assert tags == [f"tag={t}" for t in range(31)]
    block = np.column_stack([item_x.column(c) for c in tags])
    assert block.sum(axis=1).tolist() == [1, 2, 0, 2, 0]
    assert item_x.column("tag=9").tolist() == [0, 1, 0, 0, 0]
    assert item_x.column("tag=27").tolist() == [0, 1, 0, 0, 0]
    assert item_x.column("tag=30").tolist() == [0, 0, 0, 1, 0]  # repeated id: still 1
    assert item_x.column("tag_none").tolist() == [0, 0, 1, 0, 1]


def test_caption_levels_rare_pooled_missing_and_null(tmp_path: Path) -> None:
    # 100, 200: level 3; 300: level 9; 400: -124 (null); 500: no caption row
    text = _captions_csv({100: 3, 200: 3, 300: 9, 400: -124})
    ds = _load(tmp_path, replace={"kuairec_caption_category.csv": text})
    x = caption_block(ds.captions, ds.n_items, min_count=2)
    first = [c for c in x.columns if c.startswith("caption_first_level")]
    assert first == [
        "caption_first_level=3",
        "caption_first_level=other",
        "caption_first_level=null",
    ]
    assert x.column("caption_first_level=3").tolist() == [1, 1, 0, 0, 0]
    assert x.column("caption_first_level=other").tolist() == [0, 0, 1, 0, 0]
    assert x.column("caption_first_level=null").tolist() == [0, 0, 0, 1, 0]
    assert x.column("caption_missing").tolist() == [0, 0, 0, 0, 1]
    assert x.column("caption_second_level=null").tolist() == [1, 1, 1, 1, 0]
    pooled = caption_block(ds.captions, ds.n_items, min_count=3)  # 2 videos < 3: rare
    assert [c for c in pooled.columns if c.startswith("caption_first")] == first[1:]
    assert pooled.column("caption_first_level=other").tolist() == [1, 1, 1, 0, 0]
    assert MIN_LEVEL_COUNT == 10  # the documented default (docs/features.md)


def test_duration_is_log1p_seconds(tiny_x) -> None:
    _, item_x = tiny_x
    # medians over both matrices' rows: 100: 2000 ms, 200: (1000, 1100, 1200) -> 1100 ms
    expected = [math.log1p(s) for s in (2.0, 1.1, 2.5, 3.0, 4.0)]
    assert item_x.column("duration_log1p_s") == pytest.approx(expected, rel=1e-6)
    assert "duration_missing" not in item_x.columns


def test_daily_rates_are_ratios_of_summed_counts(tiny_x) -> None:
    _, item_x = tiny_x
    # video 100: days (play 10, complete 4, show 20, progress 0.4) + (30, 6, 50, 0.8),
    # every other count 1 per day; video 200: play 0, show 5; 300-500: no daily row
    col = item_x.column
    assert col("daily_missing").tolist() == [0, 0, 1, 1, 1]
    assert col("daily_show_cnt_log1p") == pytest.approx([math.log(71), math.log(6), 0, 0, 0])
    assert col("daily_play_rate") == pytest.approx([40 / 70, 0, 0, 0, 0])
    # 10 / 40 over both days, not the mean of the daily rates (0.4 + 0.2) / 2
    assert col("daily_complete_play_rate") == pytest.approx([0.25, 0, 0, 0, 0])
    assert col("daily_like_rate") == pytest.approx([2 / 70, 1 / 5, 0, 0, 0])  # per show
    assert col("daily_valid_play_rate")[1] == 0.0  # no plays: 0, not NaN
    assert col("daily_play_progress") == pytest.approx([0.6, 0.5, 0, 0, 0])  # mean of days
    assert col("daily_days_observed_log1p") == pytest.approx([math.log(3), math.log(2), 0, 0, 0])
    seconds_per_play = 2 / 40 / 1000  # play_duration 1 + 1 ms over 40 plays
    assert col("daily_play_seconds_log1p")[0] == pytest.approx(math.log1p(seconds_per_play))
    assert not [c for c in item_x.columns if "collect" in c or "user_num" in c]


def test_missing_side_files_give_empty_blocks_and_notes(tmp_path: Path) -> None:
    skip = (
        "user_features.csv",
        "item_categories.csv",
        "kuairec_caption_category.csv",
        "item_daily_features.csv",
    )
    ds = _load(tmp_path, skip=skip)
    user_x, item_x = build_features(ds)
    assert user_x.values.shape == (4, 0) and user_x.columns == ()
    assert any("user_features.csv" in n for n in user_x.notes)
    assert item_x.columns == ("duration_log1p_s",)  # from the matrices: always there
    for name in skip[1:]:
        assert any(name in n for n in item_x.notes), name


def test_no_nan_or_inf_and_float32_on_generated_data(small_dataset) -> None:
    user_x, item_x = build_features(small_dataset)
    for x, n in ((user_x, small_dataset.n_users), (item_x, small_dataset.n_items)):
        assert x.values.dtype == np.float32 and x.values.shape == (n, len(x.columns))
        assert np.isfinite(x.values).all()
        assert len(set(x.columns)) == len(x.columns)
        assert np.abs(x.values).max() < 20  # log1p counts, rates, one-hot: of order 1
    assert user_x.n_features > 50 and item_x.n_features > 60


def test_default_protocol_carries_the_features(tiny) -> None:
    from kuairec.evaluation.protocols import default_protocol

    with pytest.warns(UserWarning, match="dropped from training"):  # (7, 300) is in both
        train, _ = default_protocol(tiny)
    assert train.user_x is not None and train.user_x.n_rows == 4
    assert train.item_x is not None and train.item_x.n_rows == 5
    assert "daily_play_rate" in train.item_x.columns


def test_daily_features_ignore_the_small_matrix_outcomes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generator's item_daily_features.csv (and so item_x) must not see the test
    outcomes: regenerate with every small-matrix response changed, compare."""
    from kuairec.data.synthetic import generate, logs

    generate(tmp_path / "a", scale=0.03, seed=1, progress=False)
    original = logs.small_block

    def altered(world, users, rng):
        out, truth = original(world, users, rng)
        out["play_duration"] = out["play_duration"] * 3 + 2_000
        out["watch_ratio"] = np.round(out["play_duration"] / out["video_duration"], 6)
        return out, truth

    monkeypatch.setattr(logs, "small_block", altered)
    generate(tmp_path / "b", scale=0.03, seed=1, progress=False)
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "small_matrix.csv").read_bytes() != (b / "small_matrix.csv").read_bytes()
    assert (a / "big_matrix.csv").read_bytes() == (b / "big_matrix.csv").read_bytes()
    daily = "item_daily_features.csv"
    assert (a / daily).read_bytes() == (b / daily).read_bytes()
    xa = build_features(load_dataset(a, cache_dir=tmp_path / "cache", progress=False))[1]
    xb = build_features(load_dataset(b, cache_dir=tmp_path / "cache", progress=False))[1]
    assert xa.columns == xb.columns and np.array_equal(xa.values, xb.values)


def test_feature_matrix_checks_and_helpers() -> None:
    with pytest.raises(ValueError, match="finite"):
        FeatureMatrix(np.array([[np.nan]]), ("a",))
    with pytest.raises(ValueError, match="columns"):
        FeatureMatrix(np.zeros((2, 2)), ("a",))
    a = FeatureMatrix(np.array([[1.0], [2.0], [3.0]]), ("a",), ["note a"])
    b = FeatureMatrix.empty(3, "b missing")
    both = FeatureMatrix.hstack([a, b])
    assert both.columns == ("a",) and both.notes == ["note a", "b missing"]
    assert both.select([2, 0]).column("a").tolist() == [3.0, 1.0]
    assert b.n_features == 0 and b.n_rows == 3
