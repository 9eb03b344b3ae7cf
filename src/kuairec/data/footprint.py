"""Will a log fit the local engine? An estimate made before loading, from file sizes.

The local engine holds the matrices, their per-pair aggregate and the models' training
matrices in one process; its peak memory grows linearly with the rows of the two
interaction matrices. Measured (``python benchmarks/bench_spark_engine.py ceiling``:
``kuairec run --models popularity,als,ease --no-validity --no-cold-items`` at synthetic
scales 0.2, 0.5 and 1.0; docs/scale.md) and fitted as ``peak = BASE + PER_ROW * rows``.
:func:`check_fits_locally` refuses a log whose estimate exceeds the memory available
(with a margin), naming ``--engine spark``, instead of letting the kernel kill the load
without a word. The row count is estimated from each matrix's size and the mean length
of its first and last lines (no full read): a few milliseconds for any size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kuairec.errors import DataError

#: the fit of the measured peaks (docs/scale.md, "The one-machine ceiling")
BASE_BYTES = 268 * 2**20
PER_ROW_BYTES = 203
SAMPLE = 1 << 20  # bytes read at each end of a matrix to estimate its line length
MATRICES = ("big_matrix.csv", "small_matrix.csv")


@dataclass(frozen=True)
class MemoryEstimate:
    """The estimated peak of a local run against the memory this machine has free."""

    rows: int  # interaction rows of the two matrices (estimated)
    peak_bytes: int
    available_bytes: int | None  # None: unknown (not Linux)

    @property
    def fits(self) -> bool:
        return self.available_bytes is None or self.peak_bytes <= self.available_bytes

    def describe(self) -> str:
        gib = 2**30
        free = "unknown" if self.available_bytes is None else f"{self.available_bytes / gib:.1f}"
        return (
            f"about {self.rows / 1e6:.1f}M interaction rows: the local engine would need about "
            f"{self.peak_bytes / gib:.1f} GiB, {free} GiB are available"
        )


def estimate_rows(path: Path) -> int:
    """Data rows of a CSV from its size and the mean length of its first and last lines."""
    size = path.stat().st_size
    if size <= 2 * SAMPLE:
        with open(path, "rb") as fh:
            return max(fh.read().count(b"\n") - 1, 0)
    with open(path, "rb") as fh:
        head = fh.read(SAMPLE)
        fh.seek(size - SAMPLE)
        tail = fh.read(SAMPLE)
    lines = head.count(b"\n") + tail.count(b"\n")
    return int(size / (2 * SAMPLE / max(lines, 1))) - 1


def count_rows(folder: Path | str) -> int:
    """Exact data rows of the two matrices (a streaming newline count; for benchmarks)."""
    total = 0
    for name in MATRICES:
        path = Path(folder) / name
        if path.exists():
            with open(path, "rb") as fh:
                total += sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b""))
            total -= 1  # the header
    return total


def available_bytes() -> int | None:
    """Memory this process may still use: MemAvailable, capped by a cgroup limit."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        free = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free


def estimate_local(folder: Path | str, available: int | None = None) -> MemoryEstimate:
    """The local engine's estimated peak for the matrices in ``folder``."""
    folder = Path(folder)
    if not (folder / MATRICES[0]).exists() and (folder / "data" / MATRICES[0]).exists():
        folder = folder / "data"
    rows = sum(estimate_rows(folder / n) for n in MATRICES if (folder / n).exists())
    free = available_bytes() if available is None else available
    return MemoryEstimate(rows, BASE_BYTES + PER_ROW_BYTES * rows, free)


def check_fits_locally(
    folder: Path | str, available: int | None = None, margin: float = 0.9
) -> MemoryEstimate:
    """The estimate, or a DataError naming ``--engine spark`` when the log would not fit
    in ``margin`` of the available memory (``available``: bytes, default: this machine's)."""
    estimate = estimate_local(folder, available)
    if estimate.available_bytes is not None and (
        estimate.peak_bytes > margin * estimate.available_bytes
    ):
        raise DataError(
            f"this log is too big for the local engine: {estimate.describe()}. Run it on "
            "Spark instead: kuairec run --engine spark (with --spark-master for a cluster), "
            "or free memory",
            file=folder,
        )
    return estimate
