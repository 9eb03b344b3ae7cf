"""The one Recommender contract every model follows.

A model only stores its checked config in ``__init__``; ``fit(train, valid)`` learns state
(attributes ending in ``_``) and returns ``self``; ``score`` gives a dense float32 block of
scores; ``recommend`` (implemented once, here) turns scores into top-k lists with
exclusions, candidate sets, deterministic ties and -1 padding. Models see only indices
(``user_idx``, ``item_idx``), never raw ids or files.

Both ``score`` and ``recommend`` take either known user indices or ``history=``: a CSR
matrix with one row per new user and one column per item (watch_ratio values), scored
without retraining by the models whose ``supports_history`` is true (the others say why
in ``history_reason``).

A model implements ``_fit``, ``_score``, ``_get_state`` / ``_set_state`` (arrays only:
``save`` writes them to ``weights.npz``), optionally ``unavailable_reason``,
``_score_history`` (with ``supports_history``) and, when ``predicts_ratings`` is true,
``_predict``. A model class also describes itself through class attributes, which the
registry, the tuner, the report and the contract suite read (see :class:`Recommender`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from kuairec.errors import ConfigError, ModelError
from kuairec.evaluation.metrics import row_score_order
from kuairec.models.params import Param, config_class, config_from_dict, config_values
from kuairec.result import Cost

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import TrainSet
    from kuairec.evaluation.protocols import TestSet


@dataclass(frozen=True)
class FitResources:
    """What the pipeline hands to the models that declare they use it, and to no other.

    - ``truth``: the synthetic generator's expected watch ratios of the small matrix
      (``uses_truth`` models only: the oracle); never part of a :class:`TrainSet`;
    - ``fitted``: models the run already fitted on the same training data with the
      parameters it used, by registry name (a model that builds on others, such as a
      two-stage ranker, may reuse them instead of refitting).
    """

    truth: Any = None
    fitted: Mapping[str, Recommender] = field(default_factory=dict)


class Recommender(abc.ABC):
    """Base class of every model: see the module docstring for what a model implements.

    The class attributes are the model's self-description:

    - ``search_space``: config field -> :class:`~kuairec.models.params.Param`, searched by
      ``kuairec tune`` (and by ``kuairec run`` when ``tune_in_run``);
    - ``tune_in_run``: whether ``kuairec run`` tunes it (cheap fits only);
    - ``test_settings``: small, fast settings the contract suite fits it with;
    - ``reference``: a reference row (oracle, random), not a learned model: left out of
      "best model" choices and of the paired comparison's baseline;
    - ``personalised``: its lists differ between users (not the popularity baselines);
    - ``requires`` / ``extra``: the optional packages (import names) it needs and the
      ``pip install 'kuairec[extra]'`` that brings them;
    - ``uses_validation``: ``fit`` uses ``valid`` (early stopping or epoch choice), so the
      pipeline passes its validation split;
    - ``supports_history`` / ``history_reason``: whether it scores new users' histories;
    - ``predicts_ratings``: whether ``predict`` gives watch_ratio estimates;
    - ``uses_truth``: its fit receives the synthetic truth as a fit resource (the
      oracle); nothing else ever sees it;
    - ``reuses_fitted``: its fit receives the models the run already fitted on the same
      training set (``FitResources.fitted``), to build on them instead of refitting;
    - ``uses_accelerator``: its config has ``accelerator`` and ``devices`` fields (the
      torch models), which the pipeline fills from ``--accelerator`` / ``--devices``;
    - ``follows``: another model whose chosen parameters this one takes over, mapped by
      :meth:`params_from` (spark_als follows als, tuned or not, so both learn the same).
    - ``scores_cold_items`` / ``cold_items_reason``: whether it ranks videos that have no
      training pairs from their features (tags, captions, duration), so that it takes
      part in the cold-items protocol (``kuairec.evaluation.cold``), and why not.
    - ``cost``: ``"cheap"`` (a fit in seconds at KuaiRec's size), ``"moderate"`` (a
      minute or so) or ``"heavy"`` (a JVM session, many minutes). Sections that refit the
      run's models choose them by this declaration, never by a measured time: the
      validation scores and the validity section refit cheap models, moderate ones on a
      training log of at most 2M pairs, never heavy ones (:mod:`kuairec.pipeline.refits`).
    - ``spark_kind``: how the Spark engine trains it as DataFrame work, when it can:
      ``"counts"`` (an aggregation), ``"cooccurrence"`` (a self-join with top-N pruning),
      ``"factorization"`` (Spark ML's ALS); None: on the driver, when it fits there.
    - ``tune_trials``: how many trials ``kuairec run`` gives its in-run tuning (a count,
      so the same command tunes alike on a fast and a slow machine).
    - :meth:`fit_cores`: how many cores a fit with a given config keeps busy, when it is
      a fixed number (BPR's sequential SGD: 1); :meth:`one_core_fit`: whether it can be
      fitted on one core with its own numbers (a one-core fit, or one whose numbers do
      not depend on its thread count): ``kuairec run`` fits such models two at a time
      (:mod:`kuairec.pipeline.beside`).
    - ``deterministic`` / ``nondeterministic_reason``: whether the same seed gives the same
      fit whatever the machine's load and speed; a model that cannot promise it says why,
      and the report marks its row.

    Instance attributes connect a model to the job that runs it: ``scratch_dir`` (a
    folder the pipeline gives it for checkpoints and logs, deleted when the run
    completes; None = the model makes its own temporary one), ``registered_as`` (the
    registry name it was created under: a preset's own name, saved in model.json) and,
    after ``fit``, an optional ``history_`` (``{"epoch": [...], "<series>": [...]}``:
    training curves the report draws), ``time_limit_fired_`` (what an opt-in time cap
    stopped, else None) and ``fit_remark_`` (what the model says about this fit, e.g.
    that an epoch cap ended it before its curve flattened).
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    predicts_ratings: ClassVar[bool] = False
    supports_history: ClassVar[bool] = False
    history_reason: ClassVar[str] = "it does not implement history scoring"
    search_space: ClassVar[Mapping[str, Param]] = {}
    tune_in_run: ClassVar[bool] = False
    test_settings: ClassVar[Mapping[str, Any]] = {}
    reference: ClassVar[bool] = False
    personalised: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    uses_validation: ClassVar[bool] = False
    uses_truth: ClassVar[bool] = False
    reuses_fitted: ClassVar[bool] = False
    uses_accelerator: ClassVar[bool] = False
    follows: ClassVar[str | None] = None
    scores_cold_items: ClassVar[bool] = False
    cold_items_reason: ClassVar[str] = (
        "it learns nothing about a video without training pairs (no item features)"
    )
    cost: ClassVar[Cost] = "cheap"
    spark_kind: ClassVar[str | None] = None
    tune_trials: ClassVar[int] = 10
    deterministic: ClassVar[bool] = True
    nondeterministic_reason: ClassVar[str] = ""
    scratch_dir: Path | None = None
    registered_as: str | None = None
    time_limit_fired_: str | None = None
    fit_remark_: str | None = None

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
    def params_from(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """This model's parameters for the ``follows`` model's ``params`` (none here)."""
        return {}

    @classmethod
    def fit_cores(cls, config: Any) -> int | None:
        """The cores a fit with ``config`` keeps busy when that is a fixed count (its own
        threads: 1 for a one-thread fit); None: as many as it can use."""
        return None

    @classmethod
    def one_core_fit(cls, config: Any) -> bool:
        """Whether a fit with ``config`` can keep one core busy and give its own numbers: a
        one-core fit (:meth:`fit_cores` 1), or one whose numbers do not depend on its
        thread count (it says so here), which the run then fits on one thread. The run
        fits such models on two lanes (:mod:`kuairec.pipeline.beside`)."""
        return cls.fit_cores(config) == 1

    @classmethod
    def unavailable_reason(cls, train: TrainSet) -> str | None:
        """Why this model cannot run on ``train`` (None when it can)."""
        return None

    def fit(
        self,
        train: TrainSet,
        valid: TestSet | None = None,
        progress: bool = False,
        resources: FitResources | None = None,
    ) -> Self:
        """Learn from the training set; returns ``self``.

        ``valid`` is a held-out split of the training log (the pipeline's validation
        split, disjoint from ``train``; its ``label`` is the run's positive label); a
        model may use it only to stop early or pick its epoch count, never to learn from.
        Models that ignore it ignore it. ``resources`` carries what only some models may
        receive (see :class:`FitResources`); each model takes what it declares.
        """
        reason = self.unavailable_reason(train)
        if reason is not None:
            raise ModelError(f"{self.name} cannot be fitted: {reason}")
        if train.interactions.shape != (train.n_users, train.n_items):
            raise ModelError(
                f"{self.name}: training interactions have shape {train.interactions.shape}, "
                f"expected (n_users, n_items) = ({train.n_users}, {train.n_items})"
            )
        if valid is not None and valid.n_items != train.n_items:
            raise ModelError(
                f"{self.name}: the validation split has {valid.n_items} items, the training "
                f"set {train.n_items}"
            )
        self.time_limit_fired_ = None
        self.fit_remark_ = None
        self._use_resources(resources or FitResources())
        self._fit(train, valid, progress)
        inter = train.interactions
        self.n_users_ = int(train.n_users)
        self.n_items_ = int(train.n_items)
        self.fingerprint_ = train.fingerprint()
        self.trained_on_ = (
            f"{train.n_users} users x {train.n_items} items, {inter.nnz} user-item pairs"
        )
        return self

    @abc.abstractmethod
    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None: ...

    def _use_resources(self, resources: FitResources) -> None:  # noqa: B027 - optional hook
        """Take what this model declares it uses from ``resources`` (nothing here)."""

    def fold_in(self, train: TrainSet) -> Self:
        """After a fit on the validation split's fit part (``uses_validation``): score
        known users from their rows of ``train`` (the whole training log) from now on,
        without training again, where the model can (the autoencoder: its input rows).
        Nothing here. The pipeline calls it once the model's validation scores are taken
        and before the test: the held-out validation pairs are a user's latest."""
        return self

    # ------------------------------------------------------------------ serving
    def serving_copy(self, top_n: int = 0) -> Recommender:
        """The form this model serves in (itself here). ``top_n`` > 0 lets a model with
        a dense item-item matrix keep only that many weights per item (EASE)."""
        return self

    def serving_form(self) -> str:
        """How this model serves, in words (shown by the server)."""
        return "as saved"

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_items_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise ModelError(f"{self.name} is not fitted: call fit(train) or load(path) first")

    # ------------------------------------------------------------------ scoring
    def score(self, users: Any = None, items: Any = None, *, history: Any = None) -> np.ndarray:
        """float32 scores of shape (n_rows, n_items or len(items)); higher = better.

        The rows are the known ``users`` (indices) or, with ``history=``, the rows of a
        CSR matrix of new users' watch ratios (shape (n_rows, n_items)).
        """
        self._check_fitted()
        rows = self._rows(users, history)
        items = None if items is None else as_indices(items, self.n_items_, "items")
        if isinstance(rows, np.ndarray):
            out = self._score(rows, items)
        else:
            out = self._score_history(rows, items)
        n_rows = rows.shape[0]
        n_cols = self.n_items_ if items is None else items.size
        out = np.require(out, dtype=np.float32, requirements=["C", "W"])
        if out.shape != (n_rows, n_cols):
            raise ModelError(
                f"{self.name} returned scores of shape {out.shape}, expected {(n_rows, n_cols)}"
            )
        return out

    # A model's _score and _score_history take the columns of ``items`` with
    # ``np.take(scores, items, axis=1)``, not ``scores[:, items]``: numpy's fancy indexing
    # of the second axis returns a Fortran-ordered array, which score() must copy to C
    # order (100 ms for 1,024 x 10,499 float32) and on which top_k is 25x slower.
    @abc.abstractmethod
    def _score(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray: ...

    def _score_history(self, history: sp.csr_matrix, items: np.ndarray | None) -> np.ndarray:
        raise ModelError(f"{self.name} does not implement _score_history")

    def _rows(self, users: Any, history: Any) -> np.ndarray | sp.csr_matrix:
        """Known user indices, or a checked history matrix (exactly one of the two)."""
        if (users is None) == (history is None):
            raise ConfigError(
                f"{self.name}: give either users (indices of known users) or history= "
                "(a CSR matrix of new users' watch ratios), not both and not neither"
            )
        if users is not None:
            return as_indices(users, self.n_users_, "users")
        if not self.supports_history:
            raise ModelError(
                f"{self.name} cannot score new users' histories: {self.history_reason}"
            )
        return check_history(history, self.n_items_)

    def recommend(
        self,
        users: Any = None,
        k: int = 10,
        exclude: sp.csr_matrix | None = None,
        candidates: Any = None,
        batch_size: int = 1024,
        *,
        history: Any = None,
        exclude_seen: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items per row: ``(items int64 (n, w), scores float32 (n, w))``.

        ``w = min(k, number of candidates)``: a list never holds more than every candidate,
        so a huge ``k`` allocates nothing in proportion to it. Rows are the known ``users``
        or the rows of ``history`` (see :meth:`score`). Sorted by score, ties by lower
        item_idx; padded with -1 / -inf when fewer than w items remain. ``exclude`` has
        one row per requested row; its items are never returned. With ``history``, the
        history's own items are excluded too unless ``exclude_seen=False``.
        ``candidates`` restricts the items returned.
        """
        self._check_fitted()
        k = _positive_int(k, "k")
        batch_size = _positive_int(batch_size, "batch_size")
        rows = self._rows(users, history)
        n_rows = rows.shape[0]
        cand = (
            None
            if candidates is None
            else np.unique(as_indices(candidates, self.n_items_, "candidates"))
        )
        exclude = _check_exclude(exclude, n_rows, self.n_items_)
        if not isinstance(rows, np.ndarray) and exclude_seen:
            seen = history_pattern(rows)
            exclude = seen if exclude is None else (exclude + seen).tocsr()
        n_cols = self.n_items_ if cand is None else cand.size
        width = min(k, max(n_cols, 1))  # a list never holds more than every candidate
        out_items = np.full((n_rows, width), -1, dtype=np.int64)
        out_scores = np.full((n_rows, width), -np.inf, dtype=np.float32)
        if n_cols == 0:
            return out_items, out_scores
        col_of_item = None
        if cand is not None and exclude is not None:
            col_of_item = np.full(self.n_items_, -1, dtype=np.int64)
            col_of_item[cand] = np.arange(cand.size)
        kk = min(k, n_cols)
        for start in range(0, n_rows, batch_size):
            stop = min(start + batch_size, n_rows)
            if isinstance(rows, np.ndarray):
                s = self.score(rows[start:stop], cand)
            else:
                s = self.score(items=cand, history=rows[start:stop])
            s[np.isnan(s)] = -np.inf
            if exclude is not None:
                block = exclude if stop - start == n_rows else exclude[start:stop]
                _mask(s, block, col_of_item)
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

    def similar_items(self, items: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to each of ``items`` by the model's own item-item
        similarity: ``(items int64 (n, w), scores float32 (n, w))``, ``w = min(k,
        n_items - 1)``; an item is never its own neighbour; sorted by score, ties by lower
        item_idx, padded with -1 / -inf where the model knows fewer similar items.
        Models without an item-item similarity raise :class:`ModelError`."""
        raise ModelError(f"{self.name} has no item-item similarity (similar_items)")

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


def check_history(history: Any, n_items: int) -> sp.csr_matrix:
    """A canonical float32 CSR history matrix (n_rows, n_items) of finite values >= 0."""
    import scipy.sparse as sp

    if not sp.issparse(history):
        raise ConfigError(
            f"history must be a scipy sparse matrix (one row per new user, one column per "
            f"item), got {type(history).__name__}"
        )
    if history.ndim != 2 or history.shape[1] != n_items:
        raise ConfigError(
            f"history must have one column per item of the fitted model ({n_items}), "
            f"got shape {history.shape}"
        )
    out = sp.csr_matrix(history, dtype=np.float32, copy=True)
    out.sum_duplicates()
    out.sort_indices()
    if out.nnz and not (np.isfinite(out.data).all() and (out.data >= 0).all()):
        raise ConfigError("history values must be finite watch ratios >= 0")
    return out


def history_pattern(history: sp.csr_matrix) -> sp.csr_matrix:
    """The stored entries of a history (zero watch ratios included) as a 0/1 matrix."""
    import scipy.sparse as sp

    ones = np.ones(history.nnz, dtype=np.float32)
    return sp.csr_matrix((ones, history.indices, history.indptr), shape=history.shape)


def similar_top_k(
    model: Recommender, items: Any, k: int, similarity: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The shared body of ``similar_items``: checks ``items`` and ``k``, calls
    ``similarity(items)`` (float32 ``(n, n_items)``, -inf or NaN = not similar), drops
    each item itself and keeps the top ``min(k, n_items - 1)`` per row."""
    model._check_fitted()
    items = as_indices(items, model.n_items_, "items")
    k = _positive_int(k, "k")
    width = min(k, max(model.n_items_ - 1, 0))
    out_items = np.full((items.size, width), -1, dtype=np.int64)
    out_scores = np.full((items.size, width), -np.inf, dtype=np.float32)
    if width == 0 or items.size == 0:
        return out_items, out_scores
    s = np.array(similarity(items), dtype=np.float32)
    s[np.isnan(s)] = -np.inf
    s[np.arange(items.size), items] = -np.inf
    cols, vals = top_k(s, width)
    cols[np.isneginf(vals)] = -1
    return cols.astype(np.int64), vals


def top_candidates(
    score: Callable[[np.ndarray], np.ndarray],
    users: np.ndarray,
    exclude: sp.csr_matrix,
    candidates: np.ndarray,
    k: int = 10,
    batch_size: int = 1024,
    on_block: Callable[[int, int, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Top-k ``candidates`` per user with :meth:`Recommender.recommend`'s rules (excluded
    items never, NaN below every score, ties by lower item_idx, -1 padded) from a scoring
    function: ``score(users)`` gives the ``(len(users), n_items)`` scores of a batch.

    ``exclude`` has one row per user and is already in candidate columns
    (``exclude[:, candidates]``: a caller ranking the same users again slices it once).
    ``on_block(start, stop, scores)``, when given, first sees each batch's whole float32
    block (rows ``users[start:stop]``), so a caller that needs other entries of the same
    scores does not score the users a second time."""
    out = np.full((users.size, k), -1, dtype=np.int64)
    kk = min(k, candidates.size)
    if kk == 0:
        return out
    for start in range(0, users.size, batch_size):
        stop = min(start + batch_size, users.size)
        block = np.asarray(score(users[start:stop]), dtype=np.float32)
        if on_block is not None:
            on_block(start, stop, block)
        s = np.take(block, candidates, axis=1)  # C order (a[:, cols] is Fortran-ordered)
        s[np.isnan(s)] = -np.inf
        _mask(s, exclude[start:stop], None)
        cols, vals = top_k(s, kk)
        items = candidates[cols]
        items[np.isneginf(vals)] = -1
        out[start:stop, :kk] = items
    return out


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
    return exclude if isinstance(exclude, sp.csr_matrix) else sp.csr_matrix(exclude)


def _mask(s: np.ndarray, excl: sp.csr_matrix, col_of_item: np.ndarray | None) -> None:
    """Set excluded entries of the score block to -inf (in place)."""
    if excl.shape[0] == 1 and col_of_item is None:  # one request's row: plain indexing
        s[0, excl.indices] = -np.inf
        return
    rows = np.repeat(np.arange(excl.shape[0]), np.diff(excl.indptr))
    cols = excl.indices.astype(np.int64)
    if col_of_item is not None:
        cols = col_of_item[cols]
        keep = cols >= 0
        rows, cols = rows[keep], cols[keep]
    s[rows, cols] = -np.inf


def top_k(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k largest entries per row, sorted by value
    (descending) and, among equal values, by lower column index. ``k <= s.shape[1]``;
    ``s`` holds no NaN.

    For a small k, a bound first: the k-th largest of the rows' chunk maxima (``g >= k``
    chunks per row). At least k entries reach it, so every entry of the top k, ties at
    the k-th value included, is at or above it, and only those few candidates are sorted
    (by row, score descending, column). Where the bound keeps too many (a row of equal
    values), or k is not small against the row (``200 k > n``: the candidates' sort then
    costs more than it saves; 1024 x 2146 rows, k=50: 22 ms against 10 ms),
    :func:`_top_k_partition` does it exactly with one partition per row. A quickselect on
    rows full of equal scores (item-kNN's zeros) is slow: a batch of 32 item-kNN rows at
    scale 1.0 took 1.97 ms that way, 0.25 ms with the bound (k=10 on 1024 x 2146 float
    rows: 5.3 ms against 7.2 ms).
    """
    # C order: on a Fortran-ordered block (``a[:, cols]``) the row reductions and ravel()
    # below take 197 ms for 1,024 x 10,499 float32 against 7.7 ms, the copy 100 ms
    s = np.ascontiguousarray(s)
    n_rows, n = s.shape
    if n_rows == 0 or 200 * k > n:  # measured crossover: n / k ~ 150-200 on float rows
        return _top_k_partition(s, k)
    g = max(64, 4 * k)
    starts = np.linspace(0, n, g, endpoint=False).astype(np.int64)
    bound = np.partition(np.maximum.reduceat(s, starts, axis=1), g - k, axis=1)[:, g - k]
    flat = np.flatnonzero(s >= bound[:, None])
    if flat.size > n_rows * max(64 * k, 1024):
        return _top_k_partition(s, k)
    rows, cols = np.divmod(flat, n)
    vals = s.ravel()[flat]
    order = row_score_order(rows, vals, cols)  # by row, score descending, column
    counts = np.bincount(rows, minlength=n_rows)  # >= k per row, by the bound
    first = np.cumsum(counts) - counts
    pick = order[(first[:, None] + np.arange(k)).ravel()]
    return cols[pick].reshape(n_rows, k), vals[pick].reshape(n_rows, k)


def _top_k_partition(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` by one ``partition`` per row for its k-th largest value; a row with
    ties at it keeps the lowest tied columns. The flat ``flatnonzero`` of the kept mask
    is row-major, so each row's columns come out ascending and the stable sort breaks
    ties by index."""
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
        chosen = (np.flatnonzero(keep) % n).reshape(n_rows, k)  # ascending column order
    rows = np.arange(n_rows)[:, None]  # fancy indexing: cheaper than take_along_axis
    vals = s[rows, chosen]
    order = np.argsort(-vals, axis=1, kind="stable")  # stable: equal values keep index order
    return chosen[rows, order], vals[rows, order]
