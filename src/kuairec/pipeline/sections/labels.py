"""Label sensitivity: each model's primary metric under every definition of a relevant
item, the models' ranks under each, and the pairs whose order flips between labels."""

from __future__ import annotations

from dataclasses import dataclass

from kuairec.pipeline.job import Job
from kuairec.report.markdown import MISSING, Block, Bullets, Heading, Para, Table
from kuairec.report.view import RunView

NAME = "label_sensitivity"
TITLE = "Label sensitivity"
METRIC = "ndcg@10"


@dataclass
class Flip:
    """A pair ordered one way under the default label and the other way under ``labels``."""

    models: list[str]
    labels: list[str]
    order: dict[str, str]  # label -> "a > b" | "a < b" | "a = b"


@dataclass
class Value:
    metric: str
    default_label: str
    labels: list[str]
    values: dict[str, dict[str, float | None]]  # model -> label -> metric
    flips: list[Flip]


def compute(job: Job) -> Value | None:
    from kuairec.evaluation.evaluate import flips

    results = {n: f.evaluation for n, f in job.fitted.items()}
    if not results:
        return None
    labels = list(next(iter(results.values())).by_label)
    values = {
        n: {lab: _finite(r.by_label.get(lab, {}).get(METRIC)) for lab in labels}
        for n, r in results.items()
    }
    found = [Flip(f["models"], f["labels"], f["order"]) for f in flips(results, METRIC)]
    return Value(METRIC, job.cfg.label, labels, values, found)


def render(value: Value, view: RunView) -> list[Block]:
    names = [n for n in view.order if n in value.values]
    blocks: list[Block] = [
        Heading(TITLE),
        Para(
            f"{value.metric} of each model under each definition of a relevant item (rank "
            "among the models in parentheses, 1 = best)."
        ),
    ]
    header = ["model"] + [
        f"{lab} (default)" if lab == value.default_label else lab for lab in value.labels
    ]
    cells = {n: [n] for n in names}
    for lab in value.labels:
        scores = {n: v for n in names if (v := value.values[n].get(lab)) is not None}
        ranks = {n: 1 + sum(o > v for o in scores.values()) for n, v in scores.items()}
        for n in names:
            cells[n].append(f"{scores[n]:.4f} ({ranks[n]})" if n in scores else MISSING)
    blocks.append(Table(header, [cells[n] for n in names]))
    if not value.flips:
        return blocks + [Para("No pair of models changes order between labels.")]
    items = [
        f"{' vs '.join(f.models)}: " + "; ".join(f"{lab}: {o}" for lab, o in f.order.items())
        for f in value.flips
    ]
    return blocks + [Para("Pairs of models whose order changes between labels:"), Bullets(items)]


def _finite(value: float | None) -> float | None:
    import math

    return float(value) if value is not None and math.isfinite(value) else None
