"""``kuairec data ...``: describe, generate and download the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kuairec import config
from kuairec.cli.app import app

DATA_OPTION = click.option(
    "--data",
    "data",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder with the KuaiRec 2.0 CSV files (default: $KUAIREC_DATA, else the "
    "synthetic default data).",
)


#: A raw KuaiRec id (user_id, video_id) on the command line: a 64-bit integer >= 0, so
#: ``--user 10**23`` is a one-line usage error and never an OverflowError downstream.
RAW_ID = click.IntRange(min=0, max=2**63 - 1)


@app.group("data")
def data_group() -> None:
    """Load, describe, generate and download KuaiRec data."""


@data_group.command("describe")
@DATA_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--no-cache", is_flag=True, help="Parse the CSV files even if a cache exists.")
def describe_cmd(data: Path | None, as_json: bool, no_cache: bool) -> None:
    """Print the dataset summary: rows, users, videos, density, duplicates dropped,
    watch_ratio quantiles and positive rate."""
    from kuairec.data.default import resolve_data_dir
    from kuairec.data.describe import describe, format_summary
    from kuairec.data.load import load_dataset

    folder = resolve_data_dir(data)
    ds = load_dataset(folder, use_cache=not no_cache)
    summary = describe(ds)
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        click.echo(format_summary(summary))


@data_group.command("generate")
@click.option(
    "--scale",
    type=click.FloatRange(min=0, min_open=True, max=4.0),
    default=config.DEFAULT_SCALE,
    show_default=True,
    help="Size relative to the real KuaiRec (1.0: 7,176 users x 10,728 videos).",
)
@click.option("--seed", type=int, default=config.DEFAULT_SEED, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder to write the seven CSV files (and small_matrix_truth.csv) into.",
)
def generate_cmd(scale: float, seed: int, out: Path) -> None:
    """Write synthetic KuaiRec-shaped data: the seven files, same schema and quirks."""
    from kuairec.data.synthetic import generate

    summary = generate(out, scale=scale, seed=seed, progress=True)
    click.echo(f"wrote synthetic KuaiRec data to {out}")
    for key, value in summary.items():
        click.echo(f"  {key}: {value}")


@data_group.command("download")
@click.option(
    "--to",
    "to",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder to download and unzip the archive into.",
)
@click.option("--url", default=None, help="Archive URL (default: the official Zenodo record).")
@click.option("--no-unzip", is_flag=True, help="Only download the zip.")
def download_cmd(to: Path, url: str | None, no_unzip: bool) -> None:
    """Download the official KuaiRec 2.0 archive (resumable), check its size and unzip it."""
    from kuairec.data.download import OFFICIAL_URL, download

    path = download(url or OFFICIAL_URL, to, unzip=not no_unzip, progress=True)
    click.echo(f"data ready in {path}")
