"""Assemble the dataset report: run every section, write the PNGs and report.html.

Everything is built in a temporary sibling folder and renamed into place at the end, so
a failed report leaves nothing half-written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kuairec import atomic
from kuairec.display.html import escape, use_agg, write_page
from kuairec.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.data.dataset import KuaiRecDataset
    from kuairec.eda.sections import Context, Section

REPORT_NAME = "report.html"


def _builders() -> list[tuple[str, Callable[[Context], Section]]]:
    from kuairec.eda import sections as s
    from kuairec.eda import side_sections as side

    return [
        ("overview", s.overview),
        ("counts", s.counts),
        ("density", s.density),
        ("popularity", s.popularity),
        ("watch ratio", s.watch_ratio),
        ("labels", s.labels),
        ("activity", s.activity),
        ("tags", side.tags),
        ("categories", side.categories),
        ("users", side.users),
        ("daily", side.daily),
        ("social", side.social),
    ]


def build_sections(ds: KuaiRecDataset, progress: Any = True) -> list[Section]:
    """Compute every section (numbers, figures, takeaways) in memory."""
    from kuairec.display.progress import using
    from kuairec.eda.sections import Context

    use_agg()
    ctx = Context(ds)
    with using(progress) as display:
        return [build(ctx) for _, build in display.iterate(_builders(), "eda", label=_name)]


def _name(item: tuple[str, Any]) -> str:
    return item[0]


def _header(ds: KuaiRecDataset, sections: list[Section]) -> str:
    n_fig = sum(len(s.figures) for s in sections)
    source = escape(ds.source) if ds.source is not None else "arrays in memory"
    toc = "".join(f'<li><a href="#s{i}">{escape(s.title)}</a></li>' for i, s in enumerate(sections))
    return (
        "<h1>KuaiRec dataset report</h1>"
        f"<p>Data: <code>{source}</code>; {ds.n_users:,} users x {ds.n_items:,} videos in the "
        f"id space; {n_fig} figures, made {dt.datetime.now():%Y-%m-%d %H:%M}. Each caption is "
        "computed from the data it shows. The PNG files lie beside this page.</p>"
        f"<ol>{toc}</ol>"
    )


def render_page(ds: KuaiRecDataset, sections: list[Section]) -> str:
    from kuairec.eda.sections import render

    body = [_header(ds, sections)]
    body.extend(f'<section id="s{i}">{render(s)}</section>' for i, s in enumerate(sections))
    body.append(
        '<p class="note">Dataset: Gao et al., "KuaiRec: A Fully-observed Dataset and '
        'Insights for Evaluating Recommender Systems", CIKM 2022 (CC BY-SA 4.0).</p>'
    )
    return "\n".join(body)


def _prepare(out_dir: Path) -> None:
    """Refuse a folder that holds anything; an empty one is replaced atomically."""
    if out_dir.exists():
        if not out_dir.is_dir() or any(out_dir.iterdir()):
            raise ConfigError(
                f"output folder {out_dir} already exists and is not empty; "
                "refusing to overwrite it (choose a new --out)"
            )
        out_dir.rmdir()


def write_eda_report(ds: KuaiRecDataset, out_dir: Path | str, progress: Any = True) -> Path:
    """Write ``out_dir/report.html`` (self-contained) and one PNG per figure beside it.

    ``out_dir`` must not exist (or be empty); it appears only once everything is written.
    """
    out_dir = Path(out_dir)
    _prepare(out_dir)
    sections = build_sections(ds, progress=progress)
    body = render_page(ds, sections)
    with atomic.new_directory(out_dir) as tmp:
        for sec in sections:
            for fig in sec.figures:
                atomic.write_bytes(tmp / fig.file_name, fig.png)
        write_page(tmp / REPORT_NAME, "KuaiRec dataset report", body)
    return out_dir / REPORT_NAME
