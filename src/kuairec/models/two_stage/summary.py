"""Typed accounts of a two-stage model, for a report section to show.

- :class:`FitSummary` (``model.fit_summary_``): the cut, the rows, the search and its
  decision, held-out NDCG@10 of the ranker against each retriever alone, and the
  features' importance (gain). Written beside the saved model as ``two_stage.json``.
- :class:`RecallCeiling` (:func:`recall_ceiling`): per test user, the share of their
  positives that the candidate set holds, against the whole catalogue: no ranker can
  put a video in the list that the retrievers did not propose.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.evaluation.protocols import TestSet


@dataclass(frozen=True)
class FeatureGain:
    """One feature's share of the ranker's total split gain."""

    name: str
    group: str
    gain_share: float


@dataclass
class FitSummary:
    """How a two-stage model was fitted (everything but the test set)."""

    cutoff: float  # unix seconds; inf when the log had no time (random split)
    split: str  # "temporal" or "random"
    history_pairs: int
    straddling_pairs: int  # first seen before T and again after: in neither part
    target_pairs: int
    target_users: int
    users_by_role: dict[str, int]
    train_rows: int
    unexposed: str
    retrievers: list[str]
    reused: list[str]  # retrievers taken over already fitted
    trials: list[dict[str, Any]]
    chosen_trial: int
    decision: str
    why: str
    comparison: dict[str, Any] | None
    held_out_ndcg: dict[str, float]  # "two_stage" and each retriever, selection users
    importance: list[FeatureGain]
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # informative only

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["cutoff"] = self.cutoff if np.isfinite(self.cutoff) else None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FitSummary:
        values = dict(data)
        values["cutoff"] = float("inf") if values.get("cutoff") is None else values["cutoff"]
        values["importance"] = [FeatureGain(**g) for g in values.get("importance", [])]
        return cls(**values)

    def top_features(self, n: int = 10) -> list[FeatureGain]:
        return self.importance[:n]


def importance(booster: Any, groups: dict[str, str]) -> list[FeatureGain]:
    """Gain share of every feature, largest first (ties: by name)."""
    if booster is None:
        return []
    gain = np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64)
    names = booster.feature_name()
    total = gain.sum() or 1.0
    order = sorted(range(len(names)), key=lambda j: (-gain[j], names[j]))
    return [FeatureGain(names[j], groups.get(names[j], ""), float(gain[j] / total)) for j in order]


@dataclass(frozen=True)
class RecallCeiling:
    """Share of each test user's positives in the candidate set (NaN: no positive)."""

    users: np.ndarray  # int64 test users
    per_user: np.ndarray  # float64
    by_retriever: dict[str, float]  # mean share in each retriever's own top-N
    mean: float
    mean_candidates: float  # candidates per user (the union's size)
    n_candidates: int  # N of each retriever
    catalogue: int  # videos retrieved from


def recall_ceiling(
    model: Any, test: TestSet, label: str = "wr>2", train: Any = None
) -> RecallCeiling:
    """The candidate set's recall of ``test``'s positives under ``label`` (``train``:
    the training interactions, needed by the ``duration`` label's cut-offs)."""
    from kuairec.evaluation.labels import label_values

    values = label_values(label, test, None if train is None else train.interactions,
                          None if train is None else train.video_duration)  # fmt: skip
    rel = test.relevance
    cand = model.candidates(test.users)
    from kuairec.models.two_stage.features import lookup_stored

    positive = rel.copy()
    positive.data = (values > 0).astype(np.float64)
    positive.eliminate_zeros()
    n_pos = np.diff(positive.indptr).astype(np.float64)
    hit, _ = lookup_stored(positive, cand.rows, cand.items)

    def share(mask: np.ndarray) -> np.ndarray:
        got = np.bincount(cand.rows[mask & hit], minlength=test.users.size)
        return np.divide(got, n_pos, out=np.full(n_pos.size, np.nan), where=n_pos > 0)

    per_user = share(np.ones(cand.size, bool))
    by = {name: float(np.nanmean(share(cand.proposed_by(name)))) for name in cand.names}
    return RecallCeiling(
        users=test.users, per_user=per_user, by_retriever=by,
        mean=float(np.nanmean(per_user)) if np.isfinite(per_user).any() else float("nan"),
        mean_candidates=float(cand.counts().mean()) if cand.n_rows else 0.0,
        n_candidates=cand.n_candidates, catalogue=int(model.n_items_),
    )  # fmt: skip
