"""The loader on a tiny hand-made folder: every expected value below is computed by hand
from tests/unit/_kuairec_fixtures.py (see its docstring for the ids)."""

from __future__ import annotations

import logging
from pathlib import Path

import _kuairec_fixtures as fx  # on sys.path through tests/conftest.py
import numpy as np
import pytest

from kuairec.data import schema, side
from kuairec.data.cache import CachedDataset
from kuairec.data.dataset import CleaningReport, Interactions
from kuairec.data.describe import describe
from kuairec.data.duplicates import duplicate_free_mask
from kuairec.data.load import load_dataset, read_log
from kuairec.data.matrices import aggregate_sorted, sort_keys
from kuairec.errors import DataError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    folder = fx.write_tiny_folder(tmp_path_factory.mktemp("tiny"))
    cache = tmp_path_factory.mktemp("cache")
    return load_dataset(folder, cache_dir=cache, progress=False)


def test_id_maps_are_sorted_unions_of_both_matrices(tiny) -> None:
    assert tiny.users.raw.tolist() == [3, 7, 10, 12]
    assert tiny.items.raw.tolist() == [100, 200, 300, 400, 500]
    assert tiny.report.cold_test_users == 1  # user 12
    assert tiny.report.cold_test_items == 1  # video 500


def test_big_duplicates_dropped_and_pairs_aggregated(tiny) -> None:
    big = tiny.big
    assert tiny.report.rows_read["big"] == 9
    assert tiny.report.duplicates_dropped == 3
    assert big.indptr.tolist() == [0, 2, 4, 5, 5]
    assert big.indices.tolist() == [0, 1, 0, 2, 3]
    assert big.views.tolist() == [2, 1, 1, 1, 1]  # (3,100): two distinct views remain
    assert np.allclose(big.watch_ratio_mean, [1.0, 5.0, 2.0, 1.0, 0.3])
    assert np.allclose(big.watch_ratio_max, [1.5, 5.0, 2.0, 1.0, 0.3])
    assert big.first_timestamp[0] == pytest.approx(1593878903.438)
    assert big.last_timestamp[0] == pytest.approx(1593965303.0)


def test_small_keeps_rows_without_time(tiny) -> None:
    small = tiny.small
    assert tiny.report.small_rows_without_time == 1
    assert small.indptr.tolist() == [0, 0, 2, 3, 4]
    assert small.indices.tolist() == [1, 2, 1, 4]
    pos = 1  # (7, 300) has no time
    assert np.isnan(small.first_timestamp[pos]) and np.isnan(small.last_timestamp[pos])
    assert small.watch_ratio_mean[pos] == pytest.approx(1.2)


def test_video_duration_is_the_median_over_rows(tiny) -> None:
    # video 200: 1000 (big), 1100 and 1200 (small) -> 1100
    assert tiny.video_duration.tolist() == [2000.0, 1100.0, 2500.0, 3000.0, 4000.0]


def test_zero_durations_are_counted_and_left_out_of_the_duration(tmp_path: Path) -> None:
    from kuairec.evaluation.labels import duration_bucket

    # video 300 (big line 6): its only big row gets duration 0, its small row keeps 2500;
    # video 400 (big lines 9-10, exact duplicates): every row 0, so no duration at all
    rows = [r.replace(",2500,2500,", ",2500,0,") for r in fx.BIG_ROWS]
    rows = [r.replace(",900,3000,", ",900,0,") for r in rows]
    folder = fx.write_tiny_folder(tmp_path / "d", replace={"big_matrix.csv": fx.big_text(rows)})
    ds = load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)
    assert ds.video_duration.tolist() == [2000.0, 1100.0, 2500.0, 0.0, 4000.0]
    summary = describe(ds)
    assert summary["matrices"]["big"]["zero_duration_rows"] == 2  # 3 raw, 2 deduplicated
    assert summary["matrices"]["small"]["zero_duration_rows"] == 0
    assert any("big_matrix.csv: 2 rows with video_duration 0" in n for n in ds.report.notes)
    edges = np.array([1000.0, 2000.0, 4000.0])
    assert duration_bucket(ds.video_duration, edges).tolist() == [1, 0, 1, -1, 1]


def test_item_tags_multi_hot_unknown_video_dropped(tiny) -> None:
    tags = tiny.item_tags
    assert tags.shape == (5, schema.N_TAGS)
    rows = [sorted(tags[r].indices.tolist()) for r in range(5)]
    assert rows == [[8], [9, 27], [], [0, 30], []]
    assert set(tags.data.tolist()) == {1.0}
    assert tiny.report.side_ids_dropped["item_categories"] == 1  # video 999


def test_user_features_one_row_per_user_in_order(tiny) -> None:
    uf = tiny.user_features
    assert uf["user_idx"].to_list() == [0, 1, 2, 3]
    assert uf["user_id"].to_list() == [3, 7, 10, 12]
    assert uf["fans_user_num"].to_list() == [12, 12, None, None]  # 10 and 12 absent
    assert uf["follow_user_num_range"][0] == "(0,10]"
    assert uf["onehot_feat12"].to_list() == [1.0, None, None, None]  # NaN -> null
    assert tiny.report.side_ids_dropped["user_features"] == 1  # user 99


def test_item_daily_aggregates(tiny) -> None:
    daily = tiny.item_daily
    assert daily["item_idx"].to_list() == [0, 1]
    first = daily.row(0, named=True)
    assert first["video_id"] == 100
    assert first["days_observed"] == 2
    assert first["author_id"] == 55  # the first day's
    assert first["play_cnt"] == 40 and first["show_cnt"] == 70
    assert first["complete_play_rate"] == pytest.approx(10 / 40)
    assert first["mean_play_progress"] == pytest.approx(0.6)
    assert first["collect_cnt"] == 2  # NaN on the first day is skipped
    assert daily.row(1, named=True)["complete_play_rate"] is None  # no plays
    assert tiny.report.side_ids_dropped["item_daily_features"] == 1  # video 888


def test_social_symmetric_unknown_ids_dropped(tiny) -> None:
    social = tiny.social
    assert social.shape == (4, 4)
    edges = {(int(r), int(c)) for r, c in zip(*social.nonzero(), strict=True)}
    assert edges == {(0, 1), (1, 0), (0, 2), (2, 0), (2, 3), (3, 2)}
    assert tiny.report.side_ids_dropped["social_network"] == 1  # user 444
    assert tiny.report.side_ids_dropped["social_network.friends"] == 1  # friend 555


def test_captions_parsed_with_quotes_newlines_and_tags(tiny) -> None:
    caps = tiny.captions
    assert caps["item_idx"].to_list() == [0, 1, 2]
    assert caps["caption"][0] == '好吃, "真的"\n第二行'
    assert caps["manual_cover_text"].to_list() == [None, "封面", None]
    assert caps["topic_tag"].to_list() == [["美食", "搞笑"], [], ["旅行"]]
    assert caps["first_level_category_id"].to_list() == [8, None, 5]  # -124 -> null
    assert caps["third_level_category_name"].to_list() == [None, None, "夜景"]
    assert tiny.report.side_ids_dropped["caption_category"] == 1  # video 777
    assert any("video_id is not an integer" in n for n in tiny.report.notes)  # "abc"


def test_truth_holds_expected_watch_ratio_on_small_pairs(tiny) -> None:
    truth = tiny.truth
    assert truth.indptr.tolist() == tiny.small.indptr.tolist()
    assert truth.indices.tolist() == tiny.small.indices.tolist()
    assert np.allclose(truth.watch_ratio_mean, [0.9, 1.1, 2.0, 0.2])
    assert truth.views.tolist() == [1, 1, 1, 1]
    assert np.isnan(truth.first_timestamp).all()


def test_log_is_deduplicated_in_file_order(tiny) -> None:
    log = read_log(tiny, "big")
    assert log.columns == [
        "user_idx", "item_idx", "play_duration", "video_duration", "date", "timestamp",
        "watch_ratio",
    ]  # fmt: skip
    assert log.height == 6
    assert log["user_idx"].to_list() == [0, 0, 0, 1, 1, 2]
    assert log["item_idx"].to_list() == [0, 0, 1, 2, 0, 3]
    assert log["watch_ratio"].to_list() == [0.5, 1.5, 5.0, 1.0, 2.0, 0.3]
    small = read_log(tiny, "small")
    assert small["date"].to_list() == [20200710, None, 20200711, 20200712]
    assert small["timestamp"].null_count() == 1


def test_summary_figures(tiny) -> None:
    s = describe(tiny)
    big, small = s["matrices"]["big"], s["matrices"]["small"]
    assert (big["rows_raw"], big["rows"], big["duplicates_dropped"]) == (9, 6, 3)
    assert (big["users"], big["videos"], big["unique_pairs"]) == (3, 4, 5)
    assert big["density_rows"] == pytest.approx(9 / 12)
    assert big["density_pairs"] == pytest.approx(5 / 12)
    wr = big["watch_ratio"]  # sorted rows: 0.3 0.5 1.0 1.5 2.0 5.0
    assert wr["min"] == 0.3 and wr["max"] == 5.0
    assert wr["p25"] == pytest.approx(0.625)
    assert wr["median"] == pytest.approx(1.25)
    assert wr["p75"] == pytest.approx(1.875)
    assert wr["p90"] == pytest.approx(3.5)
    assert wr["p99"] == pytest.approx(4.85)
    assert wr["mean"] == pytest.approx(10.3 / 6)
    assert big["positive_rate"] == pytest.approx(1 / 6)  # 2.0 is not > 2
    assert (big["date_min"], big["date_max"]) == ("2020-07-05", "2020-07-09")
    assert small["rows_without_time"] == 1
    assert small["watch_ratio"]["median"] == pytest.approx(1.1)
    assert small["density_rows"] == pytest.approx(4 / 9)
    assert (s["cold_test_users"], s["cold_test_items"]) == (1, 1)
    assert s["missing_files"] == []


def test_data_subfolder_of_the_official_archive(tmp_path: Path) -> None:
    fx.write_tiny_folder(tmp_path / "KuaiRec 2.0" / "data")
    ds = load_dataset(tmp_path / "KuaiRec 2.0", cache_dir=tmp_path / "cache", progress=False)
    assert ds.source == tmp_path / "KuaiRec 2.0" / "data"
    assert ds.n_items == 5


def test_missing_side_file_warned_once_and_none(tmp_path: Path, caplog) -> None:
    folder = fx.write_tiny_folder(
        tmp_path / "d", skip=("social_network.csv", "item_categories.csv"), truth=False
    )
    with caplog.at_level(logging.WARNING, logger="kuairec.data"):
        ds = load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)
    assert ds.social is None and ds.item_tags is None and ds.truth is None
    assert ds.report.missing_files == ["item_categories.csv", "social_network.csv"]
    warned = [r.getMessage() for r in caplog.records if "not found" in r.getMessage()]
    assert len(warned) == 2 and "social_network.csv" in warned[1]
    assert ds.user_features is not None
    assert describe(ds)["missing_files"] == ["item_categories.csv", "social_network.csv"]


def test_tag_ids_above_30_get_contiguous_columns(tmp_path: Path) -> None:
    big = 2**63 - 1
    cats = f'video_id,feat\n100,"[8, 1000000000]"\n200,"[40, 2]"\n300,[{big}]\n'
    folder = fx.write_tiny_folder(tmp_path / "d", replace={"item_categories.csv": cats})
    for _ in ("cold", "warm"):
        ds = load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)
        tags = ds.item_tags
        assert tags.shape == (5, schema.N_TAGS + 3)  # never max id + 1
        ids = side.tag_ids(tags)
        assert ids.tolist() == [*range(schema.N_TAGS), 40, 10**9, big]
        assert sorted(ids[tags[0].indices].tolist()) == [8, 10**9]
        assert sorted(ids[tags[1].indices].tolist()) == [2, 40]
        assert ids[tags[2].indices].tolist() == [big]
    assert isinstance(ds, CachedDataset)
    assert any("3 tag ids outside 0..30" in n for n in ds.report.notes)


def test_standard_tags_keep_their_columns(tiny) -> None:
    assert side.tag_ids(tiny.item_tags).tolist() == list(range(schema.N_TAGS))


def test_tag_ids_beyond_64_bits_are_one_clear_error(tmp_path: Path) -> None:
    cats = 'video_id,feat\n100,[8]\n200,"[99999999999999999999]"\n'
    folder = fx.write_tiny_folder(tmp_path / "d", replace={"item_categories.csv": cats})
    with pytest.raises(DataError, match=r"line 3, column 'feat': expected integers of at most"):
        load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)


def test_eda_tag_stats_use_the_column_map(tmp_path: Path) -> None:
    from kuairec.eda.side import tag_popularity

    cats = 'video_id,feat\n100,"[8, 1000000000]"\n200,[1000000000]\n'
    folder = fx.write_tiny_folder(tmp_path / "d", replace={"item_categories.csv": cats})
    ds = load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)
    ts = tag_popularity(ds.item_tags, np.array([4.0, 1.0, 0.0, 0.0, 0.0]))
    assert ts.videos.size == schema.N_TAGS + 1  # 32 entries, not 10**9
    top = int(np.argmax(ts.views))
    assert ts.tag_id(top) == 10**9 and ts.views[top] == 5.0 and ts.videos[top] == 2


def test_ids_beyond_int32_fall_back_to_int64(tmp_path: Path) -> None:
    rows = [r.replace("10,400", "3000000000,400", 1) for r in fx.BIG_ROWS]
    folder = fx.write_tiny_folder(
        tmp_path / "d", replace={"big_matrix.csv": fx.big_text(rows)}, truth=False
    )
    ds = load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)
    assert ds.users.raw.tolist() == [3, 7, 10, 12, 3000000000]


def test_unquoted_topic_tag_is_rejoined(tmp_path: Path) -> None:
    header = ",".join(schema.CAPTION_CATEGORY.header)
    text = f"{header}\n100,t,c,[a,b,c],1,x,2,y,3,z\n200,t,c,[d],1,x,2,y,3,z\n"
    path = tmp_path / schema.CAPTION_CATEGORY.name
    path.write_text(text, encoding="utf-8")
    caps = side.read_captions(path, CleaningReport())
    assert caps["video_id"].to_list() == [100, 200]
    assert caps["topic_tag"].to_list() == [["a", "b", "c"], ["d"]]
    assert caps["third_level_category_name"].to_list() == ["z", "z"]


def test_warm_load_is_lazy_and_equal(tmp_path: Path, tiny) -> None:
    warm = load_dataset(tiny.source, cache_dir=tiny.cache_path.parent.parent, progress=False)
    assert isinstance(warm, CachedDataset)
    assert "user_features" not in warm.__dict__  # not read until used
    assert warm.user_features.equals(tiny.user_features)
    assert (warm.item_tags != tiny.item_tags).nnz == 0
    assert (warm.social != tiny.social).nnz == 0
    assert warm.captions.equals(tiny.captions)
    assert warm.item_daily.equals(tiny.item_daily)
    for name in ("big", "small", "truth"):
        a, b = getattr(warm, name), getattr(tiny, name)
        for field in ("indptr", "indices", *Interactions.VALUE_FIELDS):
            assert np.array_equal(getattr(a, field), getattr(b, field), equal_nan=True)
    assert not warm.big.indices.flags.writeable  # memory-mapped, read-only
    assert warm.report == tiny.report
    assert warm.fingerprint() == tiny.fingerprint()


def test_read_log_needs_a_cached_dataset(tiny) -> None:
    from kuairec.data.dataset import KuaiRecDataset

    bare = KuaiRecDataset(users=tiny.users, items=tiny.items, big=tiny.big, small=tiny.small,
                          video_duration=tiny.video_duration)  # fmt: skip
    with pytest.raises(DataError, match="no row-level log"):
        read_log(bare, "big")
    summary = describe(bare)  # computed from the pairs instead
    assert summary["basis"] == "pairs"
    assert summary["matrices"]["big"]["rows"] == 6


@pytest.mark.parametrize("split", [False, True])  # one thread; halves in two threads
def test_aggregate_sorted_matches_from_log(
    rng: np.random.Generator, split: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kuairec.data import aggregate

    monkeypatch.setattr(aggregate, "_SPLIT_ROWS", 100 if split else 1 << 40)
    n, n_users, n_items = 4000, 25, 40
    u = rng.integers(0, n_users - 3, n)
    i = rng.integers(0, n_items, n)
    wr = rng.random(n) * 3
    ts = rng.random(n) * 1e9
    ts[rng.random(n) < 0.3] = np.nan
    ref = Interactions.from_log(u, i, wr, ts, (n_users, n_items))
    key, order = sort_keys(u * n_items + i, n_users * n_items)
    got = aggregate_sorted(key, order, wr, ts, n_users, n_items)
    for field in ("indptr", "indices", *Interactions.VALUE_FIELDS):
        a, b = getattr(ref, field), getattr(got, field)
        assert a.dtype == b.dtype, field
        assert np.array_equal(a, b, equal_nan=True), field


@pytest.mark.parametrize("grouped", [False, True])  # rows grouped by user: two halves
def test_sort_keys_equals_stable_argsort_every_path(
    rng: np.random.Generator, grouped: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kuairec.data import matrices

    monkeypatch.setattr(matrices, "_SPLIT_SORT_ROWS", 100)
    users, items = rng.integers(0, 20, 10_000), rng.integers(0, 25, 10_000)
    if grouped:
        users = np.sort(users)
    key = users * 25 + items
    ref = np.argsort(key, kind="stable")
    halves = []
    monkeypatch.setattr(matrices.ThreadPoolExecutor, "submit", _record(halves))
    for bound, width in ((500, None), (500, 25), (1 << 50, 25)):  # one sort, split, argsort
        sorted_key, order = sort_keys(key.copy(), bound, width=width)
        assert np.array_equal(order, ref)
        assert np.array_equal(sorted_key, key[ref])
    assert len(halves) == (1 if grouped else 0)  # the split ran once, when the rows allow


def _record(calls: list) -> object:
    """A ThreadPoolExecutor.submit that records its calls and runs them at once."""
    from concurrent.futures import Future

    def submit(self, fn, *args):  # noqa: ANN001, ANN002
        calls.append(fn)
        done: Future = Future()
        done.set_result(fn(*args))
        return done

    return submit


@pytest.mark.parametrize("with_extra_column", [False, True])
@pytest.mark.parametrize("time_ordered", [False, True])  # the hash proposal; neighbours
def test_duplicate_mask_keeps_first_of_each_exact_repeat(
    rng: np.random.Generator,
    with_extra_column: bool,
    time_ordered: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kuairec.data import duplicates

    n = 3000
    cols = {
        "user_id": rng.integers(0, 10, n).astype(np.int32),
        "video_id": rng.integers(0, 10, n).astype(np.int32),
        "timestamp": rng.integers(0, 3, n).astype(np.float64),
        "watch_ratio": rng.integers(0, 2, n) / 2,
    }
    if time_ordered:  # a log in time order: no hashing (it would fail below)
        cols["timestamp"] = np.sort(cols["timestamp"])
        monkeypatch.setattr(duplicates, "_hash_runs", None)
    else:
        cols["timestamp"][rng.random(n) < 0.2] = np.nan  # NaN equals NaN for duplicates
    if with_extra_column:  # rows equal in pair, instant and watch_ratio but not all columns
        cols["play_duration"] = rng.integers(0, 2, n).astype(np.int32)
    key, order = sort_keys(cols["user_id"] * 10 + cols["video_id"].astype(np.int64), 100)
    keep = duplicate_free_mask(cols, key, order)
    seen: set[tuple] = set()
    expected = np.ones(n, dtype=bool)
    for r in range(n):
        row = tuple(-1.0 if v != v else float(v) for v in (c[r] for c in cols.values()))
        expected[r] = row not in seen
        seen.add(row)
    assert np.array_equal(keep, expected)
    assert (~expected).sum() > 1500  # the test data is mostly repeats


@pytest.mark.parametrize("split", [False, True])
def test_aggregate_sorted_leaves_out_dropped_duplicates(
    rng: np.random.Generator, split: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kuairec.data import aggregate

    monkeypatch.setattr(aggregate, "_SPLIT_ROWS", 100 if split else 1 << 40)
    n, n_users, n_items = 3000, 12, 15
    u = rng.integers(0, n_users, n)
    i = rng.integers(0, n_items, n)
    wr = rng.random(n) * 3
    ts = rng.random(n) * 1e9
    copies = rng.choice(n, 800)  # append exact copies of random rows
    u, i, wr, ts = (np.concatenate([a, a[copies]]) for a in (u, i, wr, ts))
    keep = np.r_[np.ones(n, bool), np.zeros(copies.size, bool)]
    ref = Interactions.from_log(u[keep], i[keep], wr[keep], ts[keep], (n_users, n_items))
    key, order = sort_keys(u * n_items + i, n_users * n_items)
    dropped = np.flatnonzero(~keep[order])
    got = aggregate_sorted(key, order, wr, ts, n_users, n_items, dropped=dropped)
    for field in ("indptr", "indices", "views", "watch_ratio_max", "first_timestamp",
                  "last_timestamp"):  # fmt: skip
        assert np.array_equal(getattr(ref, field), getattr(got, field)), field
    assert np.allclose(ref.watch_ratio_mean, got.watch_ratio_mean, rtol=1e-6)


def test_aggregate_sorted_of_nothing() -> None:
    empty = np.array([], dtype=np.int64)
    got = aggregate_sorted(empty, empty, np.array([]), None, 3, 4)
    assert got.nnz == 0 and got.indptr.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("distinct_max", [1 << 16, 10])  # distinct values; every row
def test_range_check_finds_the_first_bad_row_whichever_path(
    distinct_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import polars as pl

    from kuairec.data import validate

    monkeypatch.setattr(validate, "_DISTINCT_MAX", distinct_max)
    days = np.arange(336) % 28 + 1 + 100 * (np.arange(336) // 28 + 1)  # 12 x 28 real days
    dates = 20200000 + np.resize(days, 100_000)
    column = schema.BIG.column("date")
    validate._check_bounds(pl.DataFrame({"date": dates}), Path("m.csv"), column)
    dates[[70_001, 90_000]] = 20200230  # 30 February, twice: the first is reported
    with pytest.raises(DataError, match="line 70003.*20200230"):
        validate._check_bounds(pl.DataFrame({"date": dates}), Path("m.csv"), column)
    durations = np.full(100_000, 5, dtype=np.int64)
    durations[[50, 60]] = -1  # below the interval's low end, seen by min / max first
    with pytest.raises(DataError, match="line 52.*-1"):
        validate._check_bounds(
            pl.DataFrame({"video_duration": durations}),
            Path("m.csv"),
            schema.BIG.column("video_duration"),
        )


def test_date_check_by_extremes_finds_the_row_that_disagrees() -> None:
    import polars as pl

    from kuairec.data.validate import _check_date_agrees, _dates_agree_at_extremes

    day = 86_400.0
    ts = 1_593_878_400.0 + np.arange(1000) * 60.0  # 2020-07-04 16:00 UTC, a minute apart
    date = np.where(ts < 1_593_907_200.0, 20200705, 20200706)  # Beijing days
    frame = pl.DataFrame({"date": date, "timestamp": ts})
    assert _dates_agree_at_extremes(frame)
    _check_date_agrees(frame, Path("m.csv"))
    ts[500] += 10 * day  # one row ten days later: the latest of its date, not proved
    frame = pl.DataFrame({"date": date, "timestamp": ts})
    assert not _dates_agree_at_extremes(frame)
    with pytest.raises(DataError, match="line 502"):
        _check_date_agrees(frame, Path("m.csv"))
