"""The cold-items protocol (kuairec.evaluation.cold) and the content baseline
popularity_features, checked against independent computations and a hand-made case."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec.data.dataset import FeatureMatrix, IdMap, Interactions, TrainSet
from kuairec.errors import ConfigError
from kuairec.evaluation.cold import cold_items_protocol, keep_columns
from kuairec.evaluation.protocols import default_protocol
from kuairec.models import create_model, get_model_class


@pytest.fixture(scope="module")
def split(small_dataset):
    return default_protocol(small_dataset), cold_items_protocol(small_dataset, 0.1, seed=4)


def _pairs(inter: Interactions) -> set[tuple[int, int]]:
    return set(zip(inter.row_users().tolist(), inter.indices.tolist(), strict=True))


def test_cold_videos_have_no_training_pairs_and_the_rest_is_kept(split) -> None:
    (full_train, full_test), (train, test) = split
    cold = set(test.candidates.tolist())
    assert len(cold) == round(0.1 * full_test.candidates.size)
    assert cold <= set(full_test.candidates.tolist())  # small-matrix videos only
    kept = {p for p in _pairs(full_train.interactions) if p[1] not in cold}
    assert _pairs(train.interactions) == kept
    assert train.interactions.item_counts()[test.candidates].sum() == 0


def test_cold_daily_statistics_are_blanked_and_content_kept(split) -> None:
    (full_train, _), (train, test) = split
    cols = train.item_x.columns
    assert cols == full_train.item_x.columns
    daily = np.array([c.startswith("daily_") for c in cols])
    cold = test.candidates
    got, was = train.item_x.values, full_train.item_x.values
    assert (was[np.ix_(cold, daily)] != 0).any()  # there was something to blank
    assert (got[cold, cols.index("daily_missing")] == 1).all()
    other_daily = daily & (np.array(cols) != "daily_missing")
    assert (got[np.ix_(cold, other_daily)] == 0).all()
    np.testing.assert_array_equal(got[:, ~daily], was[:, ~daily])  # tags, captions, duration
    warm = np.setdiff1d(np.arange(train.n_items), cold)
    np.testing.assert_array_equal(got[warm], was[warm])


def test_candidates_are_the_cold_videos_and_relevance_their_small_pairs(
    small_dataset, split
) -> None:
    (_, full_test), (train, test) = split
    small = small_dataset.small
    on_cold = np.isin(small.indices, test.candidates)
    want = {
        (int(u), int(i)): float(w)
        for u, i, w in zip(
            small.row_users()[on_cold], small.indices[on_cold], small.watch_ratio_mean[on_cold],
            strict=True,
        )
    }  # fmt: skip
    rel = test.relevance.tocoo()
    got = {
        (int(test.users[r]), int(c)): float(w)
        for r, c, w in zip(rel.row, rel.col, rel.data, strict=True)
    }
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=1e-6)
    assert set(test.users.tolist()) == {u for u, _ in want}
    assert test.truth is not None and test.truth.nnz == test.relevance.nnz
    assert test.exclude[:, test.candidates].nnz == 0


def test_cold_videos_are_seeded(small_dataset) -> None:
    a = cold_items_protocol(small_dataset, 0.1, seed=4)[1].candidates
    b = cold_items_protocol(small_dataset, 0.1, seed=4)[1].candidates
    c = cold_items_protocol(small_dataset, 0.1, seed=5)[1].candidates
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ConfigError, match="fraction"):
        cold_items_protocol(small_dataset, 1.5)


def test_keep_columns_keeps_explicit_zeros() -> None:
    m = sp.csr_matrix((np.array([0.0, 2.0, 3.0]), np.array([0, 1, 2]), np.array([0, 2, 3])), (2, 3))
    out = keep_columns(m, np.array([True, False, True]))
    assert out.nnz == 2 and out.shape == (2, 3)
    assert out.indices.tolist() == [0, 2] and out.data.tolist() == [0.0, 3.0]


# ---------------------------------------------------------------- popularity_features


def _content_train() -> TrainSet:
    """Videos 0-3 warm, 4 and 5 cold. Keys: tag=0 on 0, 1, 4; tag=1 on 2, 3, 5 and 4;
    caption_first_level=7 on 0 and 2. Positive rates (watch_ratio >= 2): video 0: 1/2,
    1: 1/1, 2: 0/2, 3: 1/1."""
    pairs = [(0, 0, 2.5), (1, 0, 0.5), (0, 1, 3.0), (0, 2, 1.0), (1, 2, 0.1), (1, 3, 2.0)]
    u, i, w = (np.array(x) for x in zip(*pairs, strict=True))
    inter = Interactions.from_log(u, i, w, None, (2, 6))
    x = np.zeros((6, 4), np.float32)  # tag=0, tag=1, caption_first_level=7, duration
    x[[0, 1, 4], 0] = 1
    x[[2, 3, 4, 5], 1] = 1
    x[[0, 2], 2] = 1
    x[:, 3] = np.arange(6)  # not a key
    cols = ("tag=0", "tag=1", "caption_first_level=7", "duration_log1p_s")
    return TrainSet(inter, IdMap(np.arange(2)), IdMap(np.arange(6)), item_x=FeatureMatrix(x, cols))


def test_popularity_features_by_hand() -> None:
    model = create_model("popularity_features", {"prior": 2.0}).fit(_content_train())
    mu = (0.5 + 1 + 0 + 1) / 4  # mean of the warm videos' rates
    tag0 = (0.5 + 1 + 2 * mu) / (2 + 2)  # warm videos 0, 1
    tag1 = (0 + 1 + 2 * mu) / (2 + 2)  # warm videos 2, 3
    cap7 = (0.5 + 0 + 2 * mu) / (2 + 2)  # warm videos 0, 2
    want = [(tag0 + cap7) / 2, tag0, (tag1 + cap7) / 2, tag1, (tag0 + tag1) / 2, tag1]
    np.testing.assert_allclose(model.score(np.array([0]))[0], want, rtol=1e-6)
    np.testing.assert_array_equal(model.score(np.array([1])), model.score(np.array([0])))


def test_popularity_features_without_keys_scores_the_global_mean() -> None:
    train = _content_train()
    train.item_x = FeatureMatrix(np.ones((6, 1)), ("duration_log1p_s",))
    model = create_model("popularity_features", {"target": "mean_watch_ratio"}).fit(train)
    mean = np.mean([(2.5 + 0.5) / 2, 3.0, (1.0 + 0.1) / 2, 2.0])
    np.testing.assert_allclose(model.score(np.array([0]))[0], np.full(6, mean), rtol=1e-6)


def test_cold_items_declarations() -> None:
    assert get_model_class("popularity_features").scores_cold_items
    assert not get_model_class("ease").scores_cold_items
    assert get_model_class("ease").cold_items_reason


def test_cold_items_section(small_dataset) -> None:
    from kuairec.display.progress import Progress
    from kuairec.pipeline.config import RunConfig
    from kuairec.pipeline.experiment import KUAIREC_PROTOCOL, Experiment, protocol_info
    from kuairec.pipeline.run import run_models

    cfg = RunConfig(seed=4, n_bootstrap=50, ks=[10], labels=["wr>2"], validity=False, tune=False)
    train, test = default_protocol(small_dataset)
    info = protocol_info(cfg, test, name=KUAIREC_PROTOCOL, train="big", test_text="small",
                         data=None)  # fmt: skip
    exp = Experiment(train, test, info, small_dataset)
    job = run_models(cfg, exp, ["popularity_features", "ease", "random"], Progress(False))
    value = job.result.sections["cold_items"]
    assert list(value.models) == ["popularity_features"]
    assert set(value.cannot_score) == {"ease", "random"}
    assert value.cannot_score["ease"] == get_model_class("ease").cold_items_reason
    entry = value.models["popularity_features"]
    lo, hi = entry.ci["ndcg@10"]
    assert lo <= entry.metrics["ndcg@10"] <= hi
    cold = cold_items_protocol(small_dataset, 0.1, seed=4)[1]
    assert value.protocol.n_cold_videos == cold.candidates.size
    assert value.protocol.n_test_users == cold.users.size
    assert value.pairs == []  # one model: no pair to compare
