"""Non-personalised baselines: random and popularity.

Cold users (no training rows) get the same scores as everyone: these models ignore the
user. Items nobody watched in training score 0 for popularity and popularity_weighted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kuairec.models.base import Recommender
from kuairec.models.params import param

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import TrainSet
    from kuairec.evaluation.protocols import TestSet

_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xBF58476D1CE4E5B9)
_K3 = np.uint64(0x94D049BB133111EB)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _K2
    x = (x ^ (x >> np.uint64(27))) * _K3
    return x ^ (x >> np.uint64(31))


@dataclass(frozen=True)
class RandomConfig:
    seed: int = param(0, ge=0, doc="scores are a hash of (seed, user, item)")


class RandomRecommender(Recommender):
    """Uniform random scores in [0, 1): a fixed hash of (seed, user_idx, item_idx).

    The same seed gives the same scores for a user whatever the batch or candidate set.
    """

    name = "random"
    Config = RandomConfig
    reference = True
    personalised = False
    supports_history = True

    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None:
        pass

    def _score_history(self, history: sp.csr_matrix, items: np.ndarray | None) -> np.ndarray:
        # a new user is one more user: row i scores as user index n_users + i would
        rows = np.arange(history.shape[0], dtype=np.int64) + self.n_users_
        return self._score(rows, items)

    def _score(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        if items is None:
            items = np.arange(self.n_items_)
        with np.errstate(over="ignore"):
            seed = np.uint64(self.config.seed) * _K1
            h_user = _mix64(users.astype(np.uint64) * _K3 + seed)
            h = _mix64(h_user[:, None] + items.astype(np.uint64)[None, :] * _K1)
        return (h >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        pass


class _ItemScoreRecommender(Recommender):
    """A model whose score depends on the item only: ``popularity_[item]``."""

    supports_history = True  # a new user gets what everyone gets
    personalised = False

    def _score(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        pop = self.popularity_ if items is None else self.popularity_[items]
        return np.tile(pop, (users.size, 1))

    def _score_history(self, history: sp.csr_matrix, items: np.ndarray | None) -> np.ndarray:
        return self._score(np.empty(history.shape[0], np.int64), items)

    def expected_shapes(self) -> dict[str, tuple[int | None, ...]]:
        return {"popularity": (self.n_items_,)}

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity_}

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.popularity_ = np.asarray(state["popularity"], dtype=np.float32)


@dataclass(frozen=True)
class PopularityConfig:
    pass


class PopularityRecommender(_ItemScoreRecommender):
    """Items ranked by the number of distinct training users who watched them."""

    name = "popularity"
    spark_kind = "counts"  # sparkengine: an aggregation of the training pairs
    Config = PopularityConfig

    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None:
        self.popularity_ = train.interactions.item_counts().astype(np.float32)


@dataclass(frozen=True)
class WeightedPopularityConfig:
    clip: float = param(5.0, gt=0, doc="watch_ratio is clipped at this value before summing")


class WeightedPopularityRecommender(_ItemScoreRecommender):
    """Items ranked by the sum over training users of their (clipped) mean watch_ratio."""

    name = "popularity_weighted"
    Config = WeightedPopularityConfig

    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None:
        inter = train.interactions
        w = np.minimum(inter.watch_ratio_mean.astype(np.float64), self.config.clip)
        pop = np.bincount(inter.indices, weights=w, minlength=inter.n_items)
        self.popularity_ = pop.astype(np.float32)
