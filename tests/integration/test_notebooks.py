"""The example notebooks (examples/*.ipynb) run top to bottom in a fresh kernel, and are
stored clean (no outputs, no execution counts).

Each notebook runs on its defaults: small generated data (``kuairec.synthetic_data
(scale=0.05)``), generated into the test session's temporary ``KUAIREC_CACHE``. The
kernel is the test's own Python (the venv's), started from a kernelspec written into a
temporary folder, so no kernelspec installed elsewhere on the machine can stand in.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
EXPECTED = {
    "01_data_and_eda",
    "02_als_implicit_and_spark",
    "03_autoencoder",
    "04_two_tower",
    "05_evaluate_your_own_model",
    "06_offline_evaluation_validity",
}
CELL_TIMEOUT_S = 600  # per cell; the notebooks take about a minute each in all
# the model whose optional packages a notebook needs (skipped, with the reason, without them)
NEEDS = {
    "02_als_implicit_and_spark": "spark_als",
    "03_autoencoder": "autoencoder",
    "04_two_tower": "two_tower",
}


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_every_example_notebook_is_there() -> None:
    assert EXPECTED <= {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cell"
    for i, cell in enumerate(code):
        assert cell.outputs == [], f"{path.name}: code cell {i} is stored with outputs"
        assert cell.execution_count is None, f"{path.name}: code cell {i} has an execution count"
    # the one variable that switches to the real data, in the first code cell
    assert "DATA = None" in code[0].source, f"{path.name}: first code cell lacks DATA = None"


def _skip_without_requirements(stem: str) -> None:
    from kuairec.models.registry import available_models, missing_requirement

    model = NEEDS.get(stem)
    if model is None:
        return
    if model not in available_models():
        pytest.skip(f"{stem}: model {model!r} is not registered")
    missing = missing_requirement(model)
    if missing:
        pytest.skip(f"{stem}: {missing}")
    if model.startswith("spark"):
        from kuairec.models.spark_session import java_problem

        problem = java_problem()
        if problem:
            pytest.skip(f"{stem}: {problem}")


def _kernel_manager(tmp: Path):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = tmp / "kernels" / "kuairec-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "kuairec (test)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    specs = KernelSpecManager(kernel_dirs=[str(spec.parent)], ensure_native_kernel=False)
    return KernelManager(kernel_name="kuairec-test", kernel_spec_manager=specs)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs(path: Path, tmp_path: Path, record_property) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    _skip_without_requirements(path.stem)
    cache = os.environ.get("KUAIREC_CACHE")
    assert cache, "tests/conftest.py sets KUAIREC_CACHE to a temporary folder"
    env = {**os.environ, "KUAIREC_CACHE": cache}
    env.pop("KUAIREC_DATA", None)  # the notebooks' defaults: generated data
    env.pop("MPLBACKEND", None)  # ipykernel's inline backend, so figures render
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    (tmp_path / "tmp").mkdir()
    env["TMPDIR"] = str(tmp_path / "tmp")  # the notebooks' temporary folders land here
    nb = nbformat.read(path, as_version=4)
    km = _kernel_manager(tmp_path)
    client = nbclient.NotebookClient(
        nb, km=km, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(workdir)}}
    )
    start = time.perf_counter()
    try:
        client.execute(env=env)  # a fresh kernel, started in workdir
        seconds = time.perf_counter() - start
    finally:  # nbclient leaves a kernel it was handed running (300-550 MB each)
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    record_property("seconds", round(seconds, 1))
    print(f"{path.name}: {seconds:.1f} s")
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors  # nbclient raises on the first error; this guards allow_errors


# ---------------------------------------------------------------------- the README's runner
README = EXAMPLES.parent / "README.md"


def _readme_notebook_commands() -> tuple[list[str], list[list[str]]]:
    """The README's install command's extras and its ``jupyter ...`` commands."""
    import re
    import shlex

    text = README.read_text(encoding="utf-8").replace("\n", " ")
    paragraph = text[text.index("**Notebooks.**") :]
    paragraph = paragraph[: paragraph.index("## ")]
    commands = [shlex.split(c) for c in re.findall(r"`([^`]+)`", paragraph)]
    extras = [
        extra
        for c in commands
        if c[:2] == ["pip", "install"]
        for extra in re.findall(r"\[([a-z,]+)\]", " ".join(c))
    ]
    return extras, [c for c in commands if c[0] == "jupyter"]


def test_the_readmes_notebook_commands_are_installed_by_its_extra() -> None:
    """The README said `pip install jupyterlab` and `jupyter nbconvert --execute` failed
    in the project's environment: the commands it documents must be what its extra
    installs, and `make test` installs that extra."""
    import tomllib

    extras, commands = _readme_notebook_commands()
    assert extras == ["notebooks"], extras
    pyproject = tomllib.loads((EXAMPLES.parent / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        re.split(r"[<>=;\[ ]", p)[0].lower()
        for p in pyproject["project"]["optional-dependencies"]["notebooks"]
    }
    assert {"jupyterlab", "nbclient", "ipykernel"} <= packages
    assert ",notebooks]" in (EXAMPLES.parent / "Makefile").read_text(encoding="utf-8")
    subcommands = {c[1] for c in commands}
    assert {"lab", "execute", "nbconvert"} <= subcommands, subcommands
    bin_dir = Path(sys.executable).parent
    for sub in subcommands:  # `jupyter X` runs the executable jupyter-X
        assert (bin_dir / f"jupyter-{sub}").exists(), f"jupyter {sub} is not installed"


@pytest.mark.slow
def test_the_readmes_headless_command_runs_a_notebook(tmp_path: Path) -> None:
    import subprocess

    _, commands = _readme_notebook_commands()
    (command,) = [c for c in commands if c[1] == "execute"]
    cache = os.environ["KUAIREC_CACHE"]
    env = {**os.environ, "KUAIREC_CACHE": cache, "TMPDIR": str(tmp_path)}
    env.pop("KUAIREC_DATA", None)
    env.pop("MPLBACKEND", None)
    argv = [str(Path(sys.executable).parent / "jupyter"), *command[1:]]
    argv[-1] = str(EXAMPLES.parent / argv[-1])  # the README runs it from the repository
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
