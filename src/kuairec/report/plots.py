"""Figures of the benchmark report, each returned as PNG bytes.

The functions take plain, already-extracted values (names, numbers, ``(lo, hi)`` pairs or
None) so they know nothing of the metrics dict's layout. matplotlib is imported inside
each function: importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kuairec.display.figure import pyplot
from kuairec.display.html import figure_png
from kuairec.report.markdown import Block, Figure, Heading, Para
from kuairec.report.view import RunView

Interval = tuple[float, float] | None

# Smallest fit time drawn on the log axis: a model that "fits" in 0 s is drawn here.
MIN_SECONDS = 1e-3


def text_label(name: str) -> str:
    """Model names drawn as plain text (a ``$`` would otherwise start mathtext)."""
    return name.replace("$", r"\$")


def _yerr(values: Sequence[float], cis: Sequence[Interval]) -> list[list[float]]:
    """Asymmetric error bars (0 where no interval is known)."""
    low = [max(v - ci[0], 0.0) if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    high = [max(ci[1] - v, 0.0) if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    return [low, high]


def metric_vs_k(
    curves: dict[str, dict[str, list[tuple[int, float, Interval]]]],
    colour: dict[str, Any],
) -> bytes:
    """One panel per metric (``curves[metric][model] = [(k, value, ci), ...]``)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 4.0), squeeze=False)
    for ax, (metric, per_model) in zip(axes[0], curves.items(), strict=True):
        for name, points in per_model.items():
            ks = [p[0] for p in points]
            values = [p[1] for p in points]
            ax.errorbar(
                ks, values, yerr=_yerr(values, [p[2] for p in points]), marker="o",
                ms=4, capsize=3, lw=1.4, color=colour.get(name), label=text_label(name),
            )  # fmt: skip
        all_ks = sorted({p[0] for pts in per_model.values() for p in pts})
        ax.set_xscale("log")
        ax.set_xticks(all_ks, [str(k) for k in all_ks])
        ax.minorticks_off()
        ax.set_xlabel("K (length of the recommendation list)")
        ax.set_ylabel(f"{metric}@K")
        ax.set_title(f"{metric}@K")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return figure_png(fig)


def metric_bars(
    names: Sequence[str], values: Sequence[float], cis: Sequence[Interval], metric: str,
    colour: dict[str, Any],
) -> bytes:  # fmt: skip
    """Horizontal bars, best model on top, with CI whiskers."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(names) + 1.2))
    pos = list(range(len(names)))[::-1]
    ax.barh(
        pos, values, xerr=_yerr(values, cis), capsize=3,
        color=[colour.get(n) for n in names], alpha=0.85,
    )  # fmt: skip
    ax.set_yticks(pos, [text_label(n) for n in names])
    ax.set_xlabel(metric)
    ax.grid(axis="x", alpha=0.3)
    return figure_png(fig)


def scatter_labelled(
    points: Sequence[tuple[str, float, float]], xlabel: str, ylabel: str,
    colour: dict[str, Any], *, log_x: bool = False,
) -> bytes:  # fmt: skip
    """One labelled point per model (``(name, x, y)``)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.8))
    for name, x, y in points:
        x = max(x, MIN_SECONDS) if log_x else x
        ax.scatter([x], [y], s=40, color=colour.get(name), zorder=3)
        ax.annotate(text_label(name), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.margins(0.15)
    return figure_png(fig)


def grouped_bars(
    groups: Sequence[str], per_model: dict[str, list[float | None]], metric: str, xlabel: str,
    colour: dict[str, Any],
) -> bytes:  # fmt: skip
    """Bars of ``metric`` per group (segment), one bar per model within each group."""
    plt = pyplot()
    n = max(len(per_model), 1)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(groups) * max(n, 3) / 3), 4.0))
    for j, (name, values) in enumerate(per_model.items()):
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(groups))]
        ys = [v if v is not None else 0.0 for v in values]
        ax.bar(xs, ys, width=width, color=colour.get(name), label=text_label(name))
    ax.set_xticks(range(len(groups)), [text_label(g) for g in groups])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return figure_png(fig)


# ---------------------------------------------------------------- report sections


def accuracy_figures(run: RunView) -> list[Block]:
    """The "Plots" section: ndcg bars, metric vs K, accuracy vs popularity, cost."""
    blocks: list[Block] = [Heading("Plots")]
    for build in (_bar_figure, _k_figure, _popularity_figure, _cost_figure):
        figure = build(run)
        if figure is not None:
            blocks.append(figure)
    if len(blocks) == 1:
        blocks.append(Para("Not available (no model has ranking metrics)."))
    return blocks


def _bar_figure(run: RunView) -> Figure | None:
    key = run.key
    names = [n for n in run.order if run.value(n, key) is not None]
    if not names:
        return None
    values = [run.value(n, key) or 0.0 for n in names]
    cis = [run.ci(n, key) for n in names]
    png = metric_bars(names, values, cis, key, run.colour)
    best = run.contenders(names)[0]
    top = values[names.index(best)]
    caption = f"{key} per model (whiskers: bootstrap CI). Best model: {best} ({top:.4f})"
    best_ci = run.ci(best, key)
    if best_ci is not None:
        close = [
            n for n in run.contenders(names)
            if n != best and (ci := run.ci(n, key)) is not None and ci[1] >= best_ci[0]
        ]  # fmt: skip
        caption += f"; models whose CI overlaps its CI: {', '.join(close) or 'none'}"
    return Figure("ndcg_bar", png, caption + ".")


def _k_figure(run: RunView) -> Figure | None:
    curves: dict[str, dict[str, list[tuple[int, float, Interval]]]] = {}
    for metric in ("ndcg", "recall"):
        per_model = {}
        for n in run.order:
            points = [
                (k, v, run.ci(n, f"{metric}@{k}"))
                for k in run.ks
                if (v := run.value(n, f"{metric}@{k}")) is not None
            ]
            if points:
                per_model[n] = points
        if per_model:
            curves[metric] = per_model
    if not curves:
        return None
    caption = "ndcg@K and recall@K per model (bars: bootstrap CI where available)"
    if "ndcg" in curves and len(run.ks) >= 2:
        lo, hi = run.ks[0], run.ks[-1]
        best = [_best(run, f"ndcg@{k}") for k in (lo, hi)]
        if best[0] and best[1]:
            caption += f". Best by ndcg at K={lo}: {best[0]}; at K={hi}: {best[1]}"
    return Figure("metric_vs_k", metric_vs_k(curves, run.colour), caption + ".")


def _best(run: RunView, key: str) -> str | None:
    names = [n for n in run.contenders(run.order) if run.value(n, key) is not None]
    return max(names, key=lambda n: run.value(n, key) or 0.0) if names else None


def _popularity_figure(run: RunView) -> Figure | None:
    pop_key = f"mean_popularity@{run.k}"
    points = [
        (n, x, y)
        for n in run.order
        if (x := run.value(n, pop_key)) is not None and (y := run.value(n, run.key)) is not None
    ]
    if not points:
        return None
    png = scatter_labelled(points, f"mean popularity of the top-{run.k} items", run.key,
                           run.colour)  # fmt: skip
    caption = (
        f"Accuracy ({run.key}) against the popularity of what is recommended; points to the "
        "right lean on popular items."
    )
    real = [p for p in points if p[0] in run.contenders([q[0] for q in points])]
    if len(real) >= 2:
        most, least = max(real, key=lambda p: p[1]), min(real, key=lambda p: p[1])
        caption += (
            f" Most popular lists: {most[0]} ({most[1]:.4g}); least: {least[0]} ({least[1]:.4g})."
        )
    return Figure("accuracy_vs_popularity", png, caption)


def _cost_figure(run: RunView) -> Figure | None:
    points = [
        (n, x, y)
        for n in run.order
        if (x := run.models[n].cost.fit_seconds) is not None
        and (y := run.value(n, run.key)) is not None
    ]
    if not points:
        return None
    png = scatter_labelled(points, "fit time, seconds (log scale)", run.key, run.colour,
                           log_x=True)  # fmt: skip
    caption = f"Fit time against {run.key} (times under {MIN_SECONDS} s drawn at {MIN_SECONDS} s)."
    real = [p for p in points if p[0] in run.contenders([q[0] for q in points])]
    if len(real) >= 2:
        top = max(p[2] for p in real)
        cheap = min((p for p in real if p[2] >= 0.9 * top), key=lambda p: p[1])
        caption += (
            f" Fastest model within 90% of the best {run.key}: {cheap[0]} ({cheap[1]:.2f} s)."
        )
    return Figure("cost", png, caption)
