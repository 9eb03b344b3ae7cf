"""Read the KuaiRec files with Spark's own readers and an explicit schema.

Each file is ``<name>.csv`` as shipped (the header must match ``kuairec.data.schema``,
exactly as the local loader requires) or ``<stem>.parquet`` (a file or a folder of parts,
e.g. written by Spark) with the schema's columns. A CSV is read in PERMISSIVE mode with a
corrupt-record column, so a row that does not parse is caught and shown by
:mod:`kuairec.sparkengine.checks`, never dropped; a Parquet column is cast with
``try_cast`` and a value that does not convert is caught the same way.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kuairec.data import schema
from kuairec.data.schema import Column, FileSpec
from kuairec.data.validate import check_header, check_header_names
from kuairec.errors import DataError
from kuairec.sparkengine.session import is_uri, join, spark_uri, written

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

CORRUPT = "_corrupt"  # the raw line of a CSV row Spark could not parse (else null)
SPARK_TYPES = {"int": "long", "float": "double", "str": "string", "list": "string"}


@dataclass(frozen=True)
class Source:
    """One file of the data folder and how to read it."""

    spec: FileSpec
    location: str  # path or URI as given
    format: Literal["csv", "parquet"]

    @property
    def name(self) -> str:
        return self.location.rstrip("/").rsplit("/", 1)[-1]


def _exists(spark: SparkSession, location: str, fmt: str) -> bool:
    """Whether ``location`` exists: a local path is looked at directly, a URI through
    Spark (any file system Spark can read)."""
    from pyspark.errors import AnalysisException

    if not is_uri(location):
        return Path(location).exists()

    try:
        reader = spark.read.format(fmt)
        if fmt == "text":
            reader.load(spark_uri(location)).schema  # noqa: B018 - resolves the path
        else:
            reader.load(spark_uri(location)).limit(0).collect()
        return True
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc):
            return False
        raise


def locate(spark: SparkSession, folder: str) -> dict[str, Source | None]:
    """Each schema file's source (None when absent): ``<stem>.parquet`` before
    ``<name>.csv``; big_matrix and small_matrix are required."""
    out: dict[str, Source | None] = {}
    for spec in (*schema.FILES, schema.TRUTH):
        stem = spec.name.rsplit(".", 1)[0]
        parquet, text = join(folder, f"{stem}.parquet"), join(folder, spec.name)
        if _exists(spark, parquet, "parquet"):
            out[spec.key] = Source(spec, parquet, "parquet")
        elif _exists(spark, text, "text"):
            out[spec.key] = Source(spec, text, "csv")
        elif spec.required:
            raise DataError(
                f"required file {spec.name} (or {stem}.parquet) is missing: the folder must "
                "hold big_matrix and small_matrix, as in the KuaiRec 2.0 archive's data/",
                file=text,
            )
        else:
            out[spec.key] = None
    return out


def spark_schema(spec: FileSpec, corrupt: bool) -> str:
    """The DDL schema of a file: the spec's columns, plus the corrupt-record column."""
    cols = [f"`{c.name}` {SPARK_TYPES[c.kind]}" for c in spec.columns]
    if corrupt:
        cols.append(f"`{CORRUPT}` string")
    return ", ".join(cols)


def read_raw(spark: SparkSession, source: Source) -> DataFrame:
    """The file as a typed DataFrame (the spec's columns and ``_corrupt``), unchecked."""
    if source.format == "parquet":
        return _read_parquet(spark, source)
    check_csv_header(spark, source)
    multiline = source.spec.key == "caption_category"  # free text with quoted newlines
    return spark.read.csv(
        spark_uri(source.location),
        header=True,
        schema=spark_schema(source.spec, corrupt=True),
        mode="PERMISSIVE",
        columnNameOfCorruptRecord=CORRUPT,
        enforceSchema=True,
        multiLine=multiline,
        escape='"',
        nanValue="NaN",
        positiveInf="Infinity",
        negativeInf="-Infinity",
    )


def read_staged(spark: SparkSession, source: Source, location: str) -> DataFrame:
    """:func:`read_raw`, with a CSV parsed once: its typed columns and ``_corrupt`` are
    written as Parquet at ``location`` and read back, so that the checks, the id maps
    and the deduplication each read columns instead of parsing the text again (each of
    them was a full parse of the file before). Parquet input is read as it is."""
    df = read_raw(spark, source)
    return df if source.format == "parquet" else written(df, location)


def check_csv_header(spark: SparkSession, source: Source) -> None:
    """The first line must name the spec's columns, in order (the local loader's rule
    and messages, :func:`kuairec.data.validate.check_header_names`)."""
    if not is_uri(source.location):  # a local file: the local loader's own check
        check_header(Path(source.location), source.spec)  # (it also sniffs the bytes)
        return
    first = spark.read.text(spark_uri(source.location)).limit(1).collect()
    if not first or not (first[0][0] or "").strip():
        raise DataError("empty file: expected a header line", file=source.location)
    text = first[0][0].lstrip("\ufeff").strip("\r\n")
    raw = next(csv.reader(io.StringIO(text)))
    check_header_names(source.location, source.spec, raw)


def _read_parquet(spark: SparkSession, source: Source) -> DataFrame:
    from pyspark.sql import functions as F

    df = spark.read.parquet(spark_uri(source.location))
    missing = [c.name for c in source.spec.columns if c.name not in df.columns]
    if missing:
        raise DataError(
            f"the Parquet data has no column {missing[0]!r}: expected the columns "
            f"{', '.join(source.spec.header)}",
            file=source.location,
            column=missing[0],
        )
    typed, bad = [], []
    for c in source.spec.columns:
        value = F.col(f"`{c.name}`")
        cast = value.try_cast(SPARK_TYPES[c.kind])
        typed.append(cast.alias(c.name))
        bad.append(F.when(value.isNotNull() & cast.isNull(), F.lit(f"{c.name}=")))
    # a value that does not convert marks the row as corrupt, as a CSV parse failure does
    corrupt = F.when(
        F.coalesce(*bad).isNotNull(),
        F.concat_ws(
            ",",
            *[
                F.coalesce(F.col(f"`{c.name}`").cast("string"), F.lit(""))
                for c in source.spec.columns
            ],
        ),
    )
    return df.select(*typed, corrupt.alias(CORRUPT))


def explain_corrupt(spec: FileSpec, line: str) -> tuple[str | None, str]:
    """Why a raw CSV line did not parse: ``(column or None, what)``, from its fields."""
    try:
        fields = next(csv.reader(io.StringIO(line)))
    except (csv.Error, StopIteration):
        return None, "a line that is not valid CSV"
    n = len(spec.columns)
    if len(fields) != n:
        what = "truncated row" if len(fields) < n else "too many fields"
        return None, f"{what}: expected {n} fields, found {len(fields)}"
    for column, value in zip(spec.columns, fields, strict=True):
        problem = _field_problem(column, value)
        if problem:
            return column.name, problem
    return None, "a row Spark's CSV parser could not read"


def _field_problem(column: Column, value: str) -> str | None:
    if value == "" or column.kind in ("str", "list"):
        return None
    kind = "an integer" if column.kind == "int" else "a number"
    try:
        number = int(value) if column.kind == "int" else float(value)
    except ValueError:
        return f"expected {kind}, found {value!r}"
    if column.kind == "float" and number in (float("inf"), float("-inf")):
        return f"expected a finite number, found {value!r}"
    return None
