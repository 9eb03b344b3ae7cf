"""The main job: train every registered model, evaluate it, and write a run folder.

``runs/<timestamp>-<name>/`` holds report.md/html, metrics.json, recommendations/,
config.json, manifest.json, models/ and eda/. The folder is built under a temporary
name and renamed only when complete: an existing run is never overwritten.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kuairec import atomic
from kuairec.display.progress import Progress
from kuairec.display.resources import measure
from kuairec.errors import ConfigError, KuaiRecError, ModelError
from kuairec.pipeline.config import RunConfig

PAIRED_METRIC = "ndcg@10"


@dataclass
class ModelOutcome:
    name: str
    entry: dict[str, Any]  # what goes under metrics.json["models"][name]
    per_user: dict[str, np.ndarray]  # for paired bootstrap between models
    top_items: np.ndarray
    top_scores: np.ndarray
    model: Any = None


@dataclass
class Experiment:
    """The data, split and labels one run evaluates every model on."""

    dataset: Any  # KuaiRecDataset, or None for the temporal protocol
    train: Any  # TrainSet
    test: Any  # TestSet
    protocol: dict[str, Any]
    data_dir: Path | None = None
    truth: Any = None  # synthetic only: given to the oracle alone (uses_truth)
    scratch: Path | None = None  # models' checkpoints and logs; removed when the run ends
    notes: list[str] = field(default_factory=list)
    _validation: Any = None
    _context: Any = None

    def context(self, cfg: RunConfig) -> Any:
        """Label cut-offs and lookups shared by every model's evaluation (built once)."""
        if self._context is None:
            from kuairec.evaluation.evaluate import prepare as prepare_eval

            self._context = prepare_eval(
                self.test, self.train, ks=cfg.ks, labels=cfg.labels, default_label=cfg.label
            )
        return self._context

    def validation(self, cfg: RunConfig) -> Any:
        """The validation split of the training log (a lazy :class:`Split`: built once,
        on first use), held out from the test set's users."""
        if self._validation is None:
            from kuairec.pipeline.tuning import Split

            self._validation = Split(self.train, cfg.validation, self.test.users, cfg.seed)
        return self._validation


def prepare(cfg: RunConfig, progress: Progress) -> Experiment:
    """Load the data and build the split named by ``cfg.protocol``; a test set without a
    positive under the run's label is refused here, before any model trains."""
    from kuairec.evaluation.positives import require_positives

    exp = _prepare(cfg, progress)
    require_positives(exp.test, exp.train, cfg.label, str(exp.protocol.get("data", "the data")))
    return exp


def _prepare(cfg: RunConfig, progress: Progress) -> Experiment:
    if cfg.protocol == "temporal":
        from kuairec.evaluation.protocols import temporal_experiment

        notes: list[str] = []  # what was understood of the user's file
        with progress.stage("loading interactions"):
            train, test = temporal_experiment(Path(cfg.interactions), cfg.test_fraction, notes)
        protocol = {
            "name": "temporal",
            "train": f"{Path(cfg.interactions).name}: each user's earlier rows",
            "test": f"each user's last {cfg.test_fraction:.0%} of rows",
            "data": str(cfg.interactions),
        }
        common = _protocol_common(cfg, test)
        return Experiment(None, train, test, protocol | common, None, notes=notes)

    from kuairec.data.load import load_dataset
    from kuairec.evaluation.protocols import default_protocol

    with progress.stage("preparing data"):
        folder = _data_folder(cfg, progress)
        ds = load_dataset(folder, progress=progress)
        if cfg.protocol == "cold-items":
            from kuairec.pipeline.cold import cold_experiment

            return cold_experiment(ds, cfg, 0.1, None)
        train, test = default_protocol(ds)
    protocol = {
        "name": "kuairec-small",
        "train": "big_matrix",
        "test": "small_matrix (fully observed)",
        "data": str(folder),
        "synthetic": ds.truth is not None,
        "scale": cfg.scale if cfg.data is None and _uses_default(cfg) else None,
    }
    common = _protocol_common(cfg, test)
    return Experiment(ds, train, test, protocol | common, folder, truth=ds.truth)


def _uses_default(cfg: RunConfig) -> bool:
    from kuairec import config

    return cfg.data is None and config.data_dir_from_env() is None


def _data_folder(cfg: RunConfig, progress: Progress) -> Path:
    from kuairec.data.default import ensure_synthetic, resolve_data_dir

    if _uses_default(cfg):
        return ensure_synthetic(cfg.scale, cfg.seed, progress=progress)
    return resolve_data_dir(cfg.data, progress=progress)


def _protocol_common(cfg: RunConfig, test: Any) -> dict[str, Any]:
    return {
        "n_test_users": int(len(test.users)),
        "n_candidates": int(len(test.candidates)),
        "default_label": cfg.label,
        "labels": list(cfg.labels),
        "ks": list(cfg.ks),
        "n_bootstrap": cfg.n_bootstrap,
        "seed": cfg.seed,
        "validation_split": cfg.validation,
    }


def model_names(cfg: RunConfig) -> list[str]:
    from kuairec.models.registry import check_params, default_models

    names = list(cfg.models) if cfg.models else default_models()
    for name in names:  # unknown names and bad parameters fail before any work is done
        check_params(name, cfg.model_params.get(name, {}))
    unused = sorted(set(cfg.model_params) - set(names))
    if unused:
        raise ConfigError(f"parameters given for models that are not run: {unused}")
    return names


def run_model(
    name: str, exp: Experiment, cfg: RunConfig, params: dict[str, Any], progress: Progress
) -> ModelOutcome:
    """Fit one model, recommend for every test user, evaluate; time and memory each."""
    from kuairec.models.registry import create_model, get_model_class

    cls = get_model_class(name)
    if cls.uses_accelerator:  # --accelerator / --devices, unless the model's own params say
        params = {"accelerator": cfg.accelerator, "devices": cfg.devices, **params}
    model = create_model(name, params, **({"truth": exp.truth} if cls.uses_truth else {}))
    if exp.scratch is not None:
        model.scratch_dir = exp.scratch / name
    train, valid = exp.train, None
    if cls.uses_validation:  # early stopping: fit on the rest of the log
        train, valid = exp.validation(cfg)()
    with progress.stage(f"{name}: fit"), measure() as fit_cost:
        model.fit(train, valid, progress=progress)
    with progress.stage(f"{name}: evaluate"), measure() as eval_cost:
        result, items, scores = evaluate_model(model, exp, cfg)
    entry = result.to_json()
    entry.update(
        fit_seconds=round(fit_cost.seconds, 3),
        eval_seconds=round(eval_cost.seconds, 3),
        peak_rss_mb=round(max(fit_cost.peak_rss_mb, eval_cost.peak_rss_mb), 1),
        config=_model_config(model),
    )
    history = getattr(model, "history_", None)
    if history:
        entry["history"] = history
    return ModelOutcome(name, entry, result.per_user, items, scores, model)


def evaluate_model(model: Any, exp: Experiment, cfg: RunConfig) -> tuple[Any, Any, Any]:
    """Rank every candidate for every test user and evaluate: (EvalResult, items, scores)."""
    from kuairec.evaluation.fitted import rank_and_evaluate

    return rank_and_evaluate(
        model, exp.test, exp.train, ks=tuple(cfg.ks), labels=tuple(cfg.labels),
        default_label=cfg.label, n_bootstrap=cfg.n_bootstrap, seed=cfg.seed,
        context=exp.context(cfg),
    )  # fmt: skip


def _model_config(model: Any) -> dict[str, Any]:
    from kuairec.models.registry import config_to_dict

    return config_to_dict(model.config)


def paired_comparisons(outcomes: dict[str, ModelOutcome], cfg: RunConfig) -> dict[str, Any]:
    """Paired bootstrap of ndcg@10: the best learned model against every other model."""
    from kuairec.evaluation.bootstrap import paired_bootstrap

    metric = PAIRED_METRIC if PAIRED_METRIC in _first(outcomes).per_user else None
    if metric is None or cfg.n_bootstrap < 1:
        return {}
    learned = [n for n in outcomes if not outcomes[n].model.reference]
    if not learned:
        return {}
    best = max(learned, key=lambda n: outcomes[n].entry["metrics"].get(metric, -1.0))
    out: dict[str, Any] = {}
    for other in outcomes:
        if other == best:
            continue
        res = paired_bootstrap(
            outcomes[best].per_user[metric],
            outcomes[other].per_user[metric],
            n_bootstrap=cfg.n_bootstrap,
            seed=cfg.seed,
        )
        out[f"{best} vs {other}"] = {"metric": metric, **res}
    return out


def _first(d: dict[str, Any]) -> Any:
    return next(iter(d.values()))


def write_recommendations(path: Path, outcome: ModelOutcome, exp: Experiment) -> None:
    """``user_id, rank, video_id, score`` for every test user, in raw ids."""
    import polars as pl

    items, scores = outcome.top_items, outcome.top_scores
    n_users, k = items.shape
    valid = items >= 0
    users_raw = exp.train.users.to_raw(exp.test.users)
    frame = pl.DataFrame(
        {
            "user_id": np.repeat(users_raw, k)[valid.ravel()],
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n_users)[valid.ravel()],
            "video_id": exp.train.items.to_raw(items[valid]),
            "score": scores[valid].astype(np.float32),
        }
    )
    with atomic.temp_path(path) as tmp:
        frame.write_parquet(tmp)


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=_json_default, allow_nan=False)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def clean_nans(obj: Any) -> Any:
    """NaN/inf -> None so metrics.json stays strict JSON."""
    if isinstance(obj, dict):
        return {k: clean_nans(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_nans(v) for v in obj]
    if isinstance(obj, float | np.floating) and not np.isfinite(obj):
        return None
    return obj


def run_folder_name(cfg: RunConfig) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.name}"


def execute(cfg: RunConfig, progress: Progress | None = None) -> Path:
    """Run the main job and return the finished run folder."""
    progress = progress or Progress(enabled=False)
    names = model_names(cfg)
    target = _new_run_path(cfg)
    swept = atomic.sweep_orphans(cfg.runs_dir)  # leftovers of killed runs, no live writer
    exp = prepare(cfg, progress)
    if swept:
        exp.notes.append(
            f"swept {len(swept)} leftover temporary folder(s) of interrupted runs from "
            f"{cfg.runs_dir}: {', '.join(sorted(p.name for p in swept))}"
        )
    exp.scratch = atomic.temp_dir(target.with_name(f"{target.name}-scratch"))
    try:  # models' checkpoints and logs live here, never in the finished run folder
        return _execute(cfg, exp, names, target, progress)
    finally:
        _stop_backends()
        atomic.discard(exp.scratch)


def _execute(
    cfg: RunConfig, exp: Experiment, names: list[str], target: Path, progress: Progress
) -> Path:
    from kuairec.pipeline.manifest import build_manifest
    from kuairec.pipeline.tuning import choose_params
    from kuairec.report.render import render_report

    outcomes: dict[str, ModelOutcome] = {}
    skipped: dict[str, str] = {}
    tuning: dict[str, Any] = {}
    for name in progress.iterate(names, "models"):
        reason = _unavailable(name, exp)
        if reason:
            skipped[name] = reason
            continue
        params = {**_followed(name, outcomes), **cfg.model_params.get(name, {})}
        try:
            if cfg.tune:
                params, info = choose_params(name, exp.validation(cfg), params, cfg, progress)
                if info is not None:
                    tuning[name] = info
            outcomes[name] = run_model(name, exp, cfg, params, progress)
        except KuaiRecError as exc:  # e.g. EASE on too many items: report it, go on
            skipped[name] = f"failed: {exc}"
    if not outcomes:
        reasons = "; ".join(f"{n}: {r}" for n, r in skipped.items())
        raise ModelError(f"no model could be trained and evaluated ({reasons})")
    metrics = _metrics_document(exp, outcomes, skipped, tuning, cfg)
    main_protocol = exp.protocol.get("name") == "kuairec-small"
    if cfg.validity and main_protocol:
        metrics["validity"] = clean_nans(_validity(exp, outcomes, cfg, progress))
    if cfg.cold_items and main_protocol:
        metrics["cold_items"] = _cold_items(exp, outcomes, cfg, progress)
    with progress.stage("writing the run folder"), atomic.new_directory(target) as tmp:
        (tmp / "metrics.json").write_text(_json(metrics))
        (tmp / "config.json").write_text(_json(cfg.to_dict()))
        manifest = build_manifest(cfg, exp.data_dir)
        manifest["stage_seconds"] = {k: round(v, 2) for k, v in progress.timings.items()}
        (tmp / "manifest.json").write_text(_json(manifest))
        _write_outputs(tmp, outcomes, exp, cfg)
        extra = {"manifest": manifest}
        if cfg.eda and exp.dataset is not None:
            from kuairec.eda import write_eda_report

            write_eda_report(exp.dataset, tmp / "eda", progress=progress)
            extra["eda_link"] = "eda/report.html"
        render_report(metrics, tmp, extra=extra)
    return target


def _validity(exp: Experiment, outcomes: dict[str, ModelOutcome], cfg: RunConfig, progress):  # noqa: ANN001, ANN202
    """The validity section, or why it could not be computed (the run goes on)."""
    from kuairec.pipeline.validity import validity_section

    try:
        with progress.stage("validity"), measure() as cost:
            section = validity_section(exp, outcomes, cfg, progress)
    except KuaiRecError as exc:
        return {"error": str(exc)}
    section["seconds"] = round(cost.seconds, 2)
    return section


def _cold_items(exp: Experiment, outcomes: dict[str, ModelOutcome], cfg: RunConfig, progress):  # noqa: ANN001, ANN202
    """The cold-video section: the run's models that score videos from their features,
    refitted with the run's parameters on the cold-items split (the others listed)."""
    from kuairec.pipeline.cold import cold_items_report

    params = {n: o.entry.get("config", {}) for n, o in outcomes.items()}
    scratch = None if exp.scratch is None else exp.scratch / "cold-items"
    try:
        with progress.stage("cold videos"), measure() as cost:
            doc = cold_items_report(
                exp.dataset, list(outcomes), cfg, params=params, scratch=scratch,
                progress=progress,
            )  # fmt: skip
    except KuaiRecError as exc:
        return {"error": str(exc)}
    doc["seconds"] = round(cost.seconds, 2)
    return doc


def _followed(name: str, outcomes: dict[str, ModelOutcome]) -> dict[str, Any]:
    """Parameters taken over from the model ``name`` follows, when it ran (its config as
    used: the tuned one when tuning changed it)."""
    from kuairec.models.registry import get_model_class

    cls = get_model_class(name)
    other = outcomes.get(cls.follows) if cls.follows else None
    return cls.params_from(other.entry.get("config", {})) if other is not None else {}


def _stop_backends() -> None:
    """Stop the shared Spark session if a model started one (never imports pyspark)."""
    import sys

    spark = sys.modules.get("kuairec.models.spark_session")
    if spark is not None:
        spark.stop_session()


def _unavailable(name: str, exp: Experiment) -> str | None:
    """Why ``name`` cannot run in this experiment (a missing package, no truth), or None."""
    from kuairec.models.registry import get_model_class, missing_requirement

    missing = missing_requirement(name)
    if missing:
        return missing
    cls = get_model_class(name)
    if exp.protocol.get("name") == "cold-items" and not cls.scores_cold_items:
        return f"cannot score cold videos: {cls.cold_items_reason}"
    if cls.uses_truth and exp.truth is None:
        return "no small_matrix_truth.csv in the data folder (real data)"
    return cls.unavailable_reason(exp.train)


def _new_run_path(cfg: RunConfig) -> Path:
    runs = Path(cfg.runs_dir)
    base = run_folder_name(cfg)
    target, i = runs / base, 1
    while target.exists():  # two runs in one second: never overwrite, add a suffix
        i += 1
        target = runs / f"{base}-{i}"
    return target


def _metrics_document(exp, outcomes, skipped, tuning, cfg) -> dict[str, Any]:  # noqa: ANN001
    from kuairec.evaluation.evaluate import flips

    doc: dict[str, Any] = {
        "protocol": exp.protocol,
        "models": {n: o.entry for n, o in outcomes.items()},
        "skipped": skipped,
    }
    notes = doc.setdefault("notes", list(exp.notes))
    n_cand = int(exp.test.candidates.size)
    over = [k for k in cfg.ks if k > n_cand]
    if over:
        notes.append(
            f"K={', '.join(map(str, over))} is capped at the {n_cand} candidates: those lists "
            f"hold every candidate and their @K metrics equal the @{n_cand} ones"
        )
    if len(outcomes) > 1:
        doc["paired"] = paired_comparisons(outcomes, cfg)
        if cfg.n_bootstrap < 1:
            notes.append("no paired comparison: n_bootstrap is 0 (no resamples)")
        doc["label_flips"] = flips({n: o.entry for n, o in outcomes.items()}, PAIRED_METRIC)
    if tuning:
        doc["tuning"] = tuning
    if outcomes:  # the labels actually evaluated (a log without durations has no duration label)
        doc["protocol"]["labels"] = list(_first(outcomes).entry.get("by_label", {}))
    return clean_nans(doc)


def _write_outputs(tmp: Path, outcomes: dict[str, ModelOutcome], exp: Experiment, cfg) -> None:  # noqa: ANN001
    (tmp / "recommendations").mkdir()
    for name, outcome in outcomes.items():
        write_recommendations(tmp / "recommendations" / f"{name}.parquet", outcome, exp)
        if cfg.save_models and outcome.model is not None:
            outcome.model.save(tmp / "models" / name)
