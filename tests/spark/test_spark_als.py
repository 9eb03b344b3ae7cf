"""spark_als: the parameter mapping to als, Spark's normal equations, fold-in, saved models
without Spark, errors, and NDCG@10 agreement with als on the default synthetic data."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec.data.dataset import IdMap, Interactions, TrainSet
from kuairec.errors import ConfigError, KuaiRecError, ModelError
from kuairec.models import create_model
from kuairec.models.factors import solve_users
from kuairec.models.implicit_mf import ALSConfig, ALSRecommender
from kuairec.models.spark_als import (
    SHARED_WITH_ALS,
    SparkALSConfig,
    SparkALSRecommender,
    from_als_params,
    spark_reg_param,
)

pytestmark = pytest.mark.spark

SETTINGS = dict(SparkALSRecommender.test_settings)


def structured_train(seed: int = 0, n_users: int = 160, n_items: int = 70) -> TrainSet:
    """Two taste groups, ~35% of the pairs watched, watch_ratio 0.3-2.6."""
    rng = np.random.default_rng(seed)
    group_u, group_i = rng.integers(0, 2, n_users), rng.integers(0, 2, n_items)
    p = 1 / (1 + np.exp(-(1.5 * (group_u[:, None] == group_i[None, :]) - 0.7)))
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.35)
    wr = np.where(rng.random(users.size) < p[users, items], 1.6, 0.4) * rng.uniform(
        0.7, 1.6, users.size
    )
    inter = Interactions.from_log(users, items, wr, None, (n_users, n_items))
    return TrainSet(inter, IdMap(np.arange(n_users)), IdMap(np.arange(n_items)))


# ---------------------------------------------------------------------- without Spark
def test_defaults_and_search_space_are_als_s() -> None:
    spark, als = SparkALSConfig(), ALSConfig()
    for key in SHARED_WITH_ALS:
        assert getattr(spark, key) == getattr(als, key), key
    assert SparkALSRecommender.search_space == ALSRecommender.search_space
    assert not SparkALSRecommender.tune_in_run
    assert SparkALSRecommender.requires == ("pyspark",) and SparkALSRecommender.extra == "spark"


def test_from_als_params_carries_the_shared_fields_over() -> None:
    tuned = {"factors": 64, "regularization": 0.7, "alpha": 9.0, "threshold": 0.0}
    assert from_als_params(tuned) == tuned
    full = dataclasses.asdict(ALSConfig(factors=48))
    mapped = from_als_params(full)
    assert set(mapped) == set(SHARED_WITH_ALS) and mapped["factors"] == 48
    create_model("spark_als", mapped)  # valid spark_als parameters
    with pytest.raises(ConfigError, match="learning_rate"):
        from_als_params({"learning_rate": 0.1})


def test_reg_param_divides_by_the_typical_count() -> None:
    # users with 1, 2, 3 ratings; items with 3, 2, 1
    x = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=np.float32))
    assert spark_reg_param(2.0, x, "user_mean") == pytest.approx(2.0 / 2.0)
    assert spark_reg_param(2.0, x, "geometric") == pytest.approx(2.0 / np.sqrt(2.0 * 2.0))
    assert spark_reg_param(2.0, x, "pooled") == pytest.approx(2.0 / (12 / 6))
    with pytest.raises(ConfigError, match="geometric"):
        spark_reg_param(1.0, x, "nope")


def test_config_checks() -> None:
    with pytest.raises(ConfigError, match="storage_level"):
        create_model("spark_als", {"storage_level": "OFF_HEAP_PLEASE"})
    with pytest.raises(ConfigError, match="driver_memory"):
        create_model("spark_als", {"driver_memory": "lots"})
    with pytest.raises(ConfigError, match="master"):
        create_model("spark_als", {"master": " "})


def _hand_made(x: sp.csr_matrix, reg_param: float, rank: int = 3) -> SparkALSRecommender:
    rng = np.random.default_rng(1)
    model = SparkALSRecommender()
    model.set_factors(rng.normal(size=(x.shape[0], rank)), rng.normal(size=(x.shape[1], rank)), x)
    model.reg_param_ = reg_param
    return model


def test_fold_in_uses_spark_s_regularisation() -> None:
    x = sp.random(6, 8, density=0.6, format="csr", random_state=2, dtype=np.float32)
    model = _hand_made(x, reg_param=0.3)
    history = sp.csr_matrix(
        ([1.5, 3.0, 0.2, 2.0], ([0, 0, 0, 1], [4, 7, 2, 1])), shape=(2, 8), dtype=np.float32
    )
    got = model.fold_in(history)
    c = model.config
    y = model.item_factors_.astype(np.float64)
    for row, pairs in ((0, {4: 1.5, 7: 3.0}), (1, {1: 2.0})):  # 0.2 < threshold 1.0: dropped
        a = y.T @ y + len(pairs) * 0.3 * np.eye(3)  # ALS-WR: n * regParam
        b = np.zeros(3)
        for i, wr in pairs.items():
            conf = 1 + c.alpha * wr
            a += (conf - 1) * np.outer(y[i], y[i])
            b += conf * y[i]
        np.testing.assert_allclose(got[row], np.linalg.solve(a, b), rtol=1e-4, atol=1e-5)
    empty = sp.csr_matrix((1, 8), dtype=np.float32)
    np.testing.assert_array_equal(model.fold_in(empty)[0], model.default_user_)


def test_without_java_fit_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from kuairec.models import spark_als, spark_session

    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    problem = spark_session.java_problem()
    assert problem and "\n" not in problem and "openjdk-17" in problem
    spark_als._java_problem.cache_clear()
    try:
        with pytest.raises(ModelError, match="Java") as info:
            create_model("spark_als", SETTINGS).fit(structured_train())
        assert "\n" not in str(info.value)
    finally:
        spark_als._java_problem.cache_clear()


def test_a_cluster_master_needs_shared_storage() -> None:
    model = create_model("spark_als", {**SETTINGS, "master": "spark://192.0.2.1:7077"})
    with pytest.raises(ConfigError, match="data_dir"):  # before any Spark start
        model.fit(structured_train())


# ---------------------------------------------------------------------- with Spark
@pytest.fixture(scope="module")
def structured() -> TrainSet:
    return structured_train()


@pytest.fixture(scope="module")
def fitted(java: None, structured: TrainSet) -> SparkALSRecommender:
    return create_model("spark_als", {**SETTINGS, "factors": 6, "iterations": 4}).fit(structured)


def test_user_factors_solve_the_mapped_normal_equations(
    fitted: SparkALSRecommender, structured: TrainSet
) -> None:
    """Spark's last half-sweep solves every user against the final item factors with
    confidence 1 + alpha * f(wr) and regularisation n_u * regParam: redo it in numpy."""
    from kuairec.models.matrices import weighted_matrix

    c = fitted.config
    x = weighted_matrix(structured.interactions, "linear", np.inf, c.threshold)
    conf = x.copy()
    conf.data = fitted.confidence(x.data)
    counts = np.diff(x.indptr)
    assert fitted.reg_param_ == pytest.approx(spark_reg_param(c.regularization, x))
    for u in np.flatnonzero(counts > 0)[:40]:
        want = solve_users(
            fitted.item_factors_, conf[[u]], counts[u] * fitted.reg_param_, fitted.default_user_
        )[0]
        np.testing.assert_allclose(fitted.user_factors_[u], want, rtol=2e-3, atol=2e-4)


def test_a_fit_on_javas_blas_says_so_in_its_row(fitted: SparkALSRecommender) -> None:
    """The fit records netlib's BLAS class: JNIBLAS exactly when the system has a
    libblas.so.3 (native_blas='auto'), and only a fit without it carries a remark that
    names the class and what to install."""
    from kuairec.models.spark_session import native_blas_library

    native = native_blas_library("auto") is not None
    assert (fitted.fit_info_["blas"] == "JNIBLAS") == native
    if native:
        assert fitted.fit_remark_ is None
    else:
        assert fitted.fit_info_["blas"] in fitted.fit_remark_
        assert "no system libblas.so.3" in fitted.fit_remark_
        assert "libopenblas0-pthread" in fitted.fit_remark_


def test_the_java_blas_remarks_by_choice() -> None:
    from kuairec.models.spark_als import java_blas_remark

    assert "as native_blas='java' asks" in java_blas_remark("VectorBLAS", "java")
    assert "libfoo.so did not load" in java_blas_remark("VectorBLAS", "libfoo.so")


def test_own_history_folds_back_to_the_training_factors(
    fitted: SparkALSRecommender, structured: TrainSet
) -> None:
    history = structured.interactions.csr("watch_ratio_mean")
    kept = np.diff(fitted.fold_in_confidence(history).indptr) > 0
    np.testing.assert_allclose(
        fitted.fold_in(history[kept]), fitted.user_factors_[kept], rtol=2e-3, atol=2e-4
    )


def test_saved_model_serves_without_spark(
    fitted: SparkALSRecommender, structured: TrainSet, tmp_path
) -> None:
    path = fitted.save(tmp_path / "spark_als")
    users = np.arange(20)
    want = fitted.recommend(users, 5)[0]
    code = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["pyspark"] = None  # any import of pyspark now fails
        import numpy as np
        from kuairec.models import Recommender
        m = Recommender.load({str(path)!r})
        items, _ = m.recommend(np.arange(20), 5)
        assert "py4j" not in sys.modules
        print(json.dumps({{"items": items.tolist(), "reg": m.reg_param_}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_array_equal(np.array(got["items"]), want)
    assert got["reg"] == pytest.approx(fitted.reg_param_)


@pytest.mark.slow
def test_spark_that_cannot_start_is_one_kuairec_error(java: None, tmp_path) -> None:
    """In a subprocess: a second SparkContext cannot share this process's JVM."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, "tests/spark")
        from test_spark_als import SETTINGS, structured_train
        from kuairec.errors import KuaiRecError
        from kuairec.models import create_model
        bad = {{**SETTINGS, "master": "nonsense[7]", "data_dir": {str(tmp_path)!r}}}
        try:
            create_model("spark_als", bad).fit(structured_train())
        except KuaiRecError as exc:
            print("ERROR", type(exc).__name__, str(exc))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    line = [x for x in out.stdout.splitlines() if x.startswith("ERROR")]
    assert line, (out.stdout + out.stderr)[-3000:]
    assert line[0].startswith("ERROR SparkUnavailable Spark could not start (nonsense[7])")
    assert issubclass(ModelError, KuaiRecError)


@pytest.mark.slow
def test_ndcg_agrees_with_als_on_the_default_synthetic_data(java: None) -> None:
    """Mapped defaults, seeds 0-2 (data and model): mean NDCG@10 within 0.02 of als."""
    from kuairec.data.default import ensure_synthetic
    from kuairec.data.load import load_dataset
    from kuairec.evaluation.evaluate import evaluate
    from kuairec.evaluation.protocols import default_protocol
    from kuairec.models.registry import config_to_dict

    def ndcg(model, train, test) -> float:  # noqa: ANN001
        items, _ = model.recommend(test.users, 10, exclude=test.exclude, candidates=test.candidates)
        res = evaluate(items, test, train, ks=(10,), labels=("wr>2",), default_label="wr>2")
        return res.to_json()["metrics"]["ndcg@10"]

    diffs = []
    for seed in (0, 1, 2):
        train, test = default_protocol(load_dataset(ensure_synthetic(0.2, seed, progress=False)))
        als = create_model("als", {"seed": seed}).fit(train)
        spark = create_model("spark_als", from_als_params(config_to_dict(als.config)))
        diffs.append(ndcg(spark.fit(train), train, test) - ndcg(als, train, test))
    assert abs(np.mean(diffs)) < 0.02, diffs
    assert max(abs(d) for d in diffs) < 0.04, diffs  # als alone: seed sd 0.005-0.007
