"""The one Recommender contract every model follows.

A model only stores its checked config in ``__init__``; ``fit(train)`` learns state
(attributes ending in ``_``) and returns ``self``; ``score`` gives a dense float32 block of
scores; ``recommend`` (implemented once, here) turns scores into top-k lists with
exclusions, candidate sets, deterministic ties and -1 padding. Models see only indices
(``user_idx``, ``item_idx``), never raw ids or files.

A model implements ``_fit``, ``_score``, ``_get_state`` / ``_set_state`` (arrays only:
``save`` writes them to ``weights.npz``), optionally ``unavailable_reason`` and, when
``predicts_ratings`` is true, ``_predict``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from kuairec.errors import ConfigError, ModelError
from kuairec.models.params import config_class, config_from_dict, config_values

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import TrainSet


class Recommender(abc.ABC):
    """Base class of every model: see the module docstring for what a model implements."""

    name: ClassVar[str]
    Config: ClassVar[type]
    predicts_ratings: ClassVar[bool] = False

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        cls = config_class(type(self))
        if config is None:
            values: dict[str, Any] = {}
        elif isinstance(config, cls):
            values = config_values(config)
        elif isinstance(config, Mapping):
            values = dict(config)
        else:
            raise ConfigError(
                f"{self.name}: config must be a {cls.__name__} or a dict, "
                f"got {type(config).__name__}"
            )
        self.config = config_from_dict(type(self), {**values, **overrides})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    # ------------------------------------------------------------------ fitting
    @classmethod
    def unavailable_reason(cls, train: TrainSet) -> str | None:
        """Why this model cannot run on ``train`` (None when it can)."""
        return None

    def fit(self, train: TrainSet, progress: bool = False) -> Self:
        """Learn from the training set; returns ``self``."""
        reason = self.unavailable_reason(train)
        if reason is not None:
            raise ModelError(f"{self.name} cannot be fitted: {reason}")
        if train.interactions.shape != (train.n_users, train.n_items):
            raise ModelError(
                f"{self.name}: training interactions have shape {train.interactions.shape}, "
                f"expected (n_users, n_items) = ({train.n_users}, {train.n_items})"
            )
        self._fit(train, progress)
        inter = train.interactions
        self.n_users_ = int(train.n_users)
        self.n_items_ = int(train.n_items)
        self.fingerprint_ = train.fingerprint()
        self.trained_on_ = (
            f"{train.n_users} users x {train.n_items} items, {inter.nnz} user-item pairs"
        )
        return self

    @abc.abstractmethod
    def _fit(self, train: TrainSet, progress: bool) -> None: ...

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_items_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise ModelError(f"{self.name} is not fitted: call fit(train) or load(path) first")

    # ------------------------------------------------------------------ scoring
    def score(self, users: Any, items: Any = None) -> np.ndarray:
        """float32 scores of shape (len(users), n_items or len(items)); higher = better."""
        self._check_fitted()
        users = as_indices(users, self.n_users_, "users")
        items = None if items is None else as_indices(items, self.n_items_, "items")
        out = self._score(users, items)
        n_cols = self.n_items_ if items is None else items.size
        out = np.require(out, dtype=np.float32, requirements=["C", "W"])
        if out.shape != (users.size, n_cols):
            raise ModelError(
                f"{self.name}._score returned shape {out.shape}, expected {(users.size, n_cols)}"
            )
        return out

    @abc.abstractmethod
    def _score(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray: ...

    def recommend(
        self,
        users: Any,
        k: int,
        exclude: sp.csr_matrix | None = None,
        candidates: Any = None,
        batch_size: int = 1024,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items per user: ``(items int64 (n, k), scores float32 (n, k))``.

        Sorted by score, ties by lower item_idx; padded with -1 / -inf when fewer than k
        items remain. ``exclude`` has one row per requested user (row i <-> users[i]);
        its items are never returned. ``candidates`` restricts the items returned.
        """
        self._check_fitted()
        k = _positive_int(k, "k")
        batch_size = _positive_int(batch_size, "batch_size")
        users = as_indices(users, self.n_users_, "users")
        cand = (
            None
            if candidates is None
            else np.unique(as_indices(candidates, self.n_items_, "candidates"))
        )
        exclude = _check_exclude(exclude, users.size, self.n_items_)
        n_cols = self.n_items_ if cand is None else cand.size
        out_items = np.full((users.size, k), -1, dtype=np.int64)
        out_scores = np.full((users.size, k), -np.inf, dtype=np.float32)
        if n_cols == 0:
            return out_items, out_scores
        col_of_item = None
        if cand is not None and exclude is not None:
            col_of_item = np.full(self.n_items_, -1, dtype=np.int64)
            col_of_item[cand] = np.arange(cand.size)
        kk = min(k, n_cols)
        for start in range(0, users.size, batch_size):
            stop = min(start + batch_size, users.size)
            s = self.score(users[start:stop], cand)
            s[np.isnan(s)] = -np.inf
            if exclude is not None:
                _mask(s, exclude[start:stop], col_of_item)
            cols, vals = top_k(s, kk)
            items = cols if cand is None else cand[cols]
            items[np.isneginf(vals)] = -1
            out_items[start:stop, :kk] = items
            out_scores[start:stop, :kk] = vals
        return out_items, out_scores

    def predict(self, users: Any, items: Any) -> np.ndarray:
        """Predicted watch_ratio per (user, item) pair (models with ``predicts_ratings``)."""
        if not self.predicts_ratings:
            raise ModelError(
                f"{self.name} does not predict watch_ratio (predicts_ratings is False); "
                "use a model that does, such as 'oracle'"
            )
        self._check_fitted()
        users = as_indices(users, self.n_users_, "users")
        items = as_indices(items, self.n_items_, "items")
        if users.shape != items.shape:
            raise ConfigError(
                f"predict: users and items must have the same length, got {users.size} "
                f"and {items.size}"
            )
        return np.asarray(self._predict(users, items), dtype=np.float32)

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        raise ModelError(f"{self.name} does not implement _predict")

    # ------------------------------------------------------------------ persistence
    @abc.abstractmethod
    def _get_state(self) -> dict[str, np.ndarray]: ...

    @abc.abstractmethod
    def _set_state(self, state: Mapping[str, np.ndarray]) -> None: ...

    def save(
        self, path: Path | str, overwrite: bool = False, trained_on: str | None = None
    ) -> Path:
        """Write ``model.json`` + ``weights.npz`` into the folder ``path`` (atomically)."""
        from kuairec.models.persist import save_model

        self._check_fitted()
        return save_model(self, Path(path), overwrite=overwrite, trained_on=trained_on)

    @classmethod
    def load(cls, path: Path | str, expected_fingerprint: str | None = None) -> Recommender:
        """Load a saved model; the class is picked by the saved name via the registry."""
        from kuairec.models.persist import load_model

        model = load_model(Path(path), expected_fingerprint=expected_fingerprint)
        if cls is not Recommender and not isinstance(model, cls):
            raise ModelError(f"{path}: holds a {model.name!r} model, not a {cls.name!r} model")
        return model


# ---------------------------------------------------------------------- helpers
def as_indices(values: Any, n: int, what: str) -> np.ndarray:
    """A 1-D int64 array of indices in [0, n), or a ModelError naming ``what``."""
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ConfigError(f"{what} must be a 1-D array of indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"{what} must hold integer indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        bad = arr[(arr < 0) | (arr >= n)][:5].tolist()
        raise ModelError(f"{what} index {bad} out of range [0, {n}) of the fitted model")
    return arr


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ConfigError(f"parameter {what!r} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_exclude(exclude: Any, n_rows: int, n_items: int) -> sp.csr_matrix | None:
    if exclude is None:
        return None
    import scipy.sparse as sp

    if not sp.issparse(exclude):
        raise ConfigError(f"exclude must be a scipy sparse matrix, got {type(exclude).__name__}")
    if exclude.shape != (n_rows, n_items):
        raise ConfigError(
            f"exclude must have one row per requested user and one column per item, "
            f"shape ({n_rows}, {n_items}), got {exclude.shape}"
        )
    return sp.csr_matrix(exclude)


def _mask(s: np.ndarray, excl: sp.csr_matrix, col_of_item: np.ndarray | None) -> None:
    """Set excluded entries of the score block to -inf (in place)."""
    rows = np.repeat(np.arange(excl.shape[0]), np.diff(excl.indptr))
    cols = excl.indices.astype(np.int64)
    if col_of_item is not None:
        cols = col_of_item[cols]
        keep = cols >= 0
        rows, cols = rows[keep], cols[keep]
    s[rows, cols] = -np.inf


def top_k(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k largest entries per row, sorted by value
    (descending) and, among equal values, by lower column index. ``k <= s.shape[1]``."""
    n_rows, n = s.shape
    if k >= n:
        chosen = np.broadcast_to(np.arange(n), (n_rows, n))
    else:
        kth = np.partition(s, n - k, axis=1)[:, n - k, None]  # k-th largest value per row
        keep = s >= kth
        over = np.flatnonzero(keep.sum(axis=1) > k)  # rows with ties at the k-th value
        if over.size:
            sub, sub_kth = s[over], kth[over]
            above = sub > sub_kth
            tied = sub == sub_kth
            room = k - above.sum(axis=1, keepdims=True)
            keep[over] = above | (tied & (np.cumsum(tied, axis=1) <= room))
        chosen = np.nonzero(keep)[1].reshape(n_rows, k)  # ascending column order
    vals = np.take_along_axis(s, chosen, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")  # stable: equal values keep index order
    return np.take_along_axis(chosen, order, axis=1), np.take_along_axis(vals, order, axis=1)
