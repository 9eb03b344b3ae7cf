"""What makes a run reproducible: seed, package versions, git commit, data checksum."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("kuairec", "numpy", "scipy", "polars", "pyarrow", "implicit", "torch", "optuna")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the kuairec source tree, when it is a git checkout."""
    src = Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
    ).stdout.strip()
    return res.stdout.strip() + ("-dirty" if dirty else "")


def data_checksum(folder: Path | None) -> dict[str, Any] | None:
    """Each CSV's size and a SHA-256 of its first and last MiB plus its size.

    Hashing 1 GB files whole would dominate a run; head+tail+size identifies a file
    for reproducibility purposes. ``combined`` hashes the per-file entries.
    """
    if folder is None:
        return None
    from kuairec.data.cache import head_tail_sha256

    files = {}
    for path in sorted(Path(folder).glob("*.csv")):
        size = path.stat().st_size
        files[path.name] = {"size": size, "sha256_head_tail": head_tail_sha256(path, size)}
    combined = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()
    return {"folder": str(folder), "files": files, "combined": combined}


def build_manifest(cfg: Any, data_dir: Path | None) -> dict[str, Any]:
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seed": cfg.seed,
        "command": " ".join(sys.argv),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "data": data_checksum(data_dir),
    }
