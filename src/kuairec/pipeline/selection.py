"""Choosing without the test set: validation scores, the baseline, the paired comparisons.

Every learned model gets a validation score: its NDCG@10 on the validation split's
confirmation half, from a fit on the split's fit part. Where that fit comes from, in
order: the tuner's chosen trial; the model's own fit, for models that stop early (they
are fitted on the fit part already); a refit with the run's parameters, for models whose
declared ``cost`` allows one at this log's size (:mod:`kuairec.pipeline.refits`: not
heavy, and moderate only on a log of at most 2M pairs). The others get none, and the
notes say why.

The paired comparisons' baseline is the model the user names (``--baseline``) or the
learned model with the best validation score. It is then compared with every other
model on the test set (paired bootstrap over the same resamples), with a two-sided
bootstrap p-value and Holm's adjustment over all the comparisons made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.result import PAIRED_METRIC, Comparison, Paired, ValidationScore

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.pipeline.config import RunConfig
    from kuairec.pipeline.experiment import Experiment
    from kuairec.pipeline.fitting import FittedModel
    from kuairec.pipeline.tuning import ValidationFit


def validation_fits(
    fitted: Mapping[str, FittedModel],
    from_tuning: Mapping[str, ValidationFit],
    exp: Experiment,
    cfg: RunConfig,
    progress: Any,
) -> dict[str, ValidationFit]:
    """A fit on the validation split's fit part for every learned model that can have
    one (see the module docstring), with its per-user NDCG@10 on every validation user."""
    from kuairec.pipeline.fitting import create_for_run
    from kuairec.pipeline.refits import refit_refusal
    from kuairec.pipeline.tuning import ValidationFit, score_validation

    validation = exp.validation(cfg)
    n_pairs = int(exp.train.interactions.nnz)
    out: dict[str, ValidationFit] = {}
    for name, f in fitted.items():
        cls = type(f.model)
        if cls.reference:
            continue
        if name in from_tuning:
            out[name] = from_tuning[name]
        elif f.early is not None:  # fitted on the fit part, stopped on the selection half
            out[name] = f.early
        elif refit_refusal(cls, n_pairs) is None:
            with progress.stage(f"{name}: fit on the validation split"):
                fit_part, early = validation.for_fit()
                again = create_for_run(name, cfg, f.result.config, exp.scratch)
                again.fit(fit_part, early if again.uses_validation else None)
            out[name] = ValidationFit(
                again, score_validation(again, validation), "a refit on the fit part"
            )
    return out


def validation_scores(
    fits: Mapping[str, ValidationFit], select: np.ndarray
) -> dict[str, ValidationScore]:
    """Mean NDCG@10 over the confirmation half (users whose numbers chose nothing)."""
    out = {}
    for name, fit in fits.items():
        values = fit.per_user[~select]
        ok = np.isfinite(values)
        value = float(values[ok].mean()) if ok.any() else None
        out[name] = ValidationScore(value, int(ok.sum()), fit.source)
    return out


def choose_baseline(
    scores: Mapping[str, ValidationScore], names: list[str], named: str | None
) -> tuple[str | None, str]:
    """(baseline, why): the user's ``--baseline``, else the best validation score
    (ties: the earlier model in the run's order)."""
    if named is not None:
        return named, "named with --baseline"
    scored = [(scores[n].value, -i, n) for i, n in enumerate(names) if n in scores]
    scored = [s for s in scored if s[0] is not None]
    if not scored:
        return None, "no learned model has a validation score"
    value, _, best = max(scored)
    left = [n for n in names if n not in scores]
    why = (
        f"the best validation {PAIRED_METRIC} ({value:.4f}) on the validation split's "
        f"confirmation half ({scores[best].n_users} users), among {len(scored)} learned models"
    )
    if left:
        why += (
            f"; without a validation score: {', '.join(left)} (a reference row, or a refit "
            "its declared cost does not allow at this log's size)"
        )
    return best, why


def paired_comparisons(
    per_user: Mapping[str, Mapping[str, np.ndarray]],
    baseline: str,
    reason: str,
    cfg: RunConfig,
) -> Paired | None:
    """Paired bootstrap of the baseline minus every other model on the test set, with
    two-sided p-values and Holm's adjustment over the comparisons made."""
    from kuairec.evaluation.bootstrap import holm, paired_bootstrap

    if cfg.n_bootstrap < 1 or baseline not in per_user:
        return None
    others = [n for n in per_user if n != baseline and PAIRED_METRIC in per_user[n]]
    raw = {
        other: paired_bootstrap(
            per_user[baseline][PAIRED_METRIC],
            per_user[other][PAIRED_METRIC],
            n_bootstrap=cfg.n_bootstrap,
            seed=cfg.seed,
        )
        for other in others
    }
    adjusted = holm([raw[o]["p_value"] for o in others])
    comparisons = {
        other: comparison(raw[other], p) for other, p in zip(others, adjusted, strict=True)
    }
    n = sum(1 for c in comparisons.values() if c.p_value is not None)
    return Paired(PAIRED_METRIC, baseline, reason, n, "holm", comparisons)


def comparison(raw: Mapping[str, Any], p_holm: float | None) -> Comparison:
    """A :func:`~kuairec.evaluation.bootstrap.paired_bootstrap` result, typed."""
    return Comparison(
        diff=_finite(raw["diff"]),
        ci=(_finite(raw["ci"][0]), _finite(raw["ci"][1])),
        p_le_0=_finite(raw["p_le_0"]),
        p_value=_finite(raw["p_value"]),
        p_holm=_finite(p_holm),
        n_users=int(raw["n_users"]),
        n_bootstrap=int(raw["n_bootstrap"]),
    )


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None
