"""Fuzz the loader: random damage to one CSV file at a time.

Every outcome must be either a successful load whose row counts and sums agree with an
independent parse of the same damaged file (Python's csv module, not polars), or one
one-line :class:`~kuairec.errors.KuaiRecError` naming the damaged file, leaving no cache
entry. Never another exception. Outcomes are counted (see docs/reliability.md).
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from pathlib import Path

import _fuzz
import _kuairec_fixtures as fx  # on sys.path through tests/conftest.py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kuairec.data import schema
from kuairec.data.load import load_dataset, read_log
from kuairec.errors import KuaiRecError

pytestmark = pytest.mark.fuzz

FILES = [*(spec.name for spec in schema.FILES), schema.TRUTH.name]
SPECS = {spec.name: spec for spec in (*schema.FILES, schema.TRUTH)}
KEYS = {spec.name: spec.key for spec in (*schema.FILES, schema.TRUTH)}

LIMITS = [
    "1e308", "-1e308", "1.7976931348623157e308", "1e309", "5e-324", "-0", "0", "0.0",
    "nan", "NaN", "inf", "-inf", "9223372036854775807", "9223372036854775808",
    "-9223372036854775809", "2147483647", "2147483648", "99999999", "20200230", "1e-5",
    "", " ", "\"\"", "[]", "[1,", "2020-07-05 00:08:23.438", "0x10", "1_000", "١٢",
]  # fmt: skip
CELL = st.one_of(
    st.sampled_from(LIMITS),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.text(alphabet=',"\n\r[] 0123456789.-e', max_size=8),
)


def _damage(data: st.DataObject, raw: bytes) -> tuple[str, bytes]:
    op = data.draw(
        st.sampled_from(["cut", "dup_line", "del_line", "cell", "encoding", "line_ends", "swap"]),
        label="op",
    )
    lines = raw.split(b"\n")
    n = len(lines)
    if op == "cut":
        return op, raw[: data.draw(st.integers(0, len(raw)), label="cut at")]
    if op in ("dup_line", "del_line"):
        i = data.draw(st.integers(0, n - 1), label="line")
        out = lines[: i + 1] + lines[i:] if op == "dup_line" else lines[:i] + lines[i + 1 :]
        return op, b"\n".join(out)
    if op == "cell":
        i = data.draw(st.integers(0, n - 1), label="line")
        fields = lines[i].split(b",")
        j = data.draw(st.integers(0, max(len(fields) - 1, 0)), label="field")
        fields[j] = data.draw(CELL, label="value").encode("utf-8", "surrogatepass")
        lines[i] = b",".join(fields)
        return op, b"\n".join(lines)
    if op == "encoding":
        enc = data.draw(st.sampled_from(["utf-16", "latin-1", "gbk", "utf-8-sig", "cp1252"]))
        return f"{op}:{enc}", raw.decode("utf-8").encode(enc, errors="replace")
    if op == "line_ends":
        end = data.draw(st.sampled_from([b"\r\n", b"\r", b"\n\n", b"\r\r\n"]), label="end")
        return op, raw.replace(b"\n", end)
    # swap two columns on every line (header included, or data rows only)
    width = len(lines[0].split(b","))
    a, b = data.draw(st.integers(0, width - 1)), data.draw(st.integers(0, width - 1))
    start = data.draw(st.sampled_from([0, 1]), label="from line")
    for k in range(start, n):
        fields = lines[k].split(b",")
        if max(a, b) < len(fields):
            fields[a], fields[b] = fields[b], fields[a]
            lines[k] = b",".join(fields)
    return op, b"\n".join(lines)


def _rows(data: bytes) -> list[list[str]]:
    """The data rows as Python's csv module reads them (blank lines left out)."""
    text = data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return [r for r in rows[1:] if r]


def _number(text: str) -> float:
    value = float(text) if text.strip() else math.nan
    return value


def _check_matrix(ds, name: str, rows: list[list[str]]) -> None:
    """Rows, duplicates and the watch_ratio sum of a matrix, recomputed from csv rows."""
    spec = SPECS[name]
    key = KEYS[name]
    header = spec.header
    kinds = {c.name: c.kind for c in spec.columns}
    seen, kept_wr = set(), []
    for r in rows:
        typed = []
        for col, text in zip(header, r, strict=True):
            if col == "time":
                continue  # derived from timestamp: not compared
            v = int(text) if kinds[col] == "int" else _number(text)
            typed.append(None if isinstance(v, float) and math.isnan(v) else v)
        t = tuple(typed)
        if t not in seen:
            seen.add(t)
            kept_wr.append(float(r[header.index("watch_ratio")]))
    assert ds.report.rows_read[key] == len(rows)
    inter = getattr(ds, key)
    assert int(inter.views.sum()) == len(seen)
    assert read_log(ds, key).height == len(seen)
    total = float(np.sum(np.asarray(inter.watch_ratio_mean, np.float64) * inter.views))
    assert total == pytest.approx(math.fsum(kept_wr), rel=1e-5, abs=1e-6)


def _check_success(ds, name: str, damaged: bytes) -> None:
    if name == schema.CAPTION_CATEGORY.name:
        return  # parsed leniently (rows dropped and reported): only "no crash" holds
    rows = _rows(damaged)
    key = KEYS[name]
    if name in (schema.BIG.name, schema.SMALL.name):
        _check_matrix(ds, name, rows)
    else:
        assert ds.report.rows_read[key] == len(rows)
    if name == schema.TRUTH.name:
        assert ds.truth is not None


def _run_case(base: dict[str, bytes], name: str, damaged: bytes, campaign: str, op: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        folder.mkdir()
        for fname, raw in base.items():
            (folder / fname).write_bytes(damaged if fname == name else raw)
        cache = Path(tmp) / "cache"
        try:
            ds = load_dataset(folder, cache_dir=cache, progress=False)
        except KuaiRecError as exc:
            message = str(exc)
            assert "\n" not in message, message
            assert str(folder / name) in message, message
            assert fx.cache_entries(cache) == [], "a failed load left a cache entry"
            _fuzz.count(campaign, f"error ({op})")
            return
        _check_success(ds, name, damaged)
        _fuzz.count(campaign, f"loaded ({op})")


def _tiny_files() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = fx.write_tiny_folder(Path(tmp))
        return {p.name: p.read_bytes() for p in folder.iterdir()}


TINY = _tiny_files()


@_fuzz.fuzz_settings(300)
@given(data=st.data())
def test_damaged_tiny_folder_loads_or_fails_cleanly(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(FILES), label="file")
    op, damaged = _damage(data, TINY[name])
    _run_case(TINY, name, damaged, "load: tiny folder", op)


@pytest.fixture(scope="module")
def generated() -> dict[str, bytes]:
    from kuairec.data.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, scale=0.02, seed=11, progress=False)
        return {p.name: p.read_bytes() for p in Path(tmp).iterdir()}


def test_damaged_generated_folder_loads_or_fails_cleanly(generated) -> None:
    # the matrices only: the side files are covered on the tiny folder
    @_fuzz.fuzz_settings(12)
    @given(data=st.data())
    def case(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from([schema.BIG.name, schema.SMALL.name]), label="file")
        op, damaged = _damage(data, generated[name])
        _run_case(generated, name, damaged, "load: generated scale 0.02", op)

    case()
