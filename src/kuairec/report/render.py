"""The main job's benchmark report: ``report.md`` and a self-contained ``report.html``.

:func:`render_report` turns the run's metrics dict (what ``metrics.json`` holds) into
documents. Every optional part of that dict may be missing: its section is then left out
or says "not available". The figures are written to ``plots/*.png`` for the Markdown and
embedded as base64 in the HTML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kuairec import atomic
from kuairec.display.html import write_page
from kuairec.errors import ConfigError, DataError
from kuairec.report import markdown as md
from kuairec.report import plots
from kuairec.report.cold import cold_items_section
from kuairec.report.curves import curves_section
from kuairec.report.markdown import (
    Block,
    Bullets,
    Figure,
    Heading,
    Link,
    Para,
    Table,
    ci_pair,
    fmt,
    fmt_ci,
    fmt_column,
    fmt_with_ci,
    num,
)
from kuairec.report.tuning import notes_section, tuning_section
from kuairec.report.validity import validity_section

# Reference models: shown in the leaderboard but left out of the captions' "best model".
REFERENCE = {"oracle": "upper bound, synthetic data", "random": "random ranking baseline"}

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
    ("data", "data folder"),
    ("scale", "scale of the generated data"),
]

HOW_TO_READ = (
    "How to read: every model ranks the same candidate items for the same test users; "
    "a test item counts as relevant when it passes the positive label above. "
    "Brackets are bootstrap confidence intervals over test users: two models whose "
    "intervals overlap are not clearly separated by this test set (the paired "
    "differences below are the sharper test). Higher is better for every ranking "
    "metric; mean popularity@K describes what is recommended, it is not a score."
)


class RunView:
    """The parts of the metrics dict the report reads, checked and given defaults."""

    def __init__(self, metrics: Any) -> None:
        if not isinstance(metrics, Mapping):
            raise DataError(f"metrics: expected a dict, found {type(metrics).__name__}")
        self.protocol = _mapping(metrics.get("protocol", {}), "metrics['protocol']")
        models = _mapping(metrics.get("models", {}), "metrics['models']")
        self.models = {str(n): _mapping(m, f"metrics['models'][{n!r}]") for n, m in models.items()}
        self.raw = metrics
        self.ks = _ks(self.protocol, self.models)
        self.k = 10 if not self.ks or 10 in self.ks else min(self.ks, key=lambda k: abs(k - 10))
        self.key = f"ndcg@{self.k}"
        self.order = sorted(self.models, key=self._sort_key)
        self.colour = plots.colours(self.order) if self.order else {}

    def _sort_key(self, name: str) -> tuple[bool, float, str]:
        value = self.value(name, self.key)
        return (value is None, -(value or 0.0), name)

    def section(self, name: str, part: str) -> Mapping[str, Any]:
        value = self.models[name].get(part, {})
        return _mapping(value, f"metrics['models'][{name!r}][{part!r}]")

    def value(self, name: str, key: str) -> float | None:
        return num(self.section(name, "metrics").get(key))

    def ci(self, name: str, key: str) -> tuple[float, float] | None:
        return ci_pair(self.section(name, "ci").get(key))

    def segments(self, name: str) -> dict[str, dict[str, Mapping[str, Any]]]:
        """``{family: {group: {metric: value}}}`` of one model (empty when absent)."""
        out = {}
        for family, groups in self.section(name, "segments").items():
            where = f"metrics['models'][{name!r}]['segments'][{family!r}]"
            groups = _mapping(groups, where)
            out[str(family)] = {str(g): _mapping(v, f"{where}[{g!r}]") for g, v in groups.items()}
        return out

    def contenders(self, names: list[str]) -> list[str]:
        real = [n for n in names if n.lower() not in REFERENCE]
        return real or list(names)


def render_report(
    metrics: dict,
    out_dir: Path,
    *,
    title: str = "kuairec benchmark report",
    extra: dict | None = None,
) -> tuple[Path, Path]:
    """Write ``out_dir/report.md``, ``out_dir/report.html`` and ``out_dir/plots/*.png``.

    Returns the paths of the Markdown and the HTML report. Raises DataError when
    ``metrics`` (or one of its sections) is not a dict, ConfigError when ``extra`` is not.
    """
    run = RunView(metrics)
    if extra is not None and not isinstance(extra, Mapping):
        raise ConfigError(f"extra: expected a dict or None, found {type(extra).__name__}")
    blocks: list[Block] = [Heading(title, 1)]
    blocks += _protocol_section(run)
    blocks += _leaderboard_section(run)
    blocks += _rating_section(run)
    blocks += plots.accuracy_figures(run)
    blocks += plots.segment_section(run)
    blocks += _label_section(run)
    blocks += _paired_section(run)
    blocks += cold_items_section(run.raw)
    blocks += validity_section(run.raw)
    blocks += curves_section(run.raw.get("models", {}))
    blocks += tuning_section(run.raw)
    blocks += notes_section(run.raw)
    blocks += _skipped_section(run)
    blocks += _extra_section(extra or {})
    out_dir = Path(out_dir)
    for block in blocks:
        if isinstance(block, Figure):
            atomic.write_bytes(out_dir / "plots" / block.file_name, block.png)
    md_path = atomic.write_text(out_dir / "report.md", md.to_markdown(blocks))
    html_path = write_page(out_dir / "report.html", title, md.to_html(blocks))
    return md_path, html_path


# ---------------------------------------------------------------- helpers


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DataError(f"{where}: expected a dict, found {type(value).__name__}")
    return value


def _ks(protocol: Mapping[str, Any], models: Mapping[str, Any]) -> list[int]:
    """The K list of the protocol, else the K values found in the models' ndcg keys."""
    ks = protocol.get("ks")
    if isinstance(ks, list) and ks and all(isinstance(k, int) and k > 0 for k in ks):
        return sorted(set(ks))
    found: set[int] = set()
    for model in models.values():
        for key in (model.get("metrics") or {}) if isinstance(model, Mapping) else {}:
            metric, _, k = str(key).partition("@")
            if metric == "ndcg" and k.isdigit():
                found.add(int(k))
    return sorted(found)


def _display(name: str) -> str:
    mark = REFERENCE.get(name.lower())
    return f"{name} ({mark})" if mark else name


def _plain(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[list[str]]:
    rows: list[list[str]] = []
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append([f"{prefix}{key}", _plain(value)])
    return rows


def _ranks(values: dict[str, float]) -> dict[str, int]:
    """Competition ranks, 1 = highest; ties share the better rank (1, 2, 2, 4)."""
    return {n: 1 + sum(other > v for other in values.values()) for n, v in values.items()}


# ---------------------------------------------------------------- sections


def _protocol_section(run: RunView) -> list[Block]:
    p = run.protocol
    rows = []
    for key, label in PROTOCOL_FIELDS:
        if key in p and not (key == "scale" and not _generated(p)):
            rows.append([label, _plain(p[key])])
    known = {key for key, _ in PROTOCOL_FIELDS}
    rows += [[str(key), _plain(v)] for key, v in p.items() if key not in known]
    blocks: list[Block] = [Heading("Protocol")]
    blocks.append(Table(["setting", "value"], rows) if rows else Para("Not available."))
    text = _users_sentence(run)
    if text:
        blocks.append(Para(text))
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
    label = run.protocol.get("default_label")
    under = f"under the default label {label}" if label else "under the default label"
    if total is None:
        return f"Metrics average over the {with_pos} test users with a relevant item {under}."
    return (
        f"Test users: {total}, of whom {with_pos} have at least one relevant item {under} "
        f"(metrics average over those {with_pos})."
    )


def _generated(protocol: Mapping[str, Any]) -> bool:
    """Is the data the generated default? The main job sets ``scale`` only then (None for
    data given with ``--data`` or ``$KUAIREC_DATA``, whose scale is unknown)."""
    return protocol.get("scale") is not None and protocol.get("synthetic") is not False


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
        v = run.section(n, "metrics")
        rec = run.models[n]
        rows.append([
            _display(n),
            fmt_with_ci(v.get(f"ndcg@{k}"), run.section(n, "ci").get(f"ndcg@{k}")),
            fmt_with_ci(v.get(f"recall@{k}"), run.section(n, "ci").get(f"recall@{k}")),
            fmt(v.get(f"precision@{k}")), fmt(v.get(f"map@{k}")), fmt(v.get(f"hit@{k}")),
            fmt(v.get("mrr")), fmt(v.get(f"coverage@{k}")),
            pop,
            fmt(rec.get("fit_seconds"), 2), fmt(rec.get("eval_seconds"), 2),
            fmt(rec.get("peak_rss_mb"), 0),
        ])  # fmt: skip
    blocks: list[Block] = [Heading(f"Leaderboard (sorted by ndcg@{k})")]
    if not rows:
        return blocks + [Para("No model was evaluated.")]
    blocks.append(Table(header, rows))
    marked = [n for n in run.order if n.lower() in REFERENCE]
    if marked:
        blocks.append(Para(
            "Reference rows: oracle ranks with the true labels of synthetic data (an upper "
            "bound, not a model); random ranks candidates at random (the floor any model "
            "should clear).", note=True,
        ))  # fmt: skip
    return blocks


def _rating_section(run: RunView) -> list[Block]:
    keys = ("rmse", "mae", "r2")
    names = [n for n in run.order if any(run.value(n, key) is not None for key in keys)]
    if not names:
        return []
    names.sort(key=lambda n: (run.value(n, "rmse") is None, run.value(n, "rmse") or 0.0))
    rows = [[n] + [fmt(run.section(n, "metrics").get(key)) for key in keys] for n in names]
    return [
        Heading("Rating error (models that predict watch ratio)"),
        Table(["model", "rmse", "mae", "r2"], rows),
        Para("Lower rmse and mae are better; r2 above 0 beats predicting the mean.", note=True),
    ]


def _label_section(run: RunView) -> list[Block]:
    blocks: list[Block] = [Heading("Label sensitivity")]
    by_label = {n: run.section(n, "by_label") for n in run.order}
    labels = run.protocol.get("labels")
    if not isinstance(labels, list) or not labels:
        labels = list(dict.fromkeys(lab for bl in by_label.values() for lab in bl))
    names = [n for n in run.order if by_label[n]]
    if names and labels:
        blocks.append(Para(
            f"{run.key} of each model under each definition of a relevant item "
            "(rank among the models in parentheses, 1 = best).",
        ))  # fmt: skip
        default = run.protocol.get("default_label")
        header = ["model"] + [f"{lab} (default)" if lab == default else str(lab) for lab in labels]
        cells: dict[str, list[str]] = {n: [n] for n in names}
        for lab in labels:
            values = {}
            for n in names:
                metrics = _mapping(by_label[n].get(lab), f"by_label[{lab!r}] of {n!r}")
                value = num(metrics.get(run.key))
                if value is not None:
                    values[n] = value
            ranks = _ranks(values)
            for n in names:
                cells[n].append(f"{values[n]:.4f} ({ranks[n]})" if n in values else md.MISSING)
        blocks.append(Table(header, [cells[n] for n in names]))
    else:
        blocks.append(Para("Per-label metrics: not available."))
    return blocks + _flips(run)


def _flips(run: RunView) -> list[Block]:
    flips = run.raw.get("label_flips")
    if flips is None:
        return [Para("Order flips between labels: not available.")]
    if not isinstance(flips, list):
        raise DataError(f"metrics['label_flips']: expected a list, found {type(flips).__name__}")
    if not flips:
        return [Para("No pair of models changes order between labels.")]
    items = []
    for flip in flips:
        flip = _mapping(flip, "an entry of metrics['label_flips']")
        pair = " vs ".join(str(m) for m in flip.get("models", []))
        order = _mapping(flip.get("order"), "the 'order' of a label flip")
        detail = "; ".join(f"{lab}: {o}" for lab, o in order.items())
        items.append(f"{pair} ({flip.get('metric', run.key)}): {detail}")
    return [Para("Pairs of models whose order changes between labels:"), Bullets(items)]


def _paired_section(run: RunView) -> list[Block]:
    paired = _mapping(run.raw.get("paired"), "metrics['paired']")
    if not paired:
        return []
    rows = []
    for pair, d in paired.items():
        d = _mapping(d, f"metrics['paired'][{pair!r}]")
        ci = ci_pair(d.get("ci"))
        first, _, second = str(pair).partition(" vs ")
        if ci is None or not second:
            verdict = "n/a"
        elif ci[0] > 0:
            verdict = f"{first} better"
        elif ci[1] < 0:
            verdict = f"{second} better"
        else:
            verdict = "not resolved"
        rows.append([
            str(pair), str(d.get("metric", run.key)), fmt(d.get("diff")), fmt_ci(ci),
            fmt(d.get("p_le_0")), verdict,
        ])  # fmt: skip
    return [
        Heading("Paired differences"),
        Para(
            "diff = first model minus second, on the same bootstrap resamples of users; "
            "P(diff <= 0) is the share of resamples where the first model is not ahead.",
            note=True,
        ),
        Table(["pair", "metric", "diff", "CI", "P(diff <= 0)", "verdict"], rows),
    ]


def _skipped_section(run: RunView) -> list[Block]:
    if "skipped" not in run.raw:
        return []
    skipped = _mapping(run.raw.get("skipped"), "metrics['skipped']")
    items = [f"{name}: {why}" for name, why in skipped.items()]
    return [Heading("Skipped models"), Bullets(items) if items else Para("None.")]


def _extra_section(extra: Mapping[str, Any]) -> list[Block]:
    blocks: list[Block] = []
    manifest = extra.get("manifest")
    rows = _flatten(manifest) if isinstance(manifest, Mapping) else []
    rows += [[str(k), _plain(v)] for k, v in extra.items() if k not in ("manifest", "eda_link")]
    if rows:
        blocks += [Heading("Run manifest"), Table(["item", "value"], rows)]
    link = extra.get("eda_link")
    if link:
        blocks += [Heading("See also"), Link("Exploratory data analysis report", str(link))]
    return blocks
