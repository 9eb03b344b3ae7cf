"""The Spark engine at synthetic scale 0.2 (the default data), adaptive execution off and 8
shuffle partitions: cleaning and id maps equal the local engine's, popularity's lists and
metrics too, and spark_als's NDCG@10 is within 0.02 of the local ``als``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SPARK = {
    "master": "local[2]",
    "driver_memory": "1g",
    "shuffle_partitions": 8,
    "adaptive": False,
    "broadcast_threshold": -1,
    "id_map_rows": 1000,
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kuairec.data.synthetic import generate

    out = tmp_path_factory.mktemp("synthetic-0.2")
    generate(out, scale=0.2, seed=0, progress=False)
    return out


@pytest.fixture(scope="module")
def local(folder: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from kuairec.data.load import load_dataset
    from kuairec.evaluation.protocols import default_protocol

    ds = load_dataset(folder, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    return ds, *default_protocol(ds)


@pytest.fixture(scope="module")
def engine(java: None, folder: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from kuairec.sparkengine import SparkRunConfig, run_spark

    cfg = SparkRunConfig.from_dict(
        {
            "data": str(folder),
            "models": ["popularity", "spark_als"],
            "n_bootstrap": 100,
            "side_files": False,
            "work_dir": str(tmp_path_factory.mktemp("spark-0.2")),
            "spark": SPARK,
        }
    )
    return run_spark(cfg)


def test_cleaning_id_maps_and_split_equal_local(engine, local) -> None:  # noqa: ANN001
    from kuairec.models.spark_session import current_session

    ds, train, test = local
    for key in ("duplicates_dropped", "small_rows_without_time", "cold_test_users"):
        assert engine.cleaning[key] == getattr(ds.report, key), key
    assert engine.cleaning["rows_read"] == {k: ds.report.rows_read[k] for k in ("big", "small")}
    tables = engine.tables["tables"]
    spark = current_session()
    users = spark.read.parquet(f"{tables}/users").orderBy("user_idx").toArrow()
    items = spark.read.parquet(f"{tables}/items").orderBy("item_idx").toArrow()
    np.testing.assert_array_equal(users.column("user_id").to_numpy(), ds.users.raw)
    np.testing.assert_array_equal(items.column("video_id").to_numpy(), ds.items.raw)
    got = spark.read.parquet(f"{tables}/split/train").orderBy("user_idx", "item_idx").toArrow()
    assert got.num_rows == train.interactions.nnz > 300_000
    np.testing.assert_array_equal(got.column("item_idx").to_numpy(), train.interactions.indices)
    np.testing.assert_array_equal(
        got.column("watch_ratio_mean").to_numpy(), train.interactions.watch_ratio_mean
    )
    np.testing.assert_array_equal(engine.test_users, test.users)


def test_popularity_equals_local(engine, local) -> None:  # noqa: ANN001
    from kuairec.evaluation.fitted import rank_and_evaluate
    from kuairec.models import create_model

    _, train, test = local
    model = create_model("popularity", {}).fit(train)
    result, items, scores = rank_and_evaluate(model, test, train, n_bootstrap=100, seed=0)
    got = engine.models["popularity"]
    np.testing.assert_array_equal(got.top_items, items)
    np.testing.assert_array_equal(got.top_scores, scores)
    assert got.result.to_json() == result.to_json()


def test_spark_als_is_within_002_of_local_als(engine, local) -> None:  # noqa: ANN001
    from kuairec.evaluation.fitted import rank_and_evaluate
    from kuairec.models import create_model

    _, train, test = local
    als = create_model("als", {}).fit(train)
    result, _, _ = rank_and_evaluate(als, test, train, n_bootstrap=0)
    spark_ndcg = engine.models["spark_als"].result.metrics["ndcg@10"]
    local_ndcg = result.metrics["ndcg@10"]
    print(f"ndcg@10: spark_als on Spark {spark_ndcg:.4f}, als locally {local_ndcg:.4f}")
    assert abs(spark_ndcg - local_ndcg) <= 0.02
    assert spark_ndcg > engine.models["popularity"].result.metrics["ndcg@10"] + 0.05
