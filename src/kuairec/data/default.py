"""Where the data comes from: ``--data``, ``$KUAIREC_DATA``, or the synthetic default.

The synthetic default is generated on demand into the cache folder (never committed),
atomically: into a temporary sibling folder, then renamed into place
(:func:`kuairec.atomic.new_directory`).
"""

from __future__ import annotations

from pathlib import Path

from kuairec import atomic, config
from kuairec.errors import DataError


def ensure_synthetic(
    scale: float = config.DEFAULT_SCALE, seed: int = config.DEFAULT_SEED, progress: bool = True
) -> Path:
    """The folder of the generated default data for (scale, seed), generating it if absent."""
    target = config.synthetic_dir(scale, seed)
    if (target / "big_matrix.csv").exists():
        return target
    from kuairec.data.synthetic import generate

    atomic.sweep_orphans(target.parent)  # generations killed half-way, no live writer
    # replace: a half-made folder from an older version (no big_matrix.csv) gives way
    with atomic.new_directory(target, replace=True) as tmp:
        generate(tmp, scale=scale, seed=seed, progress=progress)
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
