"""The one-machine ceiling: row estimate from file sizes and the refusal before loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from kuairec.data.footprint import (
    BASE_BYTES,
    PER_ROW_BYTES,
    check_fits_locally,
    count_rows,
    estimate_local,
    estimate_rows,
)
from kuairec.errors import DataError


def test_row_estimate_is_close_to_the_count(small_synthetic_dir: Path) -> None:
    big = small_synthetic_dir / "big_matrix.csv"
    assert big.stat().st_size > 2 * (1 << 20)  # the sampled path, not a full read
    exact = sum(1 for _ in big.open()) - 1
    assert abs(estimate_rows(big) - exact) / exact < 0.02
    assert (
        count_rows(small_synthetic_dir)
        == exact + sum(1 for _ in (small_synthetic_dir / "small_matrix.csv").open()) - 1
    )


def test_estimate_is_the_measured_line(small_synthetic_dir: Path) -> None:
    est = estimate_local(small_synthetic_dir, available=10 * 2**30)
    assert est.peak_bytes == BASE_BYTES + PER_ROW_BYTES * est.rows
    assert est.fits and est.rows > 40_000


def test_a_log_that_would_not_fit_is_refused_naming_the_spark_engine(
    small_synthetic_dir: Path,
) -> None:
    with pytest.raises(DataError, match="--engine spark") as got:
        check_fits_locally(small_synthetic_dir, available=300 * 2**20)
    assert "GiB" in str(got.value) and got.value.file == str(small_synthetic_dir)
    assert check_fits_locally(small_synthetic_dir, available=8 * 2**30).fits
