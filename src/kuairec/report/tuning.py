"""The report's tuning section and the run's notes, from metrics.json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kuairec.report.markdown import Block, Bullets, Heading, Para, Table, fmt


def tuning_section(raw: Mapping[str, Any]) -> list[Block]:
    """One row per tuned model: split, validation NDCG@10 of the defaults and of the best
    trial, the decision and why (the defaults stay unless the gain is resolved)."""
    tuning = raw.get("tuning")
    if not isinstance(tuning, Mapping) or not tuning:
        return []
    rows = []
    for name, info in tuning.items():
        if not isinstance(info, Mapping):
            continue
        trials = info.get("trials")
        rows.append(
            [
                str(name),
                str(info.get("split", "-")),
                str(len(trials)) if isinstance(trials, list) else "-",
                fmt(info.get("default_value")),
                fmt(info.get("best_value")),
                str(info.get("decision", "-")),
                str(info.get("why", "")),
            ]
        )
    if not rows:
        return []
    return [
        Heading("Tuning"),
        Para(
            "Validation NDCG@10 on a split of the training log (never the test). The best "
            "trial replaces the defaults only when the paired-bootstrap 95% interval of "
            "tuned - defaults lies above 0.",
            note=True,
        ),
        Table(["model", "split", "trials", "defaults", "best trial", "used", "why"], rows),
    ]


def notes_section(raw: Mapping[str, Any]) -> list[Block]:
    notes = raw.get("notes")
    if not isinstance(notes, list) or not notes:
        return []
    return [Heading("Notes"), Bullets([str(n) for n in notes])]
