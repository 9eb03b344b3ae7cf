"""Bad input on the Spark engine: the local loader's rules, the file and the column named,
a few offending rows shown; Parquet input read like the CSV files.

Each case damages a copy of a small folder (the first rows of the scale-0.05 matrices),
then checks that the Spark engine and the local loader both refuse it, naming the same
file and column.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kuairec.errors import DataError

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SPARK = {
    "master": "local[2]",
    "driver_memory": "1g",
    "shuffle_partitions": 4,
    "broadcast_threshold": -1,
    "conf": {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"},
}


@pytest.fixture(scope="module")
def spark(java: None):  # noqa: ANN201
    from kuairec.sparkengine.config import SparkSettings
    from kuairec.sparkengine.session import apply_run_settings, start

    settings = SparkSettings(**SPARK)
    session = start(settings)
    apply_run_settings(session, settings, "/tmp/kuairec-test-checkpoints")
    return session


@pytest.fixture(scope="module")
def tiny(small_synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    for name, rows in (("big_matrix.csv", 400), ("small_matrix.csv", 300)):
        lines = (small_synthetic_dir / name).read_text().splitlines()[: rows + 1]
        (out / name).write_text("\n".join(lines) + "\n")
    return out


def _damaged(tiny: Path, tmp_path: Path, name: str, line: int, edit) -> Path:  # noqa: ANN001
    folder = tmp_path / "data"
    shutil.copytree(tiny, folder)
    lines = (folder / name).read_text().splitlines()
    lines[line] = edit(lines[line])
    (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def _field(index: int, value: str):  # noqa: ANN202
    def edit(line: str) -> str:
        fields = line.split(",")
        fields[index] = value
        return ",".join(fields)

    return edit


CASES = {  # name: (file, line, edit, column, words in the Spark message)
    "negative id": ("big_matrix.csv", 7, _field(1, "-5"), "video_id", ["id >= 0", "-5"]),
    "not a number": ("small_matrix.csv", 3, _field(7, "abc"), "watch_ratio", ["number", "abc"]),
    "impossible date": ("big_matrix.csv", 9, _field(5, "20200231"), "date", ["calendar day"]),
    "bad time": ("big_matrix.csv", 4, _field(4, "2020-13-05 00:00:00"), "time", ["a time like"]),
    "watch ratio range": ("big_matrix.csv", 5, _field(7, "20000"), "watch_ratio", ["10000"]),
    "truncated": ("small_matrix.csv", 6, lambda s: ",".join(s.split(",")[:5]), None,
                  ["truncated row"]),
    "misspelt header": ("big_matrix.csv", 0, lambda s: s.replace("video_id", "vid"), "video_id",
                        ["header"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_bad_values_are_refused_like_the_local_loader(
    spark, tiny: Path, tmp_path: Path, case: str
) -> None:  # noqa: ANN001, E501
    from kuairec.data.load import load_dataset
    from kuairec.sparkengine.clean import clean_matrices

    name, line, edit, column, words = CASES[case]
    folder = _damaged(tiny, tmp_path, name, line, edit)
    with pytest.raises(DataError) as got:
        clean_matrices(spark, str(folder), str(tmp_path / "tables"), 1000, 2)
    with pytest.raises(DataError) as want:
        load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)
    assert Path(got.value.file).name == Path(want.value.file).name == name
    assert got.value.column == want.value.column == column
    message = str(got.value)
    assert all(w in message for w in words), message
    if line:  # the offending rows are shown: by their values, or as the raw line
        assert "offending row(s), e.g. (" in message or "do not parse, e.g. '" in message


def test_missing_matrix_is_named(spark, tiny: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from kuairec.sparkengine.clean import clean_matrices

    folder = tmp_path / "data"
    shutil.copytree(tiny, folder)
    (folder / "small_matrix.csv").unlink()
    with pytest.raises(DataError, match="small_matrix.csv .*is missing"):
        clean_matrices(spark, str(folder), str(tmp_path / "tables"), 1000, 2)


def test_parquet_input_cleans_like_csv(spark, tiny: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from pyspark.sql import functions as F

    from kuairec.sparkengine.clean import clean_matrices
    from kuairec.sparkengine.read import CORRUPT, locate, read_raw

    folder = tmp_path / "parquet"
    for source in locate(spark, str(tiny)).values():
        if source is not None:
            stem = Path(source.location).stem
            read_raw(spark, source).drop(CORRUPT).write.parquet(str(folder / f"{stem}.parquet"))
    from_csv = clean_matrices(spark, str(tiny), str(tmp_path / "t1"), 1000, 2)
    from_parquet = clean_matrices(spark, str(folder), str(tmp_path / "t2"), 1000, 2)
    assert from_parquet.sources["big"].format == "parquet"
    assert from_parquet.report == from_csv.report
    a = spark.read.parquet(from_csv.pairs).orderBy("matrix", "user_idx", "item_idx").collect()
    b = spark.read.parquet(from_parquet.pairs).orderBy("matrix", "user_idx", "item_idx").collect()
    assert a == b and len(a) > 100
    # a value that does not convert is refused, naming the column
    big = spark.read.parquet(str(folder / "big_matrix.parquet"))
    bad = big.withColumn(
        "user_id",
        F.when(F.col("video_id") == big.first()["video_id"], F.lit("x")).otherwise(
            F.col("user_id").cast("string")
        ),
    )
    broken = tmp_path / "broken"
    bad.write.parquet(str(broken / "big_matrix.parquet"))
    shutil.copytree(folder / "small_matrix.parquet", broken / "small_matrix.parquet")
    with pytest.raises(DataError, match="do not parse") as got:
        clean_matrices(spark, str(broken), str(tmp_path / "t3"), 1000, 2)
    assert got.value.column == "user_id"


def test_one_log_csv_checks_name_the_column_and_show_the_raw_text(spark, tmp_path: Path) -> None:  # noqa: ANN001
    """The temporal protocol's one-log CSV is parsed once into Parquet before its checks:
    a bad value is still refused with its column and its text as written in the file,
    and a clean log maps its ids like the local loader (sorted raw ids)."""
    from kuairec.sparkengine.userlog import read_user_log

    good = ["user_id,video_id,timestamp,watch_ratio,extra"]
    good += [
        f"{u},{v}, {1.6e9 + 60 * (u * 10 + v)},{0.25 * v},x" for u in (30, 7) for v in (5, 900)
    ]
    path = tmp_path / "log.csv"
    path.write_text("\n".join(good) + "\n")
    log, n_rows, n_users, n_items = read_user_log(spark, str(path), str(tmp_path / "t1"), 1000)
    rows = sorted(tuple(r) for r in log.collect())
    assert (n_rows, n_users, n_items) == (4, 2, 2)
    assert [r[:2] for r in rows] == [(0, 0), (0, 1), (1, 0), (1, 1)]  # 7 -> 0, 30 -> 1
    assert rows[1][3] == 0.25 * 900 and rows[2][2] == 1.6e9 + 60 * 305

    bad = [*good[:3], "7,5,1600000000,abc ,x", *good[3:]]
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError) as got:
        read_user_log(spark, str(path), str(tmp_path / "t2"), 1000)
    assert got.value.column == "watch_ratio"
    assert "expected a finite number, found 'abc'" in str(got.value)
    assert "1 offending row(s)" in str(got.value)
