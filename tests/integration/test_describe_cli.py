"""``kuairec data describe`` end to end on the tiny hand-made folder: cold, then warm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import _kuairec_fixtures as fx  # on sys.path through tests/conftest.py

from kuairec.cli import main


def test_describe_prints_the_table(tmp_path: Path, monkeypatch, capsys) -> None:
    folder = fx.write_tiny_folder(tmp_path / "data", skip=("social_network.csv",))
    monkeypatch.setenv("KUAIREC_CACHE", str(tmp_path / "cache"))
    assert main(["data", "describe", "--data", str(folder)]) == 0
    out = capsys.readouterr().out
    lines = {line[:28].strip(): line[28:].split() for line in out.splitlines() if line.strip()}
    assert lines["rows (raw)"] == ["9", "4"]
    assert lines["rows (deduplicated)"] == ["6", "4"]
    assert lines["duplicates dropped"] == ["3", "0"]
    assert lines["unique user-video pairs"] == ["5", "4"]
    assert lines["density (raw rows / cells)"] == ["75.00%", "44.44%"]
    assert lines["watch_ratio median"] == ["1.250", "1.100"]
    assert lines["positive rate (wr > 2)"] == ["16.67%", "25.00%"]
    assert lines["rows without time"] == ["0", "1"]
    assert lines["first date"] == ["2020-07-05", "2020-07-10"]
    assert "missing side files: social_network.csv" in out
    assert "cold test users (small, not in big): 1" in out


def test_describe_json_equals_library_summary(tmp_path: Path, monkeypatch, capsys) -> None:
    folder = fx.write_tiny_folder(tmp_path / "data")
    monkeypatch.setenv("KUAIREC_CACHE", str(tmp_path / "cache"))
    assert main(["data", "describe", "--data", str(folder), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["matrices"]["big"]["watch_ratio"]["p90"] == 3.5
    assert summary["side_ids_dropped"]["caption_category"] == 1
    assert summary["source"] == str(folder)
    assert main(["data", "describe", "--data", str(folder), "--json", "--no-cache"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == summary


def test_warm_describe_in_a_fresh_process(tmp_path: Path) -> None:
    folder = fx.write_tiny_folder(tmp_path / "data")
    env = {**os.environ, "KUAIREC_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "kuairec", "data", "describe", "--data", str(folder)]
    cold = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    warm = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert warm.stdout == cold.stdout
    assert warm.stderr == ""  # the warm path reads the cache quietly
    assert len(list((tmp_path / "cache" / "datasets").iterdir())) == 1
