"""Hyperparameter selection on a validation split of the training log, never on the test.

The split is :func:`kuairec.evaluation.validation.validation_split` (by default the last
7 days of the log; ``--validation random`` holds out 20% of each test user's pairs); each
trial fits on the rest and is scored by
NDCG@10 under the run's default label. The search space is the model's own
``search_space``; ``kuairec run`` tunes the models whose ``tune_in_run`` is set, briefly,
and ``kuairec tune`` runs a full Optuna study.

Tuning must not make a model worse: the model's defaults are always the first trial, and
the best trial replaces them only when the paired-bootstrap 95% interval of
``tuned - defaults`` (per-user validation NDCG@10) lies above 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kuairec.errors import ConfigError

OBJECTIVE = "ndcg@10"


@dataclass
class Split:
    """A validation split, built on first use: the fit part and the validation TestSet."""

    train: Any
    kind: str
    users: Any = None
    seed: int = 0
    _parts: tuple[Any, Any] | None = field(default=None, repr=False)

    def __call__(self) -> tuple[Any, Any]:
        if self._parts is None:
            from kuairec.evaluation.validation import validation_split

            self._parts = validation_split(self.train, self.kind, self.users, seed=self.seed)
        return self._parts

    def describe(self) -> dict[str, Any]:
        from kuairec.evaluation.validation import WHY

        fit, valid = self()
        return {
            "split": self.kind,
            "split_reason": WHY[self.kind],
            "validation_users": int(valid.users.size),
            "validation_pairs": int(valid.relevance.nnz),
        }


def tunable(name: str) -> dict[str, Any]:
    """The search space of a registered model (ConfigError when it has none)."""
    from kuairec.models.registry import available_models, get_model_class, preset_settings

    space = {
        k: v
        for k, v in get_model_class(name).search_space.items()
        if k not in preset_settings(name)
    }
    if not space:
        names = [n for n in available_models() if _has_space(n)]
        raise ConfigError(f"model {name!r} has no search space; tunable: {', '.join(names)}")
    return space


def _has_space(name: str) -> bool:
    from kuairec.models.registry import get_model_class

    try:
        return bool(get_model_class(name).search_space)
    except ImportError:
        return False


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


def score_params(
    name: str, params: dict[str, Any], fit_part: Any, valid: Any, label: str, context: Any = None
) -> np.ndarray:
    """Per-user NDCG@10 (NaN = user without a positive) of one configuration; ``context``
    is the validation split's evaluation context (prepared once per study)."""
    from kuairec.evaluation.evaluate import evaluate
    from kuairec.models.registry import create_model

    model = create_model(name, params)
    model.fit(fit_part, valid if model.uses_validation else None)
    items, _ = model.recommend(valid.users, 10, exclude=valid.exclude, candidates=valid.candidates)
    result = evaluate(
        items,
        valid,
        fit_part,
        ks=(10,),
        labels=(label,),
        default_label=label,
        n_bootstrap=0,
        context=context,
    )
    return np.asarray(result.per_user[OBJECTIVE], dtype=np.float64)


def study(
    name: str,
    split: Split,
    *,
    n_trials: int,
    fixed: dict[str, Any] | None = None,
    label: str = "wr>2",
    seed: int = 0,
    n_bootstrap: int = 1000,
    show_progress: bool = False,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run an Optuna study (TPE, seeded) from the defaults; see the module docstring.

    Returns the chosen parameters (``best_params``), the best trial's and the defaults'
    validation NDCG@10, the paired difference with its interval, the decision and why,
    the split, and every trial.
    """
    import optuna

    if n_trials < 1:
        raise ConfigError(f"trials must be >= 1, got {n_trials}")
    fixed = dict(fixed or {})
    space = {k: v for k, v in tunable(name).items() if k not in fixed}
    fit_part, valid = split()
    from kuairec.evaluation.evaluate import prepare

    ctx = prepare(valid, fit_part, ks=(10,), labels=(label,), default_label=label)
    optuna.logging.set_verbosity(logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(4, n_trials))
    st = optuna.create_study(direction="maximize", sampler=sampler)
    defaults = _defaults(name, space)
    per_user: dict[int, np.ndarray] = {}
    if len(defaults) == len(space):  # the defaults are trial 0
        st.enqueue_trial(defaults)
    else:  # a default outside the space: score the defaults on their own
        per_user[-1] = score_params(name, dict(fixed), fit_part, valid, label, ctx)

    def objective(trial: Any) -> float:
        params = {**fixed, **_suggest(trial, space)}
        values = score_params(name, params, fit_part, valid, label, ctx)
        per_user[trial.number] = values
        return _mean(values)

    st.optimize(objective, n_trials=n_trials, timeout=timeout, show_progress_bar=show_progress)
    done = [t for t in st.trials if t.value is not None]
    base = -1 if -1 in per_user else done[0].number
    out = {
        "objective": f"{OBJECTIVE} ({label}) on the validation split",
        **split.describe(),
        "best_value": st.best_value,
        "default_value": _mean(per_user[base]),
        "trials": [{"params": t.params, "value": t.value} for t in done],
    }
    best = st.best_trial
    if base == -1 and st.best_value <= out["default_value"]:
        best = None
    chosen = {**fixed, **(defaults if base != -1 else {})}  # the defaults, spelled out
    out.update(_decide(best, base, per_user, chosen, n_bootstrap, seed))
    return out


def _mean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else 0.0


def _decide(
    best: Any, base: int, per_user: dict[int, np.ndarray], defaults: dict, n_boot: int, seed: int
) -> dict[str, Any]:
    """Keep the defaults unless tuned - defaults is above 0 with 95% confidence."""
    from kuairec.evaluation.bootstrap import paired_bootstrap

    if best is None or best.number == base:
        return {"best_params": defaults, "decision": "defaults", "why": "no trial beat them"}
    res = paired_bootstrap(
        per_user[best.number], per_user[base], n_bootstrap=max(n_boot, 200), seed=seed
    )
    lo, hi = res["ci"]
    comparison = {"diff": res["diff"], "ci": [lo, hi], "n_users": res["n_users"]}
    if np.isfinite(lo) and lo > 0:
        why = f"tuned - defaults = {res['diff']:+.4f}, 95% interval [{lo:+.4f}, {hi:+.4f}] > 0"
        tuned = {**defaults, **best.params}
        return {"best_params": tuned, "decision": "tuned", "why": why}
    why = (
        f"best trial {res['diff']:+.4f} over the defaults, but its 95% interval "
        f"[{lo:+.4f}, {hi:+.4f}] does not lie above 0: kept the defaults"
    )
    return {
        "best_params": defaults,
        "decision": "defaults",
        "why": why,
        "tuned_params": {**defaults, **best.params},
        "comparison": comparison,
    }


def _defaults(name: str, space: dict[str, Any]) -> dict[str, Any]:
    """The model's (or preset's) default values of the searched fields."""
    from kuairec.models.registry import config_to_dict, create_model

    cfg = config_to_dict(create_model(name).config)
    return {key: cfg[key] for key, p in space.items() if key in cfg and p.contains(cfg[key])}


def choose_params(
    name: str, split: Split, params: dict[str, Any], cfg: Any, progress: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """For ``kuairec run``: tune the models that ask for it, briefly; user-given
    parameters stay fixed. The split is built only when a model is actually tuned."""
    from kuairec.models.registry import get_model_class

    if not get_model_class(name).tune_in_run or cfg.tune_trials < 1:
        return params, None
    if not set(tunable(name)) - set(params):
        return params, None  # everything fixed by the user
    with progress.stage(f"{name}: tune ({cfg.tune_trials} trials)"):
        res = study(
            name,
            split,
            n_trials=cfg.tune_trials,
            fixed=params,
            label=cfg.label,
            seed=cfg.seed,
            n_bootstrap=cfg.n_bootstrap,
            timeout=cfg.tune_seconds,
        )
    return res["best_params"], res


def format_toml(name: str, params: dict[str, Any]) -> str:
    """Parameters as a ``[params.<model>]`` table for ``kuairec run --config``."""
    lines = [f"[params.{name}]"]
    for key, value in params.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {str(value).lower()}")
        elif isinstance(value, int | float):
            lines.append(f"{key} = {value!r}")
        else:
            lines.append(f'{key} = "{value}"')
    return "\n".join(lines) + "\n"
