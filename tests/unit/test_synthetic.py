"""The synthetic KuaiRec generator: schema, quirks, sizes, determinism and learnable signal."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kuairec.data import schema
from kuairec.data.synthetic import generate
from kuairec.data.synthetic.pipeline import sizes
from kuairec.errors import ConfigError

SCALE = 0.03
SEED = 7
ALL_FILES = [spec.name for spec in (*schema.FILES, schema.TRUTH)]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("syn") / "a"
    summary = generate(out, scale=SCALE, seed=SEED, progress=False)
    return out, summary


@pytest.fixture(scope="module")
def folder(data: tuple[Path, dict[str, object]]) -> Path:
    return data[0]


@pytest.fixture(scope="module")
def big(folder: Path) -> pl.DataFrame:
    return pl.read_csv(folder / "big_matrix.csv")


@pytest.fixture(scope="module")
def small(folder: Path) -> pl.DataFrame:
    return pl.read_csv(folder / "small_matrix.csv")


def test_writes_exactly_the_files_with_schema_headers(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(ALL_FILES)  # no temp leftovers
    for spec in (*schema.FILES, schema.TRUTH):
        with open(folder / spec.name, encoding="utf-8") as fh:
            assert fh.readline().rstrip("\n").split(",") == spec.header, spec.name
    assert len(schema.ITEM_DAILY_FEATURES.header) == 58


def test_sizes_follow_the_scale(data: tuple[Path, dict[str, object]], big: pl.DataFrame,
                                small: pl.DataFrame) -> None:  # fmt: skip
    _, summary = data
    # round(7176 * 0.03) = 215, round(10728 * 0.03) = 322, round(1411 * .03) = 42, 3327 -> 100
    assert sizes(SCALE) == {"users": 215, "videos": 322, "small_users": 42, "small_videos": 100}
    assert big["user_id"].n_unique() == 215 and big["user_id"].max() == 214
    assert big["video_id"].n_unique() == 322 and big["video_id"].max() == 321
    assert small["user_id"].n_unique() == 42 and small["video_id"].n_unique() == 100
    assert summary["big_rows"] == big.height and summary["small_rows"] == small.height
    # 99.6% of the 4,200 small cells observed (blocked authors remove ~0.4%)
    assert 0.98 * 4_200 <= small.height < 4_200
    assert summary["small_missing_pairs"] == 4_200 - small.height


def test_small_pairs_are_disjoint_from_big_and_nested_ids(
    big: pl.DataFrame, small: pl.DataFrame
) -> None:
    pairs = big.select("user_id", "video_id").unique()
    assert pairs.join(small.select("user_id", "video_id"), on=["user_id", "video_id"]).height == 0
    assert set(small["user_id"].to_list()) <= set(big["user_id"].to_list())
    assert set(small["video_id"].to_list()) <= set(big["video_id"].to_list())
    assert small.select("user_id", "video_id").is_unique().all()


def test_big_has_exact_duplicates(data: tuple[Path, dict[str, object]], big: pl.DataFrame) -> None:
    dups = big.height - big.unique().height
    assert dups == data[1]["big_duplicates_added"]
    assert 0.06 < dups / big.height < 0.095  # real: 7.7% of rows


def test_small_rows_without_time_have_float_dates(folder: Path, small: pl.DataFrame) -> None:
    assert small.schema["date"] == pl.Float64  # NaNs make it float, as in the real file
    missing = small.filter(pl.col("time").is_null())
    assert 0.01 < missing.height / small.height < 0.08  # real: 3.9%
    assert missing["date"].null_count() == missing.height
    assert missing["timestamp"].null_count() == missing.height
    lines = (folder / "small_matrix.csv").read_text().splitlines()[1:]
    assert any(re.fullmatch(r"\d+,\d+,\d+,\d+,,,,[0-9.]+", line) for line in lines)
    timed = next(line for line in lines if ",,,," not in line)
    assert re.fullmatch(r"\d+,\d+,\d+,\d+,[-0-9 :.]+,2020\d{4}\.0,\d{10}(\.\d{1,3})?,[0-9.e-]+",
                        timed)  # fmt: skip


def test_time_is_beijing_time_of_timestamp_and_date_mostly_matches(
    folder: Path, big: pl.DataFrame
) -> None:
    first = (folder / "big_matrix.csv").read_text().splitlines()[1].split(",")
    ts = float(first[6])
    beijing = dt.datetime.fromtimestamp(ts, dt.UTC) + dt.timedelta(hours=8)
    assert first[4] == beijing.strftime("%Y-%m-%d %H:%M:%S.") + f"{round(ts * 1000) % 1000:03d}"
    assert re.fullmatch(r"2020-0[789]-\d\d \d\d:\d\d:\d\d\.\d{3}", first[4])
    day = big["time"].str.slice(0, 10).str.replace_all("-", "").cast(pl.Int64)
    off = (day != big["date"]).mean()
    assert off < 0.005  # ~0.1% quirk rows
    assert big["date"].min() >= 20200705 and big["date"].max() <= 20200905


def test_watch_ratio_is_play_over_duration(big: pl.DataFrame, small: pl.DataFrame) -> None:
    for frame in (big, small):
        ratio = (frame["play_duration"] / frame["video_duration"]).to_numpy()
        assert np.allclose(frame["watch_ratio"].to_numpy(), ratio, atol=5e-7)
        assert frame["video_duration"].min() > 0 and frame["play_duration"].min() >= 0
    assert small["video_duration"].min() >= 3_000  # small videos are at least 3 s


def test_rows_sorted_by_user_then_time(big: pl.DataFrame) -> None:
    assert big["user_id"].is_sorted()
    ts = big["timestamp"].to_numpy()
    same_user = big["user_id"].to_numpy()[1:] == big["user_id"].to_numpy()[:-1]
    assert np.all(ts[1:][same_user] >= ts[:-1][same_user])


def test_truth_covers_every_small_pair(folder: Path, small: pl.DataFrame) -> None:
    truth = pl.read_csv(folder / "small_matrix_truth.csv")
    assert truth.height == small.height
    assert truth.select("user_id", "video_id").equals(small.select("user_id", "video_id"))
    assert truth["expected_watch_ratio"].min() > 0
    # the truth is the mean the rows were drawn from: on average, rows agree with it
    ratio = small["watch_ratio"].mean() / truth["expected_watch_ratio"].mean()
    assert 0.8 < ratio < 1.25


def test_captions_parse_and_carry_the_quirks(folder: Path) -> None:
    text = (folder / "kuairec_caption_category.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == schema.CAPTION_CATEGORY.header
    assert len(rows) == 1 + 322 and all(len(r) == 10 for r in rows)
    frame = pl.read_csv(folder / "kuairec_caption_category.csv")
    assert frame.height == 322 and frame["video_id"].to_list() == list(range(322))
    captions = frame["caption"].drop_nulls().to_list()
    assert any("," in c for c in captions) and any("\n" in c for c in captions)
    assert any('"' in c for c in captions) and "UNKNOWN" in captions
    assert any(re.search("[\u4e00-\u9fff]", c) for c in captions)
    topic = frame["topic_tag"].to_list()
    assert "[]" in topic and all(re.fullmatch(r"\[[^\[\]\"']*\]", t) for t in topic)
    assert any(re.fullmatch(r"\[\w+(,\w+)+\]", t) for t in topic)  # `[a,b]` unquoted
    assert (frame["first_level_category_id"] == schema.MISSING_CATEGORY_ID).any()
    assert (frame["third_level_category_name"] == "UNKNOWN").any()


def test_item_categories_lists(folder: Path) -> None:
    lines = (folder / "item_categories.csv").read_text().splitlines()[1:]
    assert len(lines) == 322
    assert any(re.fullmatch(r"\d+,\[\d+\]", line) for line in lines)
    multi = [line for line in lines if '"' in line]
    assert multi and all(re.fullmatch(r'\d+,"\[\d+(, \d+){1,3}\]"', line) for line in multi)
    feat = pl.read_csv(folder / "item_categories.csv")["feat"]
    tags = [int(t) for f in feat for t in f.strip("[]").split(", ")]
    assert 0 <= min(tags) and max(tags) <= 30


def test_social_network_and_user_features(folder: Path) -> None:
    social = pl.read_csv(folder / "social_network.csv")
    assert social.height == round(472 * SCALE)  # 14
    for uid, friends in social.iter_rows():
        ids = [int(x) for x in friends.strip("[]").split(", ")]
        assert 1 <= len(ids) <= 5 and uid not in ids and len(set(ids)) == len(ids)
        assert all(0 <= i < 215 for i in ids)
    users = pl.read_csv(folder / "user_features.csv")
    assert users.height == 215 and users.columns == schema.USER_FEATURES.header
    assert set(users["user_active_degree"]) <= {"high_active", "full_active", "middle_active",
                                                "UNKNOWN"}  # fmt: skip
    assert users.schema["onehot_feat12"] == pl.Float64
    nan_feats = users.select(pl.col(f"onehot_feat{i}" for i in range(12, 18))).null_count()
    assert nan_feats.sum_horizontal()[0] > 0
    rng = dict(zip(users["follow_user_num"], users["follow_user_num_range"], strict=True))
    assert all(r == "0" for n, r in rng.items() if n == 0)
    assert all(r == "(0,10]" for n, r in rng.items() if 0 < n <= 10)
    assert all(r == "500+" for n, r in rng.items() if n > 500)


def test_item_daily_features(folder: Path) -> None:
    daily = pl.read_csv(folder / "item_daily_features.csv")
    assert daily.columns == schema.ITEM_DAILY_FEATURES.header
    assert daily.select("video_id", "date").is_unique().all()
    assert set(daily["video_type"]) <= {"NORMAL", "AD"}
    assert daily["upload_dt"].str.contains(r"^\d{4}-\d\d-\d\d$").all()
    early = daily.filter(pl.col("date") < 20200710)
    late = daily.filter(pl.col("date") > 20200801)
    assert early["collect_cnt"].null_count() == early.height > 0
    assert late["collect_cnt"].null_count() == 0
    assert (daily["play_cnt"] <= daily["show_cnt"]).all()
    assert (daily["like_user_num"] <= daily["like_cnt"]).all()
    assert 15 < daily.height / 322 < 50  # ~32 days per video, as in the real file


def test_same_seed_same_bytes_other_seed_differs(folder: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "b", scale=SCALE, seed=SEED, progress=False)
    for name in ALL_FILES:
        assert (tmp_path / "b" / name).read_bytes() == (folder / name).read_bytes(), name
    assert again["big_rows"] > 0
    generate(tmp_path / "c", scale=SCALE, seed=SEED + 1, progress=False)
    other = (tmp_path / "c" / "big_matrix.csv").read_bytes()
    assert other != (folder / "big_matrix.csv").read_bytes()


@pytest.mark.parametrize("scale", [0, -1, float("nan"), 4.5, "0.2"])
def test_bad_scale_is_refused(tmp_path: Path, scale: object) -> None:
    with pytest.raises(ConfigError, match="scale"):
        generate(tmp_path, scale=scale, seed=0, progress=False)  # type: ignore[arg-type]


def test_bad_seed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="seed"):
        generate(tmp_path, scale=0.02, seed=-1, progress=False)


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("syn") / "medium"
    generate(out, scale=0.1, seed=3, progress=False)
    return out


def test_watch_ratio_distribution_is_kuairec_like(medium: Path) -> None:
    big = pl.read_csv(medium / "big_matrix.csv", columns=["watch_ratio", "video_duration"])
    wr = big["watch_ratio"].to_numpy()
    # real big matrix: median 0.723, p75 1.178, p99 4.79, mean 0.944, 8% above 2
    assert 0.62 < np.median(wr) < 0.82
    assert 0.95 < np.quantile(wr, 0.75) < 1.4
    assert 3.5 < np.quantile(wr, 0.99) < 6.5
    assert 0.05 < (wr > 2).mean() < 0.11 and wr.max() > 50
    small = pl.read_csv(medium / "small_matrix.csv", columns=["watch_ratio"])["watch_ratio"]
    assert 0.025 < (small > 2).mean() < 0.07  # real: ~4-5%
    # positives concentrate on short videos
    dur = big["video_duration"].to_numpy()
    assert (wr[dur < 7_000] > 2).mean() > 1.5 * (wr[dur >= 7_000] > 2).mean()


def _ndcg10(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-user binary NDCG@10 for users with a positive (ties broken by column order)."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    disc = 1.0 / np.log2(np.arange(2, 12))
    dcg = (np.take_along_axis(labels, top, axis=1) * disc[: top.shape[1]]).sum(axis=1)
    n_pos = labels.sum(axis=1).astype(np.int64)
    idcg = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_pos, 10)]
    return dcg[n_pos > 0] / idcg[n_pos > 0]


def test_ndcg10_helper_by_hand() -> None:
    # one user, positives at columns 1 and 3; ranking puts column 3 first, column 1 third
    scores = np.array([[0.5, 0.2, 0.1, 0.9]])
    labels = np.array([[0.0, 1.0, 0.0, 1.0]])
    expected = (1.0 + 1.0 / np.log2(4)) / (1.0 + 1.0 / np.log2(3))
    assert _ndcg10(scores, labels) == pytest.approx([expected])


def test_default_scale_is_learnable_oracle_ease_popularity_random(tmp_path: Path) -> None:
    """At the default scale: oracle > EASE > popularity > random (label watch_ratio > 2),
    with EASE's and popularity's 95% bootstrap intervals apart."""
    generate(tmp_path, scale=0.2, seed=5, progress=False)
    cols = ["user_id", "video_id", "watch_ratio"]
    big = pl.read_csv(tmp_path / "big_matrix.csv", columns=cols).unique(["user_id", "video_id"])
    small = pl.read_csv(tmp_path / "small_matrix.csv", columns=cols)
    truth = pl.read_csv(tmp_path / "small_matrix_truth.csv")["expected_watch_ratio"].to_numpy()
    su, ui = np.unique(small["user_id"].to_numpy(), return_inverse=True)
    sv, vi = np.unique(small["video_id"].to_numpy(), return_inverse=True)
    labels = np.zeros((su.size, sv.size))
    labels[ui, vi] = small["watch_ratio"].to_numpy() > 2.0
    oracle = np.full(labels.shape, -1.0)
    oracle[ui, vi] = truth
    x = np.zeros((1435, 2146), dtype=np.float32)
    x[big["user_id"].to_numpy(), big["video_id"].to_numpy()] = 1.0
    gram = x.T @ x + 500.0 * np.eye(2146, dtype=np.float32)
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    rng = np.random.default_rng(0)
    res = {
        "oracle": _ndcg10(oracle, labels),
        "ease": _ndcg10((x[su] @ b)[:, sv], labels),
        "popularity": _ndcg10(np.tile(x.sum(axis=0)[sv], (su.size, 1)), labels),
        "random": _ndcg10(rng.random(labels.shape), labels),
    }
    means = {k: v.mean() for k, v in res.items()}
    assert means["oracle"] > means["ease"] > means["popularity"] > means["random"]
    idx = rng.integers(0, res["ease"].size, (1_000, res["ease"].size))
    ease_lo = np.quantile(res["ease"][idx].mean(axis=1), 0.025)
    pop_hi = np.quantile(res["popularity"][idx].mean(axis=1), 0.975)
    assert ease_lo > pop_hi
