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


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_new_directory_replace_swaps_in_the_complete_folder(tmp_path: Path) -> None:
    import os
    import stat

    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    old = os.umask(0o022)
    try:
        with atomic.new_directory(target, replace=True) as tmp:
            (tmp / "new.txt").write_text("new")
            assert (target / "old.txt").is_file()  # the old one stays until the end
    finally:
        os.umask(old)
    assert _names(target) == ["new.txt"] and _names(tmp_path) == ["model"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o755

    with pytest.raises(ValueError):
        with atomic.new_directory(target, replace=True) as tmp:
            (tmp / "half.txt").write_text("x")
            raise ValueError("boom")
    assert _names(target) == ["new.txt"] and _names(tmp_path) == ["model"]


def test_install_dir_puts_the_old_folder_back_when_the_rename_fails(
    tmp_path: Path, monkeypatch
) -> None:
    import os

    target = tmp_path / "entry"
    target.mkdir()
    (target / "old.txt").write_text("old")
    tmp = atomic.temp_dir(target)
    assert tmp.parent == tmp_path and tmp.name.startswith(".tmp-entry-")
    real = os.rename

    def failing(src, dst):
        if Path(src) == tmp:
            raise OSError("rename failed")
        return real(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    with pytest.raises(OSError, match="rename failed"):
        atomic.install_dir(tmp, target, replace=True)
    assert (target / "old.txt").read_text() == "old"
    # the caller discards tmp (still locked: its lock file is beside it)
    assert _names(tmp_path) == sorted(["entry", tmp.name, tmp.name + atomic.LOCK_SUFFIX])

    def lost_race(src, dst):  # another process installs its own entry first
        if Path(src) == tmp:
            Path(dst).mkdir()
            (Path(dst) / "theirs.txt").write_text("theirs")
            raise OSError("directory not empty")
        return real(src, dst)

    monkeypatch.setattr(os, "rename", lost_race)
    with pytest.raises(OSError, match="not empty"):
        atomic.install_dir(tmp, target, replace=True)
    assert _names(target) == ["theirs.txt"]
    atomic.discard(tmp)
    assert _names(tmp_path) == ["entry"]  # nothing moved aside is left


def test_install_dir_without_replace_refuses_an_existing_path(tmp_path: Path) -> None:
    tmp = atomic.temp_dir(tmp_path / "x")
    (tmp_path / "x").write_text("there")
    with pytest.raises(FileExistsError):
        atomic.install_dir(tmp, tmp_path / "x")
    assert (tmp_path / "x").read_text() == "there" and tmp.is_dir()


def test_sweep_removes_only_old_temporaries(tmp_path: Path) -> None:
    import os

    old = 1_000_000_000
    for name in (".tmp-a-1", ".old-b-2", ".tmp-live-3", "entry", ".hidden"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text("x")
    (tmp_path / ".tmp-file-4").write_text("x")
    for name in (".tmp-a-1", ".old-b-2", "entry", ".hidden", ".tmp-file-4"):
        os.utime(tmp_path / name, (old, old))
    removed = atomic.sweep(tmp_path, older_than=3600)
    assert sorted(p.name for p in removed) == [".old-b-2", ".tmp-a-1", ".tmp-file-4"]
    assert _names(tmp_path) == [".hidden", ".tmp-live-3", "entry"]
    assert atomic.sweep(tmp_path / "absent", older_than=0) == []


def test_temporary_files_carry_the_sweepable_prefix(tmp_path: Path) -> None:
    with atomic.temp_path(tmp_path / "out.csv") as tmp:
        assert tmp.name.startswith(".tmp-out.csv-") and atomic.is_temporary(tmp.name)
        tmp.write_text("x")
    assert _names(tmp_path) == ["out.csv"]


def _child_holding_a_temporary(parent: Path):
    """A real child process that creates a temporary folder and keeps writing it."""
    import subprocess
    import sys

    code = (
        "import sys, time\n"
        "from kuairec import atomic\n"
        f"tmp = atomic.temp_dir({str(parent / 'run')!r})\n"
        "(tmp / 'part.txt').write_text('half')\n"
        "print(tmp, flush=True)\n"
        "time.sleep(120)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline().strip()
    assert line, "the child did not start"
    return child, Path(line)


def test_sweep_orphans_removes_a_killed_writers_temporary_only(tmp_path: Path) -> None:
    import os
    import signal

    dead, dead_tmp = _child_holding_a_temporary(tmp_path)
    alive, alive_tmp = _child_holding_a_temporary(tmp_path)
    try:
        old = 1_000_000_000  # age does not matter: only the lock
        os.utime(alive_tmp, (old, old))
        assert atomic.sweep_orphans(tmp_path) == []  # both alive
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=30)
        assert dead_tmp.is_dir()  # SIGKILL: nothing cleaned up
        swept = atomic.sweep_orphans(tmp_path)
        assert swept == [dead_tmp]
        assert not dead_tmp.exists() and not Path(f"{dead_tmp}.lock").exists()
        assert (alive_tmp / "part.txt").read_text() == "half"  # the live one stays
        assert atomic.sweep(tmp_path, older_than=0) == []  # however old
    finally:
        for child in (dead, alive):
            child.kill()
            child.wait()
    assert sorted(atomic.sweep_orphans(tmp_path)) == [alive_tmp]
    assert _names(tmp_path) == []


def test_sweep_orphans_puts_back_a_folder_moved_aside(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    holder = tmp_path / ".old-model-abc"  # a replacement killed mid-swap (older version)
    holder.mkdir()
    target.rename(holder / "model")
    assert atomic.sweep_orphans(tmp_path, older_than=0) == [holder]
    assert (target / "old.txt").read_text() == "old" and _names(tmp_path) == ["model"]


def test_own_temporaries_are_locked_and_released(tmp_path: Path) -> None:
    with atomic.new_directory(tmp_path / "run") as tmp:
        assert Path(f"{tmp}{atomic.LOCK_SUFFIX}").is_file()
        assert atomic.sweep_orphans(tmp_path, older_than=0) == []  # our own: held
    assert _names(tmp_path) == ["run"]  # no lock file left, none inside
    assert _names(tmp_path / "run") == []
    tmp = atomic.temp_dir(tmp_path / "x")
    atomic.discard(tmp)
    assert _names(tmp_path) == ["run"]


def test_nothing_is_created_private(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        with atomic.new_directory(tmp_path / "a") as tmp:
            assert stat.S_IMODE(tmp.stat().st_mode) == 0o755  # even while being built
            (tmp / "f").write_text("x")
        with atomic.new_directory(tmp_path / "a", replace=True) as tmp:
            (tmp / "g").write_text("y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755


def test_cli_sigterm_cleans_up_like_ctrl_c(tmp_path: Path) -> None:
    """SIGTERM while the default data is generated into a temporary folder: exit 143, one
    line, and the temporary (with its lock file) removed through the normal path."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "KUAIREC_CACHE": str(tmp_path / "cache")}
    env.pop("KUAIREC_DATA", None)
    code = "import sys; from kuairec.cli import main; sys.exit(main(['data', 'describe']))"
    child = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True
    )
    synthetic = tmp_path / "cache" / "synthetic"
    deadline = time.monotonic() + 60
    while not (
        synthetic.is_dir() and any(atomic.is_temporary(p.name) for p in synthetic.iterdir())
    ):
        assert child.poll() is None and time.monotonic() < deadline, "no temporary appeared"
        time.sleep(0.05)
    time.sleep(0.5)  # in the middle of writing
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err
    lines = err.strip().splitlines()
    assert lines == ["Terminated."] and "Traceback" not in err
    assert _names(synthetic) == []  # no temporary, no lock file, no half-made folder
