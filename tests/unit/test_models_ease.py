"""EASE against its closed form, by hand and against a float64 reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec.data.dataset import IdMap, Interactions, TrainSet
from kuairec.errors import ConfigError
from kuairec.models import create_model
from kuairec.models import ease as ease_module
from kuairec.models.ease import ease_weights


def _train(users, items, ratios, shape) -> TrainSet:
    inter = Interactions.from_log(users, items, ratios, None, shape)
    return TrainSet(inter, IdMap(np.arange(shape[0])), IdMap(np.arange(shape[1])))


def test_ease_by_hand() -> None:
    # X = [[1, 1], [1, 0]]: G + I = [[3, 1], [1, 2]], P = [[2, -1], [-1, 3]] / 5
    # B_01 = -P_01 / P_11 = 1/3, B_10 = -P_10 / P_00 = 1/2
    m = create_model("ease", {"l2": 1.0}).fit(_train([0, 0, 1], [0, 1, 0], [1, 1, 1], (2, 2)))
    np.testing.assert_allclose(m.b_, [[0, 1 / 3], [1 / 2, 0]], rtol=1e-6)
    np.testing.assert_allclose(m.score(np.array([0, 1])), [[0.5, 1 / 3], [0, 1 / 3]], rtol=1e-6)


def test_ease_matches_float64_reference_with_weighting() -> None:
    rng = np.random.default_rng(1)
    dense = (rng.random((40, 15)) < 0.3) * rng.uniform(0.1, 8.0, (40, 15))
    u, i = np.nonzero(dense)
    m = create_model("ease", {"l2": 3.0, "weighting": "linear"}).fit(
        _train(u, i, dense[u, i], (40, 15))
    )
    x = np.minimum(dense, 5.0)
    p = np.linalg.inv(x.T @ x + 3.0 * np.eye(15))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    np.testing.assert_allclose(m.b_, b, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(m.score(np.arange(40)), x @ b, rtol=1e-3, atol=1e-4)


def test_float64_fallback_gives_the_same_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]], np.float32))
    want = ease_weights(x, 0.5)
    monkeypatch.setattr(ease_module, "_spd_inverse32", lambda a: None)
    np.testing.assert_allclose(ease_weights(x, 0.5), want, rtol=1e-5)


def test_ease_refuses_too_many_items_and_suggests_itemknn() -> None:
    with pytest.raises(ConfigError, match="30 items is above max_items=20.*'itemknn'"):
        create_model("ease", {"max_items": 20}).fit(_train([0], [0], [1.0], (2, 30)))


def test_shared_grams_compute_x_t_x_once_per_weighting_and_give_the_same_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside shared_grams() (a tuning study) fits on the same log with the same
    weighting, clip and threshold reuse X^T X; the models equal fits without sharing,
    the reused array is never overwritten, and other weightings compute their own."""
    from kuairec.models import itemknn as knn_module
    from kuairec.models import matrices

    rng = np.random.default_rng(3)
    dense = (rng.random((60, 20)) < 0.3) * rng.uniform(0.1, 8.0, (60, 20))
    u, i = np.nonzero(dense)
    train = _train(u, i, dense[u, i], (60, 20))
    knn = {"weighting": "linear", "threshold": 0.0, "neighbours": 5}
    configs = [("ease", {"l2": 3.0}), ("ease", {"l2": 30.0}), ("itemknn", knn),
               ("ease", {"l2": 10.0}), ("ease", {"l2": 3.0, "weighting": "log"})]  # fmt: skip
    alone = [create_model(n, p).fit(train) for n, p in configs]
    calls = []
    gram = matrices.item_gram

    def counted(x, *args, **kwargs):
        calls.append(x.shape)
        return gram(x, *args, **kwargs)

    for module in (matrices, ease_module, knn_module):
        monkeypatch.setattr(module, "item_gram", counted)
    neighbours, knn_grams = knn_module.cosine_neighbours, []

    def reads(x, *args, gram=None, **kwargs):
        knn_grams.append(gram)
        return neighbours(x, *args, gram=gram, **kwargs)

    monkeypatch.setattr(knn_module, "cosine_neighbours", reads)
    with matrices.shared_grams():
        shared = [create_model(n, p).fit(train) for n, p in configs]
    assert len(calls) == 2  # linear (EASE, EASE, item-kNN, EASE share it), then log
    # item-kNN only reads it: the shared array itself, not a copy, and read-only
    assert [g.flags.writeable for g in knn_grams] == [False]
    assert knn_grams[0].base is not None and knn_grams[0].base.flags.writeable
    for a, b in zip(alone, shared, strict=True):
        got, want = (b.b_, a.b_) if hasattr(a, "b_") else (b.sim_.toarray(), a.sim_.toarray())
        np.testing.assert_array_equal(got, want)
    assert matrices._SHARED.grams is None  # nothing is kept after the block


@pytest.mark.parametrize("share", [0.1, 0.9])
def test_scores_of_a_subset_of_items_are_those_columns_of_all_scores(share: float) -> None:
    """Few items: B's columns are gathered first; most items: the full product is cut
    (no per-batch copy of B). Either way the columns of the full scores, in order."""
    rng = np.random.default_rng(5)
    dense = (rng.random((50, 40)) < 0.3) * rng.uniform(0.1, 8.0, (50, 40))
    u, i = np.nonzero(dense)
    m = create_model("ease", {"l2": 3.0}).fit(_train(u, i, dense[u, i], (50, 40)))
    items = np.sort(rng.choice(40, int(share * 40), replace=False))[::-1]  # unsorted on purpose
    users = np.arange(50)
    np.testing.assert_allclose(m.score(users, items), m.score(users)[:, items], atol=1e-5)
    top, _ = m.recommend(users, 5, candidates=items)
    assert np.isin(top[top >= 0], items).all()


def test_a_gram_store_hands_the_next_study_the_matrices_of_the_last(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two studies of one run (two shared_grams blocks with one GramStore): the second
    reads from the store the matrices the first computed on the same interactions, for
    EASE (a writable Fortran-ordered copy) and item-kNN alike, and computes only what is
    new; the models equal fits without any sharing. Another interactions object with
    the same pairs never gets a stored matrix; clear() deletes the files."""
    from kuairec.models import matrices

    rng = np.random.default_rng(4)
    dense = (rng.random((50, 16)) < 0.35) * rng.uniform(0.1, 8.0, (50, 16))
    u, i = np.nonzero(dense)
    train, twin = _train(u, i, dense[u, i], (50, 16)), _train(u, i, dense[u, i], (50, 16))
    knn = {"weighting": "log", "threshold": 1.0, "neighbours": 4}
    first = [("ease", {"l2": 3.0}), ("ease", {"l2": 9.0, "weighting": "log", "threshold": 1.0})]
    second = [("itemknn", knn), ("ease", {"l2": 5.0}), ("ease", {"l2": 2.0, "threshold": 2.0})]
    alone = [create_model(n, p).fit(train) for n, p in first + second]
    calls: list[tuple[int, int]] = []
    gram = matrices.item_gram

    def counted(x, *args, **kwargs):
        calls.append(x.shape)
        return gram(x, *args, **kwargs)

    monkeypatch.setattr(matrices, "item_gram", counted)
    store = matrices.GramStore(tmp_path / "grams")
    with matrices.shared_grams(store):
        shared = [create_model(n, p).fit(train) for n, p in first]
    assert len(calls) == 2 and len(list((tmp_path / "grams").glob("*.npy"))) == 2
    loaded = store.get(("log", 5.0, 1.0), train.interactions)
    assert loaded is not None and loaded.flags.f_contiguous and loaded.flags.writeable
    with matrices.shared_grams(store):
        shared += [create_model(n, p).fit(train) for n, p in second]
    assert len(calls) == 3  # only (linear, threshold 2) is new
    for a, b in zip(alone, shared, strict=True):
        got, want = (b.b_, a.b_) if hasattr(a, "b_") else (b.sim_.toarray(), a.sim_.toarray())
        np.testing.assert_array_equal(got, want)
    with matrices.shared_grams(store):
        create_model("ease", {"l2": 3.0}).fit(twin)  # equal pairs, another object
    assert len(calls) == 4
    assert matrices._SHARED.store is None  # nothing is kept after the block
    store.clear()
    assert list((tmp_path / "grams").iterdir()) == []


def test_a_gram_store_that_cannot_write_or_read_only_costs_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A store saves time and nothing else: a full disk keeps nothing (no half file
    left) and the fit goes on; a saved file damaged since is computed again; the file of
    interactions that no longer exist is deleted at the next save."""
    import errno
    import gc

    from kuairec.models import matrices

    rng = np.random.default_rng(6)
    dense = (rng.random((40, 12)) < 0.4) * rng.uniform(0.1, 8.0, (40, 12))
    u, i = np.nonzero(dense)
    train = _train(u, i, dense[u, i], (40, 12))
    want = create_model("ease", {"l2": 3.0}).fit(train).b_
    store = matrices.GramStore(tmp_path / "grams")
    save = np.save

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matrices.np, "save", full)
    with matrices.shared_grams(store):
        got = create_model("ease", {"l2": 3.0}).fit(train).b_
    np.testing.assert_array_equal(got, want)
    assert list((tmp_path / "grams").iterdir()) == []  # nothing kept, no .tmp left
    monkeypatch.setattr(matrices.np, "save", save)
    with matrices.shared_grams(store):
        create_model("ease", {"l2": 3.0}).fit(train)
    (saved,) = (tmp_path / "grams").iterdir()
    saved.write_bytes(saved.read_bytes()[:100])  # damaged since
    with matrices.shared_grams(store):
        got = create_model("ease", {"l2": 3.0}).fit(train).b_
    np.testing.assert_array_equal(got, want)
    assert not saved.exists() and len(list((tmp_path / "grams").iterdir())) == 1  # anew
    assert store.get(("linear", 5.0, 0.0), train.interactions) is not None
    other = _train(u, i, dense[u, i], (40, 12))
    with matrices.shared_grams(store):
        create_model("ease", {"l2": 3.0, "threshold": 1.0}).fit(other)
    assert len(list((tmp_path / "grams").iterdir())) == 2
    del train, other
    gc.collect()
    twin = _train(u, i, dense[u, i], (40, 12))
    with matrices.shared_grams(store):
        create_model("ease", {"l2": 3.0}).fit(twin)
    assert len(list((tmp_path / "grams").iterdir())) == 1  # only twin's
