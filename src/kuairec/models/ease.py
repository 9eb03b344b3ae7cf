"""EASE (Steck 2019): a closed-form linear item-item autoencoder.

``P = (X^T X + lambda I)^-1``, ``B = I - P / diag(P)`` (i.e. ``B_ij = -P_ij / P_jj``), with
a zero diagonal; a user's scores are ``x_user @ B``. ``X`` is the binarised (default) or
watch_ratio-weighted training matrix. The inverse is taken through a float32 Cholesky
factorisation (LAPACK potrf + potri), redone in float64 if float32 fails.

Memory is about two n_items^2 float32 arrays (~0.5 GB each at KuaiRec's 10,728 videos);
above ``max_items`` items the fit refuses and suggests itemknn. Cold users (no training
pairs) score 0 everywhere, so ties are broken by item_idx; cold items score 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.errors import ConfigError, ModelError
from kuairec.models.base import Recommender, similar_top_k, top_k
from kuairec.models.matrices import (
    Weighting,
    csr_from_state,
    csr_state,
    item_gram,
    select_rows,
    symmetrize_upper,
    user_rows_dense,
    weighted_gram,
    weighted_matrix,
    weighted_rows,
)
from kuairec.models.params import Param, param

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import TrainSet
    from kuairec.evaluation.protocols import TestSet


@dataclass(frozen=True)
class EASEConfig:
    l2: float = param(500.0, gt=0, doc="lambda added to the Gram diagonal")
    # watch_ratio-weighted rows beat binary ones on the temporal holdout of the training log
    weighting: Weighting = "linear"
    clip: float = param(5.0, gt=0, doc="watch_ratio is clipped at this value")
    threshold: float = param(0.0, ge=0, doc="pairs with watch_ratio below it are dropped")
    max_items: int = param(20_000, ge=1, doc="refuse to fit above this many items")


def ease_weights(x: sp.csr_matrix, l2: float, gram: np.ndarray | None = None) -> np.ndarray:
    """The EASE matrix B (float32, zero diagonal) of a user x item training matrix;
    ``gram`` (overwritten) is ``X^T X`` when the caller has it."""
    gram = item_gram(x) if gram is None else gram
    n = gram.shape[0]
    gram.flat[:: n + 1] += np.float32(l2)
    p = _spd_inverse32(gram)
    if p is None:  # float32 Cholesky failed: redo the inverse in float64
        del gram
        gram64 = item_gram(x).astype(np.float64)
        gram64.flat[:: n + 1] += l2
        p = np.linalg.inv(gram64).astype(np.float32)
        del gram64
    diag = p.diagonal().copy()
    p /= -diag[None, :]
    p.flat[:: n + 1] = 0.0
    return p


def sparsify_weights(b: np.ndarray, top_n: int, block: int = 1024) -> sp.csr_matrix:
    """EASE's serving form: row i of ``B`` cut to its ``top_n`` largest positive weights
    (ties: lower item_idx), a CSR matrix. A history then gathers ``top_n`` weights per
    watched item instead of a dense row of n_items."""
    import scipy.sparse as sp

    n = b.shape[1]
    keep = min(int(top_n), n)
    if keep < 1:
        raise ConfigError(f"ease: top_n must be an integer >= 1, got {top_n!r}")
    rows, cols, vals = [], [], []
    for s in range(0, b.shape[0], block):
        top, top_vals = top_k(np.asarray(b[s : s + block], dtype=np.float32), keep)
        pos = top_vals > 0
        rows.append(np.nonzero(pos)[0] + s)
        cols.append(top[pos])
        vals.append(top_vals[pos])
    data = (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols)))
    return sp.csr_matrix(data, shape=b.shape, dtype=np.float32)


def gather_rows(x: sp.csr_matrix, b: sp.csr_matrix) -> np.ndarray:
    """``x @ b`` as a dense float32 array, row by row: each row of ``x`` gathers only the
    rows of ``b`` of its own items (what one request's history costs)."""
    out = np.zeros((x.shape[0], b.shape[1]), dtype=np.float32)
    for r in range(x.shape[0]):
        lo, hi = x.indptr[r], x.indptr[r + 1]
        if lo == hi:
            continue
        sub = b[x.indices[lo:hi]]
        weights = np.repeat(x.data[lo:hi], np.diff(sub.indptr)) * sub.data
        out[r] = np.bincount(sub.indices, weights=weights, minlength=b.shape[1])
    return out


def _spd_inverse32(a: np.ndarray) -> np.ndarray | None:
    """Inverse of a symmetric positive definite float32 matrix (``a`` is overwritten),
    or None when float32 Cholesky fails."""
    from scipy.linalg.lapack import spotrf, spotri

    c, info = spotrf(a, lower=0, clean=1, overwrite_a=1)
    if info != 0:
        return None
    inv, info = spotri(c, lower=0, overwrite_c=1)
    if info != 0 or not np.isfinite(inv.diagonal()).all() or (inv.diagonal() <= 0).any():
        return None
    symmetrize_upper(inv)
    return inv


class EASERecommender(Recommender):
    """Embarrassingly Shallow Autoencoder (closed form)."""

    name = "ease"
    Config = EASEConfig
    supports_history = True
    tune_in_run = True
    search_space = {
        "l2": Param("float", 10.0, 5000.0, log=True),
        "weighting": Param("choice", choices=("binary", "log", "linear")),
        "threshold": Param("choice", choices=(0.0, 1.0, 2.0)),
    }
    test_settings = {"l2": 1.0}

    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None:
        c = self.config
        if train.n_items > c.max_items:
            raise ConfigError(
                f"ease: {train.n_items} items is above max_items={c.max_items}; its dense "
                f"{train.n_items}^2 inverse would need about "
                f"{2 * 4 * train.n_items**2 / 1e9:.1f} GB. Use 'itemknn' instead, or raise "
                "'max_items'"
            )
        inter = train.interactions
        x = weighted_matrix(inter, c.weighting, c.clip, c.threshold)
        self.x_ = x
        self.b_ = ease_weights(x, c.l2, weighted_gram(inter, x, c.weighting, c.clip, c.threshold))

    def _score(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        if self.is_sparsified:
            return self._scores_of(select_rows(self.x_, users), items)
        return self._scores_of(user_rows_dense(self.x_, users), items)

    def _score_history(self, history: sp.csr_matrix, items: np.ndarray | None) -> np.ndarray:
        c = self.config
        x = weighted_rows(history, c.weighting, c.clip, c.threshold)
        return self._scores_of(x if self.is_sparsified else x.toarray(), items)

    def _scores_of(self, x: Any, items: np.ndarray | None) -> np.ndarray:
        if self.is_sparsified:
            out = gather_rows(x, self.b_)
            return out if items is None else np.take(out, items, axis=1)
        if items is None or 2 * items.size >= self.b_.shape[1]:
            # most columns: the full product, then its columns (the same numbers),
            # without copying B's columns per batch (2 s for 10,499 of 10,728)
            out = x @ self.b_
            return out if items is None else np.take(out, items, axis=1)  # C order
        return x @ self.b_[:, items]

    # ------------------------------------------------------------------ serving form
    @property
    def is_sparsified(self) -> bool:
        """Whether ``b_`` is the sparse top-N serving form (:meth:`sparsified`)."""
        import scipy.sparse as sp

        return sp.issparse(getattr(self, "b_", None))

    def sparsified(self, top_n: int) -> EASERecommender:
        """A serving copy whose ``B`` keeps each row's ``top_n`` largest positive weights
        (:func:`sparsify_weights`); it scores and folds in alike, it is not saved."""
        self._check_fitted()
        if self.is_sparsified:
            raise ModelError("ease: this model is already a sparsified serving copy")
        copy = type(self)(self.config)
        copy.__dict__.update({k: v for k, v in self.__dict__.items() if k != "config"})
        copy.b_ = sparsify_weights(self.b_, top_n)
        copy.top_n_ = int(top_n)
        return copy

    def serving_copy(self, top_n: int = 0) -> EASERecommender:
        """The sparse top-``top_n`` copy (:meth:`sparsified`) when ``top_n`` > 0 and ``B``
        is dense; else this model."""
        if top_n > 0 and not self.is_sparsified:
            return self.sparsified(top_n)
        return self

    def serving_form(self) -> str:
        if self.is_sparsified:
            return f"sparse B, top {self.top_n_} weights per item"
        return "dense B"

    def similar_items(self, items: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Row i of ``B``: the items whose score a watch of i raises most (``B[i, j]``,
        what i contributes to j); in the sparsified form, only the kept weights."""
        return similar_top_k(self, items, k, self._weight_rows)

    def _weight_rows(self, items: np.ndarray) -> np.ndarray:
        if not self.is_sparsified:
            return self.b_[items]
        rows = self.b_[items].tocoo()
        out = np.full((items.size, self.b_.shape[1]), -np.inf, dtype=np.float32)
        out[rows.row, rows.col] = rows.data
        return out

    def expected_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """The saved arrays' shapes that model.json implies (checked on load)."""
        return {"b": (self.n_items_, self.n_items_), "x_shape": (self.n_users_, self.n_items_)}

    def _get_state(self) -> dict[str, np.ndarray]:
        if self.is_sparsified:
            raise ModelError("ease: a sparsified serving copy is not saved; save the dense model")
        return {"b": self.b_, **csr_state("x", self.x_)}

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.b_ = np.asarray(state["b"], dtype=np.float32)
        self.x_ = csr_from_state("x", state)
