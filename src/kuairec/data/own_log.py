"""People's own interaction logs, read as they come, with a note of what was understood.

``read_own_log(path)`` reads ``user_id, video_id, timestamp, watch_ratio`` (extra columns
are ignored) from:

- CSV text (UTF-8, LF or CRLF), plain or gzip-compressed (detected from the bytes, not
  the name), or a Parquet file;
- timestamps as unix seconds, milliseconds, microseconds or nanoseconds (the unit is
  detected from the values' magnitude: one unit per column), ISO 8601 date-times
  (``2020-07-05 00:08:23``, ``2020-07-05T00:08:23.438+08:00``, ``1997-09-20``; without an
  offset they are read as UTC), or a Parquet date-time column. Any date is accepted:
  the window is the data's own. An empty timestamp is allowed: that row counts as the
  oldest of its user's rows (:func:`kuairec.evaluation.protocols.temporal_protocol`);
- ids as integers (``202``, and ``202.0`` read as 202), unsigned 64-bit hashes
  (``18446744073709500202``) or text (``u_17``): a column whose ids are not all 64-bit
  integers is read as text ids, and every output gives them back as written
  (:class:`kuairec.data.dataset.IdMap`).

``OwnLog.notes`` says, one line each, what was understood (the format, the timestamp
unit and span, how ids were read, rows without a timestamp); ``kuairec run`` writes
them into the run's notes. Anything else is one :class:`DataError` naming the file, the
line (CSV) or row (Parquet) and the column.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kuairec.data.dataset import IdMap
from kuairec.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

COLUMNS = ("user_id", "video_id", "timestamp", "watch_ratio")
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
#: unix time units by magnitude: the largest |value| each unit reaches before the year 5138
UNITS = (("seconds", 1.0, 1e11), ("milliseconds", 1e3, 1e14), ("microseconds", 1e6, 1e17),
         ("nanoseconds", 1e9, 1e20))  # fmt: skip
_INTEGER = re.compile(r"^[+-]?[0-9]+(\.0*)?$")
_NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")


@dataclass(frozen=True)
class OwnLog:
    """A row-level log in index space (one entry per row, in file order) and its id maps."""

    users: IdMap
    items: IdMap
    user_idx: np.ndarray  # int64
    item_idx: np.ndarray  # int64
    timestamp: np.ndarray  # float64 unix seconds, NaN = none
    watch_ratio: np.ndarray  # float64
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Source:
    """Where messages point: the file, and how a row is numbered in it."""

    path: Path
    csv: bool  # CSV: "line N" (the header is line 1); Parquet: "row N" (1-based)

    def error(self, message: str, row: int | None = None, column: str | None = None) -> DataError:
        if row is None or self.csv:
            return DataError(message, file=self.path, row=None if row is None else row + 2,
                             column=column)  # fmt: skip
        where = f"row {row + 1}" + (f", column {column!r}" if column else "")
        return DataError(f"{where}: {message}", file=self.path)


def read_own_log(path: str | Path) -> OwnLog:
    """Read a user's log; see the module docstring for what is accepted."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file does not exist" if not path.exists() else "not a file", file=path)
    frame, source, notes = _read_frame(path)
    frame = frame.rename({c: c.strip().lstrip("\ufeff").strip() for c in frame.columns})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"missing column(s) {missing}: expected a header with {','.join(COLUMNS)}, "
            f"found {frame.columns}",
            file=path,
        )
    if frame.height == 0:
        raise DataError("no data rows", file=path)
    users, user_idx = _ids(frame["user_id"], "user_id", source, notes)
    items, item_idx = _ids(frame["video_id"], "video_id", source, notes)
    ratio = _watch_ratio(frame["watch_ratio"], source)
    timestamp = _timestamps(frame["timestamp"], source, notes)
    return OwnLog(users, items, user_idx, item_idx, timestamp, ratio, notes)


# ---------------------------------------------------------------------- the file
def _read_frame(path: Path) -> tuple[pl.DataFrame, _Source, list[str]]:
    """The file's table (CSV: every column as text; Parquet: as typed) and its format."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if head.startswith(PARQUET_MAGIC):
        return _read_parquet(path), _Source(path, csv=False), [f"{path.name}: a Parquet file"]
    if head.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(path.read_bytes())
        except (OSError, EOFError) as exc:
            raise DataError(f"a damaged gzip file ({exc})", file=path) from None
        note = f"{path.name}: gzip-compressed CSV ({len(data):,} bytes of text)"
        return _read_csv(path, data), _Source(path, csv=True), [note]
    return _read_csv(path, None), _Source(path, csv=True), []


def _read_csv(path: Path, data: bytes | None) -> pl.DataFrame:
    import io

    import polars as pl

    from kuairec.data.validate import first_invalid_utf8_line, sniff

    head = data[: 1 << 16] if data is not None else open(path, "rb").read(1 << 16)  # noqa: SIM115
    sniff(path, head)  # compressed (other than gzip), UTF-16, binary, CR-only: named
    try:
        return pl.read_csv(io.BytesIO(data) if data is not None else path, infer_schema=False)
    except Exception as exc:  # polars raises several types for unreadable files
        if data is None:
            line = first_invalid_utf8_line(path)
            if line is not None:
                raise DataError("invalid UTF-8: expected UTF-8 text", file=path, row=line) from None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"cannot read as CSV: {first}", file=path) from None


def _read_parquet(path: Path) -> pl.DataFrame:
    import polars as pl

    try:
        names = pl.read_parquet_schema(path)
        keep = [c for c in names if c.strip().lstrip("\ufeff").strip() in COLUMNS]
        return pl.read_parquet(path, columns=keep or None)
    except Exception as exc:  # a damaged Parquet file: polars raises several types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"cannot read as Parquet: {first}", file=path) from None


# ---------------------------------------------------------------------- columns
def _text(col: pl.Series) -> pl.Series:
    import polars as pl

    return col.cast(pl.String).str.strip_chars()


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _ids(col: pl.Series, name: str, src: _Source, notes: list[str]) -> tuple[IdMap, np.ndarray]:
    """One id column as an IdMap and every row's index: integers when every id is a
    64-bit integer (``202.0`` counts as 202), unsigned 64-bit when some exceed int64,
    else text as written."""
    import polars as pl

    text = _text(col)
    empty = (text.is_null() | (text == "")).to_numpy()
    if empty.any():
        raise src.error("expected an id, found a missing value", _first(empty), name)
    integer = text.str.contains(_INTEGER.pattern).to_numpy()
    if integer.all():
        whole = text.str.replace(r"\.0*$", "")
        for dtype, kind in ((pl.Int64, None), (pl.UInt64, "unsigned 64-bit integers")):
            values = whole.cast(dtype, strict=False)
            if values.null_count() == 0:
                _note_integers(text, whole, name, kind, notes)
                return _mapped(values.to_numpy(), name)
        example = whole.filter(whole.cast(pl.UInt64, strict=False).is_null())[0]
    elif text.str.contains(_NUMBER.pattern).all():  # numbers, some fractional: not ids
        row = _first(~integer)
        raise src.error(
            f"expected an integer or text id, found {text[row]!r} (a fraction: is this the "
            "right column?)",
            row, name,
        )  # fmt: skip
    else:
        example = text[_first(~integer)]
    notes.append(f"{name}: read as text ids (e.g. {example!r}); outputs give them back as written")
    return _mapped(text.to_numpy().astype(str), name)


def _note_integers(
    text: pl.Series, whole: pl.Series, name: str, kind: str | None, notes: list[str]
) -> None:
    dotted = text.filter(text.str.contains(r"[.]"))
    if dotted.len():
        notes.append(f"{name}: ids written like {dotted[0]} are read as integers")
    if kind is not None:
        import polars as pl

        big = whole.filter(whole.cast(pl.Int64, strict=False).is_null())[0]
        notes.append(f"{name}: ids beyond 2^63 - 1 (e.g. {big}) are read as {kind}")


def _mapped(raw: np.ndarray, name: str) -> tuple[IdMap, np.ndarray]:
    uniq, inverse = np.unique(raw, return_inverse=True)
    return IdMap(uniq, name=name), inverse.astype(np.int64).ravel()


def _numbers(col: pl.Series, name: str, src: _Source, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A numeric column as float64 and its missing values (null or empty text; NaN for
    them in the values). NaN or infinite values that are present are refused."""
    import polars as pl

    if col.dtype.is_numeric():
        missing = col.is_null().to_numpy()
        values = col.cast(pl.Float64).to_numpy().astype(np.float64)
        shown = col
    else:
        text = _text(col)
        missing = (text.is_null() | (text == "")).to_numpy()
        parsed = text.cast(pl.Float64, strict=False)
        unparsed = parsed.is_null().to_numpy() & ~missing
        if unparsed.any():
            row = _first(unparsed)
            raise src.error(f"expected {what}, found {text[row]!r}", row, name)
        values = parsed.to_numpy().astype(np.float64)
        shown = text
    bad = ~missing & ~np.isfinite(values)
    if bad.any():
        row = _first(bad)
        raise src.error(f"expected {what}, found {shown[row]!r}", row, name)
    values[missing] = np.nan
    return values, missing


def _watch_ratio(col: pl.Series, src: _Source) -> np.ndarray:
    from kuairec.data.schema import RANGES

    what = "a finite number >= 0"
    values, missing = _numbers(col, "watch_ratio", src, what)
    if missing.any():
        raise src.error(f"expected {what}, found a missing value", _first(missing), "watch_ratio")
    bounds = RANGES["watch_ratio"]
    row = bounds.first_violation(values)
    if row is not None:
        raise src.error(f"expected {bounds.describe()}, found {col[row]!r}", row, "watch_ratio")
    return values


def _timestamps(col: pl.Series, src: _Source, notes: list[str]) -> np.ndarray:
    """Unix seconds (float64, NaN where the row has none) and a note of what was read."""
    import polars as pl

    if col.dtype.is_temporal():
        if col.dtype not in (pl.Date,) and not isinstance(col.dtype, pl.Datetime):
            raise src.error(f"expected a date-time column, found {col.dtype}", None, "timestamp")
        seconds, how = _datetime_seconds(col), f"a Parquet {col.dtype} column (naive: UTC)"
    elif col.dtype.is_numeric() or _all_numbers(_text(col)):
        seconds, how = _unix_seconds(col, src)
    else:
        how = "ISO 8601 date-times (UTC unless an offset is given)"
        seconds = _iso_seconds(_text(col), src)
    _note_span(seconds, how, notes)
    return seconds


def _all_numbers(text: pl.Series) -> bool:
    present = text.filter(text.is_not_null() & (text != ""))
    return bool(present.str.contains(r"^[+-]?([0-9.]|[eE][+-]?|nan|NaN|inf|Inf)+$").all())


def _unix_seconds(col: pl.Series, src: _Source) -> tuple[np.ndarray, str]:
    """Numeric unix times in one unit: the unit most values' magnitude says (0 fits any);
    a value of another magnitude is refused, naming its row."""
    what = "a unix time (seconds, milliseconds, microseconds or nanoseconds since 1970)"
    values, missing = _numbers(col, "timestamp", src, what)
    present = ~missing
    tops = np.array([unit[2] for unit in UNITS])
    unit_of = np.searchsorted(tops, np.abs(np.where(present, values, 0.0)), side="right")
    too_large = present & (unit_of >= len(UNITS))
    if too_large.any():
        row = _first(too_large)
        raise src.error(
            f"expected {what}, found {col[row]!r} (too large for any unit)", row, "timestamp"
        )
    counted = present & (values != 0)
    votes = np.bincount(unit_of[counted], minlength=len(UNITS))
    name, factor, _ = UNITS[int(votes.argmax())]
    other = counted & (unit_of != votes.argmax())
    if other.any():
        row = _first(other)
        raise src.error(
            f"found {col[row]!r}, a unix time in another unit than the column's {name} "
            f"({int(votes.max()):,} of {int(counted.sum()):,} values): expected one unit per "
            "column",
            row,
            "timestamp",
        )
    return values / factor, f"unix {name}" + (", converted to seconds" if factor != 1 else "")


def _iso_seconds(text: pl.Series, src: _Source) -> np.ndarray:
    """ISO 8601 date-times as unix seconds: polars parses the format of the first value,
    Python's ``datetime.fromisoformat`` the rest (mixed formats, offsets)."""
    import datetime as dt

    present = (text.is_not_null() & (text != "")).to_numpy()
    parsed = text.str.to_datetime(time_zone="UTC", strict=False, time_unit="us")
    seconds = _datetime_seconds(parsed)
    left = np.flatnonzero(present & np.isnan(seconds))
    for value in text.gather(left).unique(maintain_order=True).to_list() if left.size else []:
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            row = int(left[(text.gather(left) == value).arg_true()[0]])
            raise src.error(
                "expected a unix time or an ISO 8601 date-time such as 2020-07-05 00:08:23, "
                f"found {value!r}",
                row, "timestamp",
            ) from None  # fmt: skip
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        rows = left[(text.gather(left) == value).to_numpy()]
        seconds[rows] = when.timestamp()
    return seconds


def _datetime_seconds(col: pl.Series) -> np.ndarray:
    """A polars date or date-time column as unix seconds (naive: UTC); null -> NaN."""
    import polars as pl

    if col.dtype == pl.Date:
        return col.cast(pl.Int64).cast(pl.Float64).to_numpy().astype(np.float64) * 86_400.0
    us = col.dt.epoch("us").cast(pl.Float64)
    return us.to_numpy().astype(np.float64) / 1e6


def _note_span(seconds: np.ndarray, how: str, notes: list[str]) -> None:
    import datetime as dt

    present = ~np.isnan(seconds)
    missing = int((~present).sum())
    if present.any():
        lo, hi = (dt.datetime.fromtimestamp(float(f(seconds[present])), dt.UTC)
                  for f in (np.min, np.max))  # fmt: skip
        notes.append(f"timestamp: {how}, from {lo:%Y-%m-%d %H:%M} to {hi:%Y-%m-%d %H:%M} UTC")
    if missing:
        notes.append(
            f"timestamp: {missing:,} of {seconds.size:,} rows have none; each counts as the "
            "oldest of its user's rows (training, never test)"
        )


def looks_like_own_log(path: Path) -> bool:
    """Whether ``path`` is a file this module would read, judged from its first bytes and
    column names only (CSV header, gzip-compressed header, Parquet schema): a saved run's
    config.json must not make kuairec read, or quote, any other file."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
        if head.startswith(PARQUET_MAGIC):
            import polars as pl

            names = list(pl.read_parquet_schema(path))
        else:
            if head.startswith(GZIP_MAGIC):
                with gzip.open(path, "rb") as gz:
                    head = gz.read(1 << 16)
            first = head.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")
            names = first.strip().split(",")
    except Exception:  # noqa: BLE001 - unreadable: not a log
        return False
    return set(COLUMNS) <= {n.strip().strip('"').lstrip("\ufeff") for n in names}
