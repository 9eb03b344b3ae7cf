"""A report's figure as both reports keep it: the PNG, its file name and its takeaway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One rendered figure, written as ``<name>.png`` and embedded in the HTML.

    ``caption`` is the figure's takeaway: one sentence with numbers from the data it shows.
    """

    name: str  # file stem, e.g. "ndcg_bar"
    png: bytes
    caption: str

    @property
    def file_name(self) -> str:
        return f"{self.name}.png"


def pyplot() -> Any:
    """matplotlib's pyplot on the non-interactive Agg backend (imported on first use)."""
    from kuairec.display.html import use_agg

    use_agg()
    import matplotlib.pyplot as plt

    return plt
