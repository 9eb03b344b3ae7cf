"""The dataset report end to end: generated data -> loader -> report.html + PNGs.

Numbers in the page are checked against values computed independently, with polars and
numpy straight from the CSV rows (not through the loader, describe() or the report's own
formatting); the page is opened in headless Chromium.
"""

from __future__ import annotations

import base64
import math
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import _kuairec_fixtures as fx  # on sys.path through tests/conftest.py
import numpy as np
import polars as pl
import pytest

from kuairec.display.html import escape
from kuairec.eda import write_eda_report
from kuairec.errors import ConfigError

IMG = 'src="data:image/png;base64,'
SIDE_FILES = (
    "item_categories.csv",
    "user_features.csv",
    "item_daily_features.csv",
    "social_network.csv",
    "kuairec_caption_category.csv",
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


RECORDED: list[str] = []


@pytest.fixture(scope="module")
def report(small_dataset, tmp_path_factory) -> Path:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = write_eda_report(
            small_dataset, tmp_path_factory.mktemp("eda") / "eda", progress=False
        )
    RECORDED.extend(str(w.message) for w in caught)
    return path


@pytest.fixture(scope="module")
def page(report: Path) -> str:
    return report.read_text(encoding="utf-8")


def captions(page: str) -> list[str]:
    return re.findall(r"<figcaption>(.*?)</figcaption>", page, flags=re.S)


def test_every_figure_is_a_png_file_and_embedded(report: Path, page: str):
    pngs = sorted(report.parent.glob("*.png"))
    assert page.count(IMG) >= 10
    assert len(pngs) == page.count(IMG)
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert IMG + base64.b64encode(data).decode("ascii") + '"' in page, png.name
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_no_warnings_while_drawing(report: Path):
    # e.g. "Glyph 20013 missing from font(s) DejaVu Sans": no Chinese text in figures
    assert RECORDED == []


def test_every_takeaway_holds_numbers_and_differs(page: str):
    caps = captions(page)
    assert len(caps) == page.count(IMG)
    for cap in caps:
        assert re.search(r"\d", cap), cap
    assert len(set(caps)) == len(caps)


@pytest.fixture(scope="module")
def csv(small_synthetic_dir) -> dict[str, tuple[int, pl.DataFrame]]:
    """Each matrix read straight from its CSV file with polars, not through the loader:
    (rows in the file, the rows with exact duplicates dropped)."""
    out = {}
    for name in ("big", "small"):
        raw = pl.read_csv(small_synthetic_dir / f"{name}_matrix.csv")
        out[name] = (raw.height, raw.unique(maintain_order=True))
    return out


def row(*cells: str) -> str:
    return "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>"


def test_size_table_matches_the_csv_files(csv, page: str):
    for name, (_, rows) in csv.items():
        users, videos = rows["user_id"].n_unique(), rows["video_id"].n_unique()
        pairs = rows.select("user_id", "video_id").unique().height
        density, per_user = pairs / (users * videos), rows.height / users
        cells = [f"{users:,}", f"{videos:,}", f"{pairs:,}", f"{rows.height:,}"]
        assert row(name, *cells, f"{density:.2%}", f"{per_user:.4g}") in page, name


def test_cleaning_and_describe_tables_match_the_csv_files(csv, page: str):
    (raw_big, big), (raw_small, small) = csv["big"], csv["small"]
    dup_big, dup_small = raw_big - big.height, raw_small - small.height
    assert dup_big > 0  # the generator plants exact duplicates
    untimed = small["timestamp"].null_count()
    assert untimed > 0  # and small-matrix rows without time
    assert row("exact duplicate rows dropped (big)", f"{dup_big:,}") in page
    assert row("small-matrix rows without time", f"{untimed:,}") in page
    assert row("rows_read.big", f"{raw_big:,}") in page
    assert row("rows_read.small", f"{raw_small:,}") in page
    both = pl.concat([big.select("user_id", "video_id"), small.select("user_id", "video_id")])
    assert row("users", f"{both['user_id'].n_unique():,}") in page
    assert row("videos", f"{both['video_id'].n_unique():,}") in page
    # the per-matrix describe table: big, then small
    assert row("rows_raw", f"{raw_big:,}", f"{raw_small:,}") in page
    assert row("rows", f"{big.height:,}", f"{small.height:,}") in page
    assert row("duplicates_dropped", f"{dup_big:,}", f"{dup_small:,}") in page
    pairs = [f"{m.select('user_id', 'video_id').unique().height:,}" for m in (big, small)]
    assert row("unique_pairs", *pairs) in page
    wr = [m["watch_ratio"].to_numpy() for m in (big, small)]
    assert row("watch_ratio.median", *[f"{np.median(w):.4g}" for w in wr]) in page
    assert row("watch_ratio.max", *[f"{w.max():.4g}" for w in wr]) in page
    assert row("positive_rate", *[f"{(w > 2).mean():.4g}" for w in wr]) in page
    assert row("rows_without_time", "0", f"{untimed:,}") in page


def test_popularity_takeaway_matches_an_independent_computation(csv, page: str):
    big = csv["big"][1]
    views = np.sort(big.group_by("video_id").len()["len"].to_numpy())[::-1].astype(float)
    k1, k10 = math.ceil(views.size / 100), math.ceil(views.size / 10)
    top1, top10 = views[:k1].sum() / views.sum(), views[:k10].sum() / views.sum()
    mad = np.abs(views[:, None] - views[None, :]).sum() / (2 * views.size**2 * views.mean())
    cap = next(c for c in captions(page) if c.startswith("The top 1% of videos"))
    assert f"({k1:,} of {views.size:,}) receive {top1:.1%}" in cap
    assert f"of all {views.sum():,.0f} views and the top 10% receive {top10:.1%}" in cap
    assert f"Gini = {mad:.2f}" in cap


def test_watch_ratio_and_label_takeaways_match_the_csv(csv, page: str):
    wr = csv["big"][1]["watch_ratio"].to_numpy()
    small = csv["small"][1]
    cap = next(c for c in captions(page) if c.startswith("Median watch_ratio"))
    assert f"is {np.median(wr):.2f} (big) and {small['watch_ratio'].median():.2f} (small)" in cap
    assert f"{(wr > 2).mean():.1%} of big-matrix rows exceed 2" in cap
    per_pair = small.group_by("user_id", "video_id").agg(pl.col("watch_ratio").mean())
    rate = (per_pair["watch_ratio"] > 2).mean()
    cap = next(c for c in captions(page) if c.startswith("Overall positive rates"))
    assert f"wr &gt; 2 {rate:.1%}" in cap


def test_activity_by_hour_uses_beijing_time(csv, page: str):
    ts = csv["big"][1]["timestamp"].to_numpy()
    hours = np.bincount(((ts + 8 * 3600) // 3600 % 24).astype(int), minlength=24)
    peak = int(hours.argmax())
    cap = next(c for c in captions(page) if "Beijing time" in c)
    assert f"peak hour {peak:02d}:00-{peak + 1:02d}:00 Beijing time holds " in cap
    assert f"{hours[peak] / hours.sum():.1%} of rows" in cap


@pytest.mark.slow
def test_missing_side_files_render_with_notes(small_synthetic_dir, tmp_path):
    from kuairec.data.load import load_dataset

    folder = tmp_path / "data"
    folder.mkdir()
    for f in small_synthetic_dir.glob("*.csv"):
        if f.name not in SIDE_FILES:
            shutil.copy(f, folder / f.name)
    ds = load_dataset(folder, progress=False)
    path = write_eda_report(ds, tmp_path / "eda", progress=False)
    page = path.read_text(encoding="utf-8")
    assert page.count(IMG) == 7  # the seven figures of the two matrices
    for file in (
        "item_categories.csv",
        "user_features.csv",
        "social_network.csv",
        "item_daily_features.csv",
        "kuairec_caption_category.csv",
    ):
        assert f"({file} missing or empty): figure skipped." in page, file
    assert {p.name for p in path.parent.glob("*.png")} == {
        "counts.png",
        "density.png",
        "popularity.png",
        "watch_ratio.png",
        "watch_ratio_duration.png",
        "labels.png",
        "activity_time.png",
    }


def quick_builders(monkeypatch) -> None:
    """Only the first two sections: for tests of the plumbing, not of the figures."""
    from kuairec.eda import report, sections

    monkeypatch.setattr(
        report, "_builders", lambda: [("overview", sections.overview), ("counts", sections.counts)]
    )


def test_refuses_a_non_empty_folder_and_leaves_nothing_on_failure(
    small_dataset, tmp_path, monkeypatch
):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        write_eda_report(small_dataset, taken, progress=False)
    assert (taken / "keep.txt").read_text() == "mine"

    from kuairec.eda import report

    quick_builders(monkeypatch)
    (tmp_path / "empty").mkdir()  # an empty folder is accepted
    path = write_eda_report(small_dataset, tmp_path / "empty", progress=False)
    assert sorted(p.name for p in path.parent.iterdir()) == ["counts.png", "report.html"]

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report, "write_page", boom)  # fails after the PNGs are written
    with pytest.raises(OSError, match="disk full"):
        write_eda_report(small_dataset, tmp_path / "new", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "taken"]


def test_default_out_dir_never_reuses_a_folder(tmp_path):
    import datetime as dt

    from kuairec.cli.eda import default_out_dir

    now = dt.datetime(2026, 1, 2, 3, 4, 5)
    first = default_out_dir(tmp_path, now)
    assert first == tmp_path / "runs" / "20260102-030405-eda"
    first.mkdir(parents=True)
    assert default_out_dir(tmp_path, now) == tmp_path / "runs" / "20260102-030405-eda-2"


def test_cli_help_and_report_in_a_new_run_folder(
    small_synthetic_dir, tmp_path, monkeypatch, capsys
):
    from kuairec.cli import main

    assert main(["eda", "--help"]) == 0
    assert "--out" in capsys.readouterr().out
    quick_builders(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert main(["eda", "--data", str(small_synthetic_dir), "--quiet"]) == 0
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and re.fullmatch(r"\d{8}-\d{6}-eda", runs[0].name)
    assert (runs[0] / "report.html").exists()
    assert f"wrote {runs[0] / 'report.html'}" in capsys.readouterr().out
    taken = tmp_path / "taken"
    (taken / "x").mkdir(parents=True)
    assert main(["eda", "--data", str(small_synthetic_dir), "--out", str(taken), "--quiet"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


CHECK_JS = """<script>
window.__errs = [];
window.addEventListener("error", function (e) { window.__errs.push(String(e.message || e.type)); },
                        true);
window.addEventListener("load", function () {
  var im = Array.prototype.slice.call(document.images);
  var ok = im.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.title = "EDACHECK images=" + im.length + " decoded=" + ok +
                   " errors=" + window.__errs.length;
});
</script>"""


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report: Path, page: str, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed; CI must install it (see .ci/run)")
        pytest.skip("chromium not installed (Debian: apt-get install chromium)")
    # a test-only copy that records script errors and decoded images in the title
    check = tmp_path / "check.html"
    check.write_text(page.replace("<head>", "<head>" + CHECK_JS, 1), encoding="utf-8")
    cmd = [
        CHROMIUM,
        *fx.CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        check.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [
        line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line
    ]
    assert console == []
    n = page.count(IMG)
    assert f"<title>EDACHECK images={n} decoded={n} errors=0</title>" in done.stdout
    assert done.stdout.count("<figcaption>") == n
