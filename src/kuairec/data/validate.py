"""Read one KuaiRec CSV file strictly: header, types, missing values, ranges.

The happy path is a single typed ``polars.read_csv`` (explicit schema, no date parsing).
Only when that fails, or a check finds a bad value, do we rescan the file to build a
precise message: file, 1-based line number (the header is line 1), column, value.

Line numbers assume no quoted newlines, which holds for every file but the caption file
(read by :func:`kuairec.data.side.read_captions`, leniently).
"""

from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kuairec.data.schema import (
    DATE_SLACK_DAYS,
    TIME_PATTERN,
    Bounds,
    Column,
    FileSpec,
    first_date_mismatch,
)
from kuairec.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

HEADER_LINE = 1
_FIRST_DATA_LINE = 2
_LINE_SEPARATOR = "\x1f"  # a byte no KuaiRec file holds: reads each line as one field
LIST_PATTERN = r"^\s*\[\s*(?:-?\d+\s*(?:,\s*-?\d+\s*)*)?\]\s*$"


def polars_dtype(column: Column) -> pl.DataType:
    import polars as pl

    return {"int": pl.Int64, "float": pl.Float64, "str": pl.String, "list": pl.String}[
        column.kind
    ]()


_SIGNATURES = (  # leading bytes -> what the file is
    (b"\x1f\x8b", "a gzip-compressed file: expected plain CSV text (gunzip it first)"),
    (b"PK\x03\x04", "a zip archive: expected plain CSV text (unzip it first)"),
    (b"BZh", "a bzip2-compressed file: expected plain CSV text (bunzip2 it first)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file: expected plain CSV text (unxz it first)"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file: expected plain CSV text (unzstd it first)"),
    (b"\xff\xfe", "UTF-16 text: expected UTF-8 CSV text (re-save it as UTF-8)"),
    (b"\xfe\xff", "UTF-16 text: expected UTF-8 CSV text (re-save it as UTF-8)"),
)


def sniff(path: Path, head: bytes) -> None:
    """Refuse what is not UTF-8 CSV text with LF or CRLF line ends, from the file's first
    bytes: compressed files, UTF-16, binary data (NUL bytes), CR-only line ends and
    invalid UTF-8 in the header line. One :class:`DataError` naming the file."""
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            raise DataError(f"this is {what}", file=path)
    if b"\x00" in head:
        raise DataError(
            "the file holds NUL bytes (binary data, or UTF-16 text): expected UTF-8 CSV text",
            file=path,
        )
    first = head.split(b"\n", 1)[0]
    cr = first.find(b"\r")
    if 0 <= cr < len(first) - 1:  # a CR inside the first line: CR-only line ends
        raise DataError(
            "the file's lines end with CR only (old Mac style): expected LF or CRLF line ends",
            file=path,
            row=HEADER_LINE,
        )
    if b"\n" in head or len(head) < (1 << 16):  # a complete first line: check its bytes
        _check_utf8(path, first, HEADER_LINE)


def _check_utf8(path: Path, line: bytes, row: int) -> None:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"invalid UTF-8 (byte 0x{line[exc.start]:02x} at byte {exc.start + 1} of the "
            "line): expected UTF-8 text (the file may be in another encoding, e.g. GBK or "
            "Latin-1)",
            file=path,
            row=row,
        ) from None


def first_invalid_utf8_line(path: Path) -> int | None:
    """1-based line number of the first line that is not valid UTF-8 (streaming)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                # the decoder keeps no state across a failed call: find the line in `chunk`
                cut = chunk[: max(exc.start, 0)]
                return line + cut.count(b"\n")
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return line
    return None


def read_header(path: Path) -> list[str]:
    """The header line's column names; an empty file, or one that is not UTF-8 CSV text
    (:func:`sniff`), is a :class:`DataError`."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    sniff(path, head)
    first = head.split(b"\n", 1)[0]
    text = first.decode("utf-8", errors="replace").lstrip("\ufeff").strip("\r\n")
    if not text.strip():
        raise DataError("empty file: expected a header line", file=path)
    return next(csv.reader(io.StringIO(text)))


def check_header(path: Path, spec: FileSpec) -> None:
    """The header must name exactly ``spec``'s columns, in order, without spaces around
    them (``user_id, video_id`` is refused with exactly that message: polars would read
    the values after such commas as text)."""
    check_header_names(path, spec, read_header(path))


def check_header_names(path: Path | str, spec: FileSpec, raw: list[str]) -> None:
    """:func:`check_header`'s rule on the header's fields ``raw`` (already read: the
    Spark engine reads the first line with Spark)."""
    found = [name.strip() for name in raw]
    expected = spec.header
    if found == expected:
        spaced = next((name for name in raw if name != name.strip()), None)
        if spaced is not None:
            raise DataError(
                f"the header has spaces around a column name ({spaced!r}): expected "
                f"{','.join(expected)} with no spaces after the commas",
                file=path,
                row=HEADER_LINE,
                column=spaced.strip(),
            )
        return
    for pos, name in enumerate(expected):
        got = found[pos] if pos < len(found) else None
        if got != name:
            what = f"found {got!r}" if got is not None else "found no such column"
            if got is not None and got not in expected and name not in found:
                what += " (misspelt or renamed?)"
            elif name not in found:
                what = f"the column is missing ({what})"
            raise DataError(
                f"header column {pos + 1} should be {name!r}, {what}; "
                f"expected header: {','.join(expected)}",
                file=path,
                row=HEADER_LINE,
                column=name,
            )
    extra = found[len(expected)]
    raise DataError(
        f"unexpected extra header column {extra!r} (expected {len(expected)} columns: "
        f"{','.join(expected)})",
        file=path,
        row=HEADER_LINE,
        column=extra,
    )


def read_checked(
    path: Path,
    spec: FileSpec,
    *,
    skip: tuple[str, ...] = (),
    require_rows: bool = False,
    compact: dict[str, pl.DataType] | None = None,
) -> pl.DataFrame:
    """Read ``path`` with ``spec``'s types and check every value.

    ``skip`` names columns not materialised (their header is still checked). ``compact``
    maps columns to narrower types tried first (int32 ids halve the memory); if a value
    does not fit, the file is read again with the schema's types. NaN in a nullable float
    column becomes null; anywhere else NaN, inf, a missing value, a value below the
    column's minimum or one that does not parse is a :class:`DataError`.
    """
    from concurrent.futures import ThreadPoolExecutor

    check_header(path, spec)
    keep = [c.name for c in spec.columns if c.name not in skip]
    # the byte count (for skipped columns) runs beside the parse: numpy releases the GIL
    # and the parse leaves part of the cores idle
    with ThreadPoolExecutor(max_workers=1) as pool:
        counting = pool.submit(_count_bytes, path, b",: ") if skip else None
        df = _parse(path, spec, keep, compact)
        if require_rows and df.height == 0:
            raise DataError("no data rows after the header", file=path)
        df = _check_columns(df, path, spec, keep)
        if counting is not None:
            counts = counting.result()
            if counts[","] != (len(spec.columns) - 1) * (df.height + 1):
                raise diagnose_parse(
                    path, spec, ValueError("a line has the wrong number of fields")
                )
            if "time" in skip:
                timed = df.height - df["timestamp"].null_count()
                _check_times(path, spec, counts, timed)
    return df


def _parse(
    path: Path, spec: FileSpec, keep: list[str], compact: dict[str, pl.DataType] | None
) -> pl.DataFrame:
    """One typed ``polars.read_csv`` (the compact types first, if any), trailing blank
    rows dropped; a parse failure becomes :func:`diagnose_parse`'s precise error."""
    import polars as pl

    schema = {c.name: polars_dtype(c) for c in spec.columns}
    attempts = [{**schema, **compact}, schema] if compact else [schema]
    for attempt, types in enumerate(attempts):
        try:
            df = pl.read_csv(
                path, schema=types, columns=keep, has_header=True, raise_if_empty=False
            )
            break
        except pl.exceptions.PolarsError as exc:
            if attempt == len(attempts) - 1:
                raise diagnose_parse(path, spec, exc) from None
    return _drop_trailing_blank_rows(df)


def _check_columns(df: pl.DataFrame, path: Path, spec: FileSpec, keep: list[str]) -> pl.DataFrame:
    """Missing values, NaN and inf, minimums and ranges of the ``keep`` columns (NaN in a
    nullable float column becomes null)."""
    for name in keep:
        column = spec.column(name)
        if not column.nullable and df[name].null_count():
            row = int(df[name].is_null().arg_true()[0])
            raise _missing_value_error(path, spec, row, name)
        if column.kind == "float":
            df = _check_float(df, path, column)
        if column.min_value is not None and column.kind in ("int", "float"):
            _check_min(df, path, column)
        if column.bounds is not None and column.kind in ("int", "float"):
            _check_bounds(df, path, column)
    if "date" in keep and "timestamp" in keep:
        _check_date_agrees(df, path)
    return df


def _count_bytes(path: Path, chars: bytes) -> dict[str, int]:
    """How many of each byte of ``chars`` the file holds (vectorised over a memory map).

    With skipped columns polars ignores extra fields on a line; in a file without quotes
    the comma count exposes them."""
    import mmap

    import numpy as np

    total = dict.fromkeys(chars.decode(), 0)
    if path.stat().st_size == 0:
        return total
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buf = np.frombuffer(mm, dtype=np.uint8)
        step = 1 << 24
        for start in range(0, buf.size, step):
            chunk = buf[start : start + step]
            for char in total:
                total[char] += int(np.count_nonzero(chunk == ord(char)))
        del buf, chunk
    return total


def _check_times(path: Path, spec: FileSpec, counts: dict[str, int], timed: int) -> None:
    """The ``time`` column, not materialised, checked cheaply: a matrix holds ':' and ' '
    only in its times (``yyyy-mm-dd hh:mm:ss``), so a valid file holds exactly two colons
    and one space per row with a timestamp; and the first and last 64 KiB of lines are
    matched in full. Any doubt: one streaming scan finds the first bad line."""
    import re

    pattern = re.compile(TIME_PATTERN)
    col = spec.header.index("time")
    suspect = counts[":"] != 2 * timed or counts[" "] != timed
    if not suspect:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
            size = fh.seek(0, 2)
            fh.seek(max(size - (1 << 16), len(head)))
            tail = fh.read()
        sample = head.split(b"\n")[1:-1] + tail.split(b"\n")[1:]
        for line in sample:
            fields = line.decode("utf-8", errors="replace").rstrip("\r").split(",")
            if len(fields) == len(spec.columns) and fields[col] and not pattern.match(fields[col]):
                suspect = True
                break
    if suspect:
        find_bad_time(path, spec)


def find_bad_time(path: Path, spec: FileSpec) -> None:
    """Raise a DataError at the first row whose ``time`` is malformed, or missing while
    the row has a timestamp (or present without one): one streaming scan."""
    import polars as pl

    scan = pl.scan_csv(
        path,
        schema={c.name: pl.String for c in spec.columns},
        has_header=True,
        raise_if_empty=False,
    )
    time, ts = pl.col("time"), pl.col("timestamp")
    malformed = time.is_not_null() & ~time.str.contains(TIME_PATTERN)
    bad = malformed | (time.is_null() != ts.is_null())
    got = scan.select(time, ts).with_row_index("_row").filter(bad).head(1).collect()
    if got.height:
        value = got["time"][0]
        found = "a missing value" if value is None else repr(value)
        raise DataError(
            f"expected a time like 2020-07-05 00:08:23.438 (yyyy-mm-dd hh:mm:ss), found {found}",
            file=path,
            row=int(got["_row"][0]) + _FIRST_DATA_LINE,
            column="time",
        )


def _drop_trailing_blank_rows(df: pl.DataFrame) -> pl.DataFrame:
    """Blank lines at the end of a file read as all-null rows: drop them."""
    import polars as pl

    if df.height == 0 or df.width == 0:
        return df
    n = 0
    while n < df.height and df.row(df.height - 1 - n) == (None,) * df.width:
        n += 1
        if n > 100:  # many blank lines: count them all at once
            blank = df.select(pl.all_horizontal(pl.all().is_null())).to_series()
            flags = blank.reverse().cast(pl.Int8).cum_min()
            n = int(flags.sum())
            break
    return df.head(df.height - n) if n else df


def _check_float(df: pl.DataFrame, path: Path, column: Column) -> pl.DataFrame:
    import polars as pl

    s = df[column.name]
    inf = s.is_infinite()
    if inf.any():
        row = int(inf.arg_true()[0])
        raise DataError(
            f"expected a finite number, found {s[row]!r}",
            file=path,
            row=row + _FIRST_DATA_LINE,
            column=column.name,
        )
    nan = s.is_nan()
    if not nan.any():
        return df
    if column.nullable:
        return df.with_columns(pl.col(column.name).fill_nan(None))
    row = int(nan.arg_true()[0])
    raise DataError(
        "expected a number, found NaN (NaN is only allowed in the small matrix's "
        "time columns, onehot_feat12..17 and the collect_* columns)",
        file=path,
        row=row + _FIRST_DATA_LINE,
        column=column.name,
    )


def _check_min(df: pl.DataFrame, path: Path, column: Column) -> None:
    s = df[column.name]
    low = s < column.min_value
    if low.any():
        row = int(low.arg_true()[0])
        what = "an id" if column.name.endswith("_id") else "a value"
        raise DataError(
            f"expected {what} >= {column.min_value:g}, found {s[row]!r}",
            file=path,
            row=row + _FIRST_DATA_LINE,
            column=column.name,
        )


def _check_bounds(df: pl.DataFrame, path: Path, column: Column) -> None:
    bounds = column.bounds
    assert bounds is not None
    s = df[column.name]
    if _bounds_hold(s, bounds):
        return
    values = s.to_numpy()  # no copy without nulls; nulls become NaN (never a violation)
    row = bounds.first_violation(values)
    if row is not None:
        raise DataError(
            f"expected {bounds.describe()}, found {s[row]!r}",
            file=path,
            row=row + _FIRST_DATA_LINE,
            column=column.name,
        )


_DISTINCT_MAX = 1 << 16  # a calendar column with more distinct values is checked row by row


def _bounds_hold(s: pl.Series, bounds: Bounds) -> bool:
    """Whether no value of ``s`` breaks ``bounds``, proved without a pass per rule over
    every row (a third of a full-size load's time went there): an interval holds when the
    column's min and max lie inside it; a calendar rule, a test of each value alone, is
    checked on the distinct values (a matrix holds a few dozen days). False means "not
    proved": the caller then finds the first bad row the slow way."""
    if bounds.calendar:
        distinct = s.unique()
        if distinct.len() > _DISTINCT_MAX:
            return False
        return bounds.first_violation(distinct.to_numpy()) is None
    low, high = s.min(), s.max()
    if low is None:  # every value missing: nothing to check here
        return True
    if low != low or high != high:  # NaN (never here after _check_float): no proof
        return False
    return bounds.first_violation(np.array([low, high], dtype=np.float64)) is None


def _check_date_agrees(df: pl.DataFrame, path: Path) -> None:
    """A row's ``date`` must be its ``timestamp``'s day, give or take the time zone
    (:func:`kuairec.data.schema.first_date_mismatch`); no window of years is imposed."""
    date, ts = df["date"], df["timestamp"]
    if _dates_agree_at_extremes(df):
        return
    row = first_date_mismatch(date.to_numpy(), ts.to_numpy())
    if row is not None:
        raise DataError(
            f"date {date[row]!r} is not the day of the row's timestamp {ts[row]!r} (more than "
            f"{DATE_SLACK_DAYS} days apart, whatever the time zone)",
            file=path,
            row=row + _FIRST_DATA_LINE,
            column="date",
        )


def _dates_agree_at_extremes(df: pl.DataFrame) -> bool:
    """Whether every row's date agrees with its timestamp, proved per distinct date from
    the earliest and latest timestamp on that date (a few dozen dates instead of every
    row: a second of a full-size load). For one date the rule holds on an interval of
    timestamps (the day of ``t``, ``floor(t / 86400)``, rises with ``t``), so it holds
    for every row iff it holds at both ends. False means "not proved": the caller then
    looks row by row."""
    import polars as pl

    ends = (
        df.lazy()
        .select("date", "timestamp")
        .drop_nulls()
        .group_by("date")
        .agg(pl.col("timestamp").min().alias("lo"), pl.col("timestamp").max().alias("hi"))
        .collect()
    )
    dates = ends["date"].to_numpy()
    return all(first_date_mismatch(dates, ends[end].to_numpy()) is None for end in ("lo", "hi"))


def read_line_bytes(path: Path, line: int) -> bytes:
    """Physical line ``line`` (1-based) of ``path`` as bytes (streaming; no decoding)."""
    with open(path, "rb") as fh:
        for number, text in enumerate(fh, 1):
            if number == line:
                return text.rstrip(b"\r\n")
    return b""


def read_line(path: Path, line: int) -> str | None:
    """Physical line ``line`` (1-based) of ``path``, without its end-of-line."""
    import polars as pl

    lines = pl.scan_csv(
        path,
        has_header=False,
        separator=_LINE_SEPARATOR,
        quote_char=None,
        schema={"line": pl.String},
    )
    got = lines.slice(line - 1, 1).collect()
    return got["line"][0] if got.height else None


def _missing_value_error(path: Path, spec: FileSpec, row: int, column: str) -> DataError:
    line = row + _FIRST_DATA_LINE
    text = read_line(path, line)
    if text is None or not text.strip():
        return DataError("blank line (expected a data row)", file=path, row=line)
    fields = next(csv.reader([text])) if text else []
    if len(fields) < len(spec.columns):
        return DataError(
            f"truncated row: expected {len(spec.columns)} fields, found {len(fields)}",
            file=path,
            row=line,
        )
    return DataError("missing value (empty field)", file=path, row=line, column=column)


def diagnose_parse(path: Path, spec: FileSpec, exc: Exception) -> DataError:
    """Find the first bad line after a strict parse failed; a precise DataError."""
    if "utf-8" in str(exc).lower() or "utf8" in str(exc).lower():
        line = first_invalid_utf8_line(path)
        if line is not None:
            text = read_line_bytes(path, line)
            _check_utf8(path, text, line)
    import polars as pl

    quote = _first_unbalanced_quote_line(path)
    if quote is not None:
        return DataError(
            'unbalanced double quote (a field opened with " is never closed): expected '
            'quotes in pairs, as in "[27, 9]"',
            file=path,
            row=quote,
        )
    try:
        bad = _first_ragged_line(path, spec)
        if bad is not None:
            line, n_fields = bad
            what = "truncated row" if n_fields < len(spec.columns) else "too many fields"
            return DataError(
                f"{what}: expected {len(spec.columns)} fields, found {n_fields}",
                file=path,
                row=line,
            )
        found = _first_unparsable_value(path, spec)
        if found is not None:
            return found
    except (pl.exceptions.PolarsError, csv.Error) as diagnosis:  # the scans failed too
        exc = diagnosis
    return DataError(f"cannot parse the file: {_first_line(exc)}", file=path)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _first_unbalanced_quote_line(path: Path) -> int | None:
    """1-based line of the first line with an odd number of double quotes (these files
    never hold a quoted line end), or None."""
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if line.count(b'"') % 2:
                return number
    return None


def _first_ragged_line(path: Path, spec: FileSpec) -> tuple[int, int] | None:
    """(line, number of fields) of the first data line with the wrong field count."""
    n = len(spec.columns)
    if all(c.kind in ("int", "float") or c.name == "time" for c in spec.columns):
        import polars as pl  # no quoted fields: count commas, vectorised and streaming

        lines = pl.scan_csv(
            path,
            has_header=False,
            separator=_LINE_SEPARATOR,
            quote_char=None,
            schema={"line": pl.String},
        ).with_row_index("lineno", offset=1)
        commas = pl.col("line").str.count_matches(",", literal=True)
        got = (
            lines.filter((pl.col("lineno") > 1) & pl.col("line").is_not_null() & (commas != n - 1))
            .head(1)
            .collect()
        )
        if got.height:
            return int(got["lineno"][0]), int(got["line"].str.count_matches(",")[0]) + 1
        return None
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        for fields in itertools.islice(reader, 1, None):
            if fields and len(fields) != n:
                return reader.line_num, len(fields)
    return None


def _first_unparsable_value(path: Path, spec: FileSpec) -> DataError | None:
    """The first value of a numeric column that does not parse (strings scan)."""
    import polars as pl

    numeric = [c for c in spec.columns if c.kind in ("int", "float")]
    if not numeric:
        return None
    scan = pl.scan_csv(path, infer_schema=False).with_row_index("_row")
    flags = [
        pl.col(c.name).is_not_null()
        & pl.col(c.name).str.strip_chars().cast(polars_dtype(c), strict=False).is_null()
        for c in numeric
    ]
    got = scan.filter(pl.any_horizontal(flags)).head(1).collect()
    if not got.height:
        return None
    row = int(got["_row"][0])
    for c in numeric:
        value = got[c.name][0]
        if value is None:  # missing values are checked elsewhere
            continue
        text = pl.Series([value], dtype=pl.String).str.strip_chars()
        if text.cast(polars_dtype(c), strict=False)[0] is None:
            kind = "an integer" if c.kind == "int" else "a number"
            return DataError(
                f"expected {kind}, found {value!r}",
                file=path,
                row=row + _FIRST_DATA_LINE,
                column=c.name,
            )
    return None  # pragma: no cover - the filter and the loop agree


def parse_int_lists(s: pl.Series, path: Path, column: str, *, min_value: int = 0) -> pl.Series:
    """Parse ``[8]`` / ``[27, 9]`` strings into ``list[int64]`` without eval.

    Vectorised: check the shape with one regex, strip the brackets, split on commas and
    cast. A malformed list or a value below ``min_value`` is a :class:`DataError`.
    """
    import polars as pl

    ok = s.str.contains(LIST_PATTERN).fill_null(False)
    if not ok.all():
        row = int((~ok).arg_true()[0])
        raise DataError(
            f"expected a list of integers like [1, 2], found {s[row]!r}",
            file=path,
            row=row + _FIRST_DATA_LINE,
            column=column,
        )
    lists = (
        s.str.strip_chars(" []")
        .str.split(",")
        .list.eval(pl.element().str.strip_chars().filter(pl.element().str.strip_chars() != ""))
        .list.eval(pl.element().cast(pl.Int64, strict=False))
    )
    overflow = lists.list.eval(pl.element().is_null()).list.any().fill_null(False)
    if overflow.any():
        row = int(overflow.arg_true()[0])
        raise DataError(
            f"expected integers of at most 19 digits (64-bit), found {s[row]!r}",
            file=path,
            row=row + _FIRST_DATA_LINE,
            column=column,
        )
    low = lists.list.min() < min_value
    if low.any():
        row = int(low.fill_null(False).arg_true()[0])
        raise DataError(
            f"expected ids >= {min_value}, found {s[row]!r}",
            file=path,
            row=row + _FIRST_DATA_LINE,
            column=column,
        )
    return lists
