"""Fuzz the CLI's numeric options with random values: exit code 0 or 2 and exactly one
``error:`` line on stderr, never a traceback nor an unexpected error (exit 1).

Invocations fail fast by design (``--data`` names a folder that does not exist, ``--out``
lies under a file), so no real work starts whatever the values."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import _fuzz
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kuairec.cli import main

pytestmark = pytest.mark.fuzz

NUMBER = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "0",
            "1",
            "-1",
            "1e-5",
            "0.001",
            "4",
            "4.0000001",
            "1e400",
            "nan",
            "inf",
            "-inf",
            "0x10",
            "1_0",
            "",
            " ",
            "5,10",
            "5,,10",
            "0,5",
            "-5",
            "1e2",
            "10" * 12,
            "٣",
            "1.5",
            "abc",
        ]
    ),  # fmt: skip
)


def _invocation(data: st.DataObject, tmp: Path) -> list[str]:
    missing = str(tmp / "no-such-folder")
    blocked = str(tmp / "a-file" / "out")  # under a regular file: mkdir fails at once
    command = data.draw(st.sampled_from(["run", "tune", "generate"]), label="command")
    options = {
        "run": ["--seed", "--scale", "-k", "--bootstrap", "--devices"],
        "tune": ["--seed", "--scale", "--trials"],
        "generate": ["--seed", "--scale"],
    }[command]
    chosen = data.draw(st.lists(st.sampled_from(options), min_size=1, unique=True))
    argv: list[str] = []
    for opt in chosen:
        argv += [opt, data.draw(NUMBER, label=opt)]
    if command == "run":
        return ["run", "--data", missing, "--runs-dir", str(tmp / "runs"), "-q", *argv]
    if command == "tune":
        return ["tune", "--model", "ease", "--data", missing, "-q", *argv]
    return ["data", "generate", "--out", blocked, *argv]


@_fuzz.fuzz_settings(150)
@given(data=st.data())
def test_numeric_options_exit_cleanly(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "a-file").write_text("x")
        argv = _invocation(data, tmp)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        text = err.getvalue()
        assert "Traceback" not in text, text
        errors = [line for line in text.splitlines() if line.startswith("error:")]
        assert code in (0, 2), (argv, code, text)
        if code == 2:
            assert len(errors) == 1, (argv, text)
        assert not (tmp / "runs").exists() or not any((tmp / "runs").iterdir())
        name = "data generate" if argv[0] == "data" else argv[0]
        _fuzz.count("cli numeric options", f"exit {code} ({name})")
