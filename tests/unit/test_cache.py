"""The dataset cache: hits, invalidation, location, atomicity and pruning."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import _kuairec_fixtures as fx  # on sys.path through tests/conftest.py
import numpy as np
import pytest

from kuairec.data import cache, load
from kuairec.data.cache import CachedDataset
from kuairec.data.describe import describe
from kuairec.data.load import load_dataset, read_log


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return fx.write_tiny_folder(tmp_path / "data")


@pytest.fixture
def builds(monkeypatch) -> list[Path]:
    """Counts the cold builds (CSV parses) by recording each folder built."""
    calls: list[Path] = []
    real = load.build

    def counting(folder, *args, **kwargs):
        calls.append(folder)
        return real(folder, *args, **kwargs)

    monkeypatch.setattr(load, "build", counting)
    return calls


def test_second_load_hits_the_cache(folder: Path, tmp_path: Path, builds) -> None:
    first = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    second = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    assert len(builds) == 1
    assert not isinstance(first, CachedDataset) and isinstance(second, CachedDataset)
    assert second.cache_path == first.cache_path
    assert second.source_checksum == first.source_checksum
    assert np.array_equal(second.big.watch_ratio_mean, first.big.watch_ratio_mean)
    assert describe(second) == describe(first)


def test_touching_a_source_file_invalidates(folder: Path, tmp_path: Path, builds) -> None:
    first = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    st = (folder / "user_features.csv").stat()
    os.utime(folder / "user_features.csv", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    assert len(builds) == 2
    assert second.source_checksum != first.source_checksum
    assert fx.cache_entries(tmp_path / "c") == [second.source_checksum]  # old entry pruned


def test_changing_a_source_file_invalidates(folder: Path, tmp_path: Path, builds) -> None:
    load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    rows = fx.BIG_ROWS[:-1]  # drop one duplicate row: a different size
    (folder / "big_matrix.csv").write_text(fx.big_text(rows), encoding="utf-8")
    ds = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    assert len(builds) == 2
    assert ds.report.duplicates_dropped == 2


def test_same_size_edit_with_mtime_restored_invalidates(
    folder: Path, tmp_path: Path, builds
) -> None:
    first = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    path = folder / "big_matrix.csv"
    st = path.stat()
    text = path.read_text(encoding="utf-8")
    edited = text.replace(",5.0\n", ",6.0\n")  # (3, 200): same size, different value
    assert edited != text and len(edited) == len(text)
    with open(path, "r+", encoding="utf-8") as fh:  # in place: same inode
        fh.write(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    second = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    assert len(builds) == 2 and second.source_checksum != first.source_checksum
    assert second.big.watch_ratio_max.max() == pytest.approx(6.0)  # not the stale 5.0


def test_key_covers_inode_ctime_and_content(folder: Path, monkeypatch) -> None:
    files = load.locate_files(folder)
    key = cache.source_key(files)
    assert cache.source_key(files) == key  # stable
    path = folder / "user_features.csv"
    st = path.stat()
    copy = folder / "copy.tmp"
    copy.write_bytes(path.read_bytes())
    os.replace(copy, path)  # same bytes, size and (restored) mtime; a new inode
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.source_key(files) != key
    key = cache.source_key(files)
    # a file system whose stat lies (same size, times and inode): the content still counts
    real_hash = cache.head_tail_sha256
    monkeypatch.setattr(cache, "head_tail_sha256", lambda p, size=None: real_hash(p, size) + "x")
    assert cache.source_key(files) != key


def test_head_tail_hash_matches_the_run_manifest(tmp_path: Path) -> None:
    from kuairec.pipeline.manifest import data_checksum

    path = tmp_path / "big_matrix.csv"
    path.write_bytes(os.urandom(3 * cache.FINGERPRINT_BYTES + 17))
    assert data_checksum(tmp_path)["files"][path.name]["sha256_head_tail"] == (
        cache.head_tail_sha256(path)
    )


def test_adding_a_side_file_invalidates(tmp_path: Path, builds) -> None:
    folder = fx.write_tiny_folder(tmp_path / "data", skip=("social_network.csv",))
    assert load_dataset(folder, cache_dir=tmp_path / "c", progress=False).social is None
    (folder / "social_network.csv").write_text(fx.SOCIAL, encoding="utf-8")
    assert load_dataset(folder, cache_dir=tmp_path / "c", progress=False).social.nnz == 6
    assert len(builds) == 2


def test_cache_dir_from_env_or_argument(folder: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KUAIREC_CACHE", str(tmp_path / "env"))
    from_env = load_dataset(folder, progress=False)
    assert from_env.cache_path.parent == tmp_path / "env" / "datasets"
    from_arg = load_dataset(folder, cache_dir=tmp_path / "arg", progress=False)
    assert from_arg.cache_path.parent == tmp_path / "arg" / "datasets"
    assert (from_arg.cache_path / "manifest.json").is_file()


def test_no_cache_reparses_and_replaces(folder: Path, tmp_path: Path, builds) -> None:
    load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    again = load_dataset(folder, cache_dir=tmp_path / "c", use_cache=False, progress=False)
    assert len(builds) == 2
    assert fx.cache_entries(tmp_path / "c") == [again.source_checksum]
    assert read_log(again, "big").height == 6


def test_failure_mid_build_leaves_nothing(folder: Path, tmp_path: Path, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cache, "write_manifest", boom)  # after the arrays and logs
    with pytest.raises(RuntimeError, match="disk full"):
        load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    assert fx.cache_entries(tmp_path / "c") == []
    monkeypatch.undo()
    assert load_dataset(folder, cache_dir=tmp_path / "c", progress=False).n_users == 4


@pytest.mark.parametrize("stage", ["read", "build"])
def test_failure_in_a_side_file_leaves_nothing(
    folder: Path, tmp_path: Path, monkeypatch, stage: str
) -> None:
    import dataclasses

    from kuairec.data import side

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    spec = dataclasses.replace(side.SIDE_FILES["social_network"], **{stage: boom})
    monkeypatch.setitem(side.SIDE_FILES, "social_network", spec)
    with pytest.raises(KeyboardInterrupt):
        load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    assert fx.cache_entries(tmp_path / "c") == []


def test_corrupt_entry_is_rebuilt(folder: Path, tmp_path: Path, builds) -> None:
    ds = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    (ds.cache_path / "manifest.json").write_text("{not json", encoding="utf-8")
    again = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    assert len(builds) == 2 and again.n_items == 5
    (again.cache_path / "big" / "views.npy").unlink()
    load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    assert len(builds) == 3


@pytest.mark.parametrize("name", ["log_big.arrow", "user_features.arrow", "big/views.npy"])
def test_truncated_file_in_an_entry_is_rebuilt(
    folder: Path, tmp_path: Path, builds, name: str
) -> None:
    ds = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    path = ds.cache_path / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    again = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    assert len(builds) == 2 and not isinstance(again, CachedDataset)
    assert read_log(again, "big").height == 6 and again.user_features.height == 4
    warm = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    assert isinstance(warm, CachedDataset) and warm.user_features.height == 4


def test_entry_damaged_while_in_use_is_one_clear_error(folder: Path, tmp_path: Path) -> None:
    from kuairec.errors import DataError

    for name in ("user_features.arrow", "log_big.arrow"):
        load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
        warm = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
        assert isinstance(warm, CachedDataset)
        (warm.cache_path / name).write_bytes(b"ARROW1 truncated")
        with pytest.raises(DataError, match="is damaged.*rebuild") as info:
            if name == "log_big.arrow":
                read_log(warm, "big")
            else:
                _ = warm.user_features
        assert "\n" not in str(info.value) and str(warm.cache_path) in str(info.value)
        assert not warm.cache_path.exists()  # removed: the next load rebuilds it
    assert load_dataset(folder, cache_dir=tmp_path / "c", progress=False).n_users == 4


def test_other_format_version_is_ignored(folder: Path, tmp_path: Path, builds) -> None:
    ds = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    manifest = ds.cache_path / "manifest.json"
    meta = json.loads(manifest.read_text(encoding="utf-8"))
    meta["format"] = -1
    manifest.write_text(json.dumps(meta), encoding="utf-8")
    load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    assert len(builds) == 2


def test_entry_holds_plain_arrays_and_arrow(folder: Path, tmp_path: Path) -> None:
    ds = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    entry = ds.cache_path
    indptr = np.load(entry / "big" / "indptr.npy", mmap_mode="r", allow_pickle=False)
    assert indptr.tolist() == [0, 2, 4, 5, 5]
    for name in ("users", "items", "video_duration"):
        np.load(entry / f"{name}.npy", allow_pickle=False)
    for name in ("user_features", "item_daily", "captions", "log_big", "log_small"):
        assert (entry / f"{name}.arrow").is_file()
    meta = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
    assert meta["source"] == str(folder) and meta["n_items"] == 5
    assert meta["report"]["duplicates_dropped"] == 3


def test_warm_load_imports_neither_polars_nor_scipy(folder: Path, tmp_path: Path) -> None:
    import subprocess

    load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    code = (
        "import sys; from kuairec.data.load import load_dataset; "
        "from kuairec.data.describe import describe; "
        f"ds = load_dataset({str(folder)!r}, cache_dir={str(tmp_path / 'c')!r}); "
        "s = describe(ds); "
        "print(s['matrices']['big']['rows'], 'polars' in sys.modules, "
        "'scipy.sparse' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["6", "False", "False"]


def test_stale_temporary_folders_are_swept(folder: Path, tmp_path: Path) -> None:
    stale = tmp_path / "c" / "datasets" / ".tmp-dead-1"
    stale.mkdir(parents=True)
    old = 1_000_000_000
    os.utime(stale, (old, old))
    fresh = tmp_path / "c" / "datasets" / ".tmp-live-2"  # another process building now
    fresh.mkdir()
    load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    names = fx.cache_entries(tmp_path / "c")
    assert ".tmp-dead-1" not in names and ".tmp-live-2" in names


def test_killed_builders_temporary_is_swept_at_the_next_build(folder: Path, tmp_path: Path) -> None:
    import signal
    import subprocess

    datasets = tmp_path / "c" / "datasets"
    code = (
        "import sys, time\n"
        "from kuairec.data import cache\n"
        f"print(cache.begin({str(tmp_path / 'c')!r}, 'k'), flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        tmp = Path(child.stdout.readline().strip())
        assert tmp.is_dir() and tmp.parent == datasets
        load_dataset(folder, cache_dir=tmp_path / "c", progress=False, use_cache=False)
        assert tmp.is_dir()  # its writer is alive: never swept, however old
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        entry = load_dataset(folder, cache_dir=tmp_path / "c", progress=False, use_cache=False)
        assert not tmp.exists()  # swept at once, not after six hours
        assert fx.cache_entries(tmp_path / "c") == [entry.source_checksum]
    finally:
        child.kill()
        child.wait()


def test_failed_replacement_keeps_the_old_entry(folder: Path, tmp_path: Path, monkeypatch) -> None:
    first = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    real = os.rename

    def failing(src, dst):
        if Path(src).name.startswith(".tmp-"):
            raise OSError("rename failed")
        return real(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    # the new entry cannot be renamed in: the old one (same key, so just as good) is put
    # back and used, and the new one discarded
    ds = load_dataset(folder, cache_dir=tmp_path / "c", use_cache=False, progress=False)
    monkeypatch.undo()
    assert ds.cache_path == first.cache_path and read_log(ds, "big").height == 6
    assert fx.cache_entries(tmp_path / "c") == [first.source_checksum]  # no temporary left
    again = load_dataset(folder, cache_dir=tmp_path / "c", progress=False)
    assert isinstance(again, CachedDataset) and again.n_users == first.n_users
