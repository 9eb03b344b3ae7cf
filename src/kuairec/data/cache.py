"""The parsed-dataset cache: ``<cache_dir>/datasets/<key>/``.

``key`` hashes the data-format version and every source file's name, size, mtime_ns,
inode, ctime_ns and a head/tail content hash (:func:`source_key`), so editing, touching or
replacing a file invalidates the entry. An entry holds:

- ``manifest.json`` (written last): format, source folder, file stats, id-map sizes,
  the cleaning report and which optional fields exist;
- ``summary.json``: what ``describe()`` prints, precomputed;
- ``users.npy``, ``items.npy``, ``video_duration.npy``, ``big/*.npy``, ``small/*.npy``,
  ``truth/*.npy`` (Interactions fields), ``item_tags/*.npy`` and ``social/*.npy`` (CSR
  ``data``/``indices``/``indptr``): uncompressed, read with ``mmap_mode="r"``;
- ``user_features.arrow``, ``item_daily.arrow``, ``captions.arrow``, ``log_big.arrow``,
  ``log_small.arrow``: Arrow IPC, uncompressed.

An entry is built in a temporary folder beside it and renamed into place
(:mod:`kuairec.atomic`), so a crash or a validation error never leaves a partial entry;
the temporaries a dead process left behind (their lock is free) are swept at the next
build (:func:`kuairec.atomic.sweep_orphans`). A warm load maps the
arrays and reads the side frames only when first used (:class:`CachedDataset`): no
polars, no scipy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from kuairec import atomic
from kuairec.data import schema
from kuairec.data.dataset import CleaningReport, IdMap, Interactions, KuaiRecDataset
from kuairec.errors import DataError

FORMAT_VERSION = 3  # 2: every file's size in the manifest; 3: item_daily keeps its days
MANIFEST = "manifest.json"
_FRAMES = ("user_features", "item_daily", "captions")
_CSRS = ("item_tags", "social")
_INTERACTION_ARRAYS = ("indptr", "indices", *Interactions.VALUE_FIELDS)


FINGERPRINT_BYTES = 1 << 20  # hashed at each end of every source file


def head_tail_sha256(path: Path, size: int | None = None) -> str:
    """SHA-256 of a file's size, first MiB and last MiB: a cheap content fingerprint (the
    same as the run manifest's ``sha256_head_tail``, :mod:`kuairec.pipeline.manifest`)."""
    size = path.stat().st_size if size is None else size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            fh.seek(max(size - FINGERPRINT_BYTES, FINGERPRINT_BYTES))
            h.update(fh.read())
    return h.hexdigest()


def source_key(files: dict[str, Path | None]) -> str:
    """Hash of the format version and, for each source file, its name, size, mtime_ns,
    inode (device and number), ctime_ns and :func:`head_tail_sha256`.

    Size and mtime alone miss an edit that keeps the size with the mtime put back
    (``touch -d``, ``cp -p``, ``rsync -t``); the ctime cannot be put back without changing
    the clock, the inode changes when a file is replaced, and the content fingerprint
    catches a change at either end even on a file system with coarse or fake times."""
    h = hashlib.sha256(f"kuairec-dataset-format {FORMAT_VERSION}\n".encode())
    for spec in (*schema.FILES, schema.TRUTH):
        path = files.get(spec.key)
        if path is None:
            h.update(f"{spec.name} absent\n".encode())
        else:
            st = path.stat()
            print_ = head_tail_sha256(path, st.st_size)
            h.update(
                f"{spec.name} {st.st_size} {st.st_mtime_ns} {st.st_dev}:{st.st_ino} "
                f"{st.st_ctime_ns} {print_}\n".encode()
            )
    return h.hexdigest()[:24]


def datasets_dir(root: Path) -> Path:
    return Path(root) / "datasets"


def begin(root: Path, key: str) -> Path:
    """A fresh temporary folder inside ``<root>/datasets`` to build an entry in."""
    parent = datasets_dir(root)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        atomic.sweep_orphans(parent)  # temporaries of dead writers, at once
        return atomic.temp_dir(parent / key)
    except OSError as exc:
        raise DataError(
            f"cannot write the cache ({exc.strerror or exc}); set KUAIREC_CACHE to a "
            "writable folder",
            file=parent,
        ) from None


def abort(workdir: Path) -> None:
    atomic.discard(workdir)


def commit(workdir: Path, root: Path, key: str, source: Path) -> Path:
    """Rename the finished ``workdir`` into place (replacing an older copy of the same
    key) and remove other entries built from the same source folder."""
    parent = datasets_dir(root)
    final = parent / key
    try:
        atomic.install_dir(workdir, final, replace=True)
    except OSError:
        if not (final / MANIFEST).is_file():  # nobody else finished the same entry
            raise
        abort(workdir)
    _prune_same_source(parent, key, source)
    return final


def _prune_same_source(parent: Path, key: str, source: Path) -> None:
    for p in parent.iterdir():
        if p.name == key or p.name.startswith("."):
            continue
        try:
            meta = json.loads((p / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if meta.get("source") == str(source):
            shutil.rmtree(p, ignore_errors=True)


def save(
    workdir: Path,
    ds: KuaiRecDataset,
    summary: dict[str, Any],
    files: dict[str, Path | None],
) -> None:
    """Write ``ds`` (and the summary) into ``workdir``; the manifest goes last."""
    from kuairec.data.describe import SUMMARY_FILE

    _np_save(workdir / "users.npy", ds.users.raw)
    _np_save(workdir / "items.npy", ds.items.raw)
    _np_save(workdir / "video_duration.npy", ds.video_duration)
    fields: dict[str, Any] = {}
    for name in ("big", "small", "truth"):
        inter = getattr(ds, name)
        fields[name] = None if inter is None else _save_interactions(workdir / name, inter)
    for name in _CSRS:
        mat = getattr(ds, name)
        fields[name] = None if mat is None else _save_csr(workdir / name, mat)
    for name in _FRAMES:
        frame = getattr(ds, name)
        if frame is not None:
            frame.write_ipc(workdir / f"{name}.arrow", compression="uncompressed")
        fields[name] = None if frame is None else {"kind": "arrow"}
    (workdir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1), encoding="utf-8")
    write_manifest(workdir, ds, fields, files)


def write_manifest(
    workdir: Path, ds: KuaiRecDataset, fields: dict[str, Any], files: dict[str, Path | None]
) -> None:
    stats = {}
    for key, path in files.items():
        stats[key] = None if path is None else {"name": path.name, "size": path.stat().st_size}
    sizes = {
        p.relative_to(workdir).as_posix(): p.stat().st_size
        for p in sorted(workdir.rglob("*"))
        if p.is_file()
    }
    meta = {
        "format": FORMAT_VERSION,
        "key": ds.source_checksum,
        "source": str(ds.source),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": stats,
        "n_users": ds.n_users,
        "n_items": ds.n_items,
        "fields": fields,
        "report": dataclasses.asdict(ds.report),
        "sizes": sizes,  # every file of the entry but this one: a damaged entry is rebuilt
    }
    (workdir / MANIFEST).write_text(json.dumps(meta, indent=1), encoding="utf-8")


def _np_save(path: Path, arr: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(arr), allow_pickle=False)


def _save_interactions(folder: Path, inter: Interactions) -> dict[str, Any]:
    folder.mkdir()
    for name in _INTERACTION_ARRAYS:
        _np_save(folder / f"{name}.npy", getattr(inter, name))
    return {"kind": "interactions", "n_items": int(inter.n_items)}


def _save_csr(folder: Path, mat: Any) -> dict[str, Any]:
    folder.mkdir()
    for name in ("data", "indices", "indptr"):
        _np_save(folder / f"{name}.npy", getattr(mat, name))
    spec: dict[str, Any] = {"kind": "csr", "shape": [int(x) for x in mat.shape]}
    tag_ids = getattr(mat, "tag_ids", None)  # item_tags: the tag id of each column
    if tag_ids is not None:
        _np_save(folder / "tag_ids.npy", np.asarray(tag_ids, dtype=np.int64))
        spec["tag_ids"] = True
    return spec


def _np_load(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _load_interactions(folder: Path, spec: dict[str, Any]) -> Interactions:
    arrays = {name: _np_load(folder / f"{name}.npy") for name in _INTERACTION_ARRAYS}
    return Interactions(n_items=int(spec["n_items"]), **arrays)


class _Lazy:
    """A dataset field read from the cache entry the first time it is used."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return None  # the dataclass default
        try:
            return obj.__dict__[self.name]
        except KeyError:
            value = obj._read_field(self.name)
            obj.__dict__[self.name] = value
            return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value


class CachedDataset(KuaiRecDataset):
    """A :class:`KuaiRecDataset` opened from a cache entry: the matrices are memory-mapped
    (read-only) and the side information is read on first use."""

    item_tags = _Lazy()
    user_features = _Lazy()
    item_daily = _Lazy()
    captions = _Lazy()
    social = _Lazy()
    truth = _Lazy()

    _fields_meta: dict[str, Any]

    def _read_field(self, name: str) -> Any:
        spec = self._fields_meta.get(name)
        if spec is None:
            return None
        entry = self.cache_path
        assert entry is not None
        try:
            if spec["kind"] == "arrow":
                import polars as pl

                return pl.read_ipc(entry / f"{name}.arrow")
            if spec["kind"] == "csr":
                import scipy.sparse as sp

                parts = [_np_load(entry / name / f"{p}.npy") for p in ("data", "indices", "indptr")]
                mat = sp.csr_matrix(tuple(parts), shape=tuple(spec["shape"]))
                if spec.get("tag_ids"):
                    mat.tag_ids = np.load(entry / name / "tag_ids.npy", allow_pickle=False)
                return mat
            return _load_interactions(entry / name, spec)
        except FileNotFoundError:
            raise DataError(
                "the cache entry was removed while in use; load the dataset again", file=entry
            ) from None
        except Exception as exc:  # damaged after it was opened (sizes were checked then)
            if isinstance(exc, DataError):
                raise
            shutil.rmtree(entry, ignore_errors=True)  # the next load rebuilds it
            raise DataError(
                f"the cache entry's {name} is damaged ({type(exc).__name__}); it was removed: "
                "load the dataset again to rebuild it",
                file=entry,
            ) from None


def _sizes_match(entry: Path, sizes: dict[str, int]) -> bool:
    """Every file the manifest lists is there with its size (one stat each: a truncated
    or missing Arrow file, read only on first use, would otherwise fail far later)."""
    for name, size in sizes.items():
        if (entry / name).stat().st_size != size:  # a missing file: OSError, caught
            return False
    return True


def open_entry(root: Path, key: str, source: Path) -> CachedDataset | None:
    """The cached dataset for ``key``, or None when absent, stale or unreadable."""
    entry = datasets_dir(root) / key
    try:
        meta = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT_VERSION or not _sizes_match(entry, meta["sizes"]):
            return None
        fields = meta["fields"]
        ds = CachedDataset.__new__(CachedDataset)
        ds.users = IdMap(np.load(entry / "users.npy", allow_pickle=False), name="user_id")
        ds.items = IdMap(np.load(entry / "items.npy", allow_pickle=False), name="video_id")
        ds.big = _load_interactions(entry / "big", fields["big"])
        ds.small = _load_interactions(entry / "small", fields["small"])
        ds.video_duration = _np_load(entry / "video_duration.npy")
        ds.report = CleaningReport(**meta["report"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ds._fields_meta = fields
    ds.source = Path(source)
    ds.source_checksum = key
    ds.cache_path = entry
    return ds
