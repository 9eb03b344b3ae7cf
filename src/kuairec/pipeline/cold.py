"""The cold-video section: refit the models that rank videos from their features on the
cold-items split (:func:`kuairec.evaluation.cold.cold_items_protocol`) and evaluate them
on the cold videos alone.

Each model goes through the main job's own steps (:func:`kuairec.pipeline.run.run_model`:
accelerator settings, scratch folder, validation split for early stopping, fit, top-K
lists, evaluation with bootstrap intervals, predictions for ``predicts_ratings``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kuairec.display.progress import Progress
from kuairec.errors import KuaiRecError
from kuairec.pipeline.run import (
    Experiment,
    ModelOutcome,
    _unavailable,
    clean_nans,
    paired_comparisons,
    run_model,
)

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.data.dataset import KuaiRecDataset
    from kuairec.pipeline.config import RunConfig

PROTOCOL_NAME = "cold-items"


def cold_items_report(
    ds: KuaiRecDataset,
    names: Sequence[str],
    cfg: RunConfig,
    *,
    fraction: float = 0.1,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    scratch: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fit and evaluate ``names`` on the cold-items split of ``ds``; a metrics.json-ready
    dict (NaN as None).

    The cold videos are drawn with ``cfg.seed`` (``fraction`` of the small matrix's
    videos); evaluation uses ``cfg.ks``, ``cfg.labels``, ``cfg.label``,
    ``cfg.n_bootstrap`` and ``cfg.seed``; models that declare ``uses_validation`` fit on
    ``cfg.validation``'s split of the cold-items training log; torch models get
    ``cfg.accelerator`` / ``cfg.devices``. ``params`` gives each model's hyperparameters
    (default ``cfg.model_params``; pass the main run's chosen ones to refit those).
    ``scratch`` is the folder for the models' checkpoints (a subfolder per model).

    Returns ``{"protocol": {...}, "models": {name: entry}, "cannot_score": {name: reason},
    "skipped": {name: reason}, "paired": {...}}``: ``protocol`` describes the split
    (``fraction``, ``seed``, ``n_cold_videos``, ``n_test_users``, ``n_candidates``,
    ``train_pairs``, ``removed_pairs``, the evaluation settings); an entry is what
    ``metrics.json["models"]`` holds for a model (metrics, ci, by_label, segments,
    fit_seconds, eval_seconds, peak_rss_mb, config, history); ``cannot_score`` lists the
    models that do not declare ``scores_cold_items`` with their ``cold_items_reason``;
    ``skipped`` those that could not run here (missing package, failure); ``paired`` the
    paired bootstrap of NDCG@10, best learned model against each other (empty with fewer
    than two models or ``n_bootstrap`` 0).
    """
    from kuairec.models.registry import get_model_class

    progress = progress or Progress(enabled=False)
    exp = cold_experiment(ds, cfg, fraction, scratch)
    params = cfg.model_params if params is None else params
    outcomes: dict[str, ModelOutcome] = {}
    cannot, skipped = {}, {}
    for name in progress.iterate(names, "cold videos"):
        cls = get_model_class(name)
        if not cls.scores_cold_items:
            cannot[name] = cls.cold_items_reason
            continue
        reason = _unavailable(name, exp)
        if reason:
            skipped[name] = reason
            continue
        try:
            outcomes[name] = run_model(name, exp, cfg, dict(params.get(name, {})), progress)
        except KuaiRecError as exc:
            skipped[name] = f"failed: {exc}"
    doc = {
        "protocol": exp.protocol,
        "models": {n: o.entry for n, o in outcomes.items()},
        "cannot_score": cannot,
        "skipped": skipped,
        "paired": paired_comparisons(outcomes, cfg) if len(outcomes) > 1 else {},
    }
    return clean_nans(doc)


def cold_experiment(
    ds: KuaiRecDataset, cfg: RunConfig, fraction: float, scratch: Path | None
) -> Experiment:
    """The cold-items split as the main job's :class:`Experiment`."""
    from kuairec.evaluation.cold import cold_items_protocol

    train, test = cold_items_protocol(ds, fraction=fraction, seed=cfg.seed)
    protocol = {
        "name": PROTOCOL_NAME,
        "train": "big_matrix without the cold videos' pairs; their daily statistics blanked",
        "test": "small_matrix pairs on the cold videos; candidates = the cold videos only",
        "fraction": fraction,
        "seed": cfg.seed,
        "n_cold_videos": int(test.candidates.size),
        "n_test_users": int(test.users.size),
        "n_candidates": int(test.candidates.size),
        "train_pairs": int(train.interactions.nnz),
        "removed_pairs": int(ds.big.nnz - train.interactions.nnz),
        "default_label": cfg.label,
        "labels": list(cfg.labels),
        "ks": list(cfg.ks),
        "n_bootstrap": cfg.n_bootstrap,
        "validation_split": cfg.validation,
    }
    return Experiment(ds, train, test, protocol, ds.source, truth=ds.truth, scratch=scratch)
