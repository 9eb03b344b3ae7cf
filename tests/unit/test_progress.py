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


def test_each_stage_records_the_peak_memory_so_far_so_a_run_shows_where_it_peaked() -> None:
    """A stage that holds 1 GB raises the recorded peak by about that much; the stages
    before it do not see it. In a fresh process, started from this large one: the peak
    must be the child's own, not getrusage's, which starts at the parent's size."""
    import json
    import subprocess
    import sys

    code = (
        "import json, numpy as np\n"
        "from kuairec.display.progress import Progress\n"
        "with Progress(enabled=False) as p:\n"
        "    with p.stage('small'):\n"
        "        pass\n"
        "    with p.stage('big'):\n"
        "        a = np.ones(1024 * 2**20, np.uint8)\n"
        "    del a\n"
        "    with p.stage('small'):\n"
        "        pass\n"
        "print(json.dumps(p.peaks))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    events = json.loads(out.stdout)
    assert [name for name, _ in events] == ["small", "big", "small"]  # in order, repeats kept
    peaks = {"small": events[0][1], "big": events[1][1], "after": events[2][1]}
    assert 700 <= peaks["big"] - peaks["small"] <= 1300  # MB (the kernel's count lags)
    assert peaks["after"] >= peaks["big"] - 5  # a peak so far, not the RSS now (MB; the
    # kernel records the high-water mark lazily, a few pages may fall off it)


def test_each_stage_records_its_cpu_time_beside_its_wall_time() -> None:
    """A stage that waits uses wall time and no CPU; one that computes uses both, in
    order, repeats kept: CPU / wall is how many cores the stage kept busy."""
    import time

    with Progress(enabled=False) as p:
        with p.stage("wait"):
            time.sleep(0.3)
        with p.stage("work"):  # 0.3 s of this process's CPU, however loaded the machine
            t = time.process_time()
            while time.process_time() - t < 0.3:
                pass
        with p.stage("wait"):
            time.sleep(0.1)
    assert [name for name, _, _ in p.cpu] == ["wait", "work", "wait"]
    (_, wait_wall, wait_cpu), (_, work_wall, work_cpu), (_, last_wall, _) = p.cpu
    assert wait_wall >= 0.29 and wait_cpu < 0.05
    assert work_cpu >= 0.29 and work_wall >= work_cpu - 0.01
    assert 0.09 <= last_wall < 0.3  # the repeat's own time, not the first's


def test_freed_heap_memory_goes_back_to_the_system() -> None:
    """Small arrays live in the C heap; freed below a live one (the heap's top), they stay
    resident until the heap is trimmed. In a fresh process: about 400 MB freed, then
    ``release_free_memory`` must bring the resident size down by most of it."""
    import json
    import subprocess
    import sys

    import pytest

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's malloc_trim: Linux only")
    code = (
        "import json, numpy as np\n"
        "from kuairec.display.resources import current_rss_mb, release_free_memory\n"
        "small = [np.ones(4096, np.uint8) for _ in range(100_000)]\n"  # ~400 MB in the heap
        "top = np.ones(4096, np.uint8)\n"  # keeps the heap's top in use
        "del small\n"
        "freed = current_rss_mb()\n"
        "release_free_memory()\n"
        "print(json.dumps([freed, current_rss_mb()]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    freed, trimmed = json.loads(out.stdout)
    assert freed - trimmed > 250  # MB handed back


def test_a_second_process_draws_nothing_and_its_stages_join_the_runs() -> None:
    """What a forked lane of the run times comes back as its stages (their own wall,
    CPU and peak); on a terminal the run shows a spinner for it, and the forked copy
    never draws into the run's display."""
    out = io.StringIO()
    out.isatty = lambda: True  # a terminal: bars, not lines
    with Progress(stream=out) as progress:
        assert progress._rich is not None
        done = progress.elsewhere("bpr: fit and evaluate")
        tasks = progress._rich.tasks
        assert [t.description for t in tasks] == ["bpr: fit and evaluate (second process)"]
        assert not tasks[0].finished
        done()
        assert tasks[0].finished
        progress.add_ended([("bpr: fit", 2.5, 2.4, 812.0)])
        assert progress.timings["bpr: fit"] == 2.5 and progress.ended[-1][2:] == (2.4, 812.0)
        progress.in_child()  # what the forked copy does first
        assert progress._rich is None
        assert progress.elsewhere("x")() is None  # no display: nothing to end
