"""Property: a random valid own log, written in every format ``read_own_log`` accepts,
loads to the same interactions from each of them.

One log (random users and videos as integers, 64-bit hashes or text; random times in
milliseconds, some rows without one; random watch ratios) is written as: CSV with unix
seconds, milliseconds and microseconds; CSV with ISO 8601 date-times (UTC, in a random
offset, or naive and offset ones mixed); ids written as ``202.0``; CRLF line ends and a
UTF-8 byte-order mark; gzip-compressed CSV; Parquet with integer milliseconds; Parquet
with a date-time column. Every file must give the same id maps, the same row indices,
the same timestamps (to the microsecond) and the same watch ratios as the plain CSV in
seconds.
"""

from __future__ import annotations

import datetime as dt
import gzip
import tempfile
from pathlib import Path

import _fuzz
import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kuairec.data.own_log import read_own_log

pytestmark = pytest.mark.fuzz

HEADER = "user_id,video_id,timestamp,watch_ratio"
MS_LOW, MS_HIGH = 100_000_000_000, 4_000_000_000_000  # 1973-03-03 .. 2096-10-02
TEXT_ID = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-0123456789", min_size=1, max_size=12)
ID_KINDS = {
    "int": st.integers(0, 2**63 - 1).map(str),
    "small": st.integers(0, 40).map(str),
    "hash": st.integers(2**63, 2**64 - 1).map(str),
    "text": TEXT_ID.filter(lambda s: not s.isdigit()),
}


@st.composite
def logs(draw: st.DrawFn) -> dict[str, list]:
    n = draw(st.integers(1, 40), label="rows")
    kinds = [draw(st.sampled_from(sorted(ID_KINDS)), label=f"{c} kind") for c in ("u", "v")]
    pools = [draw(st.lists(ID_KINDS[k], min_size=1, max_size=8, unique=True)) for k in kinds]
    pick = [st.sampled_from(pool) for pool in pools]
    return {
        "user_id": draw(st.lists(pick[0], min_size=n, max_size=n)),
        "video_id": draw(st.lists(pick[1], min_size=n, max_size=n)),
        "ms": draw(st.lists(st.none() | st.integers(MS_LOW, MS_HIGH), min_size=n, max_size=n)),
        "ratio": draw(
            st.lists(
                st.floats(0, 100, allow_nan=False).map(lambda x: round(x, 4)),
                min_size=n,
                max_size=n,
            )
        ),  # fmt: skip
        "offset_minutes": draw(st.integers(-12 * 60, 14 * 60).map(lambda m: m - m % 15)),
    }


def _csv(log: dict, when, ids=lambda v: v, newline: str = "\n", bom: str = "") -> bytes:
    rows = [HEADER] + [
        f"{ids(u)},{ids(v)},{'' if ms is None else when(ms)},{r!r}"
        for u, v, ms, r in zip(log["user_id"], log["video_id"], log["ms"], log["ratio"],
                               strict=True)
    ]  # fmt: skip
    return (bom + newline.join(rows) + newline).encode()


def _iso(offset_minutes: int):
    zone = dt.timezone(dt.timedelta(minutes=offset_minutes))

    def write(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, zone).isoformat(timespec="milliseconds")

    return write


def _iso_mixed(offset_minutes: int):
    """Naive UTC date-times without fractions beside offset ones with milliseconds: no one
    format fits every row."""
    aware = _iso(offset_minutes)

    def write(ms: int) -> str:
        if ms % 1000 == 0 or ms % 2:
            when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).replace(tzinfo=None)
            return when.isoformat(sep=" ", timespec="milliseconds" if ms % 1000 else "seconds")
        return aware(ms)

    return write


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


def _dotted(value: str) -> str:
    return value + ".0" if value.isdigit() else value


def _frame(log: dict) -> pl.DataFrame:
    return pl.DataFrame(
        {"user_id": log["user_id"], "video_id": log["video_id"],
         "timestamp": pl.Series(log["ms"], dtype=pl.Int64), "watch_ratio": log["ratio"]}
    )  # fmt: skip


def _files(log: dict, folder: Path) -> dict[str, Path]:
    texts = {
        "seconds.csv": _csv(log, _seconds),
        "milliseconds.csv": _csv(log, str),
        "microseconds.csv": _csv(log, lambda ms: str(ms * 1000)),
        "iso_utc.csv": _csv(log, _iso(0)),
        "iso_offset.csv": _csv(log, _iso(log["offset_minutes"])),
        "iso_mixed.csv": _csv(log, _iso_mixed(log["offset_minutes"])),
        "ids_dotted.csv": _csv(log, _seconds, ids=_dotted),
        "crlf_bom.csv": _csv(log, _seconds, newline="\r\n", bom="\ufeff"),
        "gzip.csv.gz": gzip.compress(_csv(log, str)),
    }
    out = {}
    for name, data in texts.items():
        out[name] = folder / name
        out[name].write_bytes(data)
    frame = _frame(log)
    frame.write_parquet(folder / "ms.parquet")
    frame.with_columns(pl.from_epoch("timestamp", time_unit="ms")).write_parquet(folder / "dt.pq")
    out["ms.parquet"], out["datetime.parquet"] = folder / "ms.parquet", folder / "dt.pq"
    return out


def _dotted_is_integer(values: list[str]) -> bool:
    """Ids written as 202.0 are integers only where every id of the column is one."""
    return all(v.isdigit() for v in values)


@_fuzz.fuzz_settings(40)
@given(log=logs())
def test_every_format_loads_to_the_same_interactions(log: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = _files(log, Path(tmp))
        base = read_own_log(files.pop("seconds.csv"))
        expected_ms = np.array([np.nan if ms is None else ms for ms in log["ms"]], dtype=float)
        np.testing.assert_allclose(base.timestamp * 1000, expected_ms, rtol=0, atol=1e-3)
        np.testing.assert_array_equal(base.watch_ratio, log["ratio"])
        for name, path in files.items():
            if name == "ids_dotted.csv" and not (
                _dotted_is_integer(log["user_id"]) and _dotted_is_integer(log["video_id"])
            ):
                continue  # "abc" beside "202.0": text ids, kept as written
            got = read_own_log(path)
            for field in ("user_idx", "item_idx", "watch_ratio"):
                np.testing.assert_array_equal(getattr(got, field), getattr(base, field), name)
            np.testing.assert_allclose(got.timestamp, base.timestamp, rtol=0, atol=1e-6,
                                       err_msg=name)  # fmt: skip
            for ids in ("users", "items"):
                assert getattr(got, ids).raw.tolist() == getattr(base, ids).raw.tolist(), name
        _fuzz.count("own log formats", f"{len(files) + 1} formats agree")
