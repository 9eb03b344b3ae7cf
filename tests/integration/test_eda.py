"""The dataset report end to end: generated data -> loader -> report.html + PNGs.

Numbers in the page are checked against the dataset summary and against independent
computations from the row-level log; the page is opened in headless Chromium.
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

import numpy as np
import pytest

from kuairec.data.describe import describe
from kuairec.data.load import read_log
from kuairec.display.html import escape
from kuairec.eda import write_eda_report
from kuairec.eda.sections import fmt
from kuairec.eda.side import summary_rows
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


def test_tables_match_the_dataset_summary(small_dataset, page: str):
    ds = small_dataset
    summary = describe(ds)
    for key, value in summary_rows({k: v for k, v in summary.items() if k != "matrices"}):
        if key != "notes":
            assert f"<td>{escape(key)}</td><td>{escape(fmt(value))}</td>" in page, key
    big, small = summary["matrices"]["big"], summary["matrices"]["small"]
    for key, value in summary_rows(big):
        cell = f"<td>{escape(key)}</td><td>{escape(fmt(value))}</td>"
        assert cell + f"<td>{escape(fmt(dict(summary_rows(small))[key]))}</td>" in page, key
    # the printed duplicates and row counts are the loader's and the logs'
    dup, rows_big, rows_small = (
        ds.report.duplicates_dropped,
        read_log(ds, "big").height,
        read_log(ds, "small").height,
    )
    assert dup > 0  # the generator plants exact duplicates
    assert f"<td>duplicates_dropped</td><td>{fmt(dup)}</td><td>0</td>" in page
    assert f"<td>exact duplicate rows dropped (big)</td><td>{fmt(dup)}</td>" in page
    assert f"<td>rows</td><td>{fmt(rows_big)}</td><td>{fmt(rows_small)}</td>" in page
    n_users = int((ds.big.user_counts() > 0).sum())
    assert f"<td>big</td><td>{fmt(n_users)}</td>" in page
    assert f"<td>{fmt(rows_big)}</td>" in page


def test_popularity_takeaway_matches_an_independent_computation(small_dataset, page: str):
    log = read_log(small_dataset, "big")
    views = np.sort(log.group_by("item_idx").len()["len"].to_numpy())[::-1].astype(float)
    k1, k10 = math.ceil(views.size / 100), math.ceil(views.size / 10)
    top1, top10 = views[:k1].sum() / views.sum(), views[:k10].sum() / views.sum()
    mad = np.abs(views[:, None] - views[None, :]).sum() / (2 * views.size**2 * views.mean())
    cap = next(c for c in captions(page) if c.startswith("The top 1% of videos"))
    assert f"({k1:,} of {views.size:,}) receive {top1:.1%}" in cap
    assert f"top 10% receive {top10:.1%}" in cap
    assert f"Gini = {mad:.2f}" in cap


def test_watch_ratio_and_label_takeaways_match_the_log(small_dataset, page: str):
    wr = read_log(small_dataset, "big")["watch_ratio"].to_numpy()
    cap = next(c for c in captions(page) if c.startswith("Median watch_ratio"))
    assert f"is {np.median(wr):.2f} (big)" in cap
    assert f"{(wr > 2).mean():.1%} of big-matrix rows exceed 2" in cap
    small = small_dataset.small
    rate = (small.watch_ratio_mean > 2).mean()
    cap = next(c for c in captions(page) if c.startswith("Overall positive rates"))
    assert f"wr &gt; 2 {rate:.1%}" in cap


def test_activity_by_hour_uses_beijing_time(small_dataset, page: str):
    ts = read_log(small_dataset, "big")["timestamp"].to_numpy()
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
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
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
