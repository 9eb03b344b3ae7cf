"""What every model that ends in user and item factors shares, whoever trained them.

A factor model scores ``user_factors[u] . item_factors[i] + item_offset[i]``. Training is
the subclass's business (implicit's ALS or BPR here, Spark's ALS elsewhere): it hands its
raw factors and the training matrix to :meth:`FactorModel.set_factors`, which applies the
common rules, and from then on scoring, new users, saving and evaluation are the same
for every factor model:

- cold users (no training pairs) get the mean factor of the warm users, which ranks
  items much like popularity;
- cold items (no training pairs) get zero factors and an offset below any
  ``|user . item|`` (Cauchy-Schwarz bound), so they rank after every other item;
- a new user's history is folded in by the exact weighted least-squares solve against
  the fixed item factors (Hu, Koren & Volinsky 2008; what implicit's
  ``recalculate_user`` does): ``(Y^T Y + Y^T (C_u - I) Y + reg I) x_u = Y^T C_u p_u``,
  with the model's own confidences ``C_u`` (:meth:`FactorModel.fold_in_confidence`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.errors import ModelError
from kuairec.models.base import Recommender, similar_top_k
from kuairec.models.matrices import row_is_empty

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp


class FactorModel(Recommender):
    """Scoring, cold users and items, fold-in and saved state of a factor model.

    Subclasses fit, then call :meth:`set_factors`. Those that support new users set
    ``supports_history = True`` and implement :meth:`fold_in_confidence` and
    :attr:`fold_in_regularization`.
    """

    history_reason = "its factors have no closed-form fold-in for a new user"

    def set_factors(self, user_f: np.ndarray, item_f: np.ndarray, x: sp.csr_matrix) -> None:
        """Store learned factors; ``x`` is the training matrix they were fitted on (its
        pattern tells which users and items are cold)."""
        user_f = np.array(user_f, dtype=np.float32, order="C")
        item_f = np.array(item_f, dtype=np.float32, order="C")
        if user_f.shape[0] != x.shape[0] or item_f.shape[0] != x.shape[1]:
            raise ModelError(
                f"{self.name}: factors of shapes {user_f.shape} and {item_f.shape} do not "
                f"match the training matrix {x.shape}"
            )
        if user_f.shape[1] != item_f.shape[1]:
            raise ModelError(
                f"{self.name}: user and item factors differ in width "
                f"({user_f.shape[1]} vs {item_f.shape[1]})"
            )
        cold_users = row_is_empty(x)
        warm = user_f[~cold_users]
        self.default_user_ = (
            warm.mean(axis=0) if warm.size else np.zeros(user_f.shape[1], np.float32)
        )
        user_f[cold_users] = self.default_user_
        cold_items = np.bincount(x.indices, minlength=x.shape[1]) == 0
        item_f[cold_items] = 0.0
        bound = _max_norm(user_f) * _max_norm(item_f)
        self.item_offset_ = np.where(cold_items, -(2.0 * bound + 1.0), 0.0).astype(np.float32)
        self.user_factors_, self.item_factors_ = user_f, item_f
        self._gram_key = None  # new item factors: the fold-in Gram is recomputed

    # ------------------------------------------------------------------ scoring
    def _score(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        return self._scores_of(self.user_factors_[users], items)

    def _score_history(self, history: sp.csr_matrix, items: np.ndarray | None) -> np.ndarray:
        return self._scores_of(self.fold_in(history), items)

    def _scores_of(self, user_f: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        item_f = self.item_factors_ if items is None else self.item_factors_[items]
        offset = self.item_offset_ if items is None else self.item_offset_[items]
        out = batch_invariant_product(user_f, item_f)
        out += offset
        return out

    def similar_items(self, items: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items by the cosine of their factors; items without training pairs (zero
        factors) are similar to nothing."""
        return similar_top_k(self, items, k, self._item_cosine)

    def _item_cosine(self, items: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(self.item_factors_, axis=1)
        out = batch_invariant_product(self.item_factors_[items], self.item_factors_)
        denom = norms[items, None] * norms[None, :]
        np.divide(out, denom, out=out, where=denom > 0)
        out[:, norms == 0] = -np.inf
        out[norms[items] == 0] = -np.inf
        return out

    # ------------------------------------------------------------------ new users
    def fold_in_confidence(self, history: sp.csr_matrix) -> sp.csr_matrix:
        """The confidence ``c_ui`` of each kept history entry (entries dropped by the
        model's threshold removed), as the model's training used it."""
        raise ModelError(f"{self.name} cannot score new users' histories: {self.history_reason}")

    @property
    def fold_in_regularization(self) -> float:
        raise ModelError(f"{self.name} has no fold-in regularisation")

    def fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """User factors (n_rows, factors) for new users' histories; an empty history gets
        the cold-user factor."""
        conf = self.fold_in_confidence(history)
        return solve_users(
            self.item_factors_, conf, self.fold_in_regularization, self.default_user_,
            base=self._gram(),
        )  # fmt: skip

    def _gram(self) -> np.ndarray:
        """``Y^T Y + reg I`` in float64, computed once per set of item factors (a new-user
        request then costs O(history x factors^2), not O(items x factors^2))."""
        key = (id(self.item_factors_), self.fold_in_regularization)
        if getattr(self, "_gram_key", None) != key:
            y = self.item_factors_.astype(np.float64)
            self._gram_value = y.T @ y + self.fold_in_regularization * np.eye(y.shape[1])
            self._gram_key = key
        return self._gram_value

    # ------------------------------------------------------------------ state
    @property
    def state_width(self) -> int | None:
        """Columns of the saved factors that the config implies (None: not implied)."""
        return getattr(self.config, "factors", None)

    def expected_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """The saved arrays' shapes that model.json implies (checked on load)."""
        f = self.state_width
        return {
            "user_factors": (self.n_users_, f),
            "item_factors": (self.n_items_, f),
            "item_offset": (self.n_items_,),
            "default_user": (f,),
        }

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "item_offset": self.item_offset_,
            "default_user": self.default_user_,
        }

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.user_factors_ = np.ascontiguousarray(state["user_factors"], dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(state["item_factors"], dtype=np.float32)
        self.item_offset_ = np.ascontiguousarray(state["item_offset"], dtype=np.float32)
        self.default_user_ = np.ascontiguousarray(state["default_user"], dtype=np.float32)
        self._gram_key = None


def solve_users(
    item_f: np.ndarray,
    conf: sp.csr_matrix,
    reg: float,
    default: np.ndarray,
    base: np.ndarray | None = None,
) -> np.ndarray:
    """Exact implicit-ALS user factors for each row of the confidence matrix ``conf``.

    Row u solves ``(Y^T Y + sum_i (c_ui - 1) y_i y_i^T + reg I) x = sum_i c_ui y_i`` over
    its stored entries i (float64); a row with no entry gets ``default``. ``base`` is
    ``Y^T Y + reg I`` when the caller has it already.
    """
    k = item_f.shape[1]
    if base is None:
        y64 = item_f.astype(np.float64)
        base = y64.T @ y64 + reg * np.eye(k)
    out = np.empty((conf.shape[0], k), dtype=np.float32)
    for r in range(conf.shape[0]):
        lo, hi = conf.indptr[r], conf.indptr[r + 1]
        if lo == hi:
            out[r] = default
            continue
        y = item_f[conf.indices[lo:hi]].astype(np.float64)
        c = conf.data[lo:hi].astype(np.float64)
        a = base + (y.T * (c - 1.0)) @ y
        out[r] = np.linalg.solve(a, y.T @ c)
    return out


def _max_norm(f: np.ndarray) -> float:
    return float(np.linalg.norm(f, axis=1).max()) if f.size else 0.0


def batch_invariant_product(user_f: np.ndarray, item_f: np.ndarray) -> np.ndarray:
    """``user_f @ item_f.T`` as float32 whose every entry is the same whichever users and
    items share the call.

    A float32 BLAS product rounds an entry differently with the matrices' shapes on some
    CPUs (OpenBLAS's Haswell kernel on an AMD EPYC VM: of 233 x 300 entries, 3,423
    differed from the same rows of a 700-row product, and equal item rows scored
    differently by their column), so a user's list would depend on the batch it was
    scored in, and the Spark engine's batches would not give the local engine's lists.
    Products of float32 factors are exact in float64 and the float64 sums differ across
    shapes by a few float64 units in the last place, far below float32's rounding: the
    float64 product rounded once to float32 gives the same entries in any batch (in every
    shape measured; an entry would have to lie within those few units of a float32
    rounding boundary). The factor matrices are narrow (rank 8-128), so the float64
    product costs little beside ranking its scores."""
    out = user_f.astype(np.float64) @ item_f.T.astype(np.float64)
    return out.astype(np.float32)
