"""Segments: each model's metrics within groups of test users or items (user activity
terciles, video duration buckets, cold and warm items), under the default label."""

from __future__ import annotations

from dataclasses import dataclass

from kuairec.pipeline.job import Job
from kuairec.report.markdown import Block, Figure, Heading, Para, Table, fmt
from kuairec.report.plots import grouped_bars
from kuairec.report.view import RunView

NAME = "segments"
TITLE = "Segments"
FAMILY_TITLES = {
    "user_activity": "user activity (terciles of training interactions)",
    "duration_bucket": "video duration bucket",
    "item_coldness": "item coldness",
}

Group = dict[str, float | int | None]  # metric -> value (n_users included)


@dataclass
class Value:
    """family -> model -> group -> metric -> value."""

    families: dict[str, dict[str, dict[str, Group]]]


def compute(job: Job) -> Value | None:
    families: dict[str, dict[str, dict[str, Group]]] = {}
    for name, f in job.fitted.items():
        for family, groups in f.result_segments().items():
            families.setdefault(family, {})[name] = groups
    return Value(families) if families else None


def render(value: Value, view: RunView) -> list[Block]:
    """Tables and grouped bars of the primary metric per segment family."""
    blocks: list[Block] = [
        Heading(TITLE),
        Para(f"{view.key} within groups of test users or items."),
    ]
    for family, per_model in value.families.items():
        ordered = {n: per_model[n] for n in view.order if n in per_model}
        blocks += _family(view, family, ordered)
    return blocks


def _family(view: RunView, family: str, per_model: dict[str, dict[str, Group]]) -> list[Block]:
    groups = list(dict.fromkeys(g for seg in per_model.values() for g in seg))
    values = {
        n: [_num(seg.get(g, {}).get(view.key)) for g in groups] for n, seg in per_model.items()
    }
    header = ["model"]
    for g in groups:
        sizes = [_num(seg[g].get("n_users")) for seg in per_model.values() if g in seg]
        size = next((s for s in sizes if s is not None), None)
        header.append(g if size is None else f"{g} (n={int(size)})")
    rows = [[n] + [fmt(v) for v in vs] for n, vs in values.items()]
    title = FAMILY_TITLES.get(family, family.replace("_", " "))
    blocks: list[Block] = [Heading(f"By {title}", 3), Table(header, rows)]
    if not any(v is not None for vs in values.values() for v in vs):
        return blocks
    png = grouped_bars(groups, values, view.key, title, view.colour)
    caption = f"{view.key} by {title}"
    best = next(
        (n for n in view.contenders(list(values)) if any(v is not None for v in values[n])), None
    )
    known = [(g, v) for g, v in zip(groups, values.get(best, []), strict=True) if v is not None]
    if best is not None and len(known) >= 2:
        lo, hi = min(known, key=lambda p: p[1]), max(known, key=lambda p: p[1])
        caption += (
            f". For {best}: lowest in {lo[0]} ({lo[1]:.4f}), highest in {hi[0]} ({hi[1]:.4f})"
        )
    stem = "segment_" + "".join(c if c.isalnum() else "_" for c in family.lower())
    return blocks + [Figure(stem, png, caption + ".")]


def _num(value: float | int | None) -> float | None:
    return None if value is None else float(value)
