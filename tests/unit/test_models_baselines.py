"""random, popularity and popularity_weighted."""

from __future__ import annotations

import numpy as np

from kuairec.data.dataset import IdMap, Interactions, TrainSet
from kuairec.models import create_model


def _train() -> TrainSet:
    # item 1: users 0 (wr 1.0, twice), 1 (wr 7.0), 2 (wr 0.5); item 0: user 0 (wr 3.0)
    inter = Interactions.from_log(
        [0, 0, 0, 1, 2], [1, 1, 0, 1, 1], [1.0, 1.0, 3.0, 7.0, 0.5], None, (4, 3)
    )
    return TrainSet(inter, IdMap(np.arange(4)), IdMap(np.arange(3)))


def test_popularity_counts_distinct_users() -> None:
    m = create_model("popularity").fit(_train())
    assert m.score(np.array([3])).tolist() == [[1.0, 3.0, 0.0]]  # repeat views count once
    items, _ = m.recommend(np.array([0, 3]), 2)
    assert items.tolist() == [[1, 0], [1, 0]]  # cold user 3 gets the same ranking


def test_popularity_weighted_sums_clipped_mean_watch_ratio() -> None:
    m = create_model("popularity_weighted").fit(_train())
    # item 1: 1.0 + min(7.0, 5.0) + 0.5 = 6.5; item 0: 3.0
    assert m.score(np.array([0])).tolist() == [[3.0, 6.5, 0.0]]
    m = create_model("popularity_weighted", {"clip": 2.0}).fit(_train())
    assert m.score(np.array([0])).tolist() == [[2.0, 3.5, 0.0]]


def test_random_is_deterministic_per_seed_user_and_item() -> None:
    inter = Interactions.from_log([0], [0], [1.0], None, (50, 400))
    train = TrainSet(inter, IdMap(np.arange(50)), IdMap(np.arange(400)))
    a = create_model("random", {"seed": 3}).fit(train)
    s = a.score(np.arange(50))
    assert s.min() >= 0 and s.max() < 1 and abs(s.mean() - 0.5) < 0.01
    np.testing.assert_array_equal(a.score(np.array([7, 2])), s[[7, 2]])  # batch-independent
    np.testing.assert_array_equal(
        a.score(np.array([7]), np.array([399, 5])), s[[7], [399, 5]][None]
    )
    again = create_model("random", {"seed": 3}).fit(train).score(np.arange(50))
    np.testing.assert_array_equal(again, s)
    other = create_model("random", {"seed": 4}).fit(train).score(np.arange(50))
    assert np.mean(other == s) < 0.01
    assert np.mean(s[0] == s[1]) < 0.01  # users differ
