"""The temporal protocol and the validation splits on Spark equal the local ones.

A one-log CSV with a skewed user (a third of all rows), many rows at the same instant
(ties the tie hash breaks) and repeated pairs; the engine with adaptive execution on and
6 shuffle partitions. Compared with the local engine: the split's pairs, the popularity
lists and their metrics, and the random and temporal validation splits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SPARK = {
    "master": "local[2]",
    "driver_memory": "1g",
    "shuffle_partitions": 6,
    "adaptive": True,
    "broadcast_threshold": -1,
    "id_map_rows": 50,
    "conf": {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"},
}


@pytest.fixture(scope="module")
def log_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(7)
    n = 6000
    users = rng.integers(0, 80, n) * 13 + 1000  # raw ids: sparse, not from 0
    users[: n // 3] = 999_999  # one skewed user with a third of the rows
    items = rng.zipf(1.3, n) % 400 + 7
    times = 1_600_000_000 + rng.integers(0, 30, n) * 3600.0  # 30 instants: many ties
    wr = np.round(rng.gamma(1.5, 0.8, n), 3)
    path = tmp_path_factory.mktemp("temporal") / "log.csv"
    with path.open("w") as fh:
        fh.write("user_id,video_id,timestamp,watch_ratio,extra\n")
        for row in zip(users, items, times, wr, strict=True):
            fh.write(f"{row[0]},{row[1]},{row[2]:.1f},{row[3]},x\n")
    return path


@pytest.fixture(scope="module")
def local(log_csv: Path):  # noqa: ANN201
    from kuairec.evaluation.protocols import temporal_experiment

    return temporal_experiment(log_csv, test_fraction=0.2, seed=5)


@pytest.fixture(scope="module")
def engine(java: None, log_csv: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from kuairec.sparkengine import SparkRunConfig, run_spark

    cfg = SparkRunConfig.from_dict(
        {
            "protocol": "temporal",
            "interactions": str(log_csv),
            "seed": 5,
            "models": ["popularity", "itemknn"],
            "model_params": {"itemknn": {"threshold": 0.0, "weighting": "binary"}},
            "n_bootstrap": 100,
            "work_dir": str(tmp_path_factory.mktemp("spark-temporal")),
            "spark": SPARK,
        }
    )
    return run_spark(cfg)


def _table(uri: str):  # noqa: ANN202
    from kuairec.models.spark_session import current_session

    return current_session().read.parquet(uri).orderBy("user_idx", "item_idx").toArrow()


def test_temporal_split_equals_local(engine, local) -> None:  # noqa: ANN001
    train, test = local
    tables = engine.tables["tables"]
    got_train = _table(f"{tables}/split/train")
    inter = train.interactions
    np.testing.assert_array_equal(got_train.column("user_idx").to_numpy(), inter.row_users())
    np.testing.assert_array_equal(got_train.column("item_idx").to_numpy(), inter.indices)
    for field in ("views", "watch_ratio_mean", "first_timestamp", "last_timestamp"):
        np.testing.assert_array_equal(got_train.column(field).to_numpy(), getattr(inter, field))
    got_test = _table(f"{tables}/split/test")
    np.testing.assert_array_equal(got_test.column("item_idx").to_numpy(), test.relevance.indices)
    np.testing.assert_array_equal(engine.test_users, test.users)
    assert engine.test_users_raw.tolist() == train.users.to_raw(test.users).tolist()
    skewed = train.users.to_index([999_999])[0]
    rows = inter.views[inter.indptr[skewed] : inter.indptr[skewed + 1]].sum()
    assert skewed in test.users and rows > 1000  # the skewed user trains on its 1,600 rows


@pytest.mark.parametrize("name", ["popularity", "itemknn"])
def test_lists_and_metrics_equal_local(engine, local, name: str) -> None:  # noqa: ANN001
    from kuairec.evaluation.fitted import rank_and_evaluate
    from kuairec.models import create_model

    train, test = local
    params = {"threshold": 0.0, "weighting": "binary"} if name == "itemknn" else {}
    model = create_model(name, params).fit(train)
    result, items, _ = rank_and_evaluate(model, test, train, n_bootstrap=100, seed=5)
    got = engine.models[name]
    np.testing.assert_array_equal(got.top_items, items)
    assert got.result.to_json() == result.to_json()
    assert any("duration" in note for note in got.result.notes)  # no durations in a log


@pytest.mark.parametrize("kind", ["random", "temporal"])
def test_validation_split_equals_local(engine, local, kind: str) -> None:  # noqa: ANN001
    from kuairec.evaluation.validation import validation_split as local_split
    from kuairec.models.spark_session import current_session
    from kuairec.sparkengine.protocols import validation_split

    train, test = local
    spark = current_session()
    tables = engine.tables["tables"]
    train_df = spark.read.parquet(f"{tables}/split/train")
    users_df = spark.createDataFrame([(int(u),) for u in test.users], "user_idx int")
    fit, held, users, cand = validation_split(train_df, kind, users_df, 0.2, seed=3)
    want_fit, want_valid = local_split(train, kind, test.users, seed=3)
    got_fit = fit.orderBy("user_idx", "item_idx").toArrow()
    np.testing.assert_array_equal(
        got_fit.column("user_idx").to_numpy(), want_fit.interactions.row_users()
    )
    np.testing.assert_array_equal(
        got_fit.column("item_idx").to_numpy(), want_fit.interactions.indices
    )
    got_held = held.orderBy("user_idx", "item_idx").toArrow()
    np.testing.assert_array_equal(
        got_held.column("item_idx").to_numpy(), want_valid.relevance.indices
    )
    got_users = np.sort(users.toArrow().column("user_idx").to_numpy())
    np.testing.assert_array_equal(got_users, want_valid.users)
    assert cand.count() == want_valid.candidates.size
