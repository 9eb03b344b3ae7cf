"""Paths and environment settings shared by every command.

- ``KUAIREC_DATA``: the data folder used when ``--data`` is not given.
- ``KUAIREC_CACHE``: the cache folder (default: the per-user cache directory).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SCALE = 0.2
DEFAULT_SEED = 0


def cache_dir() -> Path:
    """The cache folder: ``$KUAIREC_CACHE`` or the per-user cache directory."""
    env = os.environ.get("KUAIREC_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("kuairec", appauthor=False))


def data_dir_from_env() -> Path | None:
    """The data folder named by ``$KUAIREC_DATA``, or None."""
    env = os.environ.get("KUAIREC_DATA")
    return Path(env).expanduser() if env else None


def synthetic_dir(scale: float = DEFAULT_SCALE, seed: int = DEFAULT_SEED) -> Path:
    """Where the generated default data of a given scale and seed lives in the cache."""
    return cache_dir() / "synthetic" / f"scale{scale:g}-seed{seed}"
