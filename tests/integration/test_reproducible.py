"""Same command, same seed, same numbers, whatever the machine's load.

Two runs of the same ``kuairec run`` command: one on a quiet machine, one beside two
CPU-bound processes that the test starts and stops. Their metrics.json files must be
identical apart from what measures time or memory (each model's ``cost``); the manifest
(timestamps, stage times) is not compared. A model that declares itself not
deterministic is left out of the comparison, and the report must mark its row.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

MEASURED = {"cost"}  # keys whose values are measurements (seconds, megabytes)


@contextlib.contextmanager
def cpu_hogs(n: int = 2) -> Iterator[list[subprocess.Popen]]:
    """``n`` processes spinning on the CPU, stopped when the block ends."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=10)


def run_command(args: list[str], runs: Path) -> Path:
    """``kuairec run`` in a fresh process; its run folder."""
    runs.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "kuairec", "run", *args, "--runs-dir", str(runs), "-q"],
        capture_output=True, text=True, timeout=1200, env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = [p for p in runs.iterdir() if p.is_dir()]
    return folder


def comparable(doc: object, skip: set[str]) -> object:
    """The document without its measurements and without the models in ``skip``."""
    if isinstance(doc, dict):
        return {
            k: comparable(v, skip)
            for k, v in doc.items()
            if k not in MEASURED and not (isinstance(v, dict) and k in skip)
        }
    if isinstance(doc, list):
        return [comparable(v, skip) for v in doc if not (isinstance(v, str) and v in skip)]
    return doc


def nondeterministic(doc: dict) -> set[str]:
    return {n for n, m in doc["models"].items() if not m["deterministic"]}


def assert_same_numbers(quiet: Path, busy: Path) -> None:
    a = json.loads((quiet / "metrics.json").read_text())
    b = json.loads((busy / "metrics.json").read_text())
    skip = nondeterministic(a)
    assert skip == nondeterministic(b)
    report = (quiet / "report.md").read_text()
    for name in skip:  # declared, and marked where a reader sees the row
        assert f"| {name} (not deterministic) |" in report
    if skip:  # a comparison involving them is left out too: it carries their numbers
        for doc in (a, b):
            if doc.get("paired"):
                doc["paired"]["comparisons"] = {
                    k: v for k, v in doc["paired"]["comparisons"].items() if k not in skip
                }
                doc["paired"].pop("n_comparisons")
                for c in doc["paired"]["comparisons"].values():
                    c.pop("p_holm")  # adjusted over a family that includes them
            for section in ("label_sensitivity", "validity", "cold_items"):
                doc.get("sections", {}).pop(section, None)
    ca, cb = comparable(a, skip), comparable(b, skip)
    assert ca == cb, _first_difference(ca, cb)


def _first_difference(a: object, b: object, where: str = "$") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{where}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    return f"{where}: {a!r} != {b!r}"


def test_the_default_models_give_the_same_numbers_on_a_busy_machine(
    small_synthetic_dir: Path, tmp_path: Path
) -> None:
    args = ["--data", str(small_synthetic_dir), "--seed", "3", "--no-eda", "--bootstrap", "50",
            "--tune-trials", "3"]  # fmt: skip
    quiet = run_command(args, tmp_path / "quiet")
    with cpu_hogs(2):
        busy = run_command(args, tmp_path / "busy")
    assert_same_numbers(quiet, busy)
    doc = json.loads((quiet / "metrics.json").read_text())
    from kuairec.models.registry import default_models

    ran = set(doc["models"]) | set(doc["skipped"])
    assert ran == set(default_models())  # every model of the default run took part
    assert doc["sections"]["tuning"]["models"]  # tuning ran (a fixed count of trials)


def test_torch_models_on_two_cpu_processes_give_the_same_numbers(
    small_synthetic_dir: Path, tmp_path: Path
) -> None:
    args = ["--data", str(small_synthetic_dir), "--seed", "3", "--no-eda", "--bootstrap", "50",
            "--models", "popularity,autoencoder,two_tower", "--accelerator", "cpu",
            "--devices", "2", "--no-validity", "--no-cold-items", "--no-tune"]  # fmt: skip
    quiet = run_command(args, tmp_path / "quiet")
    with cpu_hogs(2):
        busy = run_command(args, tmp_path / "busy")
    assert_same_numbers(quiet, busy)
    doc = json.loads((quiet / "metrics.json").read_text())
    assert doc["models"]["autoencoder"]["config"]["devices"] == 2
