"""The typed result of a run: what the pipeline produces, the report and the server read.

A :class:`RunResult` holds the protocol, each model's :class:`ModelResult`, the skipped
models, the paired comparisons against a baseline chosen without the test set, the notes
and the sections (each a typed value of its own, see :mod:`kuairec.pipeline.sections`).
``metrics.json`` is written from it and read back into it in one place
(:mod:`kuairec.pipeline.metrics_file`), with :data:`SCHEMA_VERSION` and a JSON Schema
(``docs/metrics.schema.json``) generated from these same types by
:mod:`kuairec.jsontypes`.

This is a leaf module: plain dataclasses, importable from every layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from kuairec.jsontypes import memory_only

SCHEMA_VERSION = 2
PAIRED_METRIC = "ndcg@10"
TIME_LIMIT_MARK = "stopped by a time limit: not reproducible"

Number = int | float | None
Interval = tuple[float | None, float | None]
Cost = Literal["cheap", "moderate", "heavy"]


@dataclass
class ValidationInfo:
    """The validation split of the training log and the two halves of its users.

    ``select`` users choose (tuning's best trial, early stopping); ``confirm`` users, who
    chose nothing, confirm tuned against default parameters and pick the baseline of the
    paired comparisons."""

    split: str
    reason: str
    label: str
    n_users: int
    n_pairs: int
    n_select: int
    n_confirm: int
    halves: str  # how users were assigned to a half


@dataclass
class ProtocolInfo:
    """Who is tested on what: the split, the labels, the cut-offs, the resampling."""

    name: str
    train: str
    test: str
    data: str | None
    n_test_users: int
    n_candidates: int
    default_label: str
    labels: list[str]
    ks: list[int]
    n_bootstrap: int
    seed: int
    validation_split: str
    synthetic: bool | None = None
    scale: float | None = None
    label_definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the cold-items protocol's own facts
    fraction: float | None = None
    n_cold_videos: int | None = None
    train_pairs: int | None = None
    removed_pairs: int | None = None


@dataclass
class CostInfo:
    """What a model cost in this run (measured; never decides anything)."""

    fit_seconds: float
    eval_seconds: float
    peak_rss_mb: float
    tune_seconds: float | None = None


@dataclass
class ValidationScore:
    """A model's NDCG@10 on the validation split's confirmation half (fitted on the
    split's fit part): what the paired comparisons' baseline is chosen by."""

    value: float | None
    n_users: int
    source: str  # where the fitted model came from


@dataclass
class ModelResult:
    """One model's evaluation on the test set, with what it cost and how it was set."""

    model: str  # the class's own name (a preset's registered name is its key)
    reference: bool  # a reference row (oracle, random): never a baseline or "best model"
    cost_class: Cost
    metrics: dict[str, Number]
    ci: dict[str, Interval]
    by_label: dict[str, dict[str, Number]]
    cost: CostInfo
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    history: dict[str, list[float | None]] | None = None
    deterministic: bool = True
    nondeterministic_reason: str | None = None
    time_limited: str | None = None  # TIME_LIMIT_MARK and what fired, when a cap fired
    remark: str | None = None  # what the model itself says about this fit (e.g. capped)
    validation: ValidationScore | None = None
    per_user: dict[str, np.ndarray] = memory_only()  # for paired bootstraps, not written

    def value(self, key: str = PAIRED_METRIC) -> float | None:
        """A metric as a float, None when undefined (no user with a positive)."""
        v = self.metrics.get(key)
        return None if v is None or isinstance(v, bool) else float(v)

    def marks(self) -> list[str]:
        """Why this row's numbers may not repeat: a fired time limit, non-determinism."""
        out = [self.time_limited] if self.time_limited else []
        if not self.deterministic:
            out.append(f"not deterministic: {self.nondeterministic_reason or 'declared so'}")
        return out


@dataclass
class Comparison:
    """Baseline minus another model on the same bootstrap resamples of the test users."""

    diff: float | None
    ci: Interval
    p_le_0: float | None  # share of resamples where the baseline is not ahead
    p_value: float | None  # two-sided bootstrap p-value of "no difference"
    p_holm: float | None  # Holm-adjusted over the run's comparisons
    n_users: int
    n_bootstrap: int


@dataclass
class Paired:
    """The paired comparisons: a baseline chosen without the test set against the rest."""

    metric: str
    baseline: str
    reason: str  # why this baseline (the validation winner, or --baseline)
    n_comparisons: int
    correction: str
    comparisons: dict[str, Comparison]  # other model -> baseline minus it


@dataclass
class RunResult:
    """Everything a run measured; ``metrics.json`` is this, as JSON."""

    protocol: ProtocolInfo
    models: dict[str, ModelResult]
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    validation: ValidationInfo | None = None
    paired: Paired | None = None
    sections: dict[str, Any] = field(default_factory=dict)  # name -> the section's value
    section_errors: dict[str, str] = field(default_factory=dict)  # name -> why not computed
    schema_version: int = SCHEMA_VERSION

    def learned(self) -> list[str]:
        """Models that are not reference rows, in the run's order."""
        return [n for n, m in self.models.items() if not m.reference]

    def best(self, key: str = PAIRED_METRIC) -> str | None:
        """The learned model with the highest test ``key`` (None when none has a value).
        For display only: the paired comparisons' baseline is chosen on validation."""
        scored = [(m.value(key), n) for n, m in self.models.items() if not m.reference]
        scored = [(v, n) for v, n in scored if v is not None]
        return min(scored, key=lambda vn: (-vn[0], vn[1]))[1] if scored else None

    def ranked(self, key: str = PAIRED_METRIC) -> list[str]:
        """Every model by ``key``, best first; models without a value last, by name."""

        def order(name: str) -> tuple[bool, float, str]:
            v = self.models[name].value(key)
            return (v is None, -(v or 0.0), name)

        return sorted(self.models, key=order)
