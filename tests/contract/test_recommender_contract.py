"""The Recommender contract: every registered model passes this suite on tiny data with
a known answer (described in ``_contract_data.py``).

Everything model-specific comes from the models' own declarations (``test_settings``,
``personalised``, ``supports_history``, ``requires``...): a new model needs nothing here.
A model whose optional package is missing is skipped with its reason.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from _contract_data import HELD_OUT, MODELS, N_ITEMS, N_USERS, make, tiny_train

from kuairec.data.dataset import TrainSet
from kuairec.errors import ConfigError, ModelError
from kuairec.models import Recommender, create_model, get_model_class
from kuairec.models.params import config_from_dict, config_to_dict


@pytest.fixture(scope="module")
def train() -> TrainSet:
    return tiny_train()


@pytest.fixture(scope="module")
def seen(train: TrainSet) -> sp.csr_matrix:
    return train.interactions.csr("ones")


_fitted: dict[str, Recommender] = {}


@pytest.fixture(params=MODELS)
def model(request: pytest.FixtureRequest, train: TrainSet) -> Recommender:
    name = request.param
    if name not in _fitted:
        _fitted[name] = make(name).fit(train)
    return _fitted[name]


def _valid_rows(items: np.ndarray, scores: np.ndarray) -> None:
    for row_items, row_scores in zip(items, scores, strict=True):
        real = row_items >= 0
        assert np.all(real[: real.sum()]), "padding -1 must come after every real item"
        assert np.all(np.isneginf(row_scores[~real]))
        assert len(set(row_items[real].tolist())) == real.sum(), "an item appears twice"
        s = row_scores[real]
        assert np.all(s[:-1] >= s[1:]), "scores must be sorted descending"
        ties = s[:-1] == s[1:]
        assert np.all(row_items[real][:-1][ties] < row_items[real][1:][ties]), "ties by index"


def test_fit_returns_self(train: TrainSet) -> None:
    for name in MODELS:
        m = make(name)
        assert not m.is_fitted
        assert m.fit(train) is m
        assert m.is_fitted and m.n_users_ == N_USERS and m.n_items_ == N_ITEMS


def test_recommend_shapes_and_dtypes(model: Recommender) -> None:
    users = np.array([0, 5, 10, 20])
    items, scores = model.recommend(users, 4)
    assert items.shape == (4, 4) and items.dtype == np.int64
    assert scores.shape == (4, 4) and scores.dtype == np.float32
    assert items.min() >= 0 and items.max() < N_ITEMS  # 13 items: no padding needed
    _valid_rows(items, scores)


def test_score_shape_dtype_and_item_subset(model: Recommender) -> None:
    users = np.array([3, 12, 20])
    full = model.score(users)
    assert full.shape == (3, N_ITEMS) and full.dtype == np.float32
    subset = np.array([11, 2, 7])
    np.testing.assert_array_equal(model.score(users, subset), full[:, subset])
    # most of the catalogue, in C order straight from the model (``a[:, cols]`` is
    # Fortran-ordered: score() would copy every block, and top_k is 25x slower on it)
    most = np.array([11, 2, 7, 0, 1, 3, 4, 5, 12])
    block = model._score(users, most)
    assert np.asarray(block).flags.c_contiguous, type(model).__name__
    np.testing.assert_array_equal(model.score(users, most), full[:, most])


def test_excluded_items_never_returned(model: Recommender, seen: sp.csr_matrix) -> None:
    users = np.arange(N_USERS)
    items, _ = model.recommend(users, N_ITEMS, exclude=seen[users])
    for u in users:
        returned = set(items[u][items[u] >= 0].tolist())
        assert returned.isdisjoint(seen[u].indices.tolist())
        assert len(returned) == N_ITEMS - seen[u].nnz  # everything else is returned


def test_exclude_rows_follow_requested_users(model: Recommender) -> None:
    users = np.array([10, 0])  # row 0 of exclude belongs to user 10
    excl = sp.csr_matrix(([1.0, 1.0], ([0, 1], [3, 7])), shape=(2, N_ITEMS))
    items, _ = model.recommend(users, N_ITEMS, exclude=excl)
    assert 3 not in items[0] and 7 in items[0]
    assert 7 not in items[1] and 3 in items[1]


def test_candidates_respected_and_padding(model: Recommender, seen: sp.csr_matrix) -> None:
    cand = np.array([9, 2, 4, 12])
    items, scores = model.recommend(np.array([0, 10]), 6, exclude=seen[[0, 10]], candidates=cand)
    # user 0 saw 2 and 9 (its out-group item is 5 + 0 % 5 = 5, so 9 is unseen): 4, 9, 12
    assert sorted(items[0][items[0] >= 0].tolist()) == [4, 9, 12]
    # user 10 saw 5..8 and 0 (10 % 5 = 0): 2, 4, 9, 12 remain
    assert sorted(items[1][items[1] >= 0].tolist()) == [2, 4, 9, 12]
    assert items.shape == (2, 4)  # width capped at the 4 candidates, not k = 6
    assert (items[0] == -1).sum() == 1 and (items[1] == -1).sum() == 0
    assert np.all(np.isneginf(scores[items == -1]))
    _valid_rows(items, scores)


def test_k_larger_than_items_is_capped_at_the_candidates(model: Recommender) -> None:
    items, scores = model.recommend(np.array([1]), N_ITEMS + 3)
    assert items.shape == (1, N_ITEMS)  # every item, nothing allocated beyond them
    assert sorted(items[0].tolist()) == list(range(N_ITEMS))
    items, _ = model.recommend(np.array([1]), 10**12, candidates=np.array([2, 5]))
    assert items.shape == (1, 2) and sorted(items[0].tolist()) == [2, 5]


def test_deterministic_and_batch_independent(model: Recommender, seen: sp.csr_matrix) -> None:
    users = np.arange(N_USERS)
    a = model.recommend(users, 5, exclude=seen, batch_size=1024)
    c = model.recommend(users, 5, exclude=seen, batch_size=1024)
    np.testing.assert_array_equal(a[0], c[0])
    np.testing.assert_array_equal(a[1], c[1])
    # another batch size may round scores differently in the last bit (BLAS kernels
    # depend on the batch shape): items may swap only among near-equal scores
    b = model.recommend(users, 5, exclude=seen, batch_size=4)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-6)
    for ia, sa, ib, sb in zip(a[0], a[1], b[0], b[1], strict=True):
        score_a = dict(zip(ia.tolist(), sa, strict=True))
        score_b = dict(zip(ib.tolist(), sb, strict=True))
        for item in set(score_a) ^ set(score_b):  # only at a near-tie on the k-th score
            assert np.isclose(score_a.get(item, score_b.get(item)), sa[-1], rtol=1e-5)
        for item in set(score_a) & set(score_b):
            assert np.isclose(score_a[item], score_b[item], rtol=1e-5, atol=1e-6)
    _valid_rows(*a)


def test_cold_user_gets_k_items(model: Recommender) -> None:
    items, scores = model.recommend(np.array([20]), 5)
    assert (items >= 0).all() and np.isfinite(scores).all()


@pytest.mark.parametrize("name", MODELS)
def test_known_answer_held_out_item_first(name: str, train: TrainSet, seen: sp.csr_matrix) -> None:
    if not get_model_class(name).personalised:
        pytest.skip(f"{name} is not personalised: the same list for everyone")
    m = make(name).fit(train)
    users = np.array(list(HELD_OUT))
    items, _ = m.recommend(users, 1, exclude=seen[users])
    assert items[:, 0].tolist() == list(HELD_OUT.values())


def test_save_load_identical(model: Recommender, tmp_path, seen: sp.csr_matrix, train) -> None:
    path = model.save(tmp_path / "m")
    meta = json.loads((path / "model.json").read_text())
    assert meta["name"] == model.name and meta["format_version"] == 1
    assert meta["fingerprint"] == train.fingerprint()
    assert (meta["n_users"], meta["n_items"]) == (N_USERS, N_ITEMS)
    loaded = Recommender.load(path, expected_fingerprint=train.fingerprint())
    assert type(loaded) is type(model) and loaded.config == model.config
    users = np.arange(N_USERS)
    got = loaded.recommend(users, 6, exclude=seen)
    want = model.recommend(users, 6, exclude=seen)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_load_refuses_wrong_fingerprint_and_missing_weights(model: Recommender, tmp_path) -> None:
    path = model.save(tmp_path / "m")
    with pytest.raises(ModelError, match="trained on another dataset"):
        Recommender.load(path, expected_fingerprint="0000-1111")
    (path / "weights.npz").unlink()
    with pytest.raises(ModelError, match="weights.npz"):
        Recommender.load(path)


def test_config_round_trips_through_json(model: Recommender) -> None:
    d = config_to_dict(model.config)
    assert all(isinstance(v, str | int | float | bool | list | dict) for v in d.values())
    again = config_from_dict(type(model), json.loads(json.dumps(d)))
    assert again == model.config


def test_bad_k_and_unknown_config_key(model: Recommender) -> None:
    for k in (0, -3):
        with pytest.raises(ConfigError, match="'k'"):
            model.recommend(np.array([0]), k)
    with pytest.raises(ConfigError, match="no_such_param"):
        create_model(model.name, {"no_such_param": 1})


def test_unknown_model_name_lists_known_names() -> None:
    with pytest.raises(ConfigError, match="popularity"):
        get_model_class("alss")


def test_predict_contract(model: Recommender) -> None:
    users, items = np.array([0, 10, 20]), np.array([4, 4, 12])
    if not model.predicts_ratings:
        with pytest.raises(ModelError, match="does not predict"):
            model.predict(users, items)
        return
    pred = model.predict(users, items)
    assert pred.shape == (3,) and pred.dtype == np.float32


def test_models_using_the_truth_refuse_to_fit_without_it(train: TrainSet) -> None:
    for name in MODELS:
        if get_model_class(name).uses_truth:
            with pytest.raises(ModelError, match="truth"):
                make(name, truth=None).fit(train)


def test_declarations_are_consistent() -> None:
    for name in MODELS:
        cls = get_model_class(name)
        config_from_dict(cls, dict(cls.test_settings))  # test settings are valid settings
        defaults = config_to_dict(cls.Config())
        for key, space in cls.search_space.items():
            assert key in defaults, f"{name}: search_space names unknown field {key!r}"
            assert space.kind in ("int", "float", "choice")
        if cls.tune_in_run:
            assert cls.search_space, f"{name}: tuned in run without a search space"
        if not cls.supports_history:
            assert cls.history_reason, f"{name}: says it cannot score histories but not why"


# the config field that sizes each model's saved arrays, and a value that disagrees
SIZING = {"als": ("factors", 7), "bpr": ("factors", 7), "spark_als": ("factors", 7),
          "autoencoder": ("hidden_dims", [7]), "autoencoder_seed_config": ("hidden_dims", [7]),
          "autoencoder_vae": ("hidden_dims", [7]), "two_tower": ("dim", 7),
          "two_tower_bce": ("dim", 7)}  # fmt: skip


def _edit_weights(path, change) -> None:
    with np.load(path / "weights.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    np.savez(path / "weights.npz", **arrays)


def _edit_meta(path, change) -> None:
    meta = json.loads((path / "model.json").read_text())
    change(meta)
    (path / "model.json").write_text(json.dumps(meta))


def test_load_refuses_non_finite_weights_naming_file_and_array(model: Recommender, tmp_path):
    """NaN weights used to load and answer every request with an empty list."""
    path = model.save(tmp_path / "m")
    with np.load(path / "weights.npz", allow_pickle=False) as npz:
        floats = [k for k in npz.files if npz[k].dtype.kind == "f" and npz[k].size]
    if not floats:
        pytest.skip(f"{model.name} saves no float array")

    def poison(arrays):
        array = arrays[floats[0]]
        array[(0,) * array.ndim] = np.nan  # in place, whatever the memory order

    _edit_weights(path, poison)
    with pytest.raises(ModelError) as info:
        Recommender.load(path)
    message = str(info.value)
    assert str(path / "weights.npz") in message and repr(floats[0]) in message
    assert "non-finite" in message


def test_load_refuses_a_model_json_that_disagrees_with_the_weights(model, tmp_path) -> None:
    """A model.json whose sizes (n_items, or the config's factors) disagree with the
    arrays used to load and serve."""
    path = model.save(tmp_path / "m")
    with np.load(path / "weights.npz", allow_pickle=False) as npz:
        if not npz.files:
            pytest.skip(f"{model.name} saves no array")
    _edit_meta(path, lambda meta: meta.update(n_items=meta["n_items"] + 1))
    with pytest.raises(ModelError, match=r"weights\.npz"):
        Recommender.load(path)
    if model.name in SIZING:
        path = model.save(tmp_path / "m2")
        field, value = SIZING[model.name]
        _edit_meta(path, lambda meta: meta["config"].update({field: value}))
        with pytest.raises(ModelError, match=r"weights\.npz.*(shape|fit the config)"):
            Recommender.load(path)
