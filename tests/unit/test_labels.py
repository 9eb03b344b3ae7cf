"""Relevance labels: thresholds, the duration-aware label (training cut-offs) and gains."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec.data.dataset import Interactions
from kuairec.errors import ConfigError
from kuairec.evaluation.labels import (
    Label,
    duration_cutoffs,
    label_relevance,
    label_values,
    linear_quantile,
    parse_label,
)
from kuairec.evaluation.protocols import TestSet

N_USERS, N_ITEMS = 7, 5
# items 0, 1 last 1 s; items 2, 3 last 100 s; item 4 has no known duration
DURATION = np.array([1000.0, 1000.0, 100_000.0, 100_000.0, np.nan])


def _train() -> Interactions:
    # users 0-4: one pair on a short video (wr 1..5) and one on a long video (wr 0.1..0.5)
    users = np.repeat(np.arange(5), 2)
    items = np.tile([0, 2], 5)
    wr = np.array([[u + 1.0, (u + 1) / 10] for u in range(5)]).ravel()
    return Interactions.from_log(users, items, wr, None, (N_USERS, N_ITEMS))


def _test(wr: list[float]) -> TestSet:
    # user 5 watched items 0..4 with the given watch ratios
    rel = sp.csr_matrix((np.array(wr), np.arange(5), np.array([0, 5])), shape=(1, N_ITEMS))
    return TestSet(np.array([5]), np.arange(5), rel, sp.csr_matrix((1, N_ITEMS), dtype=bool))


def test_threshold_labels_and_their_boundaries():
    test = _test([2.0, 2.0001, 1.0, 0.9999, 0.0])
    assert label_values("wr>2", test).tolist() == [0, 1, 0, 0, 0]  # strictly above 2
    assert label_values("wr>=1", test).tolist() == [1, 1, 1, 0, 0]  # 1.0 itself counts
    assert label_values("wr>1", test).tolist() == [1, 1, 0, 0, 0]
    assert label_values("wr>=0", test).tolist() == [1, 1, 1, 1, 1]


def test_graded_gain_is_clipped_watch_ratio():
    test = _test([7.5, 5.0, 1.25, 0.0, 3.0])
    assert label_values("graded", test).tolist() == [5.0, 5.0, 1.25, 0.0, 3.0]
    assert label_values(parse_label("graded", clip=2.0), test).tolist() == [2, 2, 1.25, 0, 2]


def test_duration_cutoffs_by_hand():
    lab = parse_label("duration", n_buckets=2)
    cut = duration_cutoffs(lab, _train(), DURATION)
    # edges log-spaced over the training videos' durations (items 0 and 2): 1 s, 10 s, 100 s
    assert cut.edges == pytest.approx([1000, 10_000, 100_000])
    # short bucket wr [1 2 3 4 5]: 0.8 quantile at position 0.8 * 4 = 3.2 -> 4 + 0.2 * 1 = 4.2
    # long bucket wr [.1 .2 .3 .4 .5]: 0.42
    assert cut.cutoffs == pytest.approx([4.2, 0.42])
    # all ten: position 0.8 * 9 = 7.2 in [.1 .2 .3 .4 .5 1 2 3 4 5] -> 3 + 0.2 * 1 = 3.2
    assert cut.global_cutoff == pytest.approx(3.2)
    # item 1 (1 s, no training pairs) uses the short bucket; item 4 (no duration) the global
    test = _test([4.3, 4.1, 0.45, 0.41, 3.3])
    values = label_values(lab, test, _train(), DURATION)
    assert values.tolist() == [1, 0, 1, 0, 1]


def test_duration_cutoffs_use_training_data_only():
    lab = parse_label("duration", n_buckets=2)
    a = _test([4.3, 4.1, 0.45, 0.41, 3.3])
    b = _test([4.3, 400.0, 0.0, 900.0, 0.0])  # very different test watch ratios
    cut_a = duration_cutoffs(lab, _train(), DURATION)
    va = label_values(lab, a, _train(), DURATION)
    vb = label_values(lab, b, _train(), DURATION)
    # item 0 keeps its label: the 4.2 cut-off did not move with the test data
    assert va[0] == vb[0] == 1
    assert vb.tolist() == [1, 1, 0, 1, 0]
    assert label_values(lab, b, cutoffs=cut_a, video_duration=DURATION).tolist() == vb.tolist()
    # while changing the TRAINING data does move it
    train2 = _train()
    train2.watch_ratio_mean[train2.indices == 0] *= 10
    assert duration_cutoffs(lab, train2, DURATION).cutoffs[0] == pytest.approx(42.0)


def test_label_relevance_keeps_the_structure():
    test = _test([0.0, 3.0, 1.0, 0.0, 2.5])  # explicit zeros are observed pairs
    rel = label_relevance("wr>2", test)
    assert rel.nnz == 5
    assert rel.indices.tolist() == test.relevance.indices.tolist()
    assert rel.data.tolist() == [0, 1, 0, 0, 1]


@pytest.mark.parametrize("spec", ["wr>nan", "wr>=NaN", "wr>inf", "wr>abc"])
def test_bad_threshold_names_the_threshold(spec):
    with pytest.raises(ConfigError, match="threshold must be a finite number"):
        parse_label(spec)


def test_nan_threshold_in_a_label_object():
    with pytest.raises(ConfigError, match=r"label 'mine': threshold .* got nan"):
        Label("mine", "threshold", threshold=math.nan)
    with pytest.raises(ConfigError, match="threshold"):
        parse_label("wr>2", threshold=float("nan"))


def test_unknown_label_and_bad_parameters():
    with pytest.raises(ConfigError, match="unknown label 'likes'"):
        parse_label("likes")
    with pytest.raises(ConfigError, match="quantile must be in"):
        parse_label("duration", quantile=1.5)
    with pytest.raises(ConfigError, match="n_buckets"):
        parse_label("duration", n_buckets=0)
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['bins'\]"):
        parse_label("duration", bins=3)


def test_duration_label_without_durations_is_a_config_error():
    with pytest.raises(ConfigError, match="video_duration"):
        label_values("duration", _test([1, 1, 1, 1, 1]), _train(), None)


def test_describe_is_plain():
    assert parse_label("wr>=1").describe()["rule"] == "watch_ratio >= 1"
    assert parse_label("wr>2.5").describe() == {
        "name": "wr>2.5",
        "kind": "threshold",
        "rule": "watch_ratio > 2.5",
    }


def test_linear_quantile_matches_numpy_bit_for_bit(rng):
    for n in (1, 2, 3, 10, 1001):
        for q in (0.0, 0.2, 0.5, 0.8, 1 / 3, 0.999, 1.0):
            x = rng.lognormal(0, 1, n).astype(np.float32)
            assert linear_quantile(x.copy(), q) == np.quantile(x.astype(np.float64), q)
