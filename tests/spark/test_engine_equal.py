"""The Spark engine equals the local engine where both run (synthetic data, scale 0.05).

One engine run (module fixture) on ``local[2]`` with settings that behave like a
cluster: 4 shuffle partitions, no broadcast joins, id maps cut into several sorted
buckets; the local engine's load, protocol, models and evaluation on the same folder.
Compared: the cleaning counts, id maps and cleaned pairs; the split; the top-K lists of
popularity, item-kNN (a Spark self-join) and EASE (driver-side); every metric, interval
and segment to 1e-9; spark_als's metrics against the local evaluation of its own lists;
the Parquet recommendations; the factor kernel against the local ``recommend``; the tie
hash against numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

KS = (5, 10, 20, 50)
N_BOOTSTRAP = 200
SPARK = {
    "master": "local[2]",
    "driver_memory": "1g",
    "shuffle_partitions": 4,
    "broadcast_threshold": -1,
    "id_map_rows": 100,  # several sorted buckets per id map
    "conf": {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"},
}


@pytest.fixture(scope="module")
def local(small_dataset):  # noqa: ANN001, ANN201
    from kuairec.evaluation.protocols import default_protocol

    return small_dataset, *default_protocol(small_dataset)


@pytest.fixture(scope="module")
def engine(java: None, small_synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from kuairec.sparkengine import SparkRunConfig, run_spark

    cfg = SparkRunConfig.from_dict(
        {
            "data": str(small_synthetic_dir),
            "models": ["popularity", "itemknn", "spark_als", "ease", "oracle"],
            "ks": list(KS),
            "n_bootstrap": N_BOOTSTRAP,
            "work_dir": str(tmp_path_factory.mktemp("spark-engine")),
            "spark": SPARK,
        }
    )
    return run_spark(cfg)


def _active():  # noqa: ANN202
    from kuairec.models.spark_session import current_session

    return current_session()


def _pairs(spark, uri: str, where: str | None = None):  # noqa: ANN001, ANN202
    df = spark.read.parquet(uri)
    if where:
        df = df.filter(where)
    return df.orderBy("user_idx", "item_idx").toArrow()


def assert_close(a, b, path: str = "") -> None:  # noqa: ANN001
    """Nested dicts / arrays / floats equal to 1e-9 (NaN equal to NaN)."""
    if isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for key in a:
            assert_close(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, list | tuple | np.ndarray):
        x, y = np.asarray(a, float), np.asarray(b, float)
        assert x.shape == y.shape, path
        assert np.allclose(x, y, rtol=0, atol=1e-9, equal_nan=True), path
    elif isinstance(a, float):
        assert (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-9, (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_cleaning_and_id_maps_equal_local(engine, local) -> None:  # noqa: ANN001
    ds = local[0]
    report = ds.report
    got = engine.cleaning
    expected_rows = {k: v for k, v in report.rows_read.items() if k != "truth"}
    assert got["rows_read"] == expected_rows
    assert got["duplicates_dropped"] == report.duplicates_dropped > 0
    assert got["small_rows_without_time"] == report.small_rows_without_time > 0
    assert (got["cold_test_users"], got["cold_test_items"]) == (
        report.cold_test_users,
        report.cold_test_items,
    )
    assert got["side_ids_dropped"] == {
        k: v for k, v in report.side_ids_dropped.items() if k != "truth"
    }
    spark = _active()
    tables = engine.tables["tables"]
    users = spark.read.parquet(f"{tables}/users").orderBy("user_idx").toArrow()
    items = spark.read.parquet(f"{tables}/items").orderBy("item_idx").toArrow()
    np.testing.assert_array_equal(users.column("user_id").to_numpy(), ds.users.raw)
    np.testing.assert_array_equal(users.column("user_idx").to_numpy(), np.arange(ds.n_users))
    np.testing.assert_array_equal(items.column("video_id").to_numpy(), ds.items.raw)
    np.testing.assert_array_equal(items.column("video_duration").to_numpy(), ds.video_duration)
    for matrix, inter in (("big", ds.big), ("small", ds.small)):
        table = _pairs(spark, f"{tables}/pairs", f"matrix = '{matrix}'")
        assert table.num_rows == inter.nnz
        np.testing.assert_array_equal(table.column("user_idx").to_numpy(), inter.row_users())
        np.testing.assert_array_equal(table.column("item_idx").to_numpy(), inter.indices)
        for field in inter.VALUE_FIELDS:
            got_values = table.column(field).to_numpy(zero_copy_only=False)
            np.testing.assert_array_equal(got_values, getattr(inter, field), err_msg=field)


def test_split_equals_local(engine, local) -> None:  # noqa: ANN001
    _, train, test = local
    spark = _active()
    tables = engine.tables["tables"]
    got_train = _pairs(spark, f"{tables}/split/train")
    np.testing.assert_array_equal(
        got_train.column("item_idx").to_numpy(), train.interactions.indices
    )
    np.testing.assert_array_equal(
        got_train.column("user_idx").to_numpy(), train.interactions.row_users()
    )
    got_test = _pairs(spark, f"{tables}/split/test")
    np.testing.assert_array_equal(got_test.column("item_idx").to_numpy(), test.relevance.indices)
    np.testing.assert_array_equal(
        got_test.column("watch_ratio_mean").to_numpy().astype(np.float64), test.relevance.data
    )
    np.testing.assert_array_equal(engine.test_users, test.users)
    assert engine.protocol["n_candidates"] == test.candidates.size


@pytest.mark.parametrize("name", ["popularity", "itemknn", "ease"])
def test_lists_and_metrics_equal_local(engine, local, name: str) -> None:  # noqa: ANN001
    from kuairec.evaluation.fitted import rank_and_evaluate
    from kuairec.models import create_model

    _, train, test = local
    model = create_model(name, {}).fit(train)
    result, items, scores = rank_and_evaluate(
        model, test, train, ks=KS, n_bootstrap=N_BOOTSTRAP, seed=0
    )
    got = engine.models[name]
    assert got.where == ("driver" if name == "ease" else "spark")
    np.testing.assert_array_equal(got.top_items, items)
    np.testing.assert_array_equal(got.top_scores, scores)
    assert_close(got.result.metrics, result.metrics, "metrics")
    assert_close(got.result.ci, result.ci, "ci")
    assert_close(got.result.by_label, result.by_label, "by_label")
    assert_close(got.result.segments, result.segments, "segments")
    assert_close(got.result.per_user, result.per_user, "per_user")
    assert_close(got.result.per_user_by_label, result.per_user_by_label, "per_user_by_label")
    assert got.result.to_json()["labels"] == result.to_json()["labels"]


def test_spark_als_metrics_equal_local_evaluation_of_its_lists(engine, local) -> None:  # noqa: ANN001
    from kuairec.evaluation.evaluate import evaluate

    _, train, test = local
    got = engine.models["spark_als"]
    assert got.result.metrics["ndcg@10"] > engine.models["popularity"].result.metrics["ndcg@10"]
    result = evaluate(got.top_items, test, train, ks=KS, n_bootstrap=N_BOOTSTRAP, seed=0)
    assert_close(got.result.to_json(), result.to_json())
    assert_close(got.result.per_user, result.per_user)


def test_skipped_models_say_why(engine) -> None:  # noqa: ANN001
    assert "synthetic truth" in engine.skipped["oracle"]
    assert set(engine.models) == {"popularity", "itemknn", "spark_als", "ease"}


def test_recommendations_parquet_hold_the_lists_in_raw_ids(engine, local) -> None:  # noqa: ANN001
    ds = local[0]
    got = engine.models["itemknn"]
    table = _active().read.parquet(got.recommendations).orderBy("user_id", "rank").toArrow()
    users = ds.users.to_raw(engine.test_users)
    width = got.top_items.shape[1]
    np.testing.assert_array_equal(table.column("user_id").to_numpy(), np.repeat(users, width))
    np.testing.assert_array_equal(
        table.column("rank").to_numpy(), np.tile(np.arange(1, width + 1), users.size)
    )
    np.testing.assert_array_equal(
        table.column("video_id").to_numpy(), ds.items.to_raw(got.top_items.ravel())
    )
    np.testing.assert_array_equal(table.column("score").to_numpy(), got.top_scores.ravel())


def test_factor_kernel_equals_local_recommend(engine) -> None:  # noqa: ANN001
    """Given the same factors, the Spark kernel's lists are the local model's, ties and
    cold items included (one batch in Spark is not one batch locally)."""
    import pyarrow as pa
    import scipy.sparse as sp

    from kuairec.sparkengine.topk import BatchFactors, TopKKernel, top_k

    rng = np.random.default_rng(0)
    n_users, n_items, rank = 700, 300, 8
    user_f = rng.normal(size=(n_users, rank)).astype(np.float32)
    item_f = rng.normal(size=(n_items, rank)).astype(np.float32)
    item_f[::7] = item_f[3]  # equal scores: ties broken by the lower item index
    seen = sp.random(n_users, n_items, density=0.05, format="csr", random_state=1)
    x = sp.csr_matrix((np.ones(seen.nnz, np.float32), seen.indices, seen.indptr), seen.shape)
    local = BatchFactors()
    local.set_factors(user_f.copy(), item_f.copy(), x)  # cold users, cold items, offsets
    local.n_users_, local.n_items_ = n_users, n_items
    cand = np.arange(0, n_items, 2)
    items, scores = local.recommend(np.arange(n_users), 20, exclude=x, candidates=cand)
    lists = [x.indices[x.indptr[u] : x.indptr[u + 1]].astype(np.int32) for u in range(n_users)]
    table = pa.table(
        {
            "user_idx": pa.array(np.arange(n_users, dtype=np.int32)),
            "excl": pa.array(lists, pa.list_(pa.int32())),
            "factors": pa.array(list(local.user_factors_), pa.list_(pa.float32())),
        }
    )
    state = {"item_factors": local.item_factors_, "item_offset": local.item_offset_}
    kernel = TopKKernel("factors", n_items, 20, cand, state)
    df = _active().createDataFrame(table).repartition(3)
    got = top_k(df, kernel).toArrow().sort_by("user_idx")
    got_items = np.stack(got.column("items").to_pylist())
    got_scores = np.stack(got.column("scores").to_pylist()).astype(np.float32)
    np.testing.assert_array_equal(got_items, items)
    np.testing.assert_array_equal(got_scores, scores)


def test_tie_hash_in_spark_equals_numpy(engine) -> None:  # noqa: ANN001
    from pyspark.sql import functions as F

    from kuairec.data.ties import tie_hash
    from kuairec.sparkengine.ties import with_tie_hash

    spark = _active()
    n = 200_000
    df = spark.range(n).select(
        (F.col("id") % 7919).cast("int").alias("u"),
        (F.col("id") * 31 % 2**31).cast("int").alias("i"),
    )
    for seed in (0, 2**32 + 5):
        got = with_tie_hash(df, seed, "u", "i").orderBy("u", "i").toArrow()
        u, i = got.column("u").to_numpy(), got.column("i").to_numpy()
        np.testing.assert_array_equal(got.column("tie").to_numpy(), tie_hash(seed, u, i))
