"""The README's Python API block runs as written (on small generated data)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _api_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README has no python block under '## Python API'"
    return match.group(1)


def test_readme_python_api_block_runs(tmp_path: Path) -> None:
    code = (
        _api_block() + "\nassert 0 < result.metrics['ndcg@10'] <= 1\nassert len(video_ids) == 10\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "diff" in out.stdout  # compare() printed its paired difference


def test_import_kuairec_is_light_and_lazy() -> None:
    code = (
        "import sys, kuairec\n"
        "heavy = [m for m in ('numpy', 'polars', 'scipy', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert callable(kuairec.evaluate_model) and 'kuairec.evaluation.fitted' in sys.modules\n"
        "assert set(kuairec.__all__) <= set(dir(kuairec))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
