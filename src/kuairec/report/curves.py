"""Training curves of the models that train in epochs (metrics.json ``history``)."""

from __future__ import annotations

from kuairec.display.figure import pyplot
from kuairec.display.html import figure_png
from kuairec.report.markdown import Block, Figure, Heading
from kuairec.report.view import RunView

VALID = "valid_ndcg@10"
LOSS = "train_loss"


def curves_of(run: RunView) -> dict[str, dict[str, list[float | None]]]:
    """``{model: history}`` for the models with at least one epoch recorded."""
    return {
        name: dict(m.history)
        for name, m in run.models.items()
        if m.history is not None and m.history.get("epoch")
    }


def curves_png(curves: dict[str, dict[str, list[float | None]]]) -> bytes:
    """Two panels: training loss and validation NDCG@10 per epoch, one line per model."""
    plt = pyplot()
    fig, (ax_loss, ax_valid) = plt.subplots(1, 2, figsize=(10.4, 3.8))
    for name, h in curves.items():
        epochs = h["epoch"]
        if len(h.get(LOSS, [])) == len(epochs):
            ax_loss.plot(epochs, h[LOSS], marker="o", ms=3, label=name)
        if len(h.get(VALID, [])) == len(epochs):
            ax_valid.plot(epochs, h[VALID], marker="o", ms=3, label=name)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    ax_valid.set(xlabel="epoch", ylabel="NDCG@10", title="validation NDCG@10 (early stopping)")
    for ax in (ax_loss, ax_valid):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure_png(fig)


def curves_section(run: RunView) -> list[Block]:
    curves = curves_of(run)
    if not curves:
        return []
    parts = []
    for name, h in curves.items():
        valid = [v if v is not None else float("-inf") for v in h.get(VALID) or []]
        if valid:
            best = max(range(len(valid)), key=valid.__getitem__)
            parts.append(
                f"{name}: best validation NDCG@10 {valid[best]:.4f} at epoch "
                f"{h['epoch'][best]:.0f} of {len(valid)}"
            )
        else:
            parts.append(f"{name}: {len(h['epoch'])} epochs, no validation split")
    caption = "; ".join(parts) + "."
    return [Heading("Training curves"), Figure("training_curves", curves_png(curves), caption)]
