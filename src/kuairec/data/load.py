"""Load a KuaiRec 2.0 data folder into a :class:`KuaiRecDataset`, through the cache.

Cold load: read the two matrices strictly (``validate.read_checked``), map ids, drop exact
duplicate rows, write the row-level logs to the cache entry, aggregate per pair, read the
side files, precompute the summary, and rename the entry into place. Warm load: open the
entry (:func:`kuairec.data.cache.open_entry`).

Only ``big_matrix.csv`` and ``small_matrix.csv`` are required; a missing side file is
logged once (logger ``kuairec.data``), listed in ``report.missing_files`` and its field
is None.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from kuairec import config
from kuairec.data import cache, schema
from kuairec.data.dataset import CleaningReport, KuaiRecDataset
from kuairec.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

log = logging.getLogger("kuairec.data")

#: The columns of :func:`read_log`, in order.
LOG_COLUMNS = (
    "user_idx",
    "item_idx",
    "play_duration",
    "video_duration",
    "date",
    "timestamp",
    "watch_ratio",
)


def resolve_folder(data_dir: Path | str) -> Path:
    """The folder holding the CSV files: ``data_dir`` itself, or its ``data/`` subfolder
    (the official archive unpacks to ``KuaiRec 2.0/data/``)."""
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise DataError("data folder does not exist", file=path)
    if not path.is_dir():
        raise DataError("expected a folder holding the KuaiRec CSV files, found a file", file=path)
    if not (path / schema.BIG.name).exists() and (path / "data" / schema.BIG.name).exists():
        return path / "data"
    return path


def locate_files(folder: Path) -> dict[str, Path | None]:
    """Each schema file's path (``schema.FILES`` and the synthetic truth), None if absent."""
    files: dict[str, Path | None] = {}
    for spec in (*schema.FILES, schema.TRUTH):
        path = folder / spec.name
        if spec.required and not path.is_file():
            raise DataError(
                f"required file {spec.name} is missing (the folder must hold big_matrix.csv "
                "and small_matrix.csv, as in the KuaiRec 2.0 archive's data/ folder)",
                file=path,
            )
        files[spec.key] = path if path.is_file() else None
    return files


def load_dataset(
    data_dir: Path | str,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    progress: Any = True,
) -> KuaiRecDataset:
    """Load, validate, clean and cache a KuaiRec data folder.

    ``cache_dir`` defaults to :func:`kuairec.config.cache_dir` (``$KUAIREC_CACHE``).
    ``use_cache=False`` parses the CSV files even if an entry exists (and refreshes it).
    Bad input raises :class:`~kuairec.errors.DataError` naming the file, line and column.
    """
    folder = resolve_folder(data_dir)
    files = locate_files(folder)
    root = Path(cache_dir).expanduser() if cache_dir is not None else config.cache_dir()
    key = cache.source_key(files)
    if use_cache:
        ds = cache.open_entry(root, key, folder)
        if ds is not None:
            return ds
    from kuairec.display.progress import using

    with using(progress) as display:
        say = _Steps(display)
        workdir = cache.begin(root, key)
        try:
            ds, summary = build(folder, files, workdir, say)
            ds.source_checksum = key
            summary["source_checksum"] = key
            say("writing the cache")
            cache.save(workdir, ds, summary, files)
            ds.cache_path = cache.commit(workdir, root, key, folder)
        except BaseException:
            cache.abort(workdir)
            raise
        say("done")
    return ds


def read_log(ds: KuaiRecDataset, which: Literal["big", "small"] = "big") -> pl.DataFrame:
    """The deduplicated row-level log of one matrix, read from the cache entry.

    Columns: user_idx, item_idx (int32), play_duration, video_duration (int64), date
    (int32, yyyymmdd), timestamp (float64 unix seconds), watch_ratio (float64); date and
    timestamp are null on the small matrix's rows without time. Rows keep the file order.
    """
    import polars as pl

    if which not in ("big", "small"):
        raise ValueError(f"which must be 'big' or 'small', got {which!r}")
    if ds.cache_path is None:
        raise DataError(
            "this dataset has no row-level log: only datasets from load_dataset() keep one "
            "(in the cache)"
        )
    path = Path(ds.cache_path) / f"log_{which}.arrow"
    if not path.is_file():
        raise DataError("the cached log is missing; load the dataset again", file=path)
    try:
        return pl.read_ipc(path)
    except (OSError, pl.exceptions.PolarsError) as exc:  # damaged since it was opened
        import shutil

        shutil.rmtree(ds.cache_path, ignore_errors=True)  # the next load rebuilds it
        raise DataError(
            f"the cached log is damaged ({type(exc).__name__}); the cache entry was removed: "
            "load the dataset again to rebuild it",
            file=path,
        ) from None


class _Steps:
    """Step messages, with the seconds since loading began, in the one progress display."""

    def __init__(self, display: Any) -> None:
        self.display = display
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        self.display.note(f"[{time.perf_counter() - self.t0:6.1f}s] loading: {message}")


def build(
    folder: Path, files: dict[str, Path | None], workdir: Path, say: Any = None
) -> tuple[KuaiRecDataset, dict[str, Any]]:
    """Parse and clean every file of ``folder`` into a dataset; logs go to ``workdir``.

    One thread reads the side files and maps their ids while the matrices are cleaned.
    The matrices are processed one after the other, which bounds the peak memory."""
    from kuairec.data import describe, matrices

    say = say or (lambda message: None)
    report = CleaningReport()
    frames, users, items = _read_matrices(files, report, say)
    durations = matrices.DurationStats(len(items.map))
    logs = {which: workdir / f"log_{which}.arrow" for which in ("big", "small")}
    say("cleaning and aggregating the matrices; reading the side files")
    with ThreadPoolExecutor(max_workers=1) as pool:  # polars and numpy release the GIL
        side_files = pool.submit(_side_files, folder, files, users, items, report)
        built = {}
        for which in ("small", "big"):
            if side_files.done():
                side_files.result()  # a bad side file: fail now, not after the big matrix
            built[which] = matrices.process_matrix(
                frames.pop(which), users, items, logs[which], durations
            )
        side = side_files.result()
    _count_cleaning(report, built)
    ds = KuaiRecDataset(
        users=users.map,
        items=items.map,
        big=built["big"].interactions,
        small=built["small"].interactions,
        video_duration=durations.medians(workdir),
        report=report,
        source=folder,
        **side,
    )
    summary = describe.dataset_summary(
        source=str(folder),
        checksum="",
        n_users=ds.n_users,
        n_items=ds.n_items,
        matrices={k: r.summary for k, r in built.items()},
        report=report,
    )
    return ds, summary


def _read_matrices(
    files: dict[str, Path | None], report: CleaningReport, say: Any
) -> tuple[dict[str, Any], Any, Any]:
    """The two matrices' columns (strictly read) and their id indexes (users, items)."""
    from kuairec.data import matrices

    say(f"reading {schema.BIG.name}")
    frames = {"big": matrices.read_matrix(files["big"], schema.BIG)}
    say(f"reading {schema.SMALL.name}")
    frames["small"] = matrices.read_matrix(files["small"], schema.SMALL)
    report.rows_read = {k: int(f["watch_ratio"].size) for k, f in frames.items()}
    users = matrices.IdIndex(*(f["user_id"].unique() for f in frames.values()), name="user_id")
    items = matrices.IdIndex(*(f["video_id"].unique() for f in frames.values()), name="video_id")
    return frames, users, items


def _count_cleaning(report: CleaningReport, built: dict[str, Any]) -> None:
    big, small = built["big"], built["small"]
    report.duplicates_dropped = big.duplicates
    if small.duplicates:
        report.notes.append(f"small_matrix.csv: {small.duplicates} exact duplicate rows dropped")
    report.small_rows_without_time = small.rows_without_time
    for which, r in built.items():
        if r.zero_durations:
            report.notes.append(
                f"{schema.FILES_BY_KEY[which].name}: {r.zero_durations} rows with "
                "video_duration 0 (unknown duration: left out of the per-video duration, "
                "and out of the duration label's buckets when a video has no other)"
            )
    report.cold_test_users = int(np.count_nonzero(small.users_seen & ~big.users_seen))
    report.cold_test_items = int(np.count_nonzero(small.items_seen & ~big.items_seen))


def _side_files(
    folder: Path,
    files: dict[str, Path | None],
    users: Any,
    items: Any,
    report: CleaningReport,
) -> dict[str, Any]:
    """The side files' dataset fields, each file read and built in turn (in a thread,
    while the matrices are processed). Reading them during the matrices' parse gained no
    time (the parse keeps both cores busy) and held every parsed frame at once."""
    from kuairec.data import side

    out: dict[str, Any] = {}
    for key, spec in side.SIDE_FILES.items():
        path = files.get(key)
        if path is None:
            if key in schema.FILES_BY_KEY:  # a KuaiRec file (the synthetic truth is extra)
                name = schema.FILES_BY_KEY[key].name
                report.missing_files.append(name)
                log.warning("%s not found in %s: dataset.%s will be None", name, folder, spec.field)
            out[spec.field] = None
            continue
        parsed = spec.read(path, report)
        ids = (users, items) if spec.index else (users.map, items.map)
        out[spec.field] = spec.build(parsed, *ids, report)
        del parsed
    return out
