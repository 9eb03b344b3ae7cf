"""als and bpr: ALS against implicit itself, BPR's reproducibility, cold users and items
(BPR's SGD against a plain-Python reference: test_bpr_sgd.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec.data.dataset import IdMap, Interactions, TrainSet
from kuairec.errors import ModelError
from kuairec.models import create_model

N_USERS, N_ITEMS = 30, 12  # user 29 and item 11 are cold


def _train() -> TrainSet:
    rng = np.random.default_rng(0)
    dense = rng.random((N_USERS, N_ITEMS)) < 0.4
    dense[29] = False
    dense[:, 11] = False
    u, i = np.nonzero(dense)
    ratio = np.round(rng.uniform(0.1, 8.0, u.size), 3)
    inter = Interactions.from_log(u, i, ratio, None, (N_USERS, N_ITEMS))
    return TrainSet(inter, IdMap(np.arange(N_USERS)), IdMap(np.arange(N_ITEMS)))


def test_als_equals_implicit_on_our_confidence_matrix() -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    train = _train()
    cfg = {"factors": 5, "iterations": 4, "alpha": 3.0, "regularization": 0.1, "num_threads": 1}
    cfg["threshold"] = 0.0  # every pair, as implicit sees the matrix below
    ours = create_model("als", cfg).fit(train)
    inter = train.interactions
    conf = 1.0 + 3.0 * np.minimum(inter.watch_ratio_mean, 5.0)  # linear, clip 5
    x = sp.csr_matrix((conf, inter.indices, inter.indptr), shape=inter.shape, dtype=np.float32)
    ref = AlternatingLeastSquares(
        factors=5, regularization=0.1, iterations=4, random_state=0, num_threads=1
    )
    ref.fit(x, show_progress=False)
    warm_users = inter.user_counts() > 0
    assert warm_users.sum() == 28  # user 6 is cold by chance, user 29 by construction
    np.testing.assert_allclose(
        ours.user_factors_[warm_users], ref.user_factors[warm_users], rtol=1e-5
    )
    np.testing.assert_allclose(ours.item_factors_[:11], ref.item_factors[:11], rtol=1e-5)


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_cold_users_get_mean_factor_and_cold_items_rank_last(name: str) -> None:
    m = create_model(name, {"factors": 4, "iterations": 5, "num_threads": 1}).fit(_train())
    warm = m.user_factors_[(np.arange(N_USERS) != 6) & (np.arange(N_USERS) != 29)]
    np.testing.assert_allclose(m.user_factors_[29], warm.mean(axis=0), rtol=1e-5)
    items, _ = m.recommend(np.arange(N_USERS), N_ITEMS)
    assert (items[:, -1] == 11).all()
    assert (m.item_factors_[11] == 0).all()


def test_bpr_gives_the_same_factors_for_a_seed_whatever_the_thread_settings() -> None:
    import numba

    cfg = {"factors": 4, "iterations": 5, "seed": 3}
    a = create_model("bpr", cfg).fit(_train())
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        b = create_model("bpr", {**cfg, "num_threads": 2}).fit(_train())
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    other = create_model("bpr", {**cfg, "seed": 4}).fit(_train())
    assert not np.array_equal(a.item_factors_, other.item_factors_)
    c = create_model("bpr", {**cfg, "threshold": 4.0}).fit(_train())
    assert not np.array_equal(a.item_factors_, c.item_factors_)
    with pytest.raises(ModelError, match=r"no training pairs left \(threshold=100.0\)"):
        create_model("bpr", {**cfg, "threshold": 100.0}).fit(_train())


def test_fit_does_not_warn_about_blas_threads(recwarn: pytest.WarningsRecorder) -> None:
    create_model("als", {"factors": 2, "iterations": 1}).fit(_train())
    assert not [w for w in recwarn if "OpenBLAS" in str(w.message)]


def _capture_bpr_input(monkeypatch: pytest.MonkeyPatch) -> list[sp.csr_matrix]:
    """Record the positives matrix BPR hands to its SGD (then fit as usual)."""
    from kuairec.models import bpr_sgd

    seen: list[sp.csr_matrix] = []
    real_fit = bpr_sgd.fit_bpr

    def fit(x, **kwargs):  # noqa: ANN001, ANN003
        seen.append(x.copy())
        return real_fit(x, **kwargs)

    monkeypatch.setattr(bpr_sgd, "fit_bpr", fit)
    return seen


def test_bpr_positives_are_the_pairs_at_or_above_the_default_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # watch ratios placed around the default threshold (1.0) and around its half (0.5)
    ratio = np.array(
        [[0.3, 0.5, 0.7, 0.99, 1.0, 1.4, 2.5, 0.0], [1.0, 0.49, 0.51, 3.0, 0, 0, 0, 0]]
    )
    u, i = np.nonzero(ratio)
    inter = Interactions.from_log(u, i, ratio[u, i], None, ratio.shape)
    train = TrainSet(inter, IdMap(np.arange(2)), IdMap(np.arange(8)))
    seen = _capture_bpr_input(monkeypatch)
    settings = {"factors": 2, "iterations": 1}
    create_model("bpr", settings).fit(train)
    positives = seen[0].toarray() != 0
    expected = np.array(
        [[0, 0, 0, 0, 1, 1, 1, 0], [1, 0, 0, 1, 0, 0, 0, 0]], dtype=bool
    )  # watch_ratio >= 1.0, nothing else
    np.testing.assert_array_equal(positives, expected)
    create_model("bpr", {**settings, "threshold": 0.5}).fit(train)
    assert (seen[1].toarray() != 0).sum() == 9  # 0.5 also keeps 0.5, 0.7, 0.99, 0.51


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_fits_on_a_cached_datasets_read_only_arrays(small_synthetic_dir, name) -> None:
    from kuairec.data.load import load_dataset
    from kuairec.evaluation.protocols import default_protocol
    from kuairec.models import create_model

    load_dataset(small_synthetic_dir, progress=False)  # make sure the cache entry exists
    ds = load_dataset(small_synthetic_dir, progress=False)  # warm: memory-mapped, read-only
    train, _ = default_protocol(ds)
    assert not train.interactions.indices.flags.writeable
    model = create_model(name, {"threshold": 0.0, "factors": 4, "iterations": 2})
    assert model.fit(train).is_fitted


def test_factor_scores_are_the_same_in_any_batch_and_equal_items_tie() -> None:
    """A factor model's scores of a user and a video do not depend on which users and
    videos share the call, and equal item factors give equal scores wherever their
    column: the Spark engine's batches give the local engine's lists, ties by the lower
    index. (A float32 BLAS product fails this on some CPUs: OpenBLAS's Haswell kernel
    on an AMD EPYC VM rounded 3,423 of 233 x 300 entries otherwise than in 700 rows.)"""
    from kuairec.models.factors import batch_invariant_product

    rng = np.random.default_rng(0)
    user_f = rng.normal(size=(700, 64)).astype(np.float32)
    item_f = rng.normal(size=(3000, 64)).astype(np.float32)
    item_f[::7] = item_f[3]
    full = batch_invariant_product(user_f, item_f)
    assert full.dtype == np.float32
    np.testing.assert_allclose(full, user_f.astype(np.float64) @ item_f.T, rtol=1e-6, atol=1e-5)
    assert (full[:, ::7] == full[:, [3]]).all()
    for rows in (slice(0, 1), slice(1, 3), slice(5, 12), slice(13, 246), slice(1, 700)):
        np.testing.assert_array_equal(batch_invariant_product(user_f[rows], item_f), full[rows])
    for cols in (slice(3, 4), slice(3, 8), slice(1, 18), slice(2, 1502)):
        np.testing.assert_array_equal(batch_invariant_product(user_f, item_f[cols]), full[:, cols])
