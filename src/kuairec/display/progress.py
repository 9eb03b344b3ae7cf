"""The one progress display for long work: a spinner per stage, a bar per loop, step
notes, all in one rich display on stderr.

Every long stage (data generation and loading, the EDA report, the main job) reports
through a :class:`Progress`. Library functions take ``progress: bool | Progress``:
:func:`using` turns that into a display, so a stage called from inside ``kuairec run``
draws into the run's display instead of starting a second one. Third-party bars
(implicit's tqdm, Optuna's) are never switched on.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

from kuairec.display.resources import peak_rss_mb

T = TypeVar("T")


class Progress:
    """A thin wrapper over rich's progress display that can be switched off.

    ``stage(name)`` shows a spinner while a step runs and logs its duration when it ends;
    ``iterate(items, name)`` shows a bar over a loop. When stderr is not a terminal (a log
    file, nohup, CI, a notebook) there are no bars: each stage prints one plain line as
    it starts, with the time elapsed since the display opened, so a long job written to
    a file shows where it is.
    """

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self._rich = None
        self._stream = stream  # plain lines go here (default: stderr, looked up late)
        self._plain = False
        self._t0 = time.perf_counter()
        self.timings: dict[str, float] = {}
        # (stage, wall seconds, CPU seconds of this process's threads, the process's peak
        # RSS so far in MB) each time a stage ends, in order (a name can recur: the
        # cold-video refits reuse "<model>: fit"); see ``peaks`` and ``cpu``
        self.ended: list[tuple[str, float, float, float]] = []

    def __enter__(self) -> Progress:
        self._t0 = time.perf_counter()
        stream = self._stream or sys.stderr
        self._plain = self.enabled and not stream.isatty()
        if self.enabled and not self._plain:  # bars are for a person at a terminal
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
        if self._plain and exc[0] is None:
            self._line("done")
        self._plain = False

    def _line(self, text: str) -> None:
        stream = self._stream or sys.stderr
        print(f"[{time.perf_counter() - self._t0:8.1f}s] {text}", file=stream, flush=True)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        task = self._rich.add_task(name, total=1) if self._rich is not None else None
        if self._plain:
            self._line(name)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - t0
            cpu = time.process_time() - c0
            self.ended.append((name, self.timings[name], cpu, peak_rss_mb()))
            if task is not None and self._rich is not None:
                self._rich.update(task, completed=1)

    def in_child(self) -> None:
        """In a forked process that works for this one: no drawing into the parent's
        display (plain lines still print, with the parent's clock)."""
        self._rich = None

    def elsewhere(self, name: str) -> Callable[[], None]:
        """A spinner for work another process does (on a terminal; in plain output that
        process prints its own lines); returns what ends it. Nothing is timed here."""
        if self._rich is None:
            return lambda: None
        task = self._rich.add_task(f"{name} (second process)", total=1)

        def done() -> None:
            if self._rich is not None:
                self._rich.update(task, completed=1)

        return done

    def add_ended(self, ended: Iterable[tuple[str, float, float, float]]) -> None:
        """Stages another process timed (see ``ended``), added to this display's."""
        for name, wall, cpu, peak in ended:
            self.timings[name] = wall
            self.ended.append((name, wall, cpu, peak))

    @property
    def peaks(self) -> list[tuple[str, float]]:
        """(stage, peak RSS so far in MB) as stages ended: the first stage that reaches
        the run's final peak is where the peak was."""
        return [(name, peak) for name, _, _, peak in self.ended]

    @property
    def cpu(self) -> list[tuple[str, float, float]]:
        """(stage, wall seconds, CPU seconds) as stages ended: CPU / wall is how many of
        the cores the stage kept busy (a child process such as Spark's JVM not counted)."""
        return [(name, wall, cpu) for name, wall, cpu, _ in self.ended]

    def note(self, message: str) -> None:
        """A one-line step message above the bars (only on a terminal, as the bars)."""
        if self._rich is not None and self._rich.console.is_terminal:
            self._rich.console.print(f"[dim]{message}[/dim]", highlight=False)

    @contextlib.contextmanager
    def task(self, name: str, total: int) -> Iterator[Callable[[int], None]]:
        """A bar of ``total`` steps; yields ``advance(k)``."""
        if self._rich is None:
            yield lambda k: None
            return
        task = self._rich.add_task(name, total=total)
        yield lambda k: self._rich.advance(task, k) if self._rich is not None else None

    def iterate(
        self, items: Iterable[T], name: str, label: Callable[[T], str] = str
    ) -> Iterator[T]:
        """A bar over ``items``; each step is timed into ``timings`` as "name: label"."""
        seq = list(items)
        task = self._rich.add_task(name, total=len(seq)) if self._rich is not None else None
        for item in seq:
            if task is not None and self._rich is not None:
                self._rich.update(task, description=f"{name}: {label(item)}")
            yield item
            if task is not None and self._rich is not None:
                self._rich.advance(task)
        if task is not None and self._rich is not None:
            self._rich.update(task, description=name)


@contextlib.contextmanager
def using(progress: bool | Progress) -> Iterator[Progress]:
    """The caller's display when it passes one, else a new one (shown when True)."""
    if isinstance(progress, Progress):
        yield progress
        return
    with Progress(enabled=bool(progress)) as own:
        yield own
