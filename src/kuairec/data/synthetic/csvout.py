"""CSV output: schema-ordered frames written atomically, big files appended chunk by chunk."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from kuairec.atomic import temp_path
from kuairec.data.schema import FileSpec
from kuairec.data.synthetic.world import N_DAYS

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

BEIJING_MS = 8 * 3_600_000
FIRST_DAY = dt.date(2020, 7, 5)


def day_dates(first: dt.date = FIRST_DAY, n: int = N_DAYS) -> np.ndarray:
    """yyyymmdd ints of ``n`` consecutive days from ``first``."""
    days = [first + dt.timedelta(days=i) for i in range(n)]
    return np.array([d.year * 10_000 + d.month * 100 + d.day for d in days], dtype=np.int64)


class AppendCsv:
    """One CSV file written as a header plus appended frames (see :func:`open_csv`)."""

    def __init__(self, fh: IO[bytes], spec: FileSpec) -> None:
        self._fh = fh
        self._spec = spec
        self.rows = 0
        fh.write((",".join(spec.header) + "\n").encode("utf-8"))

    def write(self, frame: pl.DataFrame) -> None:
        if frame.columns != self._spec.header:
            raise ValueError(f"{self._spec.name}: columns {frame.columns} != schema header")
        if frame.height:
            frame.write_csv(self._fh, include_header=False)
            self.rows += frame.height


@contextlib.contextmanager
def open_csv(folder: Path, spec: FileSpec) -> Iterator[AppendCsv]:
    """Write ``folder / spec.name`` through a temporary sibling, renamed on success."""
    with temp_path(folder / spec.name) as tmp:
        with open(tmp, "wb") as fh:
            yield AppendCsv(fh, spec)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; data files are shared


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_frame(folder: Path, spec: FileSpec, frame: pl.DataFrame) -> int:
    """Write a whole (small) file at once; returns its row count."""
    with open_csv(folder, spec) as out:
        out.write(frame.select(spec.header))
        return out.rows


def matrix_frame(cols: dict[str, np.ndarray], spec: FileSpec) -> pl.DataFrame:
    """big/small matrix rows in schema order; rows with ``no_time`` lose time/date/timestamp.

    ``time`` is the Beijing wall-clock time of ``timestamp``; ``date`` comes from
    ``date_day`` (equal to the day of ``time`` except for the few quirk rows).
    """
    import polars as pl

    ts = cols["timestamp_ms"]
    date = day_dates()[cols["date_day"]]
    frame = pl.DataFrame(
        {
            "user_id": cols["user_id"],
            "video_id": cols["video_id"],
            "play_duration": cols["play_duration"],
            "video_duration": cols["video_duration"],
            "time": pl.Series(ts + BEIJING_MS).cast(pl.Datetime("ms"))
            .dt.strftime("%Y-%m-%d %H:%M:%S%.3f"),
            "date": date,
            "timestamp": ts / 1_000.0,
            "watch_ratio": cols["watch_ratio"],
        }
    )  # fmt: skip
    no_time = cols.get("no_time")
    if no_time is not None:
        missing = pl.Series(no_time)
        frame = frame.with_columns(
            pl.when(missing).then(None).otherwise(pl.col("time")).alias("time"),
            pl.when(missing).then(None).otherwise(pl.col("date").cast(pl.Float64)).alias("date"),
            pl.when(missing).then(None).otherwise(pl.col("timestamp")).alias("timestamp"),
        )
    return frame.select(spec.header)
