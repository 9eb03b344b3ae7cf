"""The contract's newer parts, for every registered model: scoring new users' histories
(fold-in), fitting with a validation split, feature matrices, optional packages.

Fold-in is checked on a structured random data set large enough for top-10 lists to
mean something (240 users x 90 items, two taste groups): scoring a user's own training
history must give the top-10 that scoring the user by index gives; identical for models
that score from the history vector, at least 9 of 10 in common on average for factor
models (their training solver is approximate, the fold-in solve exact).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from _contract_data import MODELS, make, tiny_train

from kuairec.data.dataset import IdMap, Interactions, TrainSet
from kuairec.errors import ConfigError, ModelError
from kuairec.evaluation.validation import validation_split
from kuairec.models import get_model_class
from kuairec.models.factors import FactorModel

N_U, N_I = 240, 90


def _structured_train(seed: int = 0) -> TrainSet:
    rng = np.random.default_rng(seed)
    group_u = rng.integers(0, 2, N_U)
    group_i = rng.integers(0, 2, N_I)
    appeal = rng.normal(0, 1, N_I)
    p = 1 / (1 + np.exp(-(1.5 * (group_u[:, None] == group_i[None, :]) + appeal - 1.5)))
    watched = rng.random((N_U, N_I)) < 0.35
    users, items = np.nonzero(watched)
    wr = np.where(rng.random(users.size) < p[users, items], 1.5, 0.4) * rng.uniform(
        0.6, 1.6, users.size
    )
    inter = Interactions.from_log(users, items, wr, None, (N_U, N_I))
    return TrainSet(inter, IdMap(np.arange(N_U)), IdMap(np.arange(N_I)))


@pytest.fixture(scope="module")
def structured() -> TrainSet:
    return _structured_train()


def _history_models() -> list[str]:
    return [n for n in MODELS if get_model_class(n).supports_history and n != "random"]


@pytest.mark.parametrize("name", _history_models())
def test_own_history_gives_own_top10(name: str, structured: TrainSet) -> None:
    model = make(name).fit(structured)
    inter = structured.interactions
    history = inter.csr("watch_ratio_mean")
    kept = model_kept_rows(model, history)
    users = np.flatnonzero(kept)
    assert users.size > 100
    seen = inter.csr("ones")[users]
    by_index, _ = model.recommend(users, 10, exclude=seen)
    by_history, _ = model.recommend(history=history[users], k=10)
    if isinstance(model, FactorModel):
        common = [len(set(a) & set(b)) for a, b in zip(by_index, by_history, strict=True)]
        assert np.mean(common) >= 9.0, f"{name}: {np.mean(common):.2f} of 10 in common"
    else:
        np.testing.assert_array_equal(by_history, by_index)


def model_kept_rows(model, history: sp.csr_matrix) -> np.ndarray:
    """Users with at least one training pair the model keeps (at or above its threshold)."""
    threshold = getattr(model.config, "threshold", 0.0)
    kept = history.copy()
    kept.data = (kept.data >= threshold).astype(np.float32)
    kept.eliminate_zeros()
    return np.diff(kept.indptr) > 0


@pytest.mark.parametrize("name", MODELS)
def test_history_scoring_says_whether_it_can(name: str) -> None:
    train = tiny_train()
    model = make(name).fit(train)
    history = sp.csr_matrix(([2.0, 0.5], ([0, 0], [1, 3])), shape=(1, train.n_items))
    if not type(model).supports_history:
        with pytest.raises(ModelError, match="cannot score new users' histories: .+"):
            model.recommend(history=history, k=3)
        return
    items, scores = model.recommend(history=history, k=train.n_items)
    assert items.shape == (1, train.n_items)
    returned = items[0][items[0] >= 0].tolist()
    assert 1 not in returned and 3 not in returned  # the history's items are excluded
    assert len(returned) == train.n_items - 2
    kept, _ = model.recommend(history=history, k=train.n_items, exclude_seen=False)
    assert sorted(kept[0].tolist()) == list(range(train.n_items))
    empty = sp.csr_matrix((2, train.n_items), dtype=np.float32)
    assert model.score(history=empty).shape == (2, train.n_items)


def test_history_is_checked() -> None:
    model = make("popularity").fit(tiny_train())
    with pytest.raises(ConfigError, match="one column per item"):
        model.recommend(history=sp.csr_matrix((1, 5)), k=3)
    with pytest.raises(ConfigError, match="scipy sparse"):
        model.recommend(history=np.zeros((1, 13)), k=3)
    bad = sp.csr_matrix(([np.nan], ([0], [2])), shape=(1, 13))
    with pytest.raises(ConfigError, match="finite"):
        model.recommend(history=bad, k=3)
    with pytest.raises(ConfigError, match="not both"):
        model.recommend(np.array([0]), 3, history=sp.csr_matrix((1, 13)))


def test_als_fold_in_solves_the_normal_equations(structured: TrainSet) -> None:
    model = make("als").fit(structured)
    history = sp.csr_matrix(([1.5, 3.0, 0.2], ([0, 0, 0], [4, 7, 9])), shape=(1, N_I))
    x = model.fold_in(history)[0].astype(np.float64)
    c = model.config
    y = model.item_factors_.astype(np.float64)
    # hand-built: pairs below the threshold (0.2 < 1.0) are dropped; c = 1 + alpha * wr
    conf = {4: 1 + c.alpha * 1.5, 7: 1 + c.alpha * 3.0}
    a = y.T @ y + c.regularization * np.eye(y.shape[1])
    b = np.zeros(y.shape[1])
    for i, ci in conf.items():
        a += (ci - 1) * np.outer(y[i], y[i])
        b += ci * y[i]
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_fit_accepts_a_validation_split(name: str, structured: TrainSet) -> None:
    fit_part, valid = validation_split(tiny_train(), "random", seed=1)
    model = make(name).fit(fit_part, valid)
    assert model.is_fitted and model.n_items_ == 13
    wrong = validation_split(structured, "random")[1]
    with pytest.raises(ModelError, match=f"validation split has {N_I} items"):
        make(name).fit(fit_part, wrong)


def test_missing_optional_package_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from kuairec.models import registry
    from kuairec.models.baselines import PopularityRecommender

    class NeedsPackage(PopularityRecommender):
        name = "needs_package"
        requires = ("kuairec_no_such_package",)
        extra = "demo"

    monkeypatch.setitem(registry._MODELS, "needs_package", "x:y")
    monkeypatch.setattr(registry, "get_model_class", lambda n: NeedsPackage)
    reason = registry.missing_requirement("needs_package")
    assert reason is not None and "kuairec_no_such_package" in reason
    assert "pip install 'kuairec[demo]'" in reason
