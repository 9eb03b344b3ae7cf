"""The progress display when nobody watches a terminal: one plain line per stage."""

from __future__ import annotations

import io
import re

from kuairec.display.progress import Progress


def test_plain_lines_per_stage_with_elapsed_time_when_not_a_terminal() -> None:
    out = io.StringIO()  # a log file: not a terminal
    with Progress(enabled=True, stream=out) as progress:
        with progress.stage("loading"):
            pass
        for _ in progress.iterate([1, 2], "models"):
            with progress.stage("ease: fit"):
                pass
    lines = out.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "loading", "ease: fit", "ease: fit", "done",
    ]  # fmt: skip
    assert all(re.match(r"^\[ *\d+\.\ds\] ", line) for line in lines)
    assert set(progress.timings) == {"loading", "ease: fit"}


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    with Progress(enabled=False, stream=out) as progress:
        with progress.stage("loading"):
            pass
    assert out.getvalue() == ""


def test_a_failing_job_does_not_say_done() -> None:
    out = io.StringIO()
    try:
        with Progress(enabled=True, stream=out) as progress, progress.stage("fit"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert out.getvalue().splitlines()[-1].endswith("] fit")
