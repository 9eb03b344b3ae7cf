"""Hyperparameter selection on a temporal holdout of the training log, never on the test.

The last days of the big matrix become a validation set (see
``kuairec.evaluation.protocols.temporal_holdout``); each trial fits on the earlier part
and is scored by NDCG@10 under the run's default label. ``kuairec run`` spends a few
trials on the models whose fits are cheap; ``kuairec tune`` runs a full Optuna study.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kuairec.errors import ConfigError

OBJECTIVE = "ndcg@10"


@dataclass(frozen=True)
class Param:
    kind: str  # "int" | "float" | "choice"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()


#: Search spaces per model; keys are the models' config fields.
SPACES: dict[str, dict[str, Param]] = {
    "als": {
        "factors": Param("int", 16, 128, log=True),
        "regularization": Param("float", 1e-3, 10.0, log=True),
        "alpha": Param("float", 0.5, 40.0, log=True),
        "threshold": Param("choice", choices=(0.0, 1.0, 2.0)),
    },
    "bpr": {
        "factors": Param("int", 16, 128, log=True),
        "learning_rate": Param("float", 5e-3, 0.2, log=True),
        "regularization": Param("float", 1e-4, 0.1, log=True),
        "threshold": Param("choice", choices=(0.0, 1.0, 2.0)),
    },
    "ease": {
        "l2": Param("float", 10.0, 5000.0, log=True),
        "weighting": Param("choice", choices=("binary", "log", "linear")),
        "threshold": Param("choice", choices=(0.0, 1.0, 2.0)),
    },
    "itemknn": {
        "neighbours": Param("int", 10, 400, log=True),
        "shrinkage": Param("float", 0.0, 100.0),
        "weighting": Param("choice", choices=("binary", "log", "linear")),
        "threshold": Param("choice", choices=(0.0, 1.0, 2.0)),
    },
}

#: Models tuned inside ``kuairec run`` (cheap fits); the others keep their defaults there.
TUNED_IN_RUN = ("ease", "itemknn", "als")


def _suggest(trial: Any, space: dict[str, Param]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, p in space.items():
        if p.kind == "int":
            out[name] = trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
        elif p.kind == "float":
            out[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
        else:
            out[name] = trial.suggest_categorical(name, list(p.choices))
    return out


def validation_split(train: Any) -> tuple[Any, Any]:
    from kuairec.evaluation.protocols import temporal_holdout

    return temporal_holdout(train)


def score_params(name: str, params: dict[str, Any], fit_part: Any, valid: Any, label: str) -> float:
    """NDCG@10 of one configuration on the validation split."""
    from kuairec.evaluation.evaluate import evaluate
    from kuairec.models.registry import create_model

    model = create_model(name, params).fit(fit_part)
    items, _ = model.recommend(valid.users, 10, exclude=valid.exclude, candidates=valid.candidates)
    result = evaluate(
        items, valid, fit_part, ks=(10,), labels=(label,), default_label=label, n_bootstrap=0
    )
    value = result.metrics.get(OBJECTIVE)
    return float(value) if value is not None else 0.0


def study(
    name: str,
    train: Any,
    *,
    n_trials: int,
    fixed: dict[str, Any] | None = None,
    label: str = "wr>2",
    seed: int = 0,
    split: tuple[Any, Any] | None = None,
    show_progress: bool = False,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run an Optuna study (TPE, seeded) and return the best parameters and the trials.

    The model's defaults are always the first trial, so tuning never does worse than the
    defaults on the validation split.
    """
    import optuna

    if name not in SPACES:
        raise ConfigError(f"model {name!r} has no search space; tunable: {sorted(SPACES)}")
    if n_trials < 1:
        raise ConfigError(f"trials must be >= 1, got {n_trials}")
    fixed = dict(fixed or {})
    space = {k: v for k, v in SPACES[name].items() if k not in fixed}
    fit_part, valid = split or validation_split(train)
    optuna.logging.set_verbosity(logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(4, n_trials))
    st = optuna.create_study(direction="maximize", sampler=sampler)
    defaults = _defaults(name, space)
    if defaults:
        st.enqueue_trial(defaults, skip_if_exists=True)
    st.optimize(
        lambda t: score_params(name, {**fixed, **_suggest(t, space)}, fit_part, valid, label),
        n_trials=n_trials,
        timeout=timeout,
        show_progress_bar=show_progress,
    )
    return {
        "best_params": {**fixed, **st.best_params},
        "best_value": st.best_value,
        "objective": f"{OBJECTIVE} ({label}) on the temporal holdout",
        "trials": [
            {"params": t.params, "value": t.value} for t in st.trials if t.value is not None
        ],
    }


def _defaults(name: str, space: dict[str, Param]) -> dict[str, Any]:
    from kuairec.models.registry import config_to_dict, get_model_class

    cls = get_model_class(name)
    cfg = config_to_dict(cls.Config())
    out = {}
    for key, p in space.items():
        value = cfg.get(key)
        if value is None:
            continue
        if p.kind in ("int", "float") and not (p.low <= value <= p.high):
            continue
        if p.kind == "choice" and value not in p.choices:
            continue
        out[key] = value
    return out


def choose_params(
    name: str, split: Any, params: dict[str, Any], cfg: Any, progress: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """For ``kuairec run``: tune cheap models briefly; keep user-given params fixed.

    ``split`` is a zero-argument callable returning the (fit part, validation) pair, so
    the split is only built when a model is actually tuned.
    """
    if name not in TUNED_IN_RUN or cfg.tune_trials < 1:
        return params, None
    if not set(SPACES[name]) - set(params):
        return params, None  # everything fixed by the user
    with progress.stage(f"{name}: tune ({cfg.tune_trials} trials)"):
        res = study(
            name,
            None,
            n_trials=cfg.tune_trials,
            fixed=params,
            label=cfg.label,
            seed=cfg.seed,
            split=split(),
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
