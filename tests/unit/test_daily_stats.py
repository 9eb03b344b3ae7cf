"""The daily statistics by date (``DailyStats``) and the side tables a TrainSet carries,
on the tiny hand-made folder of tests/unit/_kuairec_fixtures.py (items raw [100, 200,
300, 400, 500]; item_daily_features.csv: video 100 on 2020-07-05 and -06, video 200 on
2020-07-05, video 888 unknown; upload_dt 2020-07-01). Values computed by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import _kuairec_fixtures as fx
import numpy as np
import pytest

from kuairec.data.dataset import DailyStats
from kuairec.data.features import daily_stats
from kuairec.data.load import load_dataset

EPOCH = dt.date(1970, 1, 1)


def _day(y: int, m: int, d: int) -> int:
    return (dt.date(y, m, d) - EPOCH).days


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("tiny-daily")
    return load_dataset(fx.write_tiny_folder(tmp / "data"), cache_dir=tmp / "c", progress=False)


def test_rows_by_item_and_day_with_their_counts(tiny) -> None:
    d = daily_stats(tiny.item_daily, tiny.n_items)
    assert d is not None and d.n_items == 5
    assert d.item_idx.tolist() == [0, 0, 1]  # video 888 is not in the matrices: dropped
    assert d.day.tolist() == [_day(2020, 7, 5), _day(2020, 7, 6), _day(2020, 7, 5)]
    assert d.column("show_cnt").tolist() == [20, 50, 5]
    assert d.column("play_cnt").tolist() == [10, 30, 0]
    assert d.column("complete_play_cnt").tolist() == [4, 6, 0]
    assert d.column("like_cnt").tolist() == [1, 1, 1]  # the fixture's default count
    assert d.values.dtype == np.float32


def test_upload_day_parsed_and_nan_without_a_row(tiny) -> None:
    d = daily_stats(tiny.item_daily, tiny.n_items)
    up = d.upload_day
    assert up[:2].tolist() == [_day(2020, 7, 1)] * 2
    assert np.isnan(up[2:]).all()


def test_a_day_counts_once_it_is_over_in_beijing_time() -> None:
    # 2020-07-06 00:00 Beijing = 2020-07-05 16:00 UTC: the 5th is over from that instant
    midnight = dt.datetime(2020, 7, 5, 16, tzinfo=dt.UTC).timestamp()
    assert DailyStats.last_day_ended_by(midnight) == _day(2020, 7, 5)
    assert DailyStats.last_day_ended_by(midnight - 1) == _day(2020, 7, 4)
    assert DailyStats.day_of(midnight - 1) == _day(2020, 7, 5)
    assert DailyStats.last_day_ended_by(float("inf")) > _day(2100, 1, 1)


def test_missing_file_or_column_gives_none(tiny) -> None:
    assert daily_stats(None, 5) is None
    assert daily_stats(tiny.item_daily.drop("days"), 5) is None  # an older frame


def test_default_protocol_puts_the_side_tables_in_the_train_set(tiny) -> None:
    from kuairec.evaluation.protocols import default_protocol

    with pytest.warns(UserWarning, match="dropped from training"):
        train, _ = default_protocol(tiny)
    assert train.daily is not None and train.daily.item_idx.size == 3
    assert train.social is not None and train.social.shape == (4, 4)
    assert train.captions is not None and "first_level_category_id" in train.captions.columns


def test_missing_side_files_leave_the_tables_none(tmp_path: Path) -> None:
    from kuairec.evaluation.protocols import default_protocol

    skip = ("item_daily_features.csv", "social_network.csv", "kuairec_caption_category.csv")
    folder = fx.write_tiny_folder(tmp_path / "data", skip=skip)
    ds = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    with pytest.warns(UserWarning, match="dropped from training"):
        train, _ = default_protocol(ds)
    assert train.daily is None and train.social is None and train.captions is None


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="do not describe"):
        DailyStats(np.zeros(2, np.int32), np.zeros(3, np.int32), np.zeros((2, 1), np.float32),
                   ("show_cnt",), np.zeros(4))  # fmt: skip
