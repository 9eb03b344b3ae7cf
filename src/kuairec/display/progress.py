"""Progress display for long work: one bar per loop, a spinner per stage (on stderr)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class Progress:
    """A thin wrapper over rich's progress display that can be switched off.

    ``stage(name)`` shows a spinner while a step runs and logs its duration when it ends;
    ``iterate(items, name)`` shows a bar over a loop.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._rich = None
        self.timings: dict[str, float] = {}

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=sys.stderr),
                transient=False,
            )
            self._rich.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)
            self._rich = None

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        task = self._rich.add_task(name, total=1) if self._rich is not None else None
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - t0
            if task is not None and self._rich is not None:
                self._rich.update(task, completed=1)

    def iterate(self, items: Iterable[T], name: str) -> Iterator[T]:
        seq = list(items)
        if self._rich is None:
            yield from seq
            return
        task = self._rich.add_task(name, total=len(seq))
        for item in seq:
            self._rich.update(task, description=f"{name}: {item}")
            yield item
            self._rich.advance(task)
        self._rich.update(task, description=name)
