"""Where the data comes from: ``--data``, ``$KUAIREC_DATA``, or the synthetic default.

The synthetic default is generated on demand into the cache folder (never committed),
atomically: into a temporary sibling folder, then renamed into place.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from kuairec import config
from kuairec.errors import DataError


def ensure_synthetic(
    scale: float = config.DEFAULT_SCALE, seed: int = config.DEFAULT_SEED, progress: bool = True
) -> Path:
    """The folder of the generated default data for (scale, seed), generating it if absent."""
    target = config.synthetic_dir(scale, seed)
    if (target / "big_matrix.csv").exists():
        return target
    from kuairec.data.synthetic import generate

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        generate(tmp, scale=scale, seed=seed, progress=progress)
        if target.exists():  # a half-made folder from an older version: replace it
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_data_dir(data: Path | str | None, progress: bool = True) -> Path:
    """``data`` if given, else ``$KUAIREC_DATA``, else the synthetic default (scale 0.2)."""
    if data is None:
        data = config.data_dir_from_env()
    if data is None:
        return ensure_synthetic(progress=progress)
    path = Path(data).expanduser()
    if not path.exists():
        raise DataError("data folder does not exist", file=path)
    if not path.is_dir():
        raise DataError("expected a folder holding the KuaiRec CSV files", file=path)
    return path
