"""Cold videos: the run's models that rank videos from their features, refitted with the
run's parameters on the cold-items split (10% of the small matrix's videos held out of
training entirely; :func:`kuairec.evaluation.cold.cold_items_protocol`) and evaluated on
those videos alone. Each refit goes through the main job's own steps
(:func:`kuairec.pipeline.fitting.fit_and_evaluate`).

The models are compared pair by pair (every pair: nothing was chosen on this test set),
with Holm's adjustment over the pairs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from kuairec.errors import KuaiRecError
from kuairec.pipeline.job import Job
from kuairec.report.markdown import Block, Bullets, Heading, Para, Table, fmt, fmt_ci
from kuairec.report.view import RunView
from kuairec.result import PAIRED_METRIC, Comparison, ModelResult, ProtocolInfo

NAME = "cold_items"
TITLE = "Cold videos"
FRACTION = 0.1


@dataclass
class Pair:
    first: str
    second: str
    comparison: Comparison  # first minus second


@dataclass
class Value:
    protocol: ProtocolInfo
    models: dict[str, ModelResult]
    cannot_score: dict[str, str]  # models that do not rank videos from features, and why
    skipped: dict[str, str]
    pairs: list[Pair]


def fits(job: Job) -> dict[str, dict]:
    """The models :func:`compute` refits (those that score cold videos), with the run's
    parameters; empty when the section is off or does not apply."""
    from kuairec.models.registry import get_model_class

    if not _applies(job) or job.exp is None or job.exp.dataset is None:
        return {}
    return {
        name: dict(f.result.config)
        for name, f in job.fitted.items()
        if get_model_class(name).scores_cold_items
    }


def _applies(job: Job) -> bool:
    from kuairec.pipeline.experiment import KUAIREC_PROTOCOL

    return bool(job.cfg.cold_items) and job.result.protocol.name == KUAIREC_PROTOCOL


def compute(job: Job) -> Value | None:
    from kuairec.models.registry import get_model_class
    from kuairec.pipeline.experiment import cold_experiment
    from kuairec.pipeline.fitting import fit_and_evaluate, unavailable

    cfg = job.cfg
    if not _applies(job):
        return None
    main = job.local()  # the Spark engine: not computed, and the report says so
    if main.dataset is None:
        return None
    scratch = None if main.scratch is None else main.scratch / "cold-items"
    with job.progress.stage("cold videos"):
        exp = cold_experiment(main.dataset, cfg, FRACTION, scratch)
        results: dict[str, ModelResult] = {}
        cannot, skipped = {}, {}
        for name in job.progress.iterate(list(job.fitted), "cold videos"):
            cls = get_model_class(name)
            if not cls.scores_cold_items:
                cannot[name] = cls.cold_items_reason
                continue
            reason = unavailable(name, exp)
            if reason:
                skipped[name] = reason
                continue
            try:
                params = job.fitted[name].result.config
                results[name] = fit_and_evaluate(name, exp, cfg, params, job.progress).result
            except KuaiRecError as exc:
                skipped[name] = f"failed: {exc}"
    return Value(exp.protocol, results, cannot, skipped, _pairs(results, cfg))


def _pairs(results: dict[str, ModelResult], cfg) -> list[Pair]:  # noqa: ANN001
    from kuairec.evaluation.bootstrap import holm, paired_bootstrap
    from kuairec.pipeline.selection import comparison

    if cfg.n_bootstrap < 1:
        return []
    pairs = list(itertools.combinations(results, 2))
    raw = [
        paired_bootstrap(
            results[a].per_user[PAIRED_METRIC],
            results[b].per_user[PAIRED_METRIC],
            n_bootstrap=cfg.n_bootstrap,
            seed=cfg.seed,
        )  # fmt: skip
        for a, b in pairs
    ]
    adjusted = holm([r["p_value"] for r in raw])
    return [Pair(a, b, comparison(r, p)) for (a, b), r, p in zip(pairs, raw, adjusted, strict=True)]


def render(value: Value, view: RunView) -> list[Block]:
    proto = value.protocol
    rows = []
    ranked = sorted(value.models.items(), key=lambda kv: -(kv[1].value() or 0.0))
    for name, m in ranked:
        rows.append([
            name, fmt(m.value()), fmt_ci(m.ci.get(PAIRED_METRIC)), fmt(m.value("recall@10")),
            fmt(m.cost.fit_seconds, 1),
        ])  # fmt: skip
    blocks: list[Block] = [
        Heading(TITLE),
        Para(
            f"{proto.n_cold_videos} of the small matrix's videos ({100 * (proto.fraction or 0):.0f}"
            f"%, seed {proto.seed}) held out of training entirely; each test user ranks those "
            "videos only. Models score them from content (tags, caption categories, duration; "
            "a new video has no daily statistics).",
            note=True,
        ),
    ]
    if rows:
        blocks.append(Table(["model", "ndcg@10", "95% CI", "recall@10", "fit s"], rows))
    if value.pairs:
        pair_rows = [
            [f"{p.first} vs {p.second}", fmt(p.comparison.diff), fmt_ci(p.comparison.ci),
             fmt(p.comparison.p_holm)]
            for p in value.pairs
        ]  # fmt: skip
        blocks += [
            Para(
                f"Every pair compared ({len(value.pairs)} comparisons, Holm-adjusted p): "
                "nothing was chosen on this test set.",
                note=True,
            ),
            Table(["pair", "diff", "95% CI", "p (Holm)"], pair_rows),
        ]
    if value.cannot_score:
        blocks += [
            Para("Cannot score cold videos:"),
            Bullets([f"{n}: {w}" for n, w in value.cannot_score.items()]),
        ]
    if value.skipped:
        blocks += [Para("Skipped:"), Bullets([f"{n}: {w}" for n, w in value.skipped.items()])]
    return blocks
