from pathlib import Path

import pytest

from kuairec import atomic


def test_write_text_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    atomic.write_text(target, "first")
    atomic.write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_temp_path_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "data.parquet"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.temp_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.parquet"]


def test_new_directory_renames_on_success_only(tmp_path: Path) -> None:
    done = tmp_path / "run-1"
    with atomic.new_directory(done) as tmp:
        (tmp / "a.txt").write_text("x")
        assert not done.exists()
    assert (done / "a.txt").read_text() == "x"

    failed = tmp_path / "run-2"
    with pytest.raises(ValueError):
        with atomic.new_directory(failed) as tmp:
            (tmp / "a.txt").write_text("x")
            raise ValueError("boom")
    assert not failed.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-1"]


def test_new_directory_never_overwrites(tmp_path: Path) -> None:
    with pytest.raises(FileExistsError):
        with atomic.new_directory(tmp_path):
            pass


def test_written_files_and_folders_get_ordinary_modes(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        f = atomic.write_text(tmp_path / "a.txt", "x")
        with atomic.new_directory(tmp_path / "run") as tmp:
            (tmp / "b").write_text("y")
    finally:
        os.umask(old)
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755
