"""``similar_items(items, k)``: the model's own item-item similarity, for every model.

Models with one (factor models: cosine of item factors; EASE: its weights B[i]; item-kNN:
its kept neighbours) return sorted, self-free, -1/-inf padded lists, and on the two-group
data the neighbours of an in-group item are in its group; the others raise ModelError.
"""

from __future__ import annotations

import numpy as np
import pytest
from _contract_data import MODELS, N_ITEMS, make, tiny_train

from kuairec.errors import ConfigError, ModelError
from kuairec.models.ease import EASERecommender, sparsify_weights
from kuairec.models.factors import FactorModel

SIMILARITY = ("ease", "itemknn", "two_stage")  # besides every FactorModel; two_stage: its
# first retriever's (item-kNN, in its test settings)


def _has_similarity(model) -> bool:
    return isinstance(model, FactorModel) or model.name in SIMILARITY


@pytest.fixture(scope="module")
def train():
    return tiny_train()


@pytest.mark.parametrize("name", MODELS)
def test_similar_items_shape_order_and_padding(name: str, train) -> None:
    model = make(name).fit(train)
    if not _has_similarity(model):
        with pytest.raises(ModelError, match="no item-item similarity"):
            model.similar_items([0], 5)
        return
    items, scores = model.similar_items(np.array([0, 7, 12]), 5)
    assert items.shape == scores.shape == (3, 5)
    assert items.dtype == np.int64 and scores.dtype == np.float32
    for row, item in zip(items, [0, 7, 12], strict=True):
        assert item not in row.tolist()
    np.testing.assert_array_equal(scores, -np.sort(-scores, axis=1))
    assert ((items == -1) == np.isneginf(scores)).all()
    wide, _ = model.similar_items([0], 10**6)
    assert wide.shape == (1, N_ITEMS - 1)


@pytest.mark.parametrize("name", MODELS)
def test_an_items_neighbours_do_not_depend_on_the_items_asked_with_it(name: str, train) -> None:
    """Asked alone or with every other video, a video gets the same neighbours and the
    same scores (a float32 product of item factors rounds by its shape on some CPUs)."""
    model = make(name).fit(train)
    if not _has_similarity(model):
        pytest.skip(f"{name} has no item-item similarity")
    every = np.arange(N_ITEMS)
    items, scores = model.similar_items(every, N_ITEMS)
    for item in every:
        alone, alone_scores = model.similar_items([item], N_ITEMS)
        np.testing.assert_array_equal(alone[0], items[item])
        np.testing.assert_array_equal(alone_scores[0], scores[item])


@pytest.mark.parametrize("name", ["als", "bpr", "ease", "itemknn"])
def test_neighbours_of_an_in_group_item_are_in_its_group(name: str, train) -> None:
    model = make(name).fit(train)
    items, _ = model.similar_items([1, 6], 3)
    assert set(items[0].tolist()) <= {0, 2, 3, 4}, items[0]
    assert set(items[1].tolist()) <= {5, 7, 8, 9}, items[1]


@pytest.mark.parametrize("name", ["als", "itemknn"])
def test_a_cold_item_has_no_similar_items(name: str, train) -> None:
    model = make(name).fit(train)
    items, scores = model.similar_items([12], 4)  # item 12 has no training pairs
    assert (items == -1).all() and np.isneginf(scores).all()


def test_bad_arguments(train) -> None:
    model = make("itemknn").fit(train)
    with pytest.raises(ModelError, match="out of range"):
        model.similar_items([N_ITEMS], 3)
    with pytest.raises(ConfigError, match="'k'"):
        model.similar_items([0], 0)


def test_sparsified_ease_keeps_top_n_per_row_and_scores_alike(train) -> None:
    dense = make("ease").fit(train)
    sparse = dense.sparsified(3)
    assert isinstance(sparse, EASERecommender) and sparse.is_sparsified
    assert not dense.is_sparsified
    b = sparsify_weights(dense.b_, 3)
    assert np.diff(b.indptr).max() <= 3 and (b.data > 0).all()
    for row in range(N_ITEMS):
        kept = b.indices[b.indptr[row] : b.indptr[row + 1]]
        top = np.argsort(-dense.b_[row], kind="stable")[: kept.size]
        assert set(kept.tolist()) == set(top.tolist())
    full = dense.sparsified(N_ITEMS)
    positive = np.where(dense.b_ > 0, dense.b_, 0)
    expect = dense.x_[:5].toarray() @ positive
    np.testing.assert_allclose(full.score(np.arange(5)), expect, rtol=1e-5, atol=1e-6)
    hist = train.interactions.csr("watch_ratio_mean")[:3]
    got, _ = sparse.recommend(history=hist, k=3)
    assert got.shape == (3, 3)
    items, _ = sparse.similar_items([1], 3)
    assert set(items[0].tolist()) - {-1} <= set(b.indices[b.indptr[1] : b.indptr[2]].tolist())
    with pytest.raises(ModelError, match="not saved"):
        sparse._get_state()
