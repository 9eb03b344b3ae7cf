"""The dataset summary behind ``kuairec data describe``.

The loader computes the summary once, from the deduplicated row-level logs, and stores it
in the cache (``summary.json``), so a warm ``describe`` reads a small JSON file and
imports neither polars nor scipy. A dataset built directly from arrays (no cache) gets a
summary computed from its per-pair aggregates instead (``"basis": "pairs"``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.data.dataset import CleaningReport, Interactions, KuaiRecDataset

SUMMARY_FILE = "summary.json"
POSITIVE_THRESHOLD = 2.0
QUANTILES = {"min": 0.0, "p25": 0.25, "median": 0.5, "p75": 0.75, "p90": 0.9, "p99": 0.99,
             "max": 1.0}  # fmt: skip


def watch_ratio_stats(wr: np.ndarray, overwrite: bool = False) -> dict[str, float]:
    """min, p25, median, p75, p90, p99, max (linear interpolation) and mean.

    ``overwrite=True`` lets the quantiles reorder ``wr`` in place (no copy)."""
    if wr.size == 0:
        return {name: float("nan") for name in [*QUANTILES, "mean"]}
    mean = float(np.mean(wr))
    values = np.quantile(wr, list(QUANTILES.values()), overwrite_input=overwrite)
    out = {name: float(v) for name, v in zip(QUANTILES, values, strict=True)}
    out["mean"] = mean
    return out


def matrix_summary(
    *,
    rows_raw: int,
    watch_ratio: np.ndarray,
    users: int,
    videos: int,
    unique_pairs: int,
    rows_without_time: int,
    date_range: tuple[int | None, int | None],
    overwrite: bool = False,
) -> dict[str, Any]:
    """One matrix's figures; ``watch_ratio`` holds the deduplicated rows' values (reordered
    in place when ``overwrite``)."""
    rows = int(watch_ratio.size)
    cells = users * videos
    positive = float(np.mean(watch_ratio > POSITIVE_THRESHOLD)) if rows else 0.0
    return {
        "rows_raw": int(rows_raw),
        "rows": rows,
        "duplicates_dropped": int(rows_raw) - rows,
        "users": int(users),
        "videos": int(videos),
        "unique_pairs": int(unique_pairs),
        "density_rows": rows_raw / cells if cells else 0.0,
        "density_pairs": unique_pairs / cells if cells else 0.0,
        "watch_ratio": watch_ratio_stats(watch_ratio, overwrite=overwrite),
        "positive_rate": positive,
        "positive_threshold": POSITIVE_THRESHOLD,
        "rows_without_time": int(rows_without_time),
        "date_min": _date_text(date_range[0]),
        "date_max": _date_text(date_range[1]),
    }


def _date_text(value: int | None) -> str | None:
    if value is None:
        return None
    s = f"{int(value):08d}"
    return f"{s[:4]}-{s[4:6]}-{s[6:]}"


def dataset_summary(
    *,
    source: str,
    checksum: str,
    n_users: int,
    n_items: int,
    matrices: dict[str, dict[str, Any]],
    report: CleaningReport,
    basis: str = "rows",
) -> dict[str, Any]:
    return {
        "source": source,
        "source_checksum": checksum,
        "basis": basis,
        "users": int(n_users),
        "videos": int(n_items),
        "matrices": matrices,
        "cold_test_users": report.cold_test_users,
        "cold_test_items": report.cold_test_items,
        "missing_files": list(report.missing_files),
        "rows_read": dict(report.rows_read),
        "side_ids_dropped": dict(report.side_ids_dropped),
        "notes": list(report.notes),
    }


def describe(ds: KuaiRecDataset) -> dict[str, Any]:
    """The summary dict: from the cache when the dataset came from ``load_dataset``."""
    if ds.cache_path is not None:
        path = ds.cache_path / SUMMARY_FILE
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return _summary_from_pairs(ds)


def _summary_from_pairs(ds: KuaiRecDataset) -> dict[str, Any]:
    """Approximate figures for a dataset built from arrays: rows = sum of views, and
    watch_ratio statistics over the per-pair means repeated by views."""
    matrices = {name: _pairs_matrix(getattr(ds, name)) for name in ("big", "small")}
    return dataset_summary(
        source=str(ds.source) if ds.source else "",
        checksum=ds.source_checksum,
        n_users=ds.n_users,
        n_items=ds.n_items,
        matrices=matrices,
        report=ds.report,
        basis="pairs",
    )


def _pairs_matrix(inter: Interactions) -> dict[str, Any]:
    views = np.asarray(inter.views, dtype=np.int64)
    wr = np.repeat(np.asarray(inter.watch_ratio_mean, dtype=np.float64), views)
    users = int(np.count_nonzero(np.diff(inter.indptr)))
    videos = int(np.count_nonzero(inter.item_counts()))
    return matrix_summary(
        rows_raw=int(views.sum()),
        watch_ratio=wr,
        users=users,
        videos=videos,
        unique_pairs=inter.nnz,
        rows_without_time=int(np.repeat(np.isnan(inter.first_timestamp), views).sum()),
        date_range=(None, None),
        overwrite=True,
    )


def _fmt(value: Any, kind: str = "int") -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "float":
        return f"{value:.3f}"
    return f"{value:,}"


_ROWS = (
    ("rows (raw)", "rows_raw", "int"),
    ("rows (deduplicated)", "rows", "int"),
    ("duplicates dropped", "duplicates_dropped", "int"),
    ("users", "users", "int"),
    ("videos", "videos", "int"),
    ("unique user-video pairs", "unique_pairs", "int"),
    ("density (raw rows / cells)", "density_rows", "pct"),
    ("density (pairs / cells)", "density_pairs", "pct"),
)


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text table of the summary for the terminal."""
    mats = summary["matrices"]
    names = [n for n in ("big", "small") if n in mats]
    lines = [
        f"KuaiRec data: {summary.get('source') or '(in memory)'}",
        f"users {summary['users']:,} | videos {summary['videos']:,} | "
        f"checksum {summary.get('source_checksum') or '-'}",
        "",
        f"{'':28}" + "".join(f"{n + '_matrix':>16}" for n in names),
    ]

    def row(label: str, values: list[str]) -> None:
        lines.append(f"{label:28}" + "".join(f"{v:>16}" for v in values))

    for label, key, kind in _ROWS:
        row(label, [_fmt(mats[n][key], kind) for n in names])
    for q in [*QUANTILES, "mean"]:
        row(f"watch_ratio {q}", [_fmt(mats[n]["watch_ratio"][q], "float") for n in names])
    threshold = mats[names[0]]["positive_threshold"]
    rates = [_fmt(mats[n]["positive_rate"], "pct") for n in names]
    row(f"positive rate (wr > {threshold:g})", rates)
    row("rows without time", [_fmt(mats[n]["rows_without_time"]) for n in names])
    row("rows with video_duration 0", [_fmt(mats[n].get("zero_duration_rows")) for n in names])
    row("first date", [mats[n]["date_min"] or "-" for n in names])
    row("last date", [mats[n]["date_max"] or "-" for n in names])
    lines += ["", *_cleaning_lines(summary)]
    return "\n".join(lines)


def _cleaning_lines(summary: dict[str, Any]) -> list[str]:
    dropped = summary.get("side_ids_dropped") or {}
    lines = [
        f"cold test users (small, not in big): {summary['cold_test_users']:,}",
        f"cold test videos (small, not in big): {summary['cold_test_items']:,}",
        "missing side files: " + (", ".join(summary["missing_files"]) or "none"),
        "side-file rows dropped (ids not in the matrices): "
        + (", ".join(f"{k} {v:,}" for k, v in dropped.items() if v) or "none"),
    ]
    if summary.get("basis") == "pairs":
        lines.append("note: computed from per-pair aggregates (no cached row-level log)")
    lines += [f"note: {n}" for n in summary.get("notes", [])]
    return lines
