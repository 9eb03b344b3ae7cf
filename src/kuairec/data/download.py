"""Download the official KuaiRec 2.0 archive: resumable, size-checked, safely unzipped.

The archive streams into ``<to>/KuaiRec.zip.part``; a re-run sends ``Range: bytes=<size>-``
and appends when the server answers 206 (a 200 starts over). Only a complete download of
the expected size is renamed to ``KuaiRec.zip``. Unzipping rejects absolute and ``..``
member names, extracts into a temporary folder inside ``to`` and renames the result into
place, so a folder holding ``big_matrix.csv`` is either complete or absent.

Standard library only (``urllib``); ``rich`` draws the progress bar on stderr.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from kuairec.errors import ConfigError, DataError

OFFICIAL_URL = "https://zenodo.org/records/18164998/files/KuaiRec.zip"
ZIP_NAME = "KuaiRec.zip"
PART_SUFFIX = ".part"
MARKER_FILE = "big_matrix.csv"  # the folder holding it is the data folder
CHUNK_BYTES = 1 << 20
_TMP_PREFIX = ".kuairec-unzip-"
_SKIPPED_TOPS = {"__MACOSX"}  # macOS resource forks some zip tools add

_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RE = re.compile(r"bytes\s+\*/(\d+)")


class _RangeNotSatisfiable(Exception):
    """The server answered 416 to a resume request; ``total`` is the file size it gave."""

    def __init__(self, total: int | None) -> None:
        super().__init__(total)
        self.total = total


def download(
    url: str,
    to: Path,
    unzip: bool = True,
    progress: bool = True,
    expected_size: int | None = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch the archive at ``url`` into ``to`` and return the data folder.

    With ``unzip`` (the default) the result is the folder holding ``big_matrix.csv``
    (``<to>/KuaiRec 2.0/data`` for the official archive); otherwise the zip's path.
    Nothing is fetched when that folder (or, without ``unzip``, the zip) is already there.
    Raises :class:`DataError` on network errors, a size mismatch or a bad archive; a
    re-run resumes a partial download.
    """
    _check_args(url, expected_size, timeout)
    to = Path(to)
    to.mkdir(parents=True, exist_ok=True)
    if unzip:
        existing = find_data_dir(to)
        if existing is not None:
            return existing
    zip_path = to / ZIP_NAME
    if zip_path.is_file():
        _check_existing_zip(zip_path, expected_size)
    else:
        _fetch(url, zip_path, expected_size, timeout, progress)
    if not unzip:
        return zip_path
    return extract(zip_path, to, progress=progress)


def _check_args(url: str, expected_size: int | None, timeout: float) -> None:
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise ConfigError(f"url must start with http:// or https://, got {url!r}")
    if expected_size is not None and (isinstance(expected_size, bool) or expected_size <= 0):
        raise ConfigError(
            f"expected_size must be a positive number of bytes, got {expected_size!r}"
        )
    if not timeout > 0:
        raise ConfigError(f"timeout must be > 0 seconds, got {timeout!r}")


def _check_existing_zip(zip_path: Path, expected_size: int | None) -> None:
    size = zip_path.stat().st_size
    if expected_size is not None and size != expected_size:
        raise DataError(
            f"already exists with {size:,} bytes, expected {expected_size:,}; delete it and re-run",
            file=zip_path,
        )


def find_data_dir(root: Path) -> Path | None:
    """The shallowest folder at most two levels under ``root`` holding ``big_matrix.csv``."""
    root = Path(root)
    for pattern in (MARKER_FILE, f"*/{MARKER_FILE}", f"*/*/{MARKER_FILE}"):
        hits = [
            p
            for p in sorted(root.glob(pattern))
            if p.is_file() and not any(part.startswith(_TMP_PREFIX) for part in p.parts)
        ]
        if hits:
            return hits[0].parent
    return None


# ---------------------------------------------------------------- download


def _fetch(
    url: str, zip_path: Path, expected_size: int | None, timeout: float, progress: bool
) -> None:
    """Download ``url`` into ``<zip>.part`` (resuming), check its size, rename to ``zip``."""
    part = zip_path.with_name(zip_path.name + PART_SUFFIX)
    total = expected_size
    for _attempt in range(2):  # a second go only after discarding a bad .part
        offset = part.stat().st_size if part.is_file() else 0
        if expected_size is not None and offset > expected_size:
            part.unlink()
            offset = 0
        if offset and offset == expected_size:
            break  # complete already; only the rename was missing
        try:
            total = _stream(url, part, offset, expected_size, timeout, progress)
        except _RangeNotSatisfiable as exc:
            if exc.total is not None and exc.total == offset:
                total = offset
                break
            part.unlink()  # longer than the file, or the file changed: start over
            continue
        break
    got = part.stat().st_size if part.is_file() else 0
    expected = expected_size if expected_size is not None else total
    if expected is not None and got != expected:
        hint = "re-run to resume" if got < expected else "delete it and re-run (or check --url)"
        raise DataError(
            f"download incomplete: expected {expected:,} bytes, got {got:,}; {hint}", file=part
        )
    os.replace(part, zip_path)


def _stream(
    url: str,
    part: Path,
    offset: int,
    expected_size: int | None,
    timeout: float,
    progress: bool,
) -> int | None:
    """One request: append to (206) or rewrite (200) ``part``; return the full size if known."""
    resp = _open(url, offset, timeout)
    with contextlib.closing(resp):
        start, total = _response_range(resp, offset)
        if expected_size is not None and total is not None and total != expected_size:
            raise DataError(
                f"{url} serves {total:,} bytes but {expected_size:,} were expected; check --url",
                file=part,
            )
        mode = "ab" if start else "wb"
        with _progress_bar(progress) as bar, _open_part(part, mode) as out:
            task = bar.add_task(part.name.removesuffix(PART_SUFFIX), total=total, completed=start)
            while chunk := _read_chunk(resp, url):
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise DataError(f"cannot write: {exc.strerror or exc}", file=part) from None
                bar.update(task, advance=len(chunk))
            out.flush()
            os.fsync(out.fileno())
    return total


def _open(url: str, offset: int, timeout: float) -> Any:
    headers = {"User-Agent": "kuairec", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    resume = "re-run to resume the download" if offset else "re-run to retry"
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (scheme checked)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            match = _UNSATISFIED_RE.search(exc.headers.get("Content-Range", ""))
            exc.close()
            raise _RangeNotSatisfiable(int(match.group(1)) if match else None) from None
        raise DataError(
            f"download of {url} failed: HTTP {exc.code} {_one_line(exc.reason)}; "
            f"check the URL (--url) and {resume}"
        ) from None
    except urllib.error.URLError as exc:
        raise DataError(
            f"cannot reach {url}: {_one_line(exc.reason)}; check the network and {resume}"
        ) from None
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, bad status lines
        raise DataError(
            f"cannot reach {url}: {_one_line(exc) or type(exc).__name__}; {resume}"
        ) from None


def _response_range(resp: Any, offset: int) -> tuple[int, int | None]:
    """(byte where the body starts, full file size or None) from a 200 or 206 answer."""
    length = resp.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if resp.status == 206:
        match = _RANGE_RE.search(resp.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == offset:
            full = match.group(3)
            total = int(full) if full != "*" else (offset + length if length is not None else None)
            return offset, total
        if not (match and int(match.group(1)) == 0):
            raise DataError(
                f"the server answered a resume request for bytes {offset}- with "
                f"{resp.headers.get('Content-Range')!r}; delete the .part file and re-run"
            )
        length = int(match.group(3)) if match.group(3) != "*" else None
    return 0, length


def _read_chunk(resp: Any, url: str) -> bytes:
    try:
        return resp.read(CHUNK_BYTES)
    except (OSError, http.client.HTTPException) as exc:
        raise DataError(
            f"connection to {url} broke ({_one_line(exc) or type(exc).__name__}); "
            "re-run to resume the download"
        ) from None


def _open_part(part: Path, mode: str) -> Any:
    try:
        return open(part, mode)  # noqa: SIM115 (closed by the caller's with)
    except OSError as exc:
        raise DataError(f"cannot write: {exc.strerror or exc}", file=part) from None


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


class _NoBar:
    def add_task(self, *_args: Any, **_kwargs: Any) -> int:
        return 0

    def update(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def _progress_bar(enabled: bool) -> Any:
    """A rich progress bar on stderr (erased when done), or a do-nothing stand-in."""
    if not enabled:
        return contextlib.nullcontext(_NoBar())
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


# ---------------------------------------------------------------- unzip


def extract(zip_path: Path, to: Path, progress: bool = False) -> Path:
    """Unzip ``zip_path`` into ``to`` safely and return the folder holding ``big_matrix.csv``.

    Members with absolute paths or ``..`` are refused; extraction goes to a temporary folder
    inside ``to`` whose top-level entries are renamed into place only once all succeeded.
    """
    zip_path, to = Path(zip_path), Path(to)
    corrupt = "not a valid zip archive ({}); delete it and retry"
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise DataError(corrupt.format(_one_line(exc)), file=zip_path) from None
    with archive:
        members = [m for m in archive.infolist() if _top(m.filename) not in _SKIPPED_TOPS]
        for member in members:
            _check_member(member.filename, zip_path)
        tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=to))
        try:
            try:
                _extract_members(archive, members, tmp, progress)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise DataError(corrupt.format(_one_line(exc)), file=zip_path) from None
            data_rel = _data_dir_in(tmp, zip_path)
            _move_tops(tmp, to)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return to / data_rel


def _top(name: str) -> str:
    return name.replace("\\", "/").lstrip("/").split("/", 1)[0]


def _check_member(name: str, zip_path: Path) -> None:
    """Refuse absolute names, drive letters and ``..`` components (zip-slip)."""
    posix = name.replace("\\", "/")
    windows = PureWindowsPath(name)
    if posix.startswith("/") or windows.drive or windows.root or ".." in PurePosixPath(posix).parts:
        raise DataError(
            f"unsafe member {name!r} in the archive (absolute path or '..'); refusing to unzip",
            file=zip_path,
        )


def _extract_members(
    archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], tmp: Path, progress: bool
) -> None:
    with _progress_bar(progress) as bar:
        task = bar.add_task(
            f"unzip {Path(archive.filename or ZIP_NAME).name}",
            total=sum(m.file_size for m in members),
        )
        for member in members:
            archive.extract(member, tmp)
            bar.update(task, advance=member.file_size)


def _data_dir_in(tmp: Path, zip_path: Path) -> Path:
    """The data folder's path relative to ``tmp``: the shallowest holding big_matrix.csv."""
    hits = sorted(tmp.rglob(MARKER_FILE), key=lambda p: (len(p.parts), str(p)))
    if not hits:
        raise DataError(
            f"the archive holds no {MARKER_FILE}; is it the KuaiRec 2.0 zip? (check --url)",
            file=zip_path,
        )
    return hits[0].parent.relative_to(tmp)


def _move_tops(tmp: Path, to: Path) -> None:
    tops = sorted(tmp.iterdir())
    clashes = [t.name for t in tops if (to / t.name).exists()]
    if clashes:
        raise DataError(
            f"cannot unzip: {', '.join(repr(c) for c in clashes)} already exist(s) there "
            "without a complete dataset; move it away and re-run",
            file=to,
        )
    for top in tops:
        os.replace(top, to / top.name)
