"""A report's figure as both reports keep it: the PNG, its file name and its takeaway."""

from __future__ import annotations

from dataclasses import dataclass


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
