"""The main job's benchmark report: ``report.md`` and a self-contained ``report.html``.

:func:`render_report` turns a run's :class:`~kuairec.result.RunResult` into documents:
the protocol, the leaderboard, rating errors, the plots, the paired comparisons and the
training curves, then the blocks of the run's sections (each section renders its own
typed value: :mod:`kuairec.pipeline.sections`), the notes and the skipped models. The
figures are written to ``plots/*.png`` for the Markdown and embedded as base64 in the
HTML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kuairec import atomic
from kuairec.display.html import write_page
from kuairec.errors import ConfigError
from kuairec.report import markdown as md
from kuairec.report import plots
from kuairec.report.curves import curves_section
from kuairec.report.markdown import (
    Block,
    Bullets,
    Figure,
    Heading,
    Link,
    Para,
    Table,
    fmt,
    fmt_ci,
    fmt_column,
    fmt_with_ci,
)
from kuairec.report.view import RunView
from kuairec.result import RunResult

PROTOCOL_FIELDS = [
    ("name", "protocol"),
    ("train", "train matrix"),
    ("test", "test matrix"),
    ("default_label", "positive label"),
    ("labels", "labels compared"),
    ("n_candidates", "candidate items per user"),
    ("n_test_users", "test users"),
    ("ks", "K values"),
    ("n_bootstrap", "bootstrap resamples (B)"),
    ("seed", "seed"),
    ("validation_split", "validation split"),
    ("data", "data folder"),
    ("scale", "scale of the generated data"),
    ("fraction", "share of videos held out"),
    ("n_cold_videos", "cold videos"),
]

HOW_TO_READ = (
    "How to read: every model ranks the same candidate items for the same test users; "
    "a test item counts as relevant when it passes the positive label above. "
    "Brackets are bootstrap confidence intervals over test users: two models whose "
    "intervals overlap are not clearly separated by this test set (the paired "
    "differences below are the sharper test). Higher is better for every ranking "
    "metric; mean popularity@K describes what is recommended, it is not a score."
)


def render_report(
    result: RunResult,
    out_dir: Path,
    *,
    sections: Sequence[Block] = (),
    title: str = "kuairec benchmark report",
    extra: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``out_dir/report.md``, ``out_dir/report.html`` and ``out_dir/plots/*.png``.

    ``sections`` are the rendered blocks of the run's sections (placed after the core
    parts). Returns the paths of the Markdown and the HTML report.
    """
    if extra is not None and not isinstance(extra, Mapping):
        raise ConfigError(f"extra: expected a dict or None, found {type(extra).__name__}")
    blocks = document(RunView(result), list(sections), title, extra or {})
    out_dir = Path(out_dir)
    for block in blocks:
        if isinstance(block, Figure):
            atomic.write_bytes(out_dir / "plots" / block.file_name, block.png)
    md_path = atomic.write_text(out_dir / "report.md", md.to_markdown(blocks))
    html_path = write_page(out_dir / "report.html", title, md.to_html(blocks))
    return md_path, html_path


def document(
    run: RunView, sections: list[Block], title: str, extra: Mapping[str, Any]
) -> list[Block]:
    """Every block of the report, in order."""
    blocks: list[Block] = [Heading(title, 1)]
    blocks += _protocol_section(run)
    blocks += _leaderboard_section(run)
    blocks += _rating_section(run)
    blocks += plots.accuracy_figures(run)
    blocks += _paired_section(run)
    blocks += curves_section(run)
    blocks += sections
    blocks += _notes_section(run)
    blocks += _skipped_section(run)
    blocks += _extra_section(extra)
    return blocks


# ---------------------------------------------------------------- helpers


def plain(value: Any) -> str:
    """A setting's value as text."""
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[list[str]]:
    rows: list[list[str]] = []
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append([f"{prefix}{key}", plain(value)])
    return rows


# ---------------------------------------------------------------- sections


def _protocol_section(run: RunView) -> list[Block]:
    p = run.protocol
    rows = []
    for key, label in PROTOCOL_FIELDS:
        value = getattr(p, key)
        if value is None or (key == "scale" and not p.synthetic):
            continue
        rows.append([label, plain(value)])
    blocks: list[Block] = [Heading("Protocol"), Table(["setting", "value"], rows)]
    text = _users_sentence(run)
    if text:
        blocks.append(Para(text))
    v = run.result.validation
    if v is not None:
        blocks.append(Para(
            f"Validation ({v.split} split of the training log, {v.reason}): {v.n_users} "
            f"users, {v.n_pairs} held-out pairs, scored under {v.label}. The selection half "
            f"({v.n_select} users) chooses: tuning's best trial, early stopping. The "
            f"confirmation half ({v.n_confirm} users) chose nothing: it confirms tuned "
            "against default parameters and picks the baseline of the paired comparisons. "
            f"The test set chose nothing. Halves: {v.halves}.", note=True,
        ))  # fmt: skip
    blocks.append(Para(HOW_TO_READ, note=True))
    return blocks


def _users_sentence(run: RunView) -> str | None:
    """How many test users there are and how many the metrics average over, when every
    model agrees (``n_users`` = ``n_users_evaluated`` + ``n_users_no_positive``)."""

    def same(key: str) -> int | None:
        values = {run.value(n, key) for n in run.order} - {None}
        return int(values.pop()) if len(values) == 1 else None

    with_pos, without = same("n_users_evaluated"), same("n_users_no_positive")
    total = same("n_users")
    if total is None and with_pos is not None and without is not None:
        total = with_pos + without
    if with_pos is None:
        return None
    under = f"under the default label {run.protocol.default_label}"
    if total is None:
        return f"Metrics average over the {with_pos} test users with a relevant item {under}."
    return (
        f"Test users: {total}, of whom {with_pos} have at least one relevant item {under} "
        f"(metrics average over those {with_pos})."
    )


def _leaderboard_section(run: RunView) -> list[Block]:
    k = run.k
    header = [
        "model", f"ndcg@{k} [CI]", f"recall@{k} [CI]", f"precision@{k}", f"map@{k}",
        f"hit@{k}", "mrr", f"coverage@{k}", f"mean popularity@{k}", "fit s", "eval s",
        "peak RSS MB",
    ]  # fmt: skip
    rows = []
    pops = fmt_column([run.value(n, f"mean_popularity@{k}") for n in run.order])
    for n, pop in zip(run.order, pops, strict=True):
        m = run.models[n]
        v, ci = m.metrics, m.ci
        rows.append([
            run.display(n),
            fmt_with_ci(v.get(f"ndcg@{k}"), ci.get(f"ndcg@{k}")),
            fmt_with_ci(v.get(f"recall@{k}"), ci.get(f"recall@{k}")),
            fmt(v.get(f"precision@{k}")), fmt(v.get(f"map@{k}")), fmt(v.get(f"hit@{k}")),
            fmt(v.get("mrr")), fmt(v.get(f"coverage@{k}")),
            pop,
            fmt(m.cost.fit_seconds, 2), fmt(m.cost.eval_seconds, 2), fmt(m.cost.peak_rss_mb, 0),
        ])  # fmt: skip
    blocks: list[Block] = [Heading(f"Leaderboard (sorted by ndcg@{k})")]
    if not rows:
        return blocks + [Para("No model was evaluated.")]
    blocks.append(Table(header, rows))
    if any(run.models[n].reference for n in run.order):
        blocks.append(Para(
            "Reference rows are not learned models: the oracle ranks with the true labels of "
            "synthetic data (an upper bound), random ranks candidates at random (the floor "
            "any model should clear).", note=True,
        ))  # fmt: skip
    marks = [
        f"{n}: {'; '.join([*run.models[n].marks(), *filter(None, [run.models[n].remark])])}"
        for n in run.order
        if run.models[n].marks() or run.models[n].remark
    ]
    if marks:
        blocks += [Para("Rows marked above:"), Bullets(marks)]
    return blocks


def _rating_section(run: RunView) -> list[Block]:
    keys = ("rmse", "mae", "r2")
    names = [n for n in run.order if any(run.value(n, key) is not None for key in keys)]
    if not names:
        return []
    names.sort(key=lambda n: (run.value(n, "rmse") is None, run.value(n, "rmse") or 0.0))
    rows = [[n] + [fmt(run.models[n].metrics.get(key)) for key in keys] for n in names]
    return [
        Heading("Rating error (models that predict watch ratio)"),
        Table(["model", "rmse", "mae", "r2"], rows),
        Para("Lower rmse and mae are better; r2 above 0 beats predicting the mean.", note=True),
    ]


def _paired_section(run: RunView) -> list[Block]:
    paired = run.result.paired
    if paired is None or not paired.comparisons:
        return []
    rows = []
    for other, c in paired.comparisons.items():
        if c.ci[0] is None or c.ci[1] is None:
            verdict = "n/a"
        elif c.ci[0] > 0:
            verdict = f"{paired.baseline} better"
        elif c.ci[1] < 0:
            verdict = f"{other} better"
        else:
            verdict = "not resolved"
        rows.append([
            f"{paired.baseline} vs {other}", fmt(c.diff), fmt_ci(c.ci), fmt(c.p_value),
            fmt(c.p_holm), verdict,
        ])  # fmt: skip
    return [
        Heading("Paired differences"),
        Para(
            f"Baseline: {paired.baseline}, chosen without the test set ({paired.reason}). "
            f"diff = baseline minus the other model in {paired.metric}, on the same bootstrap "
            f"resamples of test users; p is the two-sided bootstrap p-value of no difference, "
            f"Holm-adjusted over the {paired.n_comparisons} comparisons made.",
            note=True,
        ),
        Table(["pair", "diff", "95% CI", "p", "p (Holm)", "verdict"], rows),
    ]


def _notes_section(run: RunView) -> list[Block]:
    notes = run.result.notes
    return [Heading("Notes"), Bullets(list(notes))] if notes else []


def _skipped_section(run: RunView) -> list[Block]:
    skipped = run.result.skipped
    if not skipped:
        return []
    return [Heading("Skipped models"), Bullets([f"{n}: {why}" for n, why in skipped.items()])]


def _extra_section(extra: Mapping[str, Any]) -> list[Block]:
    blocks: list[Block] = []
    manifest = extra.get("manifest")
    rows = _flatten(manifest) if isinstance(manifest, Mapping) else []
    rows += [[str(k), plain(v)] for k, v in extra.items() if k not in ("manifest", "eda_link")]
    if rows:
        blocks += [Heading("Run manifest"), Table(["item", "value"], rows)]
    link = extra.get("eda_link")
    if link:
        blocks += [Heading("See also"), Link("Exploratory data analysis report", str(link))]
    return blocks
