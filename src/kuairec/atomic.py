"""Write, then rename: nothing already written is lost or left half-written.

Files and folders are built under a temporary sibling of their target, named
``.tmp-<name>-<random>``, and renamed onto it when complete; a folder being replaced is
first moved aside as ``.old-<name>-<random>``. The final entries get the ordinary modes
(0666 for files, 0777 for folders, less the umask). What a killed process leaves behind
carries those prefixes, so :func:`sweep` can find it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TEMP_PREFIX = ".tmp-"  # an entry being built
ASIDE_PREFIX = ".old-"  # a folder moved aside while its replacement is renamed in


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _public(path: Path | str, mode: int) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give them the usual modes."""
    os.chmod(path, mode & ~_umask())


def _temp_file(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}-", dir=path.parent)


def write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary sibling file and ``os.replace``."""
    path = Path(path)
    fd, tmp = _temp_file(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _public(tmp, 0o666)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_text(path: Path | str, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def temp_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling path to write; on success it is renamed onto ``path``."""
    path = Path(path)
    fd, tmp = _temp_file(path)
    os.close(fd)
    try:
        yield Path(tmp)
        _public(tmp, 0o666)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def temp_dir(path: Path | str) -> Path:
    """A new empty folder beside ``path`` (``.tmp-<name>-...``) to build ``path`` in.

    Hand it to :func:`install_dir` when complete, or to :func:`discard` on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{path.name}-", dir=path.parent))


def install_dir(tmp: Path | str, path: Path | str, *, replace: bool = False) -> Path:
    """Rename the finished folder ``tmp`` (from :func:`temp_dir`) onto ``path``.

    ``replace=False`` refuses an existing ``path`` (FileExistsError). ``replace=True``
    moves an existing ``path`` aside, renames ``tmp`` into place and then removes the old
    folder; should that rename fail, the old folder is put back, unless another process
    installed a ``path`` meanwhile (theirs stays). Raises OSError when the rename fails.
    """
    tmp, path = Path(tmp), Path(path)
    _public(tmp, 0o777)
    if not replace:
        if os.path.lexists(path):
            raise FileExistsError(f"{path} already exists; refusing to overwrite it")
        os.rename(tmp, path)
        return path
    holder = aside = None
    if os.path.lexists(path):
        holder = Path(tempfile.mkdtemp(prefix=f"{ASIDE_PREFIX}{path.name}-", dir=path.parent))
        aside = holder / path.name
        os.rename(path, aside)
    try:
        os.rename(tmp, path)
    except BaseException:
        if holder is not None and aside is not None:
            if os.path.lexists(path):  # another process installed one meanwhile
                shutil.rmtree(holder, ignore_errors=True)
            else:  # put the old one back (should this fail, it stays in the holder)
                os.rename(aside, path)
                os.rmdir(holder)
        raise
    if holder is not None:
        shutil.rmtree(holder, ignore_errors=True)
    return path


def discard(tmp: Path | str) -> None:
    """Remove a temporary folder or file; a missing one is fine."""
    tmp = Path(tmp)
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def new_directory(path: Path | str, *, replace: bool = False) -> Iterator[Path]:
    """Build a folder in a temporary sibling; rename it to ``path`` only on success.

    Refuses an existing ``path`` (a finished result is never overwritten) unless
    ``replace=True``: then the old folder gives way only once the new one is complete
    (see :func:`install_dir`). On failure the temporary folder is removed.
    """
    path = Path(path)
    if not replace and os.path.lexists(path):
        raise FileExistsError(f"{path} already exists; refusing to overwrite it")
    tmp = temp_dir(path)
    try:
        yield tmp
        install_dir(tmp, path, replace=replace)
    finally:
        discard(tmp)


def is_temporary(name: str) -> bool:
    """Is ``name`` one of this module's temporaries (being built, or moved aside)?"""
    return name.startswith((TEMP_PREFIX, ASIDE_PREFIX))


def sweep(parent: Path | str, older_than: float) -> list[Path]:
    """Remove the temporaries directly under ``parent`` not modified for ``older_than``
    seconds: left by a process that died mid-write. Younger ones may be in use by a live
    process and stay; other names are never touched. Returns what was removed."""
    now = time.time()
    try:
        entries = list(Path(parent).iterdir())
    except FileNotFoundError:
        return []
    removed = []
    for p in entries:
        if not is_temporary(p.name):
            continue
        try:
            if now - p.lstat().st_mtime <= older_than:
                continue
            discard(p)
        except OSError:
            continue
        removed.append(p)
    return removed
