"""Matrix factorisation for implicit feedback through the ``implicit`` library (CPU).

- ``als``: Hu, Koren & Volinsky (2008) weighted ALS, conjugate-gradient solver. Each
  training pair gets a confidence ``1 + alpha * f(watch_ratio)`` (``f`` from
  ``confidence``: binary -> 1, linear -> clipped watch_ratio, log -> log1p of it).
  New users are folded in by the exact least-squares solve (:mod:`kuairec.models.factors`).
- ``bpr``: Rendle et al. (2009) Bayesian Personalised Ranking; every training pair whose
  watch_ratio is at least ``threshold`` is a positive. BPR's last factor column is its
  item bias. implicit draws negatives as the item of a random training pair (so in
  proportion to popularity); ``uniform_negatives`` makes that share of them uniform over
  the items instead (rows of every item that train nothing), which is what lets BPR learn
  that popular videos are watched more.

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
    # Defaults chosen on five data shapes (benchmarks/bpr_shapes.py, docs/models.md): the
    # synthetic default, 10-50 pairs per user, 15% of the pairs, five discrete ratios, and
    # a random per-user holdout; never on a test matrix.
    factors: int = param(64, ge=1, doc="latent dimensions (plus one item-bias column)")
    learning_rate: float = param(0.05, gt=0)
    regularization: float = param(0.01, ge=0)
    iterations: int = param(50, ge=1, doc="epochs: each makes one SGD step per positive")
    # completed views (see ALSConfig); 0 (every view a positive) was worse on every shape
    threshold: float = param(1.0, ge=0, doc="positives: watch_ratio >= threshold")
    # implicit draws a negative as the item of a random positive (popularity-weighted), so
    # BPR alone cannot learn that popular items are liked more; see BPRRecommender
    uniform_negatives: float = param(
        0.9, ge=0, lt=1, doc="share of negatives drawn uniformly over the items"
    )
    verify_negative_samples: bool = True
    seed: int = param(0, ge=0)
    num_threads: int = param(0, ge=0, doc="0 = all cores; 1 = reproducible")

    def check(self) -> None:
        from kuairec.errors import ConfigError

        if self.uniform_negatives > 0 and not self.verify_negative_samples:
            raise ConfigError(
                "bpr: uniform_negatives > 0 needs verify_negative_samples = true (the "
                "sampling rows must be skipped, never trained)"
            )


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


class BPRRecommender(_ImplicitModel):
    """Bayesian Personalised Ranking (implicit's CPU SGD).

    implicit draws each negative as the item of a random stored entry, i.e. in proportion
    to the item's number of positives: a popular item is as likely to be the negative as
    the positive, so the item bias cannot learn popularity and BPR ranked below the
    popularity baseline on sparse data. The wrapper appends rows holding every item to the
    matrix implicit sees, sized so that ``uniform_negatives`` of the entries (hence of the
    negatives) are uniform over the items; with ``verify_negative_samples`` every draw from
    those rows is skipped (a row holding every item has no negative), so they train nothing
    and their factors are dropped. Each epoch still makes one update per positive on
    average, but draws ``1 / (1 - uniform_negatives)`` samples: 10x the old fit time at 0.9.
    """

    name = "bpr"
    cost = "moderate"
    tune_trials = 5  # a fit costs ~10x ALS's: fewer trials keep the default run's budget
    deterministic = False
    nondeterministic_reason = (
        "implicit's BPR updates the factors from several threads at once (Hogwild): the "
        "same seed gives slightly different factors from run to run unless num_threads = 1"
    )
    Config = BPRConfig
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
    test_settings = {"factors": 8, "iterations": 100, "num_threads": 1}

    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None:
        c = self.config
        x = weighted_matrix(train.interactions, "binary", 1.0, c.threshold)
        if x.nnz == 0:
            raise ModelError(f"{self.name}: no training pairs left (threshold={c.threshold})")
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

        self._fit_users = x.shape[0]
        # a copy: implicit needs writable buffers and a cached dataset's are read-only
        self._run(make, self.with_uniform_rows(x, c.uniform_negatives), progress)

    @property
    def state_width(self) -> int:
        """implicit's BPR stores one item-bias column beside the factors."""
        return self.config.factors + 1

    def set_factors(self, user_f: np.ndarray, item_f: np.ndarray, x: sp.csr_matrix) -> None:
        n = getattr(self, "_fit_users", x.shape[0])  # without the sampling-only rows
        super().set_factors(user_f[:n], item_f, x[:n])

    @staticmethod
    def with_uniform_rows(x: sp.csr_matrix, share: float) -> sp.csr_matrix:
        """A copy of ``x`` with rows holding every item appended, so that ``share`` of its
        entries, and so of implicit's negatives, are uniform over the items."""
        import scipy.sparse as sp

        if share <= 0:
            return x.copy()
        n_items = x.shape[1]
        n_rows = int(np.ceil(x.nnz * share / ((1.0 - share) * n_items)))
        full = sp.csr_matrix(
            (
                np.ones(n_rows * n_items, np.float32),
                np.tile(np.arange(n_items, dtype=np.int32), n_rows),
                np.arange(0, (n_rows + 1) * n_items, n_items, dtype=np.int64),
            ),
            shape=(n_rows, n_items),
        )
        return sp.vstack([x, full], format="csr", dtype=np.float32)
