"""The local loader's validation rules, as Spark column conditions checked in one pass.

Per file, in the local loader's order: rows that do not parse (a CSV line with a wrong
field count or a value of the wrong type; a Parquet value that does not convert), then
per column in schema order: missing values, NaN, infinities, the minimum, the legal range
(real calendar days for ``date``), and the ``time`` column's pattern and its agreement
with ``timestamp``. One aggregation counts every rule's offending rows; the first rule
that fails raises a :class:`~kuairec.errors.DataError` naming the file and the column,
with how many rows offend and a few of them. NaN in a nullable float column becomes null,
as locally. Spark has no line numbers, so rows are shown by their values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kuairec.data.schema import TIME_PATTERN, Bounds, Column, FileSpec
from kuairec.errors import DataError
from kuairec.sparkengine.read import CORRUPT, Source, explain_corrupt

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame

N_SHOWN = 3  # offending rows shown in a message
NAN_TEXT = (
    "expected a number, found NaN (NaN is only allowed in the small matrix's time columns, "
    "onehot_feat12..17 and the collect_* columns)"
)


@dataclass(frozen=True)
class Rule:
    column: str | None  # None: the whole row (a parse failure)
    condition: Any  # a Spark Column, True on an offending row
    expected: str  # "expected an id >= 0"; the first offending value is appended


def validate(df: DataFrame, source: Source, *, require_rows: bool = False) -> tuple[DataFrame, int]:
    """``df`` (from :func:`~kuairec.sparkengine.read.read_raw`) checked, NaN in nullable
    float columns turned to null and the corrupt-record column dropped; and its rows."""
    from pyspark.sql import functions as F

    spec = source.spec
    for c in spec.columns:
        if c.kind == "float" and c.nullable:
            df = df.withColumn(c.name, F.when(~F.isnan(c.name), F.col(c.name)))
    rules = file_rules(spec)
    counts = df.agg(
        F.count(F.lit(1)).alias("rows"),
        *[F.sum(F.when(r.condition, 1).otherwise(0)).alias(f"r{i}") for i, r in enumerate(rules)],
    ).collect()[0]
    if require_rows and counts["rows"] == 0:
        raise DataError("no data rows after the header", file=source.location)
    for i, rule in enumerate(rules):
        if counts[f"r{i}"]:
            raise _error(df, source, rule, int(counts[f"r{i}"]))
    return df.drop(CORRUPT), int(counts["rows"])


def file_rules(spec: FileSpec) -> list[Rule]:
    """Every rule of ``spec``, in the order the local loader applies them."""
    from pyspark.sql import functions as F

    parsed = F.col(CORRUPT).isNull()
    rules = [Rule(None, ~parsed, "")]
    for c in spec.columns:
        rules += [Rule(c.name, parsed & cond, text) for cond, text in _column_rules(c)]
    if "time" in spec.header and "timestamp" in spec.header:
        time, ts = F.col("time"), F.col("timestamp")
        malformed = time.isNotNull() & ~time.rlike(TIME_PATTERN)
        expected = "expected a time like 2020-07-05 00:08:23.438 (yyyy-mm-dd hh:mm:ss)"
        rules.append(Rule("time", parsed & (malformed | (time.isNull() != ts.isNull())), expected))
    return rules


def _column_rules(c: Column) -> list[tuple[SparkColumn, str]]:
    from pyspark.sql import functions as F

    col = F.col(f"`{c.name}`")
    out = []
    if not c.nullable:
        out.append((col.isNull(), "missing value (empty field)"))
    if c.kind == "float":
        if not c.nullable:
            out.append((F.isnan(col), NAN_TEXT))
        out.append((col.isin(float("inf"), float("-inf")), "expected a finite number"))
    if c.min_value is not None and c.kind in ("int", "float"):
        what = "an id" if c.name.endswith("_id") else "a value"
        out.append((col < F.lit(c.min_value), f"expected {what} >= {c.min_value:g}"))
    if c.bounds is not None and c.kind in ("int", "float"):
        out.append((bounds_violated(col, c.bounds), f"expected {c.bounds.describe()}"))
    return out


def bounds_violated(col: SparkColumn, bounds: Bounds) -> SparkColumn:
    """True where a (non-null, non-NaN) value lies outside ``bounds``."""
    from pyspark.sql import functions as F

    bad = F.lit(False)
    if bounds.low is not None:
        bad = bad | (col < F.lit(bounds.low))
    if bounds.high is not None:
        bad = bad | (col > F.lit(bounds.high))
    if bounds.calendar:
        bad = bad | ~calendar_day(col)
    return col.isNotNull() & ~F.isnan(col.cast("double")) & bad


def calendar_day(col: SparkColumn) -> SparkColumn:
    """True where ``col`` is a whole yyyymmdd number naming a real day (schema's rule)."""
    from pyspark.sql import functions as F

    value = col.cast("double")
    whole = (F.floor(value) == value) & (F.abs(value) < F.lit(1e9))
    d = F.when(whole, value).otherwise(F.lit(0.0)).cast("long")
    year, month, day = F.floor(d / 10_000), F.floor(d / 100) % 100, d % 100
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    last = (
        F.when(month == 2, F.when(leap, 29).otherwise(28))
        .when(month.isin(4, 6, 9, 11), 30)
        .otherwise(31)
    )
    return whole & month.between(1, 12) & (day >= 1) & (day <= last)


def _error(df: DataFrame, source: Source, rule: Rule, n: int) -> DataError:
    spec = source.spec
    rows = df.filter(rule.condition).limit(N_SHOWN).collect()
    if rule.column is None:  # rows that did not parse: say why from their fields
        column, what = explain_corrupt(spec, rows[0][CORRUPT]) if rows else (None, "")
        shown = "; ".join(repr(r[CORRUPT][:200]) for r in rows)
        return DataError(
            f"{what or 'a row that does not parse'}; {n} row(s) do not parse, e.g. {shown}",
            file=source.location,
            column=column,
        )
    first = rows[0][rule.column] if rows else None
    if rule.expected.startswith("expected"):
        found = "a missing value" if first is None else repr(first)
        detail = f"{rule.expected}, found {found}"
    else:
        detail = rule.expected
    shown = "; ".join(_describe_row(spec, r, rule.column) for r in rows)
    return DataError(
        f"{detail}; {n} offending row(s), e.g. {shown}", file=source.location, column=rule.column
    )


def _describe_row(spec: FileSpec, row: Any, column: str) -> str:
    """A row by its id columns and the offending column (files can be 60 columns wide)."""
    names = [c.name for c in spec.columns if c.name.endswith("_id") and c.name != column]
    names = [*names[:3], column]
    return "(" + ", ".join(f"{n}={row[n]!r}" for n in names) + ")"
