"""Write, then rename: nothing already written is lost or left half-written.

Files and folders are built under a temporary sibling of their target, named
``.tmp-<name>-<random>``, and renamed onto it when complete; a folder being replaced is
first moved aside as ``.old-<name>-<random>``. The final entries get the ordinary modes
(0666 for files, 0777 for folders, less the umask). What a killed process leaves behind
carries those prefixes, so :func:`sweep_orphans` can find it.

Every temporary folder has a lock file beside it (``<temporary>.lock``) on which its
writer holds an advisory lock (``fcntl.flock``) for as long as it writes: the kernel
drops the lock when the process dies, however it dies (SIGKILL included), and the lock is
seen by every process on the host (and across hosts on file systems that support flock,
e.g. NFSv4). A temporary whose lock can be taken is therefore an orphan, whatever its
age; no PID is stored (a PID can be reused, or belong to another host sharing the folder).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

try:  # advisory locks (POSIX); elsewhere temporaries are swept by age only
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

TEMP_PREFIX = ".tmp-"  # an entry being built
ASIDE_PREFIX = ".old-"  # a folder moved aside while its replacement is renamed in
LOCK_SUFFIX = ".lock"  # beside each temporary folder: its writer's advisory lock
STALE_SECONDS = 6 * 3600  # a temporary without a lock file (older versions): swept by age
_LOCK_GRACE_SECONDS = 60.0  # a lock file alone younger than this may be about to get its folder
_held: dict[str, int] = {}  # temporary folder -> fd of its locked lock file
_held_guard = threading.Lock()


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


def _locked_dir(parent: Path, prefix: str) -> Path:
    """A new empty folder ``<parent>/<prefix>...`` (mode 0777 less the umask) whose lock
    file ``<folder>.lock`` this process holds locked until :func:`_release`.

    The lock file is created and locked first, then the folder: a sweeper never sees the
    folder unlocked."""
    while True:
        fd, lock = tempfile.mkstemp(prefix=prefix, suffix=LOCK_SUFFIX, dir=parent)
        _public(lock, 0o666)  # readable: other users sharing the folder can test it
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a fresh file: nobody else holds it
        folder = Path(lock[: -len(LOCK_SUFFIX)])
        try:
            os.mkdir(folder, 0o777)  # the umask applies: 0755 with the usual 022
        except FileExistsError:  # a leftover of the same name (very unlikely): next name
            os.close(fd)
            os.unlink(lock)
            continue
        except BaseException:
            os.close(fd)
            os.unlink(lock)
            raise
        with _held_guard:
            _held[str(folder)] = fd
        return folder


def _release(tmp: Path | str) -> None:
    """Remove the lock file of a temporary folder and drop its lock (the file is removed
    while still locked, so no sweeper can take it in between)."""
    with _held_guard:
        fd = _held.pop(str(tmp), None)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{tmp}{LOCK_SUFFIX}")
    if fd is not None:
        os.close(fd)


def temp_dir(path: Path | str) -> Path:
    """A new empty folder beside ``path`` (``.tmp-<name>-...``) to build ``path`` in,
    locked for this process (see the module doc) until :func:`install_dir` or
    :func:`discard`.

    Hand it to :func:`install_dir` when complete, or to :func:`discard` on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _locked_dir(path.parent, f"{TEMP_PREFIX}{path.name}-")


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
        _release(tmp)
        return path
    holder = aside = None
    if os.path.lexists(path):
        holder = _locked_dir(path.parent, f"{ASIDE_PREFIX}{path.name}-")
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
            _release(holder)
        raise
    _release(tmp)
    if holder is not None:
        shutil.rmtree(holder, ignore_errors=True)
        _release(holder)
    return path


def discard(tmp: Path | str) -> None:
    """Remove a temporary folder or file; a missing one is fine."""
    tmp = Path(tmp)
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    if str(tmp) in _held:
        _release(tmp)


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


def _lock_is_free(lock: Path) -> bool | None:
    """True when nobody holds ``lock`` (so its temporary is an orphan), False when a live
    process does, None when there is no lock file (or no flock on this platform)."""
    if fcntl is None:
        return None  # pragma: no cover
    try:
        fd = os.open(lock, os.O_RDONLY)  # flock needs no write access
    except FileNotFoundError:
        return None
    except OSError:
        return False  # unreadable: not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # also drops the lock just taken
    return True


def _remove(p: Path) -> None:
    discard(p)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{p}{LOCK_SUFFIX}")


def _orphans(parent: Path, older_than: float) -> list[Path]:
    now = time.time()
    try:
        entries = list(Path(parent).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = {p.name for p in entries}
    removed = []
    for p in entries:
        if not is_temporary(p.name):
            continue
        try:
            if p.name.endswith(LOCK_SUFFIX) and p.name[: -len(LOCK_SUFFIX)] not in names:
                # a lock file alone: its writer died between the two creations, or it is
                # just about to create its folder (hence the grace period)
                if now - p.lstat().st_mtime > _LOCK_GRACE_SECONDS and _lock_is_free(p):
                    p.unlink()
                    removed.append(p)
                continue
            if p.name.endswith(LOCK_SUFFIX):
                continue  # handled with its temporary
            free = _lock_is_free(Path(f"{p}{LOCK_SUFFIX}"))
            if free is False:
                continue  # a live writer holds it, however old
            if free is None and now - p.lstat().st_mtime <= older_than:
                continue  # no lock file (a file, or an older version's folder): by age
            if p.name.startswith(ASIDE_PREFIX):
                _restore_aside(p)
            _remove(p)
        except OSError:
            continue
        removed.append(p)
    return removed


def _restore_aside(holder: Path) -> None:
    """A folder moved aside by a replacement that died before its new folder was renamed
    in: put it back when nothing took its place (else it is removed with its holder)."""
    for inner in holder.iterdir():  # .old-<name>-<random>/<name>
        target = holder.parent / inner.name
        ours = holder.name.startswith(f"{ASIDE_PREFIX}{inner.name}-") and inner.is_dir()
        if ours and not os.path.lexists(target):
            os.rename(inner, target)


def sweep_orphans(parent: Path | str, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove the temporaries directly under ``parent`` that no live process is writing,
    and return them (the paths removed, in no particular order; ``[]`` if none or if
    ``parent`` does not exist).

    A temporary folder (``.tmp-*`` or ``.old-*``, from :func:`temp_dir`,
    :func:`new_directory` or :func:`install_dir`) is an orphan when the advisory lock on
    its ``.lock`` file can be taken: its writer died (SIGKILL, OOM kill, power loss) or
    left without cleaning up. One still locked is never touched, however old. A
    temporary without a lock file (a temporary file, or a folder from an older version)
    is removed only when not modified for ``older_than`` seconds. A folder moved aside
    (``.old-*``) whose replacement never arrived is put back in place first. Names
    without those prefixes are never touched, and errors on one entry (permissions, a
    concurrent sweep) skip it. Safe to call at any time, from any number of processes.
    """
    return _orphans(Path(parent), older_than)


def sweep(parent: Path | str, older_than: float) -> list[Path]:
    """Remove the temporaries directly under ``parent`` left by a dead process: those
    whose lock can be taken, and those without a lock file not modified for
    ``older_than`` seconds (:func:`sweep_orphans` with an explicit age). A temporary
    whose writer is alive stays, however old; other names are never touched. Returns
    what was removed."""
    return _orphans(Path(parent), older_than)
