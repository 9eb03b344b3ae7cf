""":func:`kuairec.data.ties.tie_hash` as a Spark column expression.

The same integer function as the numpy one (see its module for the definition), written
with 64-bit column arithmetic that never overflows a signed long: ``mul(x, c) mod 2**32``
is computed from x's two 16-bit halves (each product stays below 2**48), so it runs
under ANSI mode, which Spark 4 enables by default. Each step is its own column (a chain
of projections), so the expression does not grow with the nesting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kuairec.data.ties import C1, C2, GOLDEN, MASK32, fmix32

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame


def _mul32(x: Column, c: int) -> Column:
    from pyspark.sql import functions as F

    low = x.bitwiseAND(F.lit(0xFFFF)) * F.lit(c)
    high = (F.shiftright(x, 16) * F.lit(c)).bitwiseAND(F.lit(0xFFFF))
    return (low + F.shiftleft(high, 16)).bitwiseAND(F.lit(MASK32))


def _fmix(df: DataFrame, col: str) -> DataFrame:
    from pyspark.sql import functions as F

    x = F.col(col)
    df = df.withColumn(col, x.bitwiseXOR(F.shiftright(x, 16)))
    df = df.withColumn(col, _mul32(F.col(col), C1))
    df = df.withColumn(col, F.col(col).bitwiseXOR(F.shiftright(F.col(col), 13)))
    df = df.withColumn(col, _mul32(F.col(col), C2))
    return df.withColumn(col, F.col(col).bitwiseXOR(F.shiftright(F.col(col), 16)))


def with_tie_hash(df: DataFrame, seed: int, user: str, item: str, out: str = "tie") -> DataFrame:
    """``df`` with a long column ``out`` = ``tie_hash(seed, df[user], df[item])``."""
    from pyspark.sql import functions as F

    base = int(fmix32(np.array([(int(seed) & MASK32) ^ GOLDEN], dtype=np.uint64))[0])
    df = df.withColumn(out, F.lit(base).bitwiseXOR(F.col(user).cast("long")))
    df = _fmix(df, out)
    df = df.withColumn(out, F.col(out).bitwiseXOR(F.col(item).cast("long")))
    return _fmix(df, out)
