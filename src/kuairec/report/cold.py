"""The report's cold-video section (metrics.json ``cold_items``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kuairec.report.markdown import Block, Bullets, Heading, Para, Table, fmt, fmt_ci


def cold_items_section(raw: Mapping[str, Any]) -> list[Block]:
    doc = raw.get("cold_items")
    if not isinstance(doc, Mapping):
        return []
    head = Heading("Cold videos")
    if "error" in doc:
        return [head, Para(f"Not computed: {doc['error']}")]
    proto = doc.get("protocol") or {}
    models = doc.get("models") or {}
    rows = []
    for name, e in sorted(models.items(), key=lambda kv: -(kv[1]["metrics"].get("ndcg@10") or 0)):
        m, ci = e.get("metrics", {}), e.get("ci", {})
        rows.append([
            name, fmt(m.get("ndcg@10")), fmt_ci(ci.get("ndcg@10")), fmt(m.get("recall@10")),
            fmt(e.get("fit_seconds"), 1),
        ])  # fmt: skip
    blocks: list[Block] = [
        head,
        Para(
            f"{proto.get('n_cold_videos', '?')} of the small matrix's videos "
            f"({100 * float(proto.get('fraction', 0.1)):.0f}%, seed {proto.get('seed', '?')}) "
            "held out of training entirely; each test user ranks those videos only. Models "
            "score them from content (tags, caption categories, duration; a new video has "
            "no daily statistics).",
            note=True,
        ),
    ]
    if rows:
        blocks.append(Table(["model", "ndcg@10", "95% CI", "recall@10", "fit s"], rows))
    cannot = doc.get("cannot_score") or {}
    if cannot:
        blocks += [
            Para("Cannot score cold videos:"),
            Bullets([f"{n}: {w}" for n, w in cannot.items()]),
        ]
    skipped = doc.get("skipped") or {}
    if skipped:
        blocks += [Para("Skipped:"), Bullets([f"{n}: {w}" for n, w in skipped.items()])]
    return blocks
