"""The machine a benchmark ran on, for the figures written into docs/."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model(default: str = "unknown CPU") -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default


def memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def machine() -> str:
    """``"2 cores (AMD EPYC), 24 GiB RAM, Linux-..."``."""
    return (
        f"{os.cpu_count()} cores ({cpu_model()}), {memory_gib():.0f} GiB RAM, {platform.platform()}"
    )
