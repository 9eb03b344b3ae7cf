"""Hyperparameter selection on the validation split of the training log, never the test.

The split is the run's :class:`~kuairec.pipeline.experiment.Validation` (by default the
last 7 days of the log; ``--validation random`` holds out 20% of each test user's pairs).
Each trial fits on the split's fit part (models that stop early stop on the selection
half) and is scored by per-user NDCG@10 under the run's label on the selection half's
users; the two trials kept (the defaults and the best) are then scored on the
confirmation half too.

Selection before confirmation: the study (Optuna TPE, seeded, a fixed number of trials:
the model's declared ``tune_trials`` in ``kuairec run``) chooses its best trial by the
mean over the **selection half** of the validation users only; the model's defaults are
always trial 0. The best trial replaces the defaults only when it beats them on the
**confirmation half**, users whose numbers chose nothing: the paired-bootstrap 95%
interval of ``tuned - defaults`` over those users lies above 0. No clock decides
anything: an opt-in ``time_limit`` may stop a study early, and the record then says so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from kuairec.errors import ConfigError
from kuairec.result import TIME_LIMIT_MARK, Interval

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.models.matrices import GramStore
    from kuairec.pipeline.experiment import Validation

OBJECTIVE = "ndcg@10"


@dataclass
class Trial:
    params: dict[str, Any]
    value: float | None  # mean NDCG@10 over the selection half


@dataclass
class Confirmation:
    """Tuned minus defaults over the confirmation half (paired bootstrap)."""

    diff: float | None
    ci: Interval
    n_users: int


@dataclass
class TuningRecord:
    """What one model's tuning tried, chose and why (metrics.json's tuning section)."""

    objective: str
    n_trials: int  # asked for
    trials: list[Trial]  # ran (fewer only when an opt-in time limit fired)
    default_value: float | None  # selection half
    best_value: float | None  # selection half
    decision: Literal["defaults", "tuned"]
    why: str
    best_params: dict[str, Any]  # the parameters used
    tuned_params: dict[str, Any] | None = None  # the best trial's, when not used
    confirmation: Confirmation | None = None
    time_limited: str | None = None


@dataclass(eq=False)
class ValidationFit:
    """A model fitted on the validation split's fit part, and its per-user NDCG@10 over
    every validation user (NaN: no positive): what the baseline choice and the validity
    section reuse instead of refitting."""

    model: Any
    per_user: np.ndarray
    source: str


@dataclass(eq=False)
class _Scored:
    params: dict[str, Any]
    model: Any
    per_user: np.ndarray


@dataclass(eq=False)
class _Objective:
    """Fits and scores one configuration on the validation split."""

    name: str
    validation: Validation
    fixed: dict[str, Any]
    make: Any  # params -> unfitted model
    kept: dict[str, _Scored] = field(default_factory=dict)  # "default", "best"

    def score(self, params: dict[str, Any]) -> _Scored:
        fit_part, _ = self.validation.parts()
        model = self.make({**self.fixed, **params})
        early = self.validation.for_fit()[1] if model.uses_validation else None
        model.fit(fit_part, early)
        # a trial is chosen on the selection half alone: the confirmation half is
        # scored afterwards for the two trials kept (:meth:`complete`)
        return _Scored(dict(params), model, score_validation(model, self.validation, "select"))

    def complete(self) -> None:
        """Add the confirmation half's values to the kept trials (defaults and best)."""
        confirm = ~self.validation.select
        for scored in {id(s): s for s in self.kept.values()}.values():
            values = score_validation(scored.model, self.validation, "confirm")
            scored.per_user[confirm] = values[confirm]


def score_validation(model: Any, validation: Validation, part: str = "all") -> np.ndarray:
    """Per-user NDCG@10 of a model fitted on the split's fit part, over every validation
    user, under the split's label (NaN: a user without a positive, or outside ``part``:
    "select" or "confirm" scores one half only). Only the users with a positive are
    ranked (:meth:`Validation.scored`): the others' value is NaN anyway."""
    from kuairec.evaluation.evaluate import evaluate

    fit_part, valid = validation.parts()
    out = np.full(valid.users.size, np.nan)
    scored, keep, context = validation.scored(part)
    if scored is None:
        return out
    items, _ = model.recommend(
        scored.users, 10, exclude=scored.exclude, candidates=scored.candidates
    )
    result = evaluate(
        items, scored, fit_part, ks=(10,), labels=(validation.label,),
        default_label=validation.label, n_bootstrap=0, context=context,
    )  # fmt: skip
    out[keep] = np.asarray(result.per_user[OBJECTIVE], dtype=np.float64)
    return out


def tunable(name: str) -> dict[str, Any]:
    """The search space of a registered model (ConfigError when it has none)."""
    from kuairec.models.registry import get_model_class, preset_settings, tunable_models

    space = {
        k: v
        for k, v in get_model_class(name).search_space.items()
        if k not in preset_settings(name)
    }
    if not space:
        raise ConfigError(
            f"model {name!r} has no search space; tunable: {', '.join(tunable_models())}"
        )
    return space


def _suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, p in space.items():
        if p.kind == "int":
            out[name] = trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
        elif p.kind == "float":
            out[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
        else:
            out[name] = trial.suggest_categorical(name, list(p.choices))
    return out


def _mean(values: np.ndarray) -> float | None:
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


def study(
    name: str,
    validation: Validation,
    *,
    n_trials: int,
    fixed: dict[str, Any] | None = None,
    seed: int = 0,
    n_bootstrap: int = 1000,
    time_limit: float | None = None,
    make: Any = None,
    grams: GramStore | None = None,
) -> tuple[TuningRecord, ValidationFit]:
    """Run an Optuna study (TPE, seeded) from the defaults; see the module docstring.

    ``make(params)`` builds an unfitted model (default: the registry's); ``fixed`` are
    parameters the user set, never searched; ``grams`` (a
    :class:`~kuairec.models.matrices.GramStore`) keeps the Gram matrices the trials
    compute for the run's next study. Returns the record and the chosen configuration's
    model fitted on the split's fit part with its per-user values.
    """
    import optuna

    from kuairec.models.matrices import shared_grams
    from kuairec.models.registry import create_model

    if n_trials < 1:
        raise ConfigError(f"trials must be >= 1, got {n_trials}")
    fixed = dict(fixed or {})
    space = {k: v for k, v in tunable(name).items() if k not in fixed}
    objective = _Objective(name, validation, fixed, make or (lambda p: create_model(name, p)))
    select = validation.select
    defaults = _defaults(name, space)
    if len(defaults) < len(space):  # a default outside the space: scored on its own
        objective.kept["default"] = objective.score({})
    optuna.logging.set_verbosity(logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(4, n_trials))
    st = optuna.create_study(direction="maximize", sampler=sampler)
    if "default" not in objective.kept:
        st.enqueue_trial(defaults)  # the defaults are trial 0

    def run_trial(trial: Any) -> float:
        scored = objective.score(_suggest(trial, space))
        if trial.number == 0 and "default" not in objective.kept:
            objective.kept["default"] = scored
        value = _mean(scored.per_user[select])
        best = objective.kept.get("best")
        if value is not None and (best is None or value > _mean(best.per_user[select])):
            objective.kept["best"] = scored
        return value if value is not None else float("-inf")

    start = time.perf_counter()
    with shared_grams(grams):  # trials differing only in l2 or neighbours share X^T X
        st.optimize(run_trial, n_trials=n_trials, timeout=time_limit)
    objective.complete()
    trials = [Trial(t.params, _finite(t.value)) for t in st.trials if t.value is not None]
    record = _decide(objective.kept, select, fixed, defaults, n_bootstrap, seed)
    record.n_trials, record.trials = n_trials, trials
    if len(trials) < n_trials:
        record.time_limited = (
            f"{TIME_LIMIT_MARK} (time_limit={time_limit:g} s stopped tuning after "
            f"{len(trials)} of {n_trials} trials, {time.perf_counter() - start:.0f} s)"
        )
    chosen = objective.kept["best" if record.decision == "tuned" else "default"]
    source = f"the tuner's {'best' if record.decision == 'tuned' else 'default'} trial"
    return record, ValidationFit(chosen.model, chosen.per_user, source)


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _decide(
    kept: dict[str, _Scored],
    select: np.ndarray,
    fixed: dict[str, Any],
    defaults: dict[str, Any],
    n_boot: int,
    seed: int,
) -> TuningRecord:
    """Keep the defaults unless tuned - defaults lies above 0 with 95% confidence on the
    confirmation half."""
    from kuairec.evaluation.bootstrap import paired_bootstrap

    base, best = kept["default"], kept.get("best")
    default_params = {**fixed, **defaults}
    record = TuningRecord(
        objective=f"{OBJECTIVE} on the validation split's selection half",
        n_trials=0,
        trials=[],
        default_value=_mean(base.per_user[select]),
        best_value=_mean(best.per_user[select]) if best is not None else None,
        decision="defaults",
        why="no trial beat them on the selection half",
        best_params=default_params,
    )
    if best is None or best is base or not (record.best_value or 0) > (record.default_value or 0):
        return record
    confirm = ~select
    res = paired_bootstrap(
        best.per_user[confirm], base.per_user[confirm], n_bootstrap=max(n_boot, 200), seed=seed
    )
    lo, hi = res["ci"]
    record.confirmation = Confirmation(
        _finite(res["diff"]), (_finite(lo), _finite(hi)), res["n_users"]
    )
    tuned = {**default_params, **best.params}
    interval = f"{res['diff']:+.4f}, 95% interval [{lo:+.4f}, {hi:+.4f}]"
    if np.isfinite(lo) and lo > 0:
        record.decision, record.best_params = "tuned", tuned
        record.why = f"on the confirmation half, tuned - defaults = {interval} > 0"
    else:
        record.tuned_params = tuned
        record.why = (
            f"the best trial led on the selection half, but on the confirmation half tuned - "
            f"defaults = {interval}, not above 0: kept the defaults"
        )
    return record


def _defaults(name: str, space: dict[str, Any]) -> dict[str, Any]:
    """The model's (or preset's) default values of the searched fields."""
    from kuairec.models.registry import config_to_dict, create_model

    cfg = config_to_dict(create_model(name).config)
    return {key: cfg[key] for key, p in space.items() if key in cfg and p.contains(cfg[key])}


def trials_for(name: str, cfg: Any) -> int:
    """How many trials ``kuairec run`` gives ``name``: ``--tune-trials`` when set, else
    the model's declared ``tune_trials`` (0 when it is not tuned in the run)."""
    from kuairec.models.registry import get_model_class

    cls = get_model_class(name)
    if not cls.tune_in_run:
        return 0
    return cls.tune_trials if cfg.tune_trials is None else cfg.tune_trials


def format_toml(name: str, params: dict[str, Any]) -> str:
    """Parameters as a ``[params.<model>]`` table for ``kuairec run --config``."""
    lines = [f"[params.{name}]"]
    for key, value in params.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {str(value).lower()}")
        elif isinstance(value, int | float):
            lines.append(f"{key} = {value!r}")
        elif isinstance(value, list | tuple):
            lines.append(f"{key} = {list(value)!r}")
        else:
            lines.append(f'{key} = "{value}"')
    return "\n".join(lines) + "\n"
