"""Figures of the benchmark report, each returned as PNG bytes.

The functions take plain, already-extracted values (names, numbers, ``(lo, hi)`` pairs or
None) so they know nothing of the metrics dict's layout. matplotlib is imported inside
each function: importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kuairec.report.html import figure_png

Interval = tuple[float, float] | None

# Smallest fit time drawn on the log axis: a model that "fits" in 0 s is drawn here.
MIN_SECONDS = 1e-3


def _plt() -> Any:
    from kuairec.report.html import use_agg

    use_agg()
    import matplotlib.pyplot as plt

    return plt


def _label(name: str) -> str:
    """Model names drawn as plain text (a ``$`` would otherwise start mathtext)."""
    return name.replace("$", r"\$")


def colours(names: Sequence[str]) -> dict[str, Any]:
    """A stable colour per model: tab10 up to 10 models, tab20 beyond."""
    plt = _plt()
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


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
    plt = _plt()
    fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 4.0), squeeze=False)
    for ax, (metric, per_model) in zip(axes[0], curves.items(), strict=True):
        for name, points in per_model.items():
            ks = [p[0] for p in points]
            values = [p[1] for p in points]
            ax.errorbar(
                ks, values, yerr=_yerr(values, [p[2] for p in points]), marker="o",
                ms=4, capsize=3, lw=1.4, color=colour.get(name), label=_label(name),
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
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(names) + 1.2))
    pos = list(range(len(names)))[::-1]
    ax.barh(
        pos, values, xerr=_yerr(values, cis), capsize=3,
        color=[colour.get(n) for n in names], alpha=0.85,
    )  # fmt: skip
    ax.set_yticks(pos, [_label(n) for n in names])
    ax.set_xlabel(metric)
    ax.grid(axis="x", alpha=0.3)
    return figure_png(fig)


def scatter_labelled(
    points: Sequence[tuple[str, float, float]], xlabel: str, ylabel: str,
    colour: dict[str, Any], *, log_x: bool = False,
) -> bytes:  # fmt: skip
    """One labelled point per model (``(name, x, y)``)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.0, 4.8))
    for name, x, y in points:
        x = max(x, MIN_SECONDS) if log_x else x
        ax.scatter([x], [y], s=40, color=colour.get(name), zorder=3)
        ax.annotate(
            _label(name), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8
        )
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
    plt = _plt()
    n = max(len(per_model), 1)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(groups) * max(n, 3) / 3), 4.0))
    for j, (name, values) in enumerate(per_model.items()):
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(groups))]
        ys = [v if v is not None else 0.0 for v in values]
        ax.bar(xs, ys, width=width, color=colour.get(name), label=_label(name))
    ax.set_xticks(range(len(groups)), [_label(g) for g in groups])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return figure_png(fig)
