"""Two-stage ranking: for each retrieve-then-rank model of the run, what its candidates
could reach (the recall ceiling), what the ranker added over each retriever on the
test set (paired bootstrap, Holm-adjusted over those comparisons), how it was fitted
(the cut, the held-out users' NDCG@10, the search's decision) and which features it
used (share of the split gain). Nothing here chooses: the retrievers are the model's
configuration, and every figure but the lifts and the ceiling comes from the training
log."""

from __future__ import annotations

from dataclasses import dataclass

from kuairec.pipeline.job import Job
from kuairec.report.markdown import Block, Bullets, Heading, Para, Table, fmt, fmt_ci
from kuairec.report.view import RunView
from kuairec.result import PAIRED_METRIC, Comparison

NAME = "ranking"
TITLE = "Two-stage ranking"
TOP_FEATURES = 12


@dataclass
class Feature:
    name: str
    group: str
    gain_share: float


@dataclass
class Ranker:
    """One two-stage model of the run."""

    retrievers: list[str]
    reused: list[str]  # retrievers taken over from the run, not refitted
    n_candidates: int  # each retriever's top-N
    mean_candidates: float | None  # the union's size per test user
    recall_ceiling: float | None  # share of a test user's positives among the candidates
    recall_by_retriever: dict[str, float | None]
    cut: str  # how the training log was cut for the ranker's labels
    target_users: int
    train_rows: int
    held_out_ndcg: dict[str, float | None]  # the ranker and each retriever, held-out users
    decision: str
    why: str
    lifts: dict[str, Comparison]  # the model minus each retriever that ran, on the test
    features: list[Feature]


@dataclass
class Value:
    models: dict[str, Ranker]


def compute(job: Job) -> Value | None:
    out = {}
    for name, f in job.fitted.items():
        summary = getattr(f.model, "fit_summary_", None)
        if summary is None or not hasattr(f.model, "candidates"):
            continue
        out[name] = _ranker(name, f.model, summary, job)
    return Value(out) if out else None


def _ranker(name: str, model, summary, job: Job) -> Ranker:  # noqa: ANN001
    from kuairec.models.two_stage.summary import recall_ceiling

    exp = job.local()
    with job.progress.stage(f"{name}: recall ceiling"):
        ceiling = recall_ceiling(model, exp.test, job.cfg.label, exp.train)
    return Ranker(
        retrievers=list(summary.retrievers),
        reused=list(summary.reused),
        n_candidates=int(ceiling.n_candidates),
        mean_candidates=_f(ceiling.mean_candidates),
        recall_ceiling=_f(ceiling.mean),
        recall_by_retriever={k: _f(v) for k, v in ceiling.by_retriever.items()},
        cut=str(summary.split),
        target_users=int(summary.target_users),
        train_rows=int(summary.train_rows),
        held_out_ndcg={k: _f(v) for k, v in summary.held_out_ndcg.items()},
        decision=str(summary.decision),
        why=str(summary.why),
        lifts=_lifts(name, summary.retrievers, job),
        features=[
            Feature(g.name, g.group, float(g.gain_share))
            for g in summary.top_features(TOP_FEATURES)
        ],
    )


def _lifts(name: str, retrievers: list[str], job: Job) -> dict[str, Comparison]:
    from kuairec.evaluation.bootstrap import holm, paired_bootstrap
    from kuairec.pipeline.selection import comparison

    cfg, results = job.cfg, job.result.models
    ran = [r for r in retrievers if r in results and r != name]
    if cfg.n_bootstrap < 1 or not ran:
        return {}
    raw = {
        r: paired_bootstrap(
            results[name].per_user[PAIRED_METRIC],
            results[r].per_user[PAIRED_METRIC],
            n_bootstrap=cfg.n_bootstrap,
            seed=cfg.seed,
        )  # fmt: skip
        for r in ran
    }
    adjusted = holm([raw[r]["p_value"] for r in ran])
    return {r: comparison(raw[r], p) for r, p in zip(ran, adjusted, strict=True)}


def render(value: Value, view: RunView) -> list[Block]:
    blocks: list[Block] = [Heading(TITLE)]
    for name, r in value.models.items():
        blocks.append(Heading(name, 3))
        ceiling = "n/a" if r.recall_ceiling is None else f"{r.recall_ceiling:.3f}"
        blocks.append(
            Para(
                f"Retrievers {', '.join(r.retrievers)} (top {r.n_candidates} each; "
                f"reused from this run: {', '.join(r.reused) or 'none'}) propose "
                f"{fmt(r.mean_candidates, 1)} videos per test user; the recall ceiling, the "
                f"share of a test user's positives among them, is {ceiling} (each retriever "
                "alone: "
                + ", ".join(f"{k} {fmt(v, 3)}" for k, v in r.recall_by_retriever.items())
                + "). No ranker can do better than its candidates."
            )
        )
        if r.lifts:
            rows = [
                [f"{name} - {other}", fmt(c.diff), fmt_ci(c.ci), fmt(c.p_holm)]
                for other, c in r.lifts.items()
            ]
            blocks += [
                Para(
                    f"Lift over each retriever on the test set ({PAIRED_METRIC}, paired "
                    f"bootstrap, Holm-adjusted over {len(rows)} comparisons):",
                    note=True,
                ),
                Table(["difference", "diff", "95% CI", "p (Holm)"], rows),
            ]
        held = ", ".join(f"{k} {fmt(v)}" for k, v in r.held_out_ndcg.items())
        blocks.append(
            Bullets(
                [
                    f"ranker trained on {r.train_rows} candidate rows of {r.target_users} "
                    f"users, the training log cut {r.cut}",
                    f"held-out users' NDCG@10 (training log only): {held}",
                    f"search: {r.decision} ({r.why})",
                ]
            )
        )
        if r.features:
            rows = [[g.name, g.group, f"{100 * g.gain_share:.1f}%"] for g in r.features]
            blocks.append(Table(["feature", "group", "share of the gain"], rows))
    return blocks


def _f(value: float | None) -> float | None:
    import math

    return float(value) if value is not None and math.isfinite(value) else None
