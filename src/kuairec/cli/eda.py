"""``kuairec eda``: the dataset report (self-contained HTML plus the PNG figures)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from kuairec.cli.app import app
from kuairec.cli.data import DATA_OPTION


def default_out_dir(base: Path | None = None, now: dt.datetime | None = None) -> Path:
    """``runs/<YYYYmmdd-HHMMSS>-eda`` under ``base`` (the current folder); a suffix
    ``-2``, ``-3``... is added when that folder already exists, so none is reused."""
    base = Path.cwd() if base is None else base
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    path = base / "runs" / f"{stamp}-eda"
    n = 2
    while path.exists():
        path = base / "runs" / f"{stamp}-eda-{n}"
        n += 1
    return path


@app.command("eda")
@DATA_OPTION
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=None,
    help="New folder for report.html and the figures (default: runs/<timestamp>-eda/ "
    "under the current folder). An existing non-empty folder is refused.",
)
@click.option("--quiet", is_flag=True, help="Do not print progress.")
def eda_cmd(data: Path | None, out: Path | None, quiet: bool) -> None:
    """Write the dataset report: sizes, sparsity, popularity, watch_ratio and labels,
    activity over time, tags, categories, user features, daily stats and friends."""
    from kuairec.data.default import resolve_data_dir
    from kuairec.data.load import load_dataset
    from kuairec.eda import write_eda_report

    folder = resolve_data_dir(data, progress=not quiet)
    ds = load_dataset(folder)
    path = write_eda_report(ds, out if out is not None else default_out_dir(), progress=not quiet)
    click.echo(f"wrote {path}")
