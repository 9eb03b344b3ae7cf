"""Matrix factorisation for implicit feedback: ALS through the ``implicit`` library (CPU),
BPR by kuairec's own SGD (:mod:`kuairec.models.bpr_sgd`).

- ``als``: Hu, Koren & Volinsky (2008) weighted ALS, conjugate-gradient solver. Each
  training pair gets a confidence ``1 + alpha * f(watch_ratio)`` (``f`` from
  ``confidence``: binary -> 1, linear -> clipped watch_ratio, log -> log1p of it).
  New users are folded in by the exact least-squares solve (:mod:`kuairec.models.factors`).
- ``bpr``: Rendle et al. (2009) Bayesian Personalised Ranking; every training pair whose
  watch_ratio is at least ``threshold`` is a positive. BPR's last factor column is its
  item bias. implicit's rule draws negatives as the item of a random training pair (so
  in proportion to popularity); ``uniform_negatives`` of them are drawn uniformly over
  the items instead, which is what lets BPR learn that popular videos are watched more.
  Its SGD is implicit's learning rule run on one thread in a seeded, documented order:
  the same seed gives the same factors on any machine.

Scoring, cold users and items and the saved state are every factor model's
(:mod:`kuairec.models.factors`).
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
    # Defaults chosen on five data shapes (benchmarks/bpr_shapes.py, docs/models.md): the
    # synthetic default, 10-50 pairs per user, 15% of the pairs, five discrete ratios, and
    # a random per-user holdout; never on a test matrix.
    factors: int = param(64, ge=1, doc="latent dimensions (plus one item-bias column)")
    learning_rate: float = param(0.05, gt=0)
    regularization: float = param(0.01, ge=0)
    iterations: int = param(50, ge=1, doc="epochs: each makes one SGD step per positive")
    # completed views (see ALSConfig); 0 (every view a positive) was worse on every shape
    threshold: float = param(1.0, ge=0, doc="positives: watch_ratio >= threshold")
    # implicit's rule draws a negative as the item of a random positive (popularity-
    # weighted), so BPR alone cannot learn that popular items are liked more; a share of
    # uniform negatives lets the item bias learn it (see BPRRecommender)
    uniform_negatives: float = param(
        0.9, ge=0, lt=1, doc="share of negatives drawn uniformly over the items"
    )
    verify_negative_samples: bool = True
    seed: int = param(0, ge=0)
    # the SGD is sequential (reproducible on any machine): the field is kept so that
    # saved configs still load; any value gives the same one-thread fit
    num_threads: int = param(1, ge=0, doc="ignored: BPR's SGD runs on one thread")


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
        if not (x.indices.flags.writeable and x.indptr.flags.writeable):
            x = x.copy()  # a cached dataset's arrays are read-only; implicit's Cython
            # needs writable buffers (threshold 0 passes them through uncopied)
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


class BPRRecommender(FactorModel):
    """Bayesian Personalised Ranking (kuairec's own sequential SGD, numba; bpr_sgd.py).

    implicit's rule draws each negative as the item of a random positive, i.e. in
    proportion to the item's positives: a popular item is as likely to be the negative as
    the positive, so the item bias cannot learn popularity and BPR ranked below the
    popularity baseline on sparse data. ``uniform_negatives`` of the negatives are drawn
    uniformly over the items instead. The SGD runs on one thread in the order its seeded
    generator draws the samples, so a seed gives the same factors on any machine.
    """

    name = "bpr"
    cost = "moderate"
    # a fit costs ~3x ALS's (one thread; implicit's took ~10x): fewer trials keep the
    # default run's budget
    tune_trials = 5
    deterministic = True  # one thread, a documented draw order (bpr_sgd)
    Config = BPRConfig
    requires = ("numba",)
    history_reason = (
        "BPR's factors come from pairwise SGD and have no closed-form fold-in for a new "
        "user; serve new users with als, ease or itemknn"
    )
    tune_in_run = True
    search_space = {
        "factors": Param("int", 16, 128, log=True),
        "learning_rate": Param("float", 0.01, 0.1, log=True),
        "regularization": Param("float", 1e-3, 0.1, log=True),
        "threshold": Param("choice", choices=(0.5, 1.0, 2.0)),
    }
    test_settings = {"factors": 8, "iterations": 100}

    @classmethod
    def fit_cores(cls, config: Any) -> int | None:
        return 1  # the SGD is sequential, on one thread, whatever num_threads says

    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None:
        from kuairec.models.bpr_sgd import fit_bpr

        c = self.config
        x = weighted_matrix(train.interactions, "binary", 1.0, c.threshold)
        if x.nnz == 0:
            raise ModelError(f"{self.name}: no training pairs left (threshold={c.threshold})")
        user_f, item_f = fit_bpr(
            x,
            factors=c.factors,
            learning_rate=c.learning_rate,
            regularization=c.regularization,
            epochs=c.iterations,
            uniform_share=c.uniform_negatives,
            verify_negatives=c.verify_negative_samples,
            seed=c.seed,
        )
        self.set_factors(user_f, item_f, x)

    @property
    def state_width(self) -> int:
        """The factors hold one item-bias column beside the latent dimensions."""
        return self.config.factors + 1
