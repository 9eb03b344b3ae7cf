"""One model through the main job: create, fit, rank every candidate, evaluate.

:func:`fit_and_evaluate` is every section's way to run a model (the main loop, the
cold-video section's refits): accelerator and time-cap settings, the scratch folder, the
validation split's fit part and selection half for models that stop early, the fit
resources a model declares (the oracle's truth, already fitted models), time and memory
of each step, and the typed :class:`~kuairec.result.ModelResult`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.display.progress import Progress
from kuairec.display.resources import measure
from kuairec.result import TIME_LIMIT_MARK, CostInfo, ModelResult

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.evaluation.evaluate import EvalResult
    from kuairec.models.base import Recommender
    from kuairec.pipeline.config import RunConfig
    from kuairec.pipeline.experiment import Experiment
    from kuairec.pipeline.tuning import ValidationFit


@dataclass(eq=False)
class FittedModel:
    """A fitted model with its evaluation and the top-K lists it was evaluated on."""

    name: str
    model: Recommender | None  # None on the Spark engine (the model lived in Spark)
    result: ModelResult
    evaluation: EvalResult
    top_items: np.ndarray
    top_scores: np.ndarray
    early: ValidationFit | None = None  # fitted on the validation fit part (uses_validation)

    def result_segments(self) -> dict[str, dict[str, dict[str, float | int | None]]]:
        """The evaluation's segments as plain JSON values (family -> group -> metric)."""
        return self.evaluation.to_json()["segments"]


def run_params(name: str, cfg: RunConfig, params: Mapping[str, Any]) -> dict[str, Any]:
    """The model's parameters with the run's own settings filled in where the model
    declares them and the user did not set them: ``--accelerator`` / ``--devices`` for
    torch models, ``--time-limit`` as the model's ``max_seconds`` safety cap."""
    from dataclasses import fields

    from kuairec.models.registry import get_model_class

    cls = get_model_class(name)
    out: dict[str, Any] = {}
    if cls.uses_accelerator:
        out.update(accelerator=cfg.accelerator, devices=cfg.devices)
    if cfg.time_limit is not None and "max_seconds" in {f.name for f in fields(cls.Config)}:
        out["max_seconds"] = cfg.time_limit
    return {**out, **params}


def create_for_run(name: str, cfg: RunConfig, params: Mapping[str, Any], scratch: Any) -> Any:
    """A new model for this run (see :func:`run_params`), its scratch folder set."""
    from kuairec.models.registry import create_model

    model = create_model(name, run_params(name, cfg, params))
    model.scratch_dir = None if scratch is None else scratch / name
    return model


def fit_and_evaluate(
    name: str,
    exp: Experiment,
    cfg: RunConfig,
    params: Mapping[str, Any],
    progress: Progress,
    fitted: Mapping[str, Recommender] | None = None,
) -> FittedModel:
    """Fit one model on the experiment's training set, rank every candidate for every
    test user and evaluate; ``fitted`` are models this run already fitted on the same
    training set (given to models that declare ``reuses_fitted``)."""
    from kuairec.models.base import FitResources

    model = create_for_run(name, cfg, params, exp.scratch)
    cls = type(model)
    train, valid = exp.train, None
    if cls.uses_validation:  # early stopping: the fit part, the selection half
        train, valid = exp.validation(cfg).for_fit()
    resources = FitResources(
        truth=exp.truth if cls.uses_truth else None,
        fitted=dict(fitted or {}) if cls.reuses_fitted else {},
    )
    with progress.stage(f"{name}: fit"), measure() as fit_cost:
        model.fit(train, valid, progress=progress, resources=resources)
    early = None
    if cls.uses_validation:  # scored on the validation split as fitted, then folded in
        early = _early_fit(model, exp, cfg)
        model.fold_in(exp.train)
    with progress.stage(f"{name}: evaluate"), measure() as eval_cost:
        evaluation, items, scores = evaluate_fitted(model, exp, cfg)
    cost = CostInfo(
        fit_seconds=round(fit_cost.seconds, 3),
        eval_seconds=round(eval_cost.seconds, 3),
        peak_rss_mb=round(max(fit_cost.peak_rss_mb, eval_cost.peak_rss_mb), 1),
    )
    result = model_result(model, evaluation, cost)
    return FittedModel(name, model, result, evaluation, items, scores, early)


def _early_fit(model: Any, exp: Experiment, cfg: RunConfig) -> ValidationFit:
    """A model fitted on the validation split's fit part, scored there before it is
    folded in: a shallow copy keeps the fit part's state (fold_in replaces, never edits,
    what it changes), for the baseline choice and the validity section."""
    import copy

    from kuairec.pipeline.tuning import ValidationFit, score_validation

    values = score_validation(model, exp.validation(cfg))
    return ValidationFit(copy.copy(model), values, "its own fit on the fit part")


def evaluate_fitted(model: Any, exp: Experiment, cfg: RunConfig) -> tuple[Any, Any, Any]:
    """Rank every candidate for every test user and evaluate: (EvalResult, items, scores)."""
    from kuairec.evaluation.fitted import rank_and_evaluate

    return rank_and_evaluate(
        model, exp.test, exp.train, ks=tuple(cfg.ks), labels=tuple(cfg.labels),
        default_label=cfg.label, n_bootstrap=cfg.n_bootstrap, seed=cfg.seed,
        context=exp.context(cfg),
    )  # fmt: skip


def model_result(model: Any, evaluation: EvalResult, cost: CostInfo) -> ModelResult:
    """The typed result of a fitted model's evaluation."""
    from kuairec.models.registry import config_to_dict

    fired = model.time_limit_fired_
    history = getattr(model, "history_", None) or None
    return ModelResult(
        **result_fields(type(model), evaluation),
        cost=cost,
        config=config_to_dict(model.config),
        history=_finite_lists(history) if history else None,
        time_limited=f"{TIME_LIMIT_MARK} ({fired})" if fired else None,
        remark=model.fit_remark_,
    )


def result_fields(cls: Any, evaluation: EvalResult, *notes: str) -> dict[str, Any]:
    """The fields of a :class:`ModelResult` that come from the model's class and its
    evaluation, whichever engine ran it (the evaluation's notes, then ``notes``)."""
    plain = evaluation.to_json()
    return {
        "model": cls.name,
        "reference": bool(cls.reference),
        "cost_class": cls.cost,
        "metrics": plain["metrics"],
        "ci": {k: (v[0], v[1]) for k, v in plain["ci"].items()},
        "by_label": plain["by_label"],
        "notes": [*plain["notes"], *notes],
        "deterministic": bool(cls.deterministic),
        "nondeterministic_reason": cls.nondeterministic_reason or None,
        "per_user": dict(evaluation.per_user),
    }


def _finite_lists(history: Mapping[str, Any]) -> dict[str, list[float | None]]:
    out = {}
    for key, values in history.items():
        out[str(key)] = [
            float(v) if v is not None and math.isfinite(float(v)) else None for v in values
        ]
    return out


def unavailable(name: str, exp: Experiment) -> str | None:
    """Why ``name`` cannot run in this experiment (a missing package, no truth, a
    protocol it cannot take part in), or None."""
    from kuairec.models.registry import get_model_class, missing_requirement
    from kuairec.pipeline.experiment import COLD_PROTOCOL

    missing = missing_requirement(name)
    if missing:
        return missing
    cls = get_model_class(name)
    if exp.protocol.name == COLD_PROTOCOL and not cls.scores_cold_items:
        return f"cannot score cold videos: {cls.cold_items_reason}"
    if cls.uses_truth and exp.truth is None:
        return "no small_matrix_truth.csv in the data folder (real data)"
    return cls.unavailable_reason(exp.train)
