import numpy as np
import pytest

from kuairec.data.dataset import IdMap, Interactions
from kuairec.errors import DataError


def test_idmap_rules_for_unknown_ids() -> None:
    m = IdMap(np.array([3, 5, 9]), "user_id")
    assert m.to_index([9, 3]).tolist() == [2, 0]
    assert m.to_index([5, 4, 10], unknown="mask").tolist() == [1, -1, -1]
    assert m.to_index([5, 4, 10], unknown="drop").tolist() == [1]
    with pytest.raises(DataError, match=r"unknown user_id \[4\]"):
        m.to_index([5, 4])
    assert m.to_raw([2, 1]).tolist() == [9, 5]
    with pytest.raises(DataError, match="out of range"):
        m.to_raw([3])
    with pytest.raises(ValueError):
        IdMap(np.array([5, 3]))
    assert m.fingerprint() == IdMap(np.array([3, 5, 9])).fingerprint()
    assert m.fingerprint() != IdMap(np.array([3, 5, 8])).fingerprint()


def test_from_log_aggregates_repeated_views_per_pair() -> None:
    # user 0 watched item 1 twice (1.0 at t=5, 3.0 at t=3) and item 2 once; user 2 item 0
    # once without a time; user 1 and item... nothing.
    it = Interactions.from_log(
        [0, 0, 2, 0], [1, 1, 0, 2], [1.0, 3.0, 2.0, 0.5], [5.0, 3.0, np.nan, 1.0], (3, 3)
    )
    assert it.indptr.tolist() == [0, 2, 2, 3]
    assert it.indices.tolist() == [1, 2, 0]
    assert it.views.tolist() == [2, 1, 1]
    assert it.watch_ratio_mean.tolist() == [2.0, 0.5, 2.0]
    assert it.watch_ratio_max.tolist() == [3.0, 0.5, 2.0]
    assert it.first_timestamp[:2].tolist() == [3.0, 1.0]
    assert it.last_timestamp[:2].tolist() == [5.0, 1.0]
    assert np.isnan(it.first_timestamp[2]) and np.isnan(it.last_timestamp[2])
    assert it.user_counts().tolist() == [2, 0, 1]
    assert it.item_counts().tolist() == [1, 1, 1]
    assert it.csr("views").toarray().tolist() == [[0, 2, 1], [0, 0, 0], [1, 0, 0]]


def test_select_keeps_rows_aligned_even_with_trailing_empty_users() -> None:
    it = Interactions.from_log([0, 0, 1], [1, 2, 0], [1.0, 3.0, 2.0], None, (4, 3))
    kept = it.select(np.array([False, True, True]))
    assert kept.indptr.tolist() == [0, 1, 2, 2, 2]
    assert kept.csr().toarray().tolist() == [[0, 0, 3], [2, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert it.select(np.zeros(3, bool)).nnz == 0
    with pytest.raises(ValueError):
        it.select(np.ones(2, bool))


def test_select_dropping_every_entry_of_the_last_users() -> None:
    # users 0..3 hold (1, 2, 2, 1) entries; the mask drops all of users 2 and 3's
    it = Interactions.from_log(
        [0, 1, 1, 2, 2, 3], [0, 1, 2, 0, 1, 2], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], None, (4, 3)
    )
    kept = it.select(np.array([True, False, True, False, False, False]))
    assert kept.indptr.tolist() == [0, 1, 2, 2, 2]
    assert kept.indices.tolist() == [0, 2]
    assert kept.watch_ratio_mean.tolist() == [1.0, 3.0] and kept.views.tolist() == [1, 1]
    assert kept.user_counts().tolist() == [1, 1, 0, 0] and kept.shape == (4, 3)
    assert it.select(np.array([False] * 3 + [True] * 3)).indptr.tolist() == [0, 0, 0, 2, 3]
