"""A non-personalised content baseline that can rank videos nobody has watched.

``popularity_features`` scores a video by how well the warm training videos that share
its tags and caption category did, so a cold video (no training pairs) gets an estimate
from its content alone. The estimator, in three steps:

1. every warm video ``v`` (at least one training pair) gets its own rate ``y_v``: the
   share of its training pairs with ``watch_ratio >= threshold`` (``target =
   "positive_rate"``) or their mean watch_ratio clipped at ``clip``
   (``"mean_watch_ratio"``); ``mu`` is the mean of ``y_v`` over warm videos;
2. every content key ``k`` (an ``item_x`` column ``tag=<id>``, ``tag_none`` or
   ``caption_<level>_level=<id>``, with ``level`` from the config) gets the shrunk mean
   ``(sum of y_v over the n_k warm videos with k + prior * mu) / (n_k + prior)``;
3. a video's score is the mean of its keys' estimates (``mu`` if it has none).

Every video, warm or cold, is scored from its keys only (its own pairs count in its
keys' means when it is warm). Without such columns in ``item_x`` every video scores
``mu``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from kuairec.models.base import Recommender
from kuairec.models.params import Param, param

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import FeatureMatrix, TrainSet
    from kuairec.evaluation.protocols import TestSet


@dataclass(frozen=True)
class PopularityFeaturesConfig:
    target: Literal["positive_rate", "mean_watch_ratio"] = param(
        "positive_rate", doc="a warm video's own rate: share of positive pairs, or mean ratio"
    )
    threshold: float = param(2.0, ge=0, doc="a pair is positive when watch_ratio >= this")
    clip: float = param(5.0, gt=0, doc="watch_ratio is clipped here for mean_watch_ratio")
    prior: float = param(5.0, ge=0, doc="shrinkage: pseudo-videos at the global mean per key")
    caption_level: Literal["first", "second", "third", "none"] = param(
        "first", doc="which caption category level is a key besides the tags"
    )


class PopularityFeaturesRecommender(Recommender):
    """Shrunk mean positive rate of the warm videos sharing a video's tags and caption.

    The same list for everyone; it scores cold videos (see the module docstring)."""

    name = "popularity_features"
    Config = PopularityFeaturesConfig
    personalised = False
    supports_history = True  # a new user gets what everyone gets
    scores_cold_items = True
    search_space = {
        "prior": Param("float", 0.5, 50.0, log=True),
        "caption_level": Param("choice", choices=("first", "second", "third", "none")),
    }

    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None:
        rate, warm = video_rates(train, self.config)
        keys = content_keys(train.item_x, self.config.caption_level, train.n_items)
        self.scores_ = shrunk_key_scores(keys, rate, warm, self.config.prior)

    def _score(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        s = self.scores_ if items is None else self.scores_[items]
        return np.tile(s, (users.size, 1))

    def _score_history(self, history: sp.csr_matrix, items: np.ndarray | None) -> np.ndarray:
        return self._score(np.empty(history.shape[0], np.int64), items)

    def expected_shapes(self) -> dict[str, tuple[int | None, ...]]:
        return {"scores": (self.n_items_,)}

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores_}

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.scores_ = np.asarray(state["scores"], dtype=np.float32)


def video_rates(train: TrainSet, config: PopularityFeaturesConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(y, warm)``: every video's own rate (0 where cold) and whether it is warm."""
    inter = train.interactions
    wr = inter.watch_ratio_mean.astype(np.float64)
    if config.target == "positive_rate":
        value = (wr >= config.threshold).astype(np.float64)
    else:
        value = np.minimum(wr, config.clip)
    n = np.bincount(inter.indices, minlength=inter.n_items).astype(np.float64)
    total = np.bincount(inter.indices, weights=value, minlength=inter.n_items)
    warm = n > 0
    return np.divide(total, n, out=np.zeros_like(total), where=warm), warm


def content_keys(item_x: FeatureMatrix | None, caption_level: str, n_items: int) -> np.ndarray:
    """0/1 (n_items, n_keys): the ``tag=*`` / ``tag_none`` columns and the chosen caption
    level's ``caption_<level>_level=*`` columns of ``item_x`` (maybe no columns)."""
    if item_x is None:
        return np.zeros((n_items, 0), np.float64)
    prefix = f"caption_{caption_level}_level="
    cols = [
        j
        for j, c in enumerate(item_x.columns)
        if c.startswith("tag=") or c == "tag_none" or c.startswith(prefix)
    ]
    return (item_x.values[:, cols] > 0).astype(np.float64)


def shrunk_key_scores(
    keys: np.ndarray, rate: np.ndarray, warm: np.ndarray, prior: float
) -> np.ndarray:
    """Steps 2-3 of the module docstring: float32 score per video."""
    mu = float(rate[warm].mean()) if warm.any() else 0.0
    warm_keys = keys[warm]
    n_k = warm_keys.sum(axis=0)
    est = (warm_keys.T @ rate[warm] + prior * mu) / np.maximum(n_k + prior, 1e-12)
    est = np.where(n_k + prior > 0, est, mu)  # a key on no warm video, prior 0: mu
    n_keys = keys.sum(axis=1)
    summed = keys @ est
    out = np.divide(summed, n_keys, out=np.full(keys.shape[0], mu), where=n_keys > 0)
    return out.astype(np.float32)
