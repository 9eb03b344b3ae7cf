"""Percentile bootstrap over users: resamples, intervals and paired differences."""

from __future__ import annotations

import numpy as np
import pytest

from kuairec.errors import ConfigError
from kuairec.evaluation.bootstrap import (
    bootstrap_ci,
    bootstrap_indices,
    paired_bootstrap,
    resampled_means,
)


def test_resampled_means_match_a_loop_over_resamples(rng):
    x = rng.random((57, 3))
    x[rng.random(x.shape) < 0.2] = np.nan  # excluded users differ per column
    got = resampled_means(x, n_bootstrap=40, seed=7)
    idx = bootstrap_indices(57, 40, 7)
    for b in range(40):
        for j in range(3):
            col = x[idx[b], j]
            assert got[b, j] == pytest.approx(np.nanmean(col), abs=1e-12)


def test_weights_by_hand():
    # values [1, NaN, 3]; a resample drawing users (0, 0, 1) averages only user 0: 1.0;
    # drawing (0, 2, 2): (1 + 3 + 3) / 3
    x = np.array([1.0, np.nan, 3.0])
    idx = bootstrap_indices(3, 200, 0)
    means = resampled_means(x, 200, 0)
    for b in range(200):
        kept = [x[i] for i in idx[b] if not np.isnan(x[i])]
        expect = sum(kept) / len(kept) if kept else np.nan
        assert np.isclose(means[b], expect, equal_nan=True)


def test_ci_contains_the_mean_and_shrinks_with_n(rng):
    small = rng.exponential(size=100)
    large = rng.exponential(size=10_000)
    lo_s, hi_s = bootstrap_ci(small, 500, seed=1)
    lo_l, hi_l = bootstrap_ci(large, 500, seed=1)
    assert lo_s < small.mean() < hi_s
    assert lo_l < large.mean() < hi_l
    # the width goes like 1/sqrt(n): 100x more users -> about 10x narrower
    ratio = (hi_s - lo_s) / (hi_l - lo_l)
    assert 5 < ratio < 20


def test_ci_is_seeded_and_single_user_gives_a_point():
    x = np.random.default_rng(0).random(30)
    assert np.array_equal(bootstrap_ci(x, 100, seed=3), bootstrap_ci(x, 100, seed=3))
    assert not np.array_equal(bootstrap_ci(x, 100, seed=3), bootstrap_ci(x, 100, seed=4))
    lo, hi = bootstrap_ci(np.array([0.25]), 100, seed=0)
    assert lo == hi == 0.25


def test_ci_of_a_column_without_values_is_nan():
    lo, hi = bootstrap_ci(np.array([[1.0, np.nan], [2.0, np.nan]]), 50, seed=0)
    assert np.isfinite(lo[0]) and np.isnan(lo[1]) and np.isnan(hi[1])


def test_paired_difference_of_identical_models_is_zero(rng):
    a = rng.random(300)
    res = paired_bootstrap(a, a.copy(), n_bootstrap=200, seed=0)
    assert res["diff"] == 0.0
    assert res["ci"] == [0.0, 0.0]
    assert res["p_le_0"] == 1.0  # every resampled difference is 0 <= 0
    assert res["n_users"] == 300


def test_paired_difference_uses_the_same_resamples(rng):
    b = rng.random(300)
    a = b + 0.01  # a constant per-user gain: every resample differs by exactly 0.01
    res = paired_bootstrap(a, b, n_bootstrap=200, seed=0)
    assert res["diff"] == pytest.approx(0.01)
    assert res["ci"] == pytest.approx([0.01, 0.01])
    assert res["p_le_0"] == 0.0
    # unpaired intervals of a and b overlap, yet the paired one is sharp
    lo_a, _ = bootstrap_ci(a, 200, 0)
    _, hi_b = bootstrap_ci(b, 200, 1)
    assert lo_a < hi_b


def test_paired_skips_users_missing_in_either():
    a = np.array([1.0, np.nan, 0.5, 0.2])
    b = np.array([0.0, 0.3, np.nan, 0.2])
    res = paired_bootstrap(a, b, n_bootstrap=100, seed=0)
    assert res["n_users"] == 2  # users 0 and 3: diffs 1.0 and 0.0
    assert res["diff"] == pytest.approx(0.5)


@pytest.mark.parametrize("kwargs", [{"n_bootstrap": 0}, {"n_bootstrap": 2.5}, {"seed": -1}])
def test_bad_parameters(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        bootstrap_ci(np.ones(3), **{"n_bootstrap": 10, "seed": 0, **kwargs})


def test_paired_shapes_must_match():
    with pytest.raises(ConfigError, match="same users"):
        paired_bootstrap(np.ones(3), np.ones(4))
