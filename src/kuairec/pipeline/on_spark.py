"""``kuairec run --engine spark``: the main job on Spark, into the same RunResult.

:func:`run_on_spark` hands the run's settings to :func:`kuairec.sparkengine.run_spark`
(every stage that grows with the log is Spark DataFrame work there) and turns what it
gives back into the local engine's :class:`~kuairec.pipeline.job.Job`: one typed
:class:`~kuairec.result.ModelResult` per model from the same ``EvalResult``, the same
paired comparisons, the sections that need nothing but the evaluations (segments, label
sensitivity). The sections that refit models on the local dataset (cold videos,
validity) and tuning do not run on this engine: each says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kuairec.display.progress import Progress
from kuairec.display.resources import measure
from kuairec.pipeline.config import RunConfig
from kuairec.pipeline.fitting import FittedModel
from kuairec.pipeline.job import Job
from kuairec.result import CostInfo, ModelResult, ProtocolInfo, RunResult

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.sparkengine import SparkModelResult, SparkRunResult

NOT_ON_SPARK = "not computed on the Spark engine (it refits models on the local dataset)"


def spark_models(cfg: RunConfig) -> list[str]:
    """``--models``, or the models that train as Spark DataFrame work."""
    from kuairec.sparkengine.config import spark_native_models

    return list(cfg.models) if cfg.models else spark_native_models()


def run_on_spark(cfg: RunConfig, data: Path | None, work: Path, progress: Progress) -> Job:
    """The whole job on Spark; ``data`` is the resolved data folder (None: an own log),
    ``work`` the folder for Spark's tables (the run's scratch folder)."""
    from kuairec.sparkengine import SparkRunConfig, run_spark

    names = spark_models(cfg)
    spark_cfg = SparkRunConfig.from_dict(
        {
            "data": None if data is None else str(data),
            "protocol": "temporal" if cfg.protocol == "temporal" else "kuairec",
            "interactions": cfg.interactions,
            "test_fraction": cfg.test_fraction,
            "label": cfg.label,
            "labels": list(cfg.labels),
            "ks": list(cfg.ks),
            "seed": cfg.seed,
            "n_bootstrap": cfg.n_bootstrap,
            "models": names,
            "model_params": {n: p for n, p in cfg.model_params.items() if n in names},
            "validation": cfg.validation,
            "work_dir": str(work),
            "spark": {"master": cfg.spark_master},
        }
    )
    with measure() as cost:
        out = run_spark(spark_cfg, progress)
    return job_of(out, cfg, progress, cost.peak_rss_mb)


def job_of(out: SparkRunResult, cfg: RunConfig, progress: Progress, peak_mb: float) -> Job:
    """The engine's result as the pipeline's job (no Experiment: nothing is local)."""
    first = next(iter(out.models.values())).result
    protocol = _protocol(out.protocol, cfg, first)
    notes = [*out.notes, *out.cleaning.get("notes", [])]
    notes.append(
        f"engine: Spark {out.spark.get('version', '')} on {out.spark.get('master', '')}; "
        "tuning, the saved models, the EDA report and the sections that refit models on "
        "the local dataset are left to the local engine"
    )
    result = RunResult(protocol=protocol, models={}, skipped=dict(out.skipped), notes=notes)
    job = Job(cfg, None, progress, result, engine="spark")
    for name, m in out.models.items():
        model_result = _model_result(name, m, peak_mb)
        job.fitted[name] = FittedModel(name, None, model_result, m.result, m.top_items,
                                       m.top_scores)  # fmt: skip
        job.recommendations[name] = m.recommendations
        result.models[name] = model_result
    return job


def _protocol(raw: dict[str, Any], cfg: RunConfig, first: Any) -> ProtocolInfo:
    return ProtocolInfo(
        name=str(raw["name"]),
        train=str(raw["train"]),
        test=str(raw["test"]),
        data=None if raw.get("data") is None else str(raw["data"]),
        n_test_users=int(raw["n_test_users"]),
        n_candidates=int(raw["n_candidates"]),
        default_label=cfg.label,
        labels=list(first.by_label),
        ks=list(cfg.ks),
        n_bootstrap=cfg.n_bootstrap,
        seed=cfg.seed,
        validation_split=cfg.validation,
        synthetic=raw.get("synthetic"),
        label_definitions={k: dict(v) for k, v in first.labels.items()},
    )


def _model_result(name: str, m: SparkModelResult, peak_mb: float) -> ModelResult:
    from kuairec.models.registry import get_model_class
    from kuairec.pipeline.fitting import result_fields

    seconds = m.seconds
    return ModelResult(
        **result_fields(get_model_class(name), m.result, *m.notes, f"trained on {m.where}"),
        cost=CostInfo(
            fit_seconds=round(seconds.get("fit", 0.0), 3),
            eval_seconds=round(seconds.get("recommend", 0.0) + seconds.get("evaluate", 0.0), 3),
            peak_rss_mb=round(peak_mb, 1),  # the driver process, the whole Spark run
        ),
        config=dict(m.config),
    )
