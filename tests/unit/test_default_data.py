"""The synthetic default data: generated once, atomically, into the cache folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from kuairec import config
from kuairec.data import default, synthetic


@pytest.fixture
def calls(tmp_path: Path, monkeypatch) -> list[Path]:
    """A fake generator (two files) in an empty cache; records each folder it fills."""
    monkeypatch.setenv("KUAIREC_CACHE", str(tmp_path / "cache"))
    made: list[Path] = []

    def fake(out: Path, *, scale: float, seed: int, progress: bool) -> None:
        made.append(out)
        (out / "small_matrix.csv").write_text(f"{scale} {seed}")
        (out / "big_matrix.csv").write_text("rows")

    monkeypatch.setattr(synthetic, "generate", fake)
    return made


def test_generated_once_into_the_cache(calls: list[Path]) -> None:
    target = default.ensure_synthetic(0.5, 7, progress=False)
    assert target == config.synthetic_dir(0.5, 7)
    assert sorted(p.name for p in target.iterdir()) == ["big_matrix.csv", "small_matrix.csv"]
    assert default.ensure_synthetic(0.5, 7, progress=False) == target
    assert len(calls) == 1 and calls[0] != target  # built elsewhere, then renamed
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_a_half_made_folder_is_replaced(calls: list[Path]) -> None:
    target = config.synthetic_dir(0.5, 7)
    target.mkdir(parents=True)
    (target / "small_matrix.csv").write_text("half")  # no big_matrix.csv
    default.ensure_synthetic(0.5, 7, progress=False)
    assert (target / "small_matrix.csv").read_text() == "0.5 7" and len(calls) == 1
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_a_failed_generation_leaves_nothing(calls: list[Path], monkeypatch) -> None:
    def boom(out: Path, **kwargs) -> None:
        (out / "small_matrix.csv").write_text("partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "generate", boom)
    with pytest.raises(KeyboardInterrupt):
        default.ensure_synthetic(0.5, 7, progress=False)
    assert list(config.synthetic_dir(0.5, 7).parent.iterdir()) == []
