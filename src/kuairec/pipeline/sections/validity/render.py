"""The validity section's part of the report: each logged-data protocol against the fully
observed truth (see docs/validity.md)."""

from __future__ import annotations

from kuairec.display.figure import pyplot
from kuairec.display.html import figure_png
from kuairec.pipeline.sections.validity.types import TITLE, Expected, ProtocolResult, Value
from kuairec.report.markdown import Block, Figure, Heading, Para, Table, fmt, fmt_ci
from kuairec.report.view import RunView

NAMES = {
    "logged": "logged holdout",
    "uni100": "sampled uni100",
    "pop100": "sampled pop100",
    "ips": "IPS (gamma 0.5)",
    "snips": "SNIPS (gamma 0.5)",
}
PLOTTED = tuple(f"{s}/{p}" for s in ("temporal", "random") for p in NAMES)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def protocol_title(proto: str) -> str:
    split, _, kind = proto.partition("/")
    base, _, gamma = kind.partition("_gamma")
    name = NAMES.get(base, base).replace(" (gamma 0.5)", "")
    return f"{name}{f' (gamma {gamma})' if gamma else ''}, {split} split"


def largest_move(proto: str, d: ProtocolResult) -> str:
    """A sentence from the numbers: the model whose rank moves most under ``proto``."""
    if not d.models:
        return ""
    name, m = max(d.models.items(), key=lambda kv: abs(kv[1].rank - kv[1].reference_rank))
    if m.rank == m.reference_rank:
        return f"the {protocol_title(proto)} keeps every model's rank"
    return (
        f"the {protocol_title(proto)} ranks {name} {_ordinal(m.rank)}; the fully observed "
        f"test ranks it {_ordinal(m.reference_rank)}"
    )


def render(value: Value, view: RunView) -> list[Block]:
    protocols = value.protocols
    if not protocols:
        return [Heading(TITLE), Para(value.note or "No protocol computed.")]
    rows = [
        [protocol_title(p), fmt(d.tau), fmt_ci(d.tau_ci), fmt(d.rho), str(len(d.flipped)),
         largest_move(p, d)]
        for p, d in protocols.items()
    ]  # fmt: skip
    blocks: list[Block] = [
        Heading(TITLE),
        Para(
            "How far would the usual logged-data shortcuts have misled? Each protocol "
            "below ranks the run's learned models on data with exposure bias; Kendall's "
            "tau and Spearman's rho compare its model ordering with the fully observed "
            "test's (NDCG@10, default label; 1 = the same order). IPS/SNIPS estimate the "
            "fully observed per-positive DCG@10. See docs/validity.md.",
            note=True,
        ),
        Table(["protocol", "tau", "tau 95% CI", "rho", "flipped pairs", "largest move"], rows),
    ]
    shown = {p: protocols[p] for p in PLOTTED if p in protocols}
    if shown:
        caption = "; ".join(largest_move(p, d) for p, d in list(shown.items())[:2]) + "."
        blocks.append(Figure("validity", _scatter(shown), caption))
    if value.left_out:
        blocks.append(
            Para("Left out: " + "; ".join(f"{n}: {w}" for n, w in value.left_out.items()))
        )
    return blocks + _expected(value.expected_label)


def _expected(expected: dict[str, Expected]) -> list[Block]:
    if not expected:
        return []
    rows = [[n, fmt(e.observed), fmt(e.expected)] for n, e in expected.items()]
    return [
        Para(
            "Synthetic data: NDCG@10 against the observed label and against the expected "
            "watch_ratio (the truth without sampling noise).",
            note=True,
        ),  # fmt: skip
        Table(["model", "observed label", "expected label"], rows),
    ]


def _scatter(protocols: dict[str, ProtocolResult]) -> bytes:
    plt = pyplot()
    n = len(protocols)
    cols = min(5, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.1 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (proto, d) in zip(axes.flat, protocols.items(), strict=False):
        models = d.models
        x = [m.reference or 0.0 for m in models.values()]
        y = [m.value or 0.0 for m in models.values()]
        ax.scatter(x, y, s=18)
        for name, xi, yi in zip(models, x, y, strict=True):
            ax.annotate(name, (xi, yi), fontsize=7, xytext=(3, 2), textcoords="offset points")
        hi = max([*x, *y, 1e-9]) * 1.1
        ax.plot([0, hi], [0, hi], color="grey", lw=0.8, ls="--")
        ax.set(xlim=(0, hi), ylim=(0, hi), title=f"{protocol_title(proto)}\ntau {fmt(d.tau, 2)}")
        ax.title.set_fontsize(8)
        ax.set_xlabel("fully observed", fontsize=8)
        ax.set_ylabel("under the protocol", fontsize=8)
    fig.tight_layout()
    return figure_png(fig)
