"""The oracle ranks and predicts by the synthetic truth."""

from __future__ import annotations

import numpy as np
import pytest

from kuairec.data.dataset import IdMap, Interactions, TrainSet
from kuairec.errors import DataError
from kuairec.models import create_model
from kuairec.models.base import FitResources
from kuairec.models.oracle import NO_TRUTH

TRAIN = TrainSet(
    Interactions.from_log([0], [0], [1.0], None, (3, 4)), IdMap(np.arange(3)), IdMap(np.arange(4))
)


def _truth(truth_shape: tuple[int, int] = (3, 4)) -> Interactions:
    return Interactions.from_log(
        [0, 0, 0, 1, 1], [1, 2, 3, 0, 3], [0.5, 2.5, 1.5, 0.7, 3.0], None, truth_shape
    )


def test_oracle_scores_predicts_and_ranks_by_truth() -> None:
    m = create_model("oracle").fit(TRAIN, resources=FitResources(truth=_truth()))
    s = m.score(np.array([0, 2]))
    assert s[0].tolist() == [NO_TRUTH, 0.5, 2.5, 1.5]
    assert (s[1] == NO_TRUTH).all()  # user 2 has no truth at all
    want = np.array([[3.0, NO_TRUTH, 0.7]], dtype=np.float32)
    np.testing.assert_array_equal(m.score(np.array([1]), np.array([3, 1, 0])), want)
    items, _ = m.recommend(np.array([0, 1]), 4)
    assert items.tolist() == [[2, 3, 1, 0], [3, 0, 1, 2]]  # pairs without truth last, by index
    pred = m.predict(np.array([0, 1, 2, 0]), np.array([2, 3, 3, 0]))
    np.testing.assert_allclose(pred[:2], [2.5, 3.0])
    assert np.isnan(pred[2:]).all()


def test_oracle_refuses_truth_of_another_shape() -> None:
    with pytest.raises(DataError, match=r"truth has shape \(3, 5\)"):
        create_model("oracle").fit(TRAIN, resources=FitResources(truth=_truth(truth_shape=(3, 5))))
