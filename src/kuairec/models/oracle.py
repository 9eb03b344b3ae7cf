"""The oracle: ranks by the synthetic generator's expected watch_ratio.

Only synthetic data has a truth matrix (the expected watch_ratio of every small-matrix
pair, ``KuaiRecDataset.truth``). It never travels in the TrainSet, so no learned model
can read it by accident: the oracle alone is given it, explicitly, as a fit resource,
``oracle.fit(train, resources=FitResources(truth=ds.truth))`` (``uses_truth``; the
pipeline does this). On real
data the oracle is unavailable. It is the ceiling the learned models are
measured against. Pairs without truth score :data:`NO_TRUTH` (far below any real value,
but finite, so they still fill a top-k list after every pair with truth); ``predict``
returns NaN for them. Cold users and items are handled the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kuairec.errors import DataError, ModelError
from kuairec.models.base import FitResources, Recommender
from kuairec.models.matrices import csr_from_state, csr_state

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.data.dataset import TrainSet
    from kuairec.evaluation.protocols import TestSet

NO_TRUTH = np.float32(-1e30)


@dataclass(frozen=True)
class OracleConfig:
    pass


class OracleRecommender(Recommender):
    """Scores are the true expected watch_ratio (synthetic data only)."""

    name = "oracle"
    Config = OracleConfig
    predicts_ratings = True
    reference = True
    uses_truth = True
    history_reason = "it knows the truth of the data's own users only"

    def _use_resources(self, resources: FitResources) -> None:
        self.truth = resources.truth

    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None:
        truth = self.truth
        if truth is None:
            raise ModelError(
                "oracle: no truth given; it needs the synthetic expected watch ratios, "
                "fit(train, resources=FitResources(truth=ds.truth)) (no "
                "small_matrix_truth.csv: real data)"
            )
        if truth.shape != (train.n_users, train.n_items):
            raise DataError(
                f"truth has shape {truth.shape}, expected (n_users, n_items) = "
                f"({train.n_users}, {train.n_items})"
            )
        self.truth_ = truth.csr("watch_ratio_mean")
        self.truth_.sort_indices()  # _predict relies on sorted keys

    def _score(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        sub = self.truth_[users]
        rows = np.repeat(np.arange(users.size), np.diff(sub.indptr))
        cols = sub.indices.astype(np.int64)
        n_cols = self.truth_.shape[1]
        if items is not None:
            col_of_item = np.full(n_cols, -1, dtype=np.int64)
            col_of_item[items] = np.arange(items.size)
            cols = col_of_item[cols]
            keep = cols >= 0
            rows, cols, n_cols = rows[keep], cols[keep], items.size
            values = sub.data[keep]
        else:
            values = sub.data
        out = np.full((users.size, n_cols), NO_TRUTH, dtype=np.float32)
        out[rows, cols] = values
        return out

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        t = self.truth_
        n_items = np.int64(t.shape[1])
        keys = np.repeat(np.arange(t.shape[0], dtype=np.int64), np.diff(t.indptr)) * n_items
        keys += t.indices  # sorted: rows ascending, items ascending inside a row
        query = users * n_items + items
        pos = np.minimum(np.searchsorted(keys, query), max(keys.size - 1, 0))
        found = keys[pos] == query if keys.size else np.zeros(query.size, dtype=bool)
        return np.where(found, t.data[pos] if keys.size else np.nan, np.nan).astype(np.float32)

    def expected_shapes(self) -> dict[str, tuple[int | None, ...]]:
        return {"truth_shape": (self.n_users_, self.n_items_)}

    def _get_state(self) -> dict[str, np.ndarray]:
        return csr_state("truth", self.truth_)

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.truth_ = csr_from_state("truth", state)
        self.truth_.sort_indices()
