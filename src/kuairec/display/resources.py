"""Cost columns: wall time and peak resident memory of a stage, measured in-process.

``resource.getrusage`` only gives the process-wide maximum, which never goes down, so a
stage's own peak is sampled from ``/proc/self/statm`` by a background thread.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from dataclasses import dataclass

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE / 2**20
    except OSError:  # not Linux: fall back to the process maximum
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB: Linux's ``VmHWM``, the
    process's own high-water mark (``getrusage``'s maximum also counts the parent's
    memory at the fork: a run started from a 1.5 GB process would start at 1.5 GB);
    elsewhere ``getrusage``'s maximum."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes / KiB


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``; nothing
    elsewhere). Memory that numpy and torch free inside the heap stays resident until the
    heap's top is free; a long run that frees a model's temporaries and then allocates
    elsewhere (a large array is its own mapping) keeps them: 270 MB after the BPR and
    two-tower fits at full size. Called between models and sections: a few ms."""
    global _TRIM
    if _TRIM is None:
        _TRIM = False
        if sys.platform.startswith("linux"):
            import ctypes

            try:
                _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
            except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
                pass
    if _TRIM:
        _TRIM(0)


_TRIM = None


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


class measure:  # noqa: N801 - used as a context manager, reads like a verb
    """``with measure() as m: ...`` then ``m.seconds`` and ``m.peak_rss_mb``."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.result = Measurement()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.result.peak_rss_mb = max(self.result.peak_rss_mb, current_rss_mb())

    def __enter__(self) -> Measurement:
        self.result.peak_rss_mb = current_rss_mb()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self.result

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.result.seconds = time.perf_counter() - self._t0
        self.result.peak_rss_mb = max(self.result.peak_rss_mb, current_rss_mb())
