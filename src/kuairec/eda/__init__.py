"""The dataset report: statistics, figures and a self-contained HTML page.

``write_eda_report(ds, out_dir)`` is the entry point; ``stats`` and ``side`` hold the
numbers (plain numpy/polars, testable without matplotlib), ``figures`` draws them and
``sections`` pairs each figure with a takeaway computed from the same numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from kuairec.data.dataset import KuaiRecDataset

__all__ = ["write_eda_report"]


def write_eda_report(ds: KuaiRecDataset, out_dir: Path, progress: Any = True) -> Path:
    """Write ``out_dir/report.html`` and the figures' PNGs; return the report's path."""
    from kuairec.eda.report import write_eda_report as _write

    return _write(ds, out_dir, progress=progress)
