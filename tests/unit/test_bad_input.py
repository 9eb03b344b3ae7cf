"""Bad input: one clear DataError naming the file (and line/column where it applies),
nothing left in the cache, and from the CLI one line on stderr, no traceback."""

from __future__ import annotations

from pathlib import Path

import _kuairec_fixtures as fx  # on sys.path through tests/conftest.py
import pytest

from kuairec.cli import main
from kuairec.data.load import load_dataset
from kuairec.errors import DataError

HEADER = fx.MATRIX_HEADER
ROWS = fx.BIG_ROWS


def _big(rows: list[str], header: str = HEADER) -> dict[str, str]:
    return {"big_matrix.csv": header + "\n" + "\n".join(rows) + "\n"}


def _set(row: int, column: int, value: str) -> list[str]:
    """BIG_ROWS with field ``column`` (0-based) of data row ``row`` (0-based) replaced."""
    rows = list(ROWS)
    fields = rows[row].split(",")
    fields[column] = value
    rows[row] = ",".join(fields)
    return rows


# (case id, files to write over the tiny folder, files to leave out, expected message parts)
CASES = [
    ("required_file_missing", {}, ("small_matrix.csv",), ["small_matrix.csv", "required file"]),
    ("empty_file", {"big_matrix.csv": ""}, (), ["big_matrix.csv", "empty file"]),
    ("header_only", {"big_matrix.csv": HEADER + "\n"}, (), ["big_matrix.csv", "no data rows"]),
    (
        "missing_header_column",
        _big([r.rsplit(",", 1)[0] for r in ROWS], HEADER.replace(",watch_ratio", "")),
        (),
        ["big_matrix.csv", "line 1", "'watch_ratio'", "missing"],
    ),
    (
        "misspelt_header_column",
        _big(ROWS, HEADER.replace("watch_ratio", "watch_rato")),
        (),
        ["big_matrix.csv", "line 1", "'watch_ratio'", "'watch_rato'"],
    ),
    (
        "columns_out_of_order",
        _big(ROWS, HEADER.replace("user_id,video_id", "video_id,user_id")),
        (),
        ["line 1", "column 'user_id'", "found 'video_id'"],
    ),
    (
        "non_numeric_value",
        _big(_set(2, 2, "abc")),
        (),
        ["big_matrix.csv", "line 4", "column 'play_duration'", "'abc'", "integer"],
    ),
    (
        "non_numeric_float",
        _big(_set(5, 7, "1.2.3")),
        (),
        ["big_matrix.csv", "line 7", "column 'watch_ratio'", "'1.2.3'"],
    ),
    (
        "truncated_last_row",
        _big([*ROWS[:-1], "10,400,900"]),
        (),
        ["big_matrix.csv", "line 10", "truncated row", "expected 8 fields, found 3"],
    ),
    (
        "too_many_fields",
        _big(_set(1, 7, "0.5,9")),
        (),
        ["big_matrix.csv", "line 3", "too many fields", "found 9"],
    ),
    ("empty_value", _big(_set(3, 1, "")), (), ["line 5", "column 'video_id'", "missing value"]),
    (
        "negative_duration",
        _big(_set(4, 3, "-5")),
        (),
        ["big_matrix.csv", "line 6", "column 'video_duration'", ">= 0", "-5"],
    ),
    ("negative_id", _big(_set(0, 0, "-1")), (), ["line 2", "column 'user_id'", "-1"]),
    (
        "nan_watch_ratio",
        _big(_set(3, 7, "nan")),
        (),
        ["big_matrix.csv", "line 5", "column 'watch_ratio'", "NaN"],
    ),
    (
        "inf_watch_ratio",
        _big(_set(6, 7, "inf")),
        (),
        ["big_matrix.csv", "line 8", "column 'watch_ratio'", "finite", "inf"],
    ),
    (
        "nan_timestamp_in_big",  # NaN is legal in the small matrix's time columns only
        _big(_set(0, 6, "NaN")),
        (),
        ["big_matrix.csv", "line 2", "column 'timestamp'", "NaN"],
    ),
    (
        "small_matrix_fraction_date",
        {"small_matrix.csv": HEADER + "\n" + fx.SMALL_ROWS[0].replace(".0,", ".5,", 1) + "\n"},
        (),
        ["small_matrix.csv", "line 2", "column 'date'", "20200710.5"],
    ),
    (
        "impossible_date",  # parsed, then crashed eda/run at the report step
        _big(_set(1, 5, "99999999")),
        (),
        ["big_matrix.csv", "line 3", "column 'date'", "calendar day", "99999999"],
    ),
    (
        "no_such_calendar_day",
        _big(_set(4, 5, "20200230")),
        (),
        ["big_matrix.csv", "line 6", "column 'date'", "yyyymmdd", "20200230"],
    ),
    (
        "huge_watch_ratio",  # overflowed float32 silently
        _big(_set(2, 7, "1e308")),
        (),
        ["big_matrix.csv", "line 4", "column 'watch_ratio'", "between 0 and 10000", "1e+308"],
    ),
    (
        "huge_timestamp",  # made every training pair 'have the same time'
        _big(_set(0, 6, "1e308")),
        (),
        ["line 2", "column 'timestamp'", "a unix time in seconds", "1e+308"],
    ),
    (
        "date_disagrees_with_timestamp",  # any year is legal, a contradiction is not
        _big(_set(3, 6, "12")),
        (),
        ["line 5", "column 'date'", "20200705", "not the day of the row's timestamp 12.0"],
    ),
    (
        "garbage_time",
        _big(_set(5, 4, "yesterday")),
        (),
        ["big_matrix.csv", "line 7", "column 'time'", "yyyy-mm-dd hh:mm:ss", "'yesterday'"],
    ),
    (
        "small_matrix_garbage_time",
        {"small_matrix.csv": HEADER + "\n" + fx.SMALL_ROWS[0].replace("2020-07-10", "x") + "\n"},
        (),
        ["small_matrix.csv", "line 2", "column 'time'", "'x 00:00:00.000'"],
    ),
    (
        "small_matrix_impossible_date",
        {
            "small_matrix.csv": HEADER
            + "\n"
            + fx.SMALL_ROWS[0].replace("20200710.0", "20201310.0")
            + "\n"
        },
        (),
        ["small_matrix.csv", "line 2", "column 'date'", "20201310"],
    ),
    (
        "daily_impossible_date",
        {"item_daily_features.csv": fx.ITEM_DAILY.replace(",20200706,", ",20200732,", 1)},
        (),
        ["item_daily_features.csv", "line 3", "column 'date'", "20200732"],
    ),
    (
        "truth_huge_watch_ratio",
        {"small_matrix_truth.csv": "user_id,video_id,expected_watch_ratio\n7,200,1e300\n"},
        (),
        ["small_matrix_truth.csv", "line 2", "column 'expected_watch_ratio'", "10000"],
    ),
    (
        "side_file_bad_list",
        {"item_categories.csv": 'video_id,feat\n100,[8]\n200,"[1, x]"\n'},
        (),
        ["item_categories.csv", "line 3", "column 'feat'", "[1, x]"],
    ),
    (
        "side_file_non_numeric",
        {"user_features.csv": fx.USER_FEATURES.replace(",107,", ",many,", 1)},
        (),
        ["user_features.csv", "line 2", "column 'register_days'", "'many'"],
    ),
    (
        "nan_outside_nullable_columns",
        {"user_features.csv": fx.USER_FEATURES.replace(",107,", ",,", 1)},
        (),
        ["user_features.csv", "line 2", "column 'register_days'", "missing value"],
    ),
]


@pytest.mark.parametrize("files,skip,parts", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_library_raises_one_clear_error(tmp_path: Path, files, skip, parts) -> None:
    folder = fx.write_tiny_folder(tmp_path / "data", replace=files, skip=skip)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        load_dataset(folder, cache_dir=cache, progress=False)
    message = str(info.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)
    assert fx.cache_entries(cache) == []  # nothing partial left behind
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p
        for p in [
            "big_matrix.csv",
            "small_matrix.csv",
            "item_categories.csv",
            "user_features.csv",
            "item_daily_features.csv",
            "social_network.csv",
            "kuairec_caption_category.csv",
            "small_matrix_truth.csv",
        ]
        if p not in skip
    )  # fmt: skip  (nothing written into the data folder)


def test_folder_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data folder does not exist") as info:
        load_dataset(tmp_path / "nope", cache_dir=tmp_path / "cache", progress=False)
    assert str(tmp_path / "nope") in str(info.value)


def test_folder_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "big_matrix.csv"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="expected a folder"):
        load_dataset(path, cache_dir=tmp_path / "cache", progress=False)


CLI_CASES = ["required_file_missing", "empty_file", "misspelt_header_column",
             "non_numeric_value", "truncated_last_row", "negative_duration", "nan_watch_ratio",
             "inf_watch_ratio", "impossible_date", "huge_timestamp"]  # fmt: skip


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_prints_one_line_and_exits_non_zero(tmp_path: Path, monkeypatch, capsys, case) -> None:
    _, files, skip, parts = next(c for c in CASES if c[0] == case)
    folder = fx.write_tiny_folder(tmp_path / "data", replace=files, skip=skip)
    monkeypatch.setenv("KUAIREC_CACHE", str(tmp_path / "cache"))
    code = main(["data", "describe", "--data", str(folder)])
    out, err = capsys.readouterr()
    assert code == DataError.exit_code != 0
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in err
    for part in parts:
        assert part in lines[0]
    assert fx.cache_entries(tmp_path / "cache") == []


def test_cli_missing_folder(tmp_path: Path, capsys) -> None:
    code = main(["data", "describe", "--data", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and "data folder does not exist" in err


@pytest.mark.parametrize(
    ("row", "parts"),
    [
        ("1,2,1e308,0.5", ["line 3", "column 'timestamp'", "too large for any unit"]),
        ("1,2,1594310400000,0.5", ["line 3", "column 'timestamp'", "another unit"]),
        ("1,2,1594310400,20000", ["line 3", "column 'watch_ratio'", "between 0 and 10000"]),
        ("1,2,1594310400,-1", ["line 3", "column 'watch_ratio'", "'-1'"]),
    ],
)
def test_user_logs_share_the_loaders_ranges(tmp_path: Path, row: str, parts: list[str]) -> None:
    from kuairec.evaluation.protocols import load_interactions_csv

    path = tmp_path / "log.csv"
    path.write_text(f"user_id,video_id,timestamp,watch_ratio\n1,2,1594310400,1.0\n{row}\n")
    with pytest.raises(DataError) as info:
        load_interactions_csv(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for part in parts:
        assert part in message, (part, message)


def test_ranges_come_from_one_table() -> None:
    from kuairec.data import schema

    assert schema.BIG.column("watch_ratio").bounds is schema.RANGES["watch_ratio"]
    assert schema.SMALL.column("timestamp").bounds is schema.RANGES["timestamp"]
    assert schema.ITEM_DAILY_FEATURES.column("date").bounds is schema.RANGES["date"]
    days = schema.RANGES["date"]
    import numpy as np

    # any year: no window (MovieLens starts in 1997); impossible days are refused
    ok = np.array([20200229, 20000101, 20991231, 20200731.0, 19970920, 21000101, np.nan])
    assert days.first_violation(ok) is None
    for bad in (20190229, 20200431, 20200700, 20201301, 20200732, 99999999, 20200710.5, 970920):
        assert days.first_violation(np.array([20200101, bad])) == 1, bad


def test_a_date_must_agree_with_its_timestamp_within_two_days() -> None:
    """The window of dates is the data's own; what is refused is a contradiction. Two
    days of slack: a time zone (Beijing's day is the UTC day or the next) and the real
    files' 0.1% of rows with a neighbouring day."""
    import numpy as np

    from kuairec.data.schema import days_since_epoch, first_date_mismatch

    assert days_since_epoch(np.array([19700101, 19970920, 20000229, 20200705])).tolist() == [
        0, 10124, 11016, 18448,
    ]  # fmt: skip
    t = 1593878903.438  # 2020-07-04 16:08 UTC, 2020-07-05 00:08 in Beijing
    ok = [20200704, 20200705, 20200706, 20200702, np.nan]  # UTC, Beijing, quirk, -2, none
    assert first_date_mismatch(np.array(ok), np.full(5, t)) is None
    for bad in (20200707, 20200701, 19970704):
        assert first_date_mismatch(np.array([20200705, bad]), np.array([t, t])) == 1, bad
    assert first_date_mismatch(np.array([19970920.0]), np.array([874724710.0])) is None


_TEXT = fx.big_text(fx.BIG_ROWS).encode()
_LINES = _TEXT.split(b"\n")
FILE_CASES = [
    ("gzip", lambda: __import__("gzip").compress(_TEXT), [": this is a gzip-compressed file"]),
    ("zip", lambda: b"PK\x03\x04" + _TEXT, ["a zip archive"]),
    ("utf16", lambda: _TEXT.decode().encode("utf-16"), ["UTF-16 text", "expected UTF-8"]),
    ("nul_bytes", lambda: _TEXT[:60] + b"\x00" + _TEXT[60:], ["NUL bytes"]),
    ("cr_only", lambda: _TEXT.replace(b"\n", b"\r"), ["line 1", "CR only", "LF or CRLF"]),
    ("latin1_header", lambda: _TEXT.replace(b"user_id", b"us\xe9r_id", 1), ["line 1", "UTF-8"]),
    (
        "invalid_utf8_row",
        lambda: b"\n".join([*_LINES[:4], _LINES[4].replace(b".000", b".\xff00"), *_LINES[5:]]),
        ["line 5", "invalid UTF-8", "0xff"],
    ),
    (
        "spaces_after_commas",
        lambda: _TEXT.replace(b"user_id,video_id", b"user_id, video_id", 1),
        ["line 1", "spaces around a column name (' video_id')", "no spaces after the commas"],
    ),
]


@pytest.mark.parametrize("make,parts", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_unreadable_files_are_named(tmp_path: Path, capsys, monkeypatch, make, parts) -> None:
    folder = fx.write_tiny_folder(tmp_path / "data")
    (folder / "big_matrix.csv").write_bytes(make())
    with pytest.raises(DataError) as info:
        load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(folder / "big_matrix.csv"))
    for part in parts:
        assert part in message, (part, message)
    assert fx.cache_entries(tmp_path / "cache") == []
    monkeypatch.setenv("KUAIREC_CACHE", str(tmp_path / "cache"))
    capsys.readouterr()
    assert main(["data", "describe", "--data", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and parts[0] in err


def test_side_file_with_cr_only_line_ends(tmp_path: Path) -> None:
    cats = fx.ITEM_CATEGORIES.replace("\n", "\r")
    folder = fx.write_tiny_folder(tmp_path / "data", replace={"item_categories.csv": cats})
    with pytest.raises(DataError, match=r"item_categories.csv, line 1: .*CR only"):
        load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)


@pytest.mark.parametrize("scale", ["1e-5", "0.0009", "nan", "5"])
def test_generate_refuses_a_scale_outside_its_range(tmp_path: Path, capsys, scale: str) -> None:
    from kuairec.data.synthetic import generate
    from kuairec.errors import ConfigError

    code = main(["data", "generate", "--scale", scale, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err
    assert "scale" in err and "Probabilities" not in err
    if float(scale) == float(scale) and float(scale) < 1:
        with pytest.raises(ConfigError, match=r"scale must be in \[0.001, 4\]"):
            generate(tmp_path / "lib", scale=float(scale), progress=False)


def test_generate_at_the_minimum_scale_loads(tmp_path: Path) -> None:
    from kuairec.data.synthetic import generate
    from kuairec.data.synthetic.pipeline import MIN_SCALE

    generate(tmp_path / "d", scale=MIN_SCALE, seed=5, progress=False)
    ds = load_dataset(tmp_path / "d", cache_dir=tmp_path / "cache", progress=False)
    assert ds.n_users >= 4 and ds.big.nnz > 0


def test_raw_id_option_refuses_ids_beyond_64_bits() -> None:
    import click

    from kuairec.cli.data import RAW_ID

    assert RAW_ID.convert("14", None, None) == 14
    for bad in (str(10**23), "-1", "1.5"):
        with pytest.raises(click.BadParameter):
            RAW_ID.convert(bad, None, None)


@pytest.mark.parametrize("case", ["bzip2", "cr_only", "invalid_utf8_row", "utf16"])
def test_user_logs_unreadable_files_are_named(tmp_path: Path, case: str) -> None:
    from kuairec.evaluation.protocols import load_interactions_csv

    text = b"user_id,video_id,timestamp,watch_ratio\n1,2,1594310400,1.0\n3,4,1594310400,2.0\n"
    data = {
        "bzip2": lambda: __import__("bz2").compress(text),  # gzip is read (own_log)
        "cr_only": lambda: text.replace(b"\n", b"\r"),
        "invalid_utf8_row": lambda: text.replace(b"3,4", b"3,\xff4"),
        "utf16": lambda: text.decode().encode("utf-16"),
    }[case]()
    path = tmp_path / "log.csv"
    path.write_bytes(data)
    with pytest.raises(DataError) as info:
        load_interactions_csv(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))


def test_swapped_columns_in_a_row_with_a_missing_value(tmp_path: Path) -> None:
    """Found by the fuzz campaign: a text value under a numeric column on a line whose
    earlier numeric fields are empty used to crash the diagnosis (SchemaError)."""
    header = fx.ITEM_DAILY.split("\n")[0].split(",")
    a, b = header.index("video_type"), header.index("collect_user_num")
    lines = fx.ITEM_DAILY.split("\n")
    for k in range(1, len(lines)):
        fields = lines[k].split(",")
        if len(fields) > b:
            fields[a], fields[b] = fields[b], fields[a]
            lines[k] = ",".join(fields)
    folder = fx.write_tiny_folder(
        tmp_path / "data", replace={"item_daily_features.csv": "\n".join(lines)}
    )
    with pytest.raises(DataError) as info:
        load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)
    assert "item_daily_features.csv, line 2, column 'collect_user_num'" in str(info.value)
    assert "'NORMAL'" in str(info.value)


@pytest.mark.parametrize(
    "text,parts",
    [
        ('video_id,feat\n100,[8]\n200,"[27, 9]\n300,[1]\n', ["line 3", "unbalanced double quote"]),
        ('video_id,feat\n100,[8]\n200,"[27, 9]",x\n', ["line 3", "too many fields"]),
    ],
)
def test_quoted_list_files_are_diagnosed(tmp_path: Path, text: str, parts: list[str]) -> None:
    """Found by the fuzz campaign: an unclosed quote in a list file crashed the diagnosis
    (polars ComputeError), and quoted lists' commas were counted as field separators."""
    folder = fx.write_tiny_folder(tmp_path / "data", replace={"item_categories.csv": text})
    with pytest.raises(DataError) as info:
        load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)
    message = str(info.value)
    assert "item_categories.csv" in message and "\n" not in message
    for part in parts:
        assert part in message, (part, message)
