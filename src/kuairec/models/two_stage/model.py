"""``two_stage``: retrieve with several models, rank their candidates with LightGBM.

Fit (RecTools' candidate-ranking pattern, leakage-free by construction):

1. cut the training log at T (:mod:`.split`): the history before T, the targets after;
2. fit the retrievers on the history; retrieve each target user's candidates: the union
   of every retriever's top ``n_candidates`` (:mod:`.retrieval`);
3. build the candidates' features from data before T only (:mod:`.features`) and label
   them by what happened after T (``unexposed``: a candidate the user was never shown
   after T is left out of training, ``"drop"``, or is a negative, ``"negative"``);
4. train LightGBM LambdaRank (groups = users) with early stopping and a small search on
   held-out users (:mod:`.ranker`);
5. refit the retrievers on the whole training log (or take over the run's, already
   fitted: ``FitResources.fitted``, ``reuses_fitted``) and rebuild the features up to
   the log's end.

Score: a row's candidates are ordered by the ranker (ties: by the first retriever) and
scored by that position; every other video scores below them all, in the first
retriever's order (so a list longer than the candidate set is still a full ranking).
New users' histories: the retrievers that score histories propose, the ranker orders
(the others' feature columns are missing). The test set is never read.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from kuairec.errors import ModelError
from kuairec.models.base import FitResources, Recommender, history_pattern
from kuairec.models.params import param
from kuairec.models.two_stage.features import GROUPS

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import TrainSet
    from kuairec.evaluation.protocols import TestSet
    from kuairec.models.two_stage.retrieval import Candidates

RANKER_FILE = "ranker.txt"
SUMMARY_FILE = "two_stage.json"
RETRIEVERS_DIR = "retrievers"


@dataclass(frozen=True)
class TwoStageConfig:
    retrievers: list[str] = param(["ease", "popularity"], doc="registry models, in order")
    retriever_params: dict[str, dict[str, Any]] = param({}, doc="name -> that model's params")
    n_candidates: int = param(100, ge=1, doc="top-N each retriever proposes")
    holdout_days: float = param(7.0, gt=0, doc="T = this many days before the log's last view")
    cut: Literal["auto", "time", "user"] = "auto"  # auto: by time unless few users after T
    label: str = "wr>2"
    unexposed: Literal["drop", "negative", "live"] = "negative"
    feature_groups: list[str] = param(list(GROUPS), doc="of retrieval, item, match, user")
    drop_features: list[str] = param([], doc="feature columns left out, by name")
    prior: bool = True  # boosting starts from the first retriever's order (-log1p(rank))
    num_leaves: int = param(31, ge=2, doc="the ranker's default leaves per tree")
    min_data_in_leaf: int = param(50, ge=1, doc="the ranker's default rows per leaf")
    learning_rate: float = param(0.05, gt=0, doc="the ranker's default shrinkage")
    n_trials: int = param(4, ge=1, doc="ranker configurations tried (the first: defaults)")
    max_rounds: int = param(300, ge=1, doc="boosting rounds at most")
    patience: int = param(30, ge=1, doc="early stopping: rounds without a gain")
    holdout_share: float = param(0.3, gt=0, lt=1, doc="target users held out (two halves)")
    num_threads: int = param(2, ge=1, doc="LightGBM threads (a fixed count, not the machine's)")
    seed: int = param(0, ge=0)

    def check(self) -> None:
        from kuairec.errors import ConfigError
        from kuairec.evaluation.labels import parse_label

        bad = sorted(set(self.feature_groups) - set(GROUPS))
        if bad or not self.feature_groups:
            raise ConfigError(
                f"two_stage: parameter 'feature_groups' must be a non-empty list of "
                f"{', '.join(GROUPS)}, got {self.feature_groups!r}"
            )
        parse_label(self.label)


class TwoStageRecommender(Recommender):
    """Candidates from several retrievers, ordered by a LightGBM LambdaRank model."""

    name = "two_stage"
    Config = TwoStageConfig
    supports_history = True
    requires = ("lightgbm",)
    extra = "rank"
    reuses_fitted = True
    cost = "moderate"
    deterministic = True
    # the contract suite's first retriever scores any batch of users alike (a sparse
    # product, row by row): EASE's dense float32 product rounds by the batch's shape on
    # some CPUs, and the ranks it hands the ranker turn that into whole places at the
    # suite's exact ties (docs/ranking.md, "Batches")
    test_settings = {
        "retrievers": ["itemknn", "popularity"],
        "retriever_params": {"itemknn": {"neighbours": 5}},
        "n_candidates": 6,
        "label": "wr>=1",
        "n_trials": 1,
        "num_leaves": 4,
        "min_data_in_leaf": 1,
        "max_rounds": 20,
        "num_threads": 1,
    }

    # ------------------------------------------------------------------ fitting
    def _use_resources(self, resources: FitResources) -> None:
        """The run's already fitted models (``resources.fitted``): a retriever among them
        with the same parameters, fitted on the same training log, is taken over for
        inference instead of being refitted (:func:`.training.fit_retrievers`)."""
        self.fitted_retrievers = dict(resources.fitted)

    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None:
        from kuairec.models.two_stage import split as split_mod
        from kuairec.models.two_stage import training
        from kuairec.models.two_stage.features import build_context, label_rule
        from kuairec.models.two_stage.ranker import search

        c = self.config
        seconds: dict[str, float] = {}
        t = time.perf_counter()
        configs = training.retriever_configs(list(c.retrievers), c.retriever_params)
        cut = split_mod.cut_at(train, c.holdout_days, c.seed, c.cut)
        rule = label_rule(c.label, cut.history.interactions, train.video_duration)
        early, _ = training.fit_retrievers(configs, cut.history)
        seconds["retrievers before T"] = time.perf_counter() - t
        t = time.perf_counter()
        ctx = build_context(cut.history, cut.cutoff, rule)
        groups = tuple(g for g in GROUPS if g in c.feature_groups)
        data, retr_scores = training.rank_data(
            early, ctx, cut, rule, c.n_candidates, groups, c.unexposed,
            frozenset(c.drop_features), c.prior,
        )  # fmt: skip
        seconds["candidates and features at T"] = time.perf_counter() - t
        t = time.perf_counter()
        choice = search(data, c)
        seconds["ranker search"] = time.perf_counter() - t
        t = time.perf_counter()
        fitted = getattr(self, "fitted_retrievers", {})
        self.retrievers_, reused = training.fit_retrievers(configs, train, fitted)
        end = _log_end(train)
        full_rule = label_rule(c.label, train.interactions, train.video_duration)
        self.context_ = build_context(train, end, full_rule)
        seconds["retrievers and features on the whole log"] = time.perf_counter() - t
        self.booster_ = choice.booster
        self.feature_names_ = tuple(data.names)
        self.history_ = choice.curve or None
        self.fit_summary_ = training.summarize(
            cut, data, retr_scores, choice, early, reused, ctx, c, seconds
        )

    # ------------------------------------------------------------------ scoring
    def _score(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        from kuairec.models.matrices import select_rows

        hist = select_rows(self.context_.history, users)
        out = self._score_rows(hist, users)
        return out if items is None else np.take(out, items, axis=1)

    def _score_history(self, history: sp.csr_matrix, items: np.ndarray | None) -> np.ndarray:
        if not any(m.supports_history for m in self.retrievers_.values()):
            raise ModelError(
                "two_stage: none of its retrievers scores new users' histories "
                f"({', '.join(self.retrievers_)})"
            )
        out = self._score_rows(history, None)
        return out if items is None else np.take(out, items, axis=1)

    def candidates(self, users: Any = None, *, history: Any = None) -> Candidates:
        """The candidate set (stage one) of known ``users`` or of new users' ``history``
        rows: what the ranker orders (see :class:`.retrieval.Candidates`)."""
        self._check_fitted()
        rows = self._rows(users, history)
        if isinstance(rows, np.ndarray):
            from kuairec.models.matrices import select_rows

            return self._retrieve(select_rows(self.context_.history, rows), rows)
        return self._retrieve(rows, None)

    def _retrieve(self, hist: sp.csr_matrix, users: np.ndarray | None) -> Candidates:
        from kuairec.models.two_stage.retrieval import retrieve

        scorers = [(n, _scorer(m, users, hist)) for n, m in self.retrievers_.items()]
        return retrieve(scorers, history_pattern(hist), self.config.n_candidates, keep_first=True)

    def _score_rows(self, hist: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        from kuairec.models.two_stage.features import candidate_features
        from kuairec.models.two_stage.ranker import prior_of
        from kuairec.models.two_stage.retrieval import BLOCK_ROWS

        c = self.config
        groups = tuple(g for g in GROUPS if g in c.feature_groups)
        out = np.empty((hist.shape[0], self.n_items_), dtype=np.float32)
        for start in range(0, hist.shape[0], BLOCK_ROWS):
            rows = slice(start, min(start + BLOCK_ROWS, hist.shape[0]))
            block_users = None if users is None else users[rows]
            cand = self._retrieve(hist[rows], block_users)
            if self.booster_ is None:
                out[rows] = cand.first_scores
                continue
            feats = candidate_features(
                self.context_, cand, hist[rows], block_users, groups, frozenset(c.drop_features)
            )
            scores = self.booster_.predict(feats.values, num_threads=c.num_threads)
            if c.prior:
                scores = scores + prior_of(cand.ranks[:, 0])
            out[rows] = _with_fallback(cand, scores)
        return out

    def similar_items(self, items: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The first retriever's item-item similarity (the first, in order, that has one)."""
        self._check_fitted()
        for model in self.retrievers_.values():
            try:
                return model.similar_items(items, k)
            except ModelError:
                continue
        raise ModelError(
            f"two_stage: none of its retrievers ({', '.join(self.retrievers_)}) has an "
            "item-item similarity"
        )

    # ------------------------------------------------------------------ persistence
    def expected_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """The saved arrays' shapes that model.json implies (checked on load)."""
        n_users, n_items = self.n_users_, self.n_items_
        return {
            "ctx_items": (n_items, None),
            "ctx_cut": (n_items,),
            "ctx_profile": (n_users, None),
            "ctx_history_shape": (n_users, n_items),
            "ctx_category": (n_items,),
            "ctx_tags": (n_items, None),
            "ctx_log_dur": (n_items,),
            "ctx_social_shape": (n_users, n_users),
        }

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            **self.context_.state(),
            "feature_names": np.asarray(self.feature_names_, dtype=str),
            "has_ranker": np.asarray([self.booster_ is not None]),
        }

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        from kuairec.models.two_stage.features import FeatureContext

        self.context_ = FeatureContext.from_state(state)
        self.feature_names_ = tuple(state["feature_names"].tolist())
        self._has_ranker = bool(state["has_ranker"][0])

    def _write_files(self, folder: Path) -> None:
        """The LightGBM model in its own text format, each retriever's saved folder and
        the fit summary (called by :func:`kuairec.models.persist.save_model`)."""
        import json

        if self.booster_ is not None:
            (folder / RANKER_FILE).write_text(self.booster_.model_to_string(), encoding="utf-8")
        for name, model in self.retrievers_.items():
            model.save(folder / RETRIEVERS_DIR / name)
        summary = getattr(self, "fit_summary_", None)
        if summary is not None:
            text = json.dumps(summary.to_json(), indent=1, default=float, allow_nan=False)
            (folder / SUMMARY_FILE).write_text(text + "\n", encoding="utf-8")

    def _read_files(self, folder: Path) -> None:
        """Load what :meth:`_write_files` wrote (called by ``load_model``)."""
        from kuairec.models.persist import load_model

        self.booster_ = None
        if self._has_ranker:
            self.booster_ = _read_booster(folder / RANKER_FILE, self.feature_names_)
        self.retrievers_ = {}
        for name in self.config.retrievers:
            self.retrievers_[name] = load_model(
                folder / RETRIEVERS_DIR / name, expected_fingerprint=self.fingerprint_
            )
        self.history_ = None


def _scorer(model: Recommender, users: np.ndarray | None, hist: sp.csr_matrix) -> Any:
    if users is not None:
        return lambda rows: model.score(users[rows])
    if not model.supports_history:
        return None
    return lambda rows: model.score(history=hist[rows])


def _with_fallback(cand: Candidates, scores: np.ndarray) -> np.ndarray:
    """Rows of full scores from the ranker's ``scores`` of the candidates: a row's
    candidates, ordered by the ranker (ties: the first retriever, then the item index),
    score ``1 + n`` down to ``2`` (n candidates; exact in float32); every other video
    scores in [0, 1), in the first retriever's order."""
    first = np.asarray(cand.first_scores, dtype=np.float64)
    finite = np.isfinite(first)
    lo = np.where(finite, first, np.inf).min(axis=1, keepdims=True)
    hi = np.where(finite, first, -np.inf).max(axis=1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    base = np.where(np.isfinite(lo), lo, 0.0)
    out = np.where(finite, 0.999 * (first - base) / span, 0.0).astype(np.float32)
    rows, items = cand.rows, cand.items
    order = np.lexsort((items, -first[rows, items], -np.asarray(scores, np.float64), rows))
    counts = cand.counts()
    starts = np.cumsum(counts) - counts
    position = np.arange(order.size) - starts[rows[order]]
    out[rows[order], items[order]] = (1 + counts[rows[order]] - position).astype(np.float32)
    return out


def _log_end(train: TrainSet) -> float:
    """The last view of the training log (+inf without timestamps: every day counts)."""
    last = train.interactions.last_timestamp
    last = last[np.isfinite(last)]
    return float(last.max()) if last.size else float("inf")


def _read_booster(path: Path, names: tuple[str, ...]) -> Any:
    import lightgbm as lgb

    if not path.is_file():
        raise ModelError(f"{path.parent}: missing {path.name}; the saved model is incomplete")
    try:
        booster = lgb.Booster(model_str=path.read_text(encoding="utf-8"))
    except (lgb.basic.LightGBMError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not a LightGBM text model ({exc})") from None
    if tuple(booster.feature_name()) != tuple(names):
        raise ModelError(f"{path}: its features do not match the saved model's feature list")
    return booster
