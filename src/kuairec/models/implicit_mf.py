"""Matrix factorisation for implicit feedback through the ``implicit`` library (CPU).

- ``als``: Hu, Koren & Volinsky (2008) weighted ALS, conjugate-gradient solver. Each
  training pair gets a confidence ``1 + alpha * f(watch_ratio)`` (``f`` from
  ``confidence``: binary -> 1, linear -> clipped watch_ratio, log -> log1p of it).
  New users are folded in by the exact least-squares solve (:mod:`kuairec.models.factors`).
- ``bpr``: Rendle et al. (2009) Bayesian Personalised Ranking; every training pair whose
  watch_ratio is at least ``threshold`` is a positive. BPR's last factor column is its
  item bias.

Scoring, cold users and items and the saved state are every factor model's
(:mod:`kuairec.models.factors`). With ``num_threads`` other than 1, BPR's Hogwild updates
make results vary slightly between runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.errors import ModelError
from kuairec.models.factors import FactorModel
from kuairec.models.matrices import Weighting, weight_values, weighted_matrix, weighted_rows
from kuairec.models.params import Param, param

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import TrainSet
    from kuairec.evaluation.protocols import TestSet


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


class _ImplicitModel(FactorModel):
    """A factor model fitted by the ``implicit`` library."""

    requires = ("implicit",)

    def _run(self, make: Callable[[], Any], x: sp.csr_matrix, progress: bool) -> None:
        """Fit the implicit model built by ``make`` on the user x item matrix ``x``."""
        from threadpoolctl import threadpool_limits

        if x.nnz == 0:
            raise ModelError(
                f"{self.name}: no training pairs left (threshold={self.config.threshold})"
            )
        with threadpool_limits(1, "blas"):  # implicit's own threads do the work
            model = make()  # built inside the limit: implicit warns about BLAS threads
            model.fit(x, show_progress=False)  # no third-party bars: the caller's display
        self.set_factors(model.user_factors, model.item_factors, x)


class ALSRecommender(_ImplicitModel):
    """Weighted ALS (implicit's CPU conjugate-gradient solver)."""

    name = "als"
    Config = ALSConfig
    supports_history = True
    tune_in_run = True
    search_space = {
        "factors": Param("int", 16, 128, log=True),
        "regularization": Param("float", 1e-3, 10.0, log=True),
        "alpha": Param("float", 0.5, 40.0, log=True),
        "threshold": Param("choice", choices=(0.0, 1.0, 2.0)),
    }
    test_settings = {"factors": 4, "regularization": 2.0, "iterations": 15, "num_threads": 1}

    def confidence(self, values: np.ndarray) -> np.ndarray:
        """``1 + alpha * f(watch_ratio)``: the confidence implicit is given per pair."""
        c = self.config
        return 1.0 + np.float32(c.alpha) * weight_values(values, c.confidence, c.clip)

    def fold_in_confidence(self, history: sp.csr_matrix) -> sp.csr_matrix:
        c = self.config
        x = weighted_rows(history, "linear", np.inf, c.threshold)  # drop below threshold
        x.data = self.confidence(x.data)
        return x

    @property
    def fold_in_regularization(self) -> float:
        return float(self.config.regularization)

    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None:
        c = self.config
        x = weighted_matrix(train.interactions, "linear", np.inf, c.threshold)
        x.data = self.confidence(x.data)  # implicit reads values as confidence
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


class BPRRecommender(_ImplicitModel):
    """Bayesian Personalised Ranking (implicit's CPU SGD)."""

    name = "bpr"
    Config = BPRConfig
    history_reason = (
        "BPR's factors come from pairwise SGD and have no closed-form fold-in for a new "
        "user; serve new users with als, ease or itemknn"
    )
    search_space = {
        "factors": Param("int", 16, 128, log=True),
        "learning_rate": Param("float", 5e-3, 0.2, log=True),
        "regularization": Param("float", 1e-4, 0.1, log=True),
        "threshold": Param("choice", choices=(0.0, 1.0, 2.0)),
    }
    test_settings = {"factors": 8, "iterations": 100, "num_threads": 1}

    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None:
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
