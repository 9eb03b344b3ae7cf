"""The main job: train every registered model, evaluate it, and write a run folder.

``runs/<timestamp>-<name>/`` holds report.md/html, metrics.json (the typed
:class:`~kuairec.result.RunResult`), recommendations/, config.json, manifest.json,
models/ and eda/. The folder is built under a temporary name and renamed only when
complete: an existing run is never overwritten.

The order of work, and which data decides what:

1. each model in turn: tuned on the validation split (selection half chooses,
   confirmation half confirms), fitted on the training log, evaluated on the test set;
2. every learned model's validation score on the confirmation half (reusing the tuner's
   and the early-stopped fits), and the paired comparisons' baseline chosen by it (or
   named with ``--baseline``): the test set chooses nothing;
3. the paired comparisons against that baseline on the test set, Holm-adjusted;
4. the sections (:mod:`kuairec.pipeline.sections`), the report, the folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from kuairec import atomic
from kuairec.display.progress import Progress
from kuairec.errors import ConfigError, KuaiRecError, ModelError
from kuairec.pipeline.config import RunConfig
from kuairec.pipeline.experiment import Experiment, data_folder, prepare
from kuairec.pipeline.fitting import FittedModel
from kuairec.pipeline.job import Job
from kuairec.result import RunResult


def model_names(cfg: RunConfig) -> list[str]:
    """The run's models (``--models`` or the registry's default list), every name and
    parameter checked before any work is done."""
    from kuairec.models.registry import check_params, default_models

    names = list(cfg.models) if cfg.models else default_models()
    for name in names:
        check_params(name, cfg.model_params.get(name, {}))
    unused = sorted(set(cfg.model_params) - set(names))
    if unused:
        raise ConfigError(f"parameters given for models that are not run: {unused}")
    if cfg.baseline is not None and cfg.baseline not in names:
        raise ConfigError(f"run: --baseline {cfg.baseline!r} is not one of the run's models")
    return names


def execute(cfg: RunConfig, progress: Progress | None = None) -> Path:
    """Run the main job and return the finished run folder."""
    from kuairec.models.backends import close_all

    progress = progress or Progress(enabled=False)
    names = model_names(cfg)
    target = _new_run_path(cfg)
    swept = atomic.sweep_orphans(cfg.runs_dir)  # leftovers of killed runs, no live writer
    notes = [
        f"swept {len(swept)} leftover temporary folder(s) of interrupted runs from "
        f"{cfg.runs_dir}: {', '.join(sorted(p.name for p in swept))}"
    ] if swept else []  # fmt: skip
    scratch = None
    try:  # models' checkpoints and logs live in scratch, never in the finished run folder
        if cfg.engine == "spark":
            from kuairec.pipeline.on_spark import run_on_spark

            data = None if cfg.protocol == "temporal" else data_folder(cfg, progress)
            scratch = atomic.temp_dir(target.with_name(f"{target.name}-scratch"))
            job = run_on_spark(cfg, data, scratch, progress)
            job.result.notes[:0] = notes
            finish_job(job)
        else:
            exp = prepare(cfg, progress)
            exp.notes += notes
            scratch = exp.scratch = atomic.temp_dir(target.with_name(f"{target.name}-scratch"))
            job = run_models(cfg, exp, names, progress)
        return write_run(job, target)
    finally:
        close_all()  # sessions models opened (Spark): closed whatever happened
        if scratch is not None:
            atomic.discard(scratch)


def run_models(cfg: RunConfig, exp: Experiment, names: list[str], progress: Progress) -> Job:
    """Tune, fit and evaluate every model; choose the baseline; compare; the sections."""

    from kuairec.display.resources import release_free_memory
    from kuairec.pipeline import beside
    from kuairec.pipeline.fitting import run_params

    result = RunResult(protocol=exp.protocol, models={}, notes=list(exp.notes))
    job = Job(cfg, exp, progress, result)
    groups = beside.groups(names, lambda n: run_params(n, cfg, cfg.model_params.get(n, {})))
    waits = {n for turn, group in groups.items() for n in group.order if n != turn}
    for name in progress.iterate(names, "models"):
        if name in waits:  # it is fitted with its group, at the group's last turn
            continue
        if name in groups:
            beside.run_group(groups[name], job, _run_one)
        else:
            _run_one(name, job)
        release_free_memory()  # what the fit freed, before the next one allocates
    grams = job.gram_store()
    if grams is not None:
        grams.clear()  # the tuning studies are over
    _in_order(job, names)
    if not job.fitted:
        reasons = "; ".join(f"{n}: {r}" for n, r in result.skipped.items())
        raise ModelError(f"no model could be trained and evaluated ({reasons})")
    _protocol_facts(job)
    finish_job(job)
    return job


def _in_order(job: Job, names: list[str]) -> None:
    """The models' entries in the run's order, whatever order they finished in."""
    rank = {n: i for i, n in enumerate(names)}

    def ordered(d: dict[str, Any]) -> dict[str, Any]:
        return dict(sorted(d.items(), key=lambda kv: rank.get(kv[0], len(rank))))

    result = job.result
    result.models, result.skipped = ordered(result.models), ordered(result.skipped)
    job.fitted, job.tuning, job.valid_fits = (
        ordered(job.fitted),
        ordered(job.tuning),
        ordered(job.valid_fits),
    )
    job.untuned = ordered(job.untuned)


def finish_job(job: Job) -> None:
    """The baseline chosen without the test set, the paired comparisons, the sections."""
    from kuairec.pipeline.sections import compute_all

    _compare(job)
    job.result.sections, job.result.section_errors = compute_all(job)


def _run_one(name: str, job: Job) -> None:
    """Tune (when the model asks for it), fit and evaluate one model; a model that cannot
    run here is listed under ``skipped`` with why, and the run goes on."""
    from kuairec.pipeline.fitting import fit_and_evaluate, unavailable

    cfg, exp = job.cfg, job.exp
    reason = unavailable(name, exp)
    if reason:
        job.result.skipped[name] = reason
        return
    params = {**_followed(name, job), **cfg.model_params.get(name, {})}
    try:
        tune_seconds = None
        if cfg.tune:
            start = time.perf_counter()
            params = _tune(name, job, params)
            tune_seconds = round(time.perf_counter() - start, 3) if name in job.tuning else None
        fitted = {n: f.model for n, f in job.fitted.items()}
        f = fit_and_evaluate(name, exp, cfg, params, job.progress, fitted)
    except KuaiRecError as exc:  # e.g. EASE on too many items: report it, go on
        job.result.skipped[name] = f"failed: {exc}"
        return
    f.result.cost.tune_seconds = tune_seconds
    record = job.tuning.get(name)
    if record is not None and record.time_limited and not f.result.time_limited:
        f.result.time_limited = record.time_limited
    job.fitted[name] = f
    job.result.models[name] = f.result


def _tune(name: str, job: Job, params: dict[str, Any]) -> dict[str, Any]:
    """The model's tuned parameters (user-given ones stay fixed), or ``params`` when it
    is not tuned in the run."""
    from kuairec.models.registry import get_model_class, tunable_models
    from kuairec.pipeline.fitting import create_for_run
    from kuairec.pipeline.refits import refit_refusal
    from kuairec.pipeline.tuning import study, trials_for, tunable

    cfg = job.cfg
    n_trials = trials_for(name, cfg)
    if n_trials < 1 or name not in tunable_models():  # a preset may fix the whole space
        return params
    if not set(tunable(name)) - set(params):  # the user fixed everything searched
        return params
    # every trial is a refit on the fit part: the declared cost decides, as for the
    # sections' refits (an explicit --tune-trials tunes every tunable model)
    n_pairs = int(job.exp.train.interactions.nnz)
    why = refit_refusal(get_model_class(name), n_pairs)
    if why is not None and cfg.tune_trials is None:
        job.untuned[name] = f"{why}; `kuairec tune --model {name}` searches it on its own"
        return params
    with job.progress.stage(f"{name}: tune ({n_trials} trials)"):
        record, fit = study(
            name,
            job.exp.validation(cfg),
            n_trials=n_trials,
            fixed=params,
            seed=cfg.seed,
            n_bootstrap=cfg.n_bootstrap,
            time_limit=cfg.time_limit,
            make=lambda p: create_for_run(name, cfg, p, job.exp.scratch),
            grams=job.gram_store(),
        )
    job.tuning[name] = record
    job.valid_fits[name] = fit
    return dict(record.best_params)


def _protocol_facts(job: Job) -> None:
    """What every evaluation shares: the labels evaluated, their definitions, notes."""
    first = next(iter(job.fitted.values())).evaluation
    protocol = job.result.protocol
    protocol.labels = list(first.by_label)  # a log without durations has no duration label
    protocol.label_definitions = {k: dict(v) for k, v in first.labels.items()}
    for note in first.notes:  # the evaluation's own notes (a K capped at the candidates)
        if note not in job.result.notes:
            job.result.notes.append(note)
    if job.cfg.tune or any(type(f.model).uses_validation for f in job.fitted.values()):
        job.result.validation = job.exp.validation(job.cfg).info()


def _compare(job: Job) -> None:
    """Validation scores, the baseline chosen without the test set, the comparisons."""
    from kuairec.pipeline.selection import (
        choose_baseline,
        paired_comparisons,
        validation_fits,
        validation_scores,
    )

    cfg, result = job.cfg, job.result
    if len(job.fitted) < 2:
        return
    if cfg.n_bootstrap < 1:
        result.notes.append("no paired comparison: n_bootstrap is 0 (no resamples)")
        return
    if cfg.baseline is None and job.exp is not None:
        with job.progress.stage("validation scores"):
            job.valid_fits = validation_fits(job.fitted, job.valid_fits, job.exp, cfg, job.progress)
        select = job.exp.validation(cfg).select
        for name, score in validation_scores(job.valid_fits, select).items():
            result.models[name].validation = score
    scores = {n: m.validation for n, m in result.models.items() if m.validation is not None}
    baseline, why = choose_baseline(scores, result.learned(), cfg.baseline)
    if baseline is None and job.exp is None and result.learned():  # the Spark engine
        baseline = result.learned()[0]
        why = (
            "the run's first learned model (the Spark engine fits no model on a validation "
            "split; name one with --baseline)"
        )
    if baseline is None:
        result.notes.append(f"no paired comparison: {why}")
        return
    per_user = {n: f.result.per_user for n, f in job.fitted.items()}
    result.paired = paired_comparisons(per_user, baseline, why, cfg)


def _followed(name: str, job: Job) -> dict[str, Any]:
    """Parameters taken over from the model ``name`` follows, when it ran (its config as
    used: the tuned one when tuning changed it)."""
    from kuairec.models.registry import get_model_class

    cls = get_model_class(name)
    other = job.fitted.get(cls.follows) if cls.follows else None
    return cls.params_from(other.result.config) if other is not None else {}


# ---------------------------------------------------------------- the run folder


def write_run(job: Job, target: Path) -> Path:
    """Write the run folder (under a temporary name, renamed when complete)."""
    from kuairec.pipeline import metrics_file
    from kuairec.pipeline.manifest import build_manifest

    cfg, exp, progress = job.cfg, job.exp, job.progress
    data_dir = exp.data_dir if exp is not None else _local_folder(job.result.protocol.data)
    with progress.stage("writing the run folder"), atomic.new_directory(target) as tmp:
        _write_outputs(tmp, job)  # first: where the outputs went may add a note
        metrics_file.write(job.result, tmp / metrics_file.FILE_NAME)
        (tmp / "config.json").write_text(_json(cfg.to_dict()))
        manifest = build_manifest(cfg, data_dir)
        manifest["stage_seconds"] = {k: round(v, 2) for k, v in progress.timings.items()}
        manifest["stage_peak_mb"] = [[k, round(v)] for k, v in progress.peaks]
        manifest["stage_cpu_seconds"] = [[k, round(w, 2), round(c, 2)] for k, w, c in progress.cpu]
        (tmp / "manifest.json").write_text(_json(manifest))
        extra: dict[str, Any] = {"manifest": manifest}
        if cfg.eda and exp is not None and exp.dataset is not None:
            from kuairec.eda import write_eda_report

            write_eda_report(exp.dataset, tmp / "eda", progress=progress)
            extra["eda_link"] = "eda/report.html"
        render_run_report(job.result, tmp, extra=extra)
    return target


def render_run_report(
    result: RunResult, out_dir: Path, *, extra: dict[str, Any] | None = None, **options: Any
) -> tuple[Path, Path]:
    """report.md and report.html of ``result``: the core parts and every section's."""
    from kuairec.pipeline.sections import render_all
    from kuairec.report.render import render_report
    from kuairec.report.view import RunView

    sections = render_all(RunView(result))
    return render_report(result, out_dir, sections=sections, extra=extra, **options)


def write_recommendations(path: Path, fitted: FittedModel, exp: Experiment) -> None:
    """``user_id, rank, video_id, score`` for every test user, in raw ids."""
    import polars as pl

    items, scores = fitted.top_items, fitted.top_scores
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


def _write_outputs(tmp: Path, job: Job) -> None:
    (tmp / "recommendations").mkdir()
    for name, fitted in job.fitted.items():
        target = tmp / "recommendations" / f"{name}.parquet"
        if job.exp is None:  # the Spark engine wrote them: its Parquet folder, copied
            _copy_spark_output(job.recommendations[name], target, job.result.notes)
            continue
        write_recommendations(target, fitted, job.exp)
        if job.cfg.save_models and fitted.model is not None:
            fitted.model.save(tmp / "models" / name)


def _local_path(uri: str | None) -> Path | None:
    """A path on this machine named by ``uri`` (a path or a ``file:`` URI), else None
    (``hdfs://``, ``s3a://``... live on a cluster's storage)."""
    if not uri:
        return None
    if uri.startswith("file:"):
        return Path("/" + uri.removeprefix("file:").lstrip("/"))
    return None if "://" in uri else Path(uri)


def _local_folder(uri: str | None) -> Path | None:
    path = _local_path(uri)
    return path if path is not None and path.is_dir() else None


def _copy_spark_output(uri: str, target: Path, notes: list[str]) -> None:
    """Spark's Parquet folder of recommendations into the run folder, when it is on this
    machine (on a cluster's storage it stays there, and a note says where)."""
    import shutil

    source = _local_folder(uri)
    if source is None:
        notes.append(f"recommendations of {target.stem} are where Spark wrote them: {uri}")
        return
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*.crc", "_SUCCESS"))


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


def run_folder_name(cfg: RunConfig) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.name}"


def _new_run_path(cfg: RunConfig) -> Path:
    runs = Path(cfg.runs_dir)
    base = run_folder_name(cfg)
    target, i = runs / base, 1
    while target.exists():  # two runs in one second: never overwrite, add a suffix
        i += 1
        target = runs / f"{base}-{i}"
    return target
