"""Matrix factorisation for implicit feedback through the ``implicit`` library (CPU).

- ``als``: Hu, Koren & Volinsky (2008) weighted ALS, conjugate-gradient solver. Each
  training pair gets a confidence ``1 + alpha * f(watch_ratio)`` (``f`` from
  ``confidence``: binary -> 1, linear -> clipped watch_ratio, log -> log1p of it).
- ``bpr``: Rendle et al. (2009) Bayesian Personalised Ranking; every training pair whose
  watch_ratio is at least ``threshold`` is a positive.

Scores are ``user_factors[users] @ item_factors.T`` (BPR's last column is its item bias).
Cold users (no training pairs) get the mean factor of the warm users, which ranks items
much like popularity. Cold items (no training pairs) get zero factors and a score
offset that ranks them after every other item, for every user. With ``num_threads`` other
than 1, BPR's Hogwild updates make results vary slightly between runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.errors import ModelError
from kuairec.models.base import Recommender
from kuairec.models.matrices import Weighting, row_is_empty, weighted_matrix
from kuairec.models.params import param

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import TrainSet


@dataclass(frozen=True)
class ALSConfig:
    # Defaults chosen on the temporal holdout of the training log (never on the test
    # matrix): learning from completed views (watch_ratio >= 1) with 32 factors beat the
    # all-pairs, 64-factor setting there; `kuairec tune` searches further.
    factors: int = param(32, ge=1, doc="latent dimensions")
    regularization: float = param(0.05, ge=0, doc="L2 penalty on the factors")
    iterations: int = param(15, ge=1, doc="ALS sweeps")
    confidence: Weighting = "linear"
    alpha: float = param(2.0, ge=0, doc="confidence = 1 + alpha * f(watch_ratio)")
    clip: float = param(5.0, gt=0, doc="watch_ratio is clipped at this value")
    threshold: float = param(1.0, ge=0, doc="pairs with watch_ratio below it are dropped")
    use_cg: bool = True
    seed: int = param(0, ge=0)
    num_threads: int = param(0, ge=0, doc="0 = all cores")


@dataclass(frozen=True)
class BPRConfig:
    factors: int = param(64, ge=1, doc="latent dimensions (plus one item-bias column)")
    learning_rate: float = param(0.05, gt=0)
    regularization: float = param(0.01, ge=0)
    iterations: int = param(50, ge=1, doc="epochs over the positives")
    # completed views only (see ALSConfig): also 4x fewer positives per epoch
    threshold: float = param(1.0, ge=0, doc="positives: watch_ratio >= threshold")
    verify_negative_samples: bool = True
    seed: int = param(0, ge=0)
    num_threads: int = param(0, ge=0, doc="0 = all cores; 1 = reproducible")


class _FactorModel(Recommender):
    """Shared scoring and state of the factor models."""

    def _score(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        item_f = self.item_factors_ if items is None else self.item_factors_[items]
        offset = self.item_offset_ if items is None else self.item_offset_[items]
        out = self.user_factors_[users] @ item_f.T
        out += offset
        return out

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "item_offset": self.item_offset_,
        }

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.user_factors_ = np.ascontiguousarray(state["user_factors"], dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(state["item_factors"], dtype=np.float32)
        self.item_offset_ = np.ascontiguousarray(state["item_offset"], dtype=np.float32)

    def _run(self, make: Callable[[], Any], x: sp.csr_matrix, progress: bool) -> None:
        """Fit the implicit model built by ``make`` on the user x item matrix ``x``."""
        from threadpoolctl import threadpool_limits

        if x.nnz == 0:
            raise ModelError(
                f"{self.name}: no training pairs left (threshold={self.config.threshold})"
            )
        with threadpool_limits(1, "blas"):  # implicit's own threads do the work
            model = make()  # built inside the limit: implicit warns about BLAS threads
            model.fit(x, show_progress=progress)
        user_f = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        item_f = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        cold_users = row_is_empty(x)
        if cold_users.any():
            warm = user_f[~cold_users]
            user_f[cold_users] = warm.mean(axis=0) if warm.size else 0.0
        # items without training pairs rank after every other item, for every user:
        # zero factors and an offset below any |user . item| (Cauchy-Schwarz bound)
        cold_items = np.bincount(x.indices, minlength=x.shape[1]) == 0
        item_f[cold_items] = 0.0
        bound = np.linalg.norm(user_f, axis=1).max() * np.linalg.norm(item_f, axis=1).max()
        self.item_offset_ = np.where(cold_items, -(2.0 * bound + 1.0), 0.0).astype(np.float32)
        self.user_factors_, self.item_factors_ = user_f, item_f


class ALSRecommender(_FactorModel):
    """Weighted ALS (implicit's CPU conjugate-gradient solver)."""

    name = "als"
    Config = ALSConfig

    def _fit(self, train: TrainSet, progress: bool) -> None:
        c = self.config
        x = weighted_matrix(train.interactions, c.confidence, c.clip, c.threshold)
        x.data = 1.0 + np.float32(c.alpha) * x.data  # implicit reads values as confidence
        from implicit.cpu.als import AlternatingLeastSquares  # before the BLAS limit

        def make() -> Any:
            return AlternatingLeastSquares(
                factors=c.factors,
                regularization=c.regularization,
                alpha=1.0,
                dtype=np.float32,
                use_cg=c.use_cg,
                iterations=c.iterations,
                num_threads=c.num_threads,
                random_state=c.seed,
            )

        self._run(make, x, progress)


class BPRRecommender(_FactorModel):
    """Bayesian Personalised Ranking (implicit's CPU SGD)."""

    name = "bpr"
    Config = BPRConfig

    def _fit(self, train: TrainSet, progress: bool) -> None:
        c = self.config
        x = weighted_matrix(train.interactions, "binary", 1.0, c.threshold)
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        def make() -> Any:
            return BayesianPersonalizedRanking(
                factors=c.factors,
                learning_rate=c.learning_rate,
                regularization=c.regularization,
                dtype=np.float32,
                iterations=c.iterations,
                verify_negative_samples=c.verify_negative_samples,
                num_threads=c.num_threads,
                random_state=c.seed,
            )

        self._run(make, x, progress)
