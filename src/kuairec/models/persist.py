"""Save and load fitted models without pickle.

A saved model is a folder holding ``model.json`` (format version, kuairec version, model
name, config, the training data's fingerprint, its shape and a free-text description)
and ``weights.npz`` (the model's arrays, read back with ``allow_pickle=False``); a model
with files of its own writes them in ``_write_files(folder)`` and reads them back in
``_read_files(folder)`` (two_stage: its LightGBM text model, its retrievers' folders). The
folder is written under a temporary sibling name and renamed into place
(:func:`kuairec.atomic.new_directory`); an older model there gives way only then.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kuairec import atomic
from kuairec.errors import ConfigError, ModelError

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "weights.npz"
_META = ("n_users", "n_items", "fingerprint")


class _State(dict):
    """The arrays of weights.npz; a missing key is a ModelError naming the file."""

    def __init__(self, data: Mapping[str, np.ndarray], path: Path) -> None:
        super().__init__(data)
        self.path = path

    def __missing__(self, key: str) -> np.ndarray:
        raise ModelError(f"{self.path}: has no array {key!r} (found: {sorted(self) or 'none'})")


def save_model(
    model: Any, path: Path, overwrite: bool = False, trained_on: str | None = None
) -> Path:
    """Write the fitted ``model`` (a Recommender) into the folder ``path``; see the module
    docstring. A preset's registered name is stored beside its class's name."""
    from kuairec import __version__
    from kuairec.models.params import config_to_dict

    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a folder; cannot save a model there")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ConfigError(f"{path}: folder exists and is not empty; pass overwrite=True")
    state = model._get_state()
    bad = [k for k, v in state.items() if not isinstance(v, np.ndarray) or v.dtype == object]
    if bad:
        raise ModelError(f"{model.name}: state entries {bad} are not plain numpy arrays")
    meta = {
        "format_version": FORMAT_VERSION,
        "kuairec_version": __version__,
        "name": model.name,
        "preset": model.registered_as if model.registered_as != model.name else None,
        "config": config_to_dict(model.config),
        "fingerprint": model.fingerprint_,
        "n_users": model.n_users_,
        "n_items": model.n_items_,
        "trained_on": trained_on if trained_on is not None else model.trained_on_,
    }
    with atomic.new_directory(path, replace=True) as tmp:
        np.savez(tmp / WEIGHTS, **state)
        (tmp / MODEL_JSON).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if hasattr(model, "_write_files"):  # more files of its own (two_stage: the ranker)
            model._write_files(tmp)
    return path


def read_metadata(path: Path) -> dict[str, Any]:
    """The checked contents of ``path/model.json``."""
    if not path.exists():
        raise ModelError(f"{path}: no saved model here (folder does not exist)")
    if not path.is_dir():
        raise ModelError(f"{path}: a saved model is a folder, this is a file")
    meta_path = path / MODEL_JSON
    if not meta_path.is_file():
        raise ModelError(f"{path}: missing {MODEL_JSON}; not a saved kuairec model")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{meta_path}: expected a JSON object, found {type(meta).__name__}")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(
            f"{meta_path}: format_version {version!r} is not supported by this kuairec "
            f"(expected {FORMAT_VERSION}); re-train and save the model again"
        )
    missing = [k for k in ("name", "config", *_META) if k not in meta]
    if missing:
        raise ModelError(f"{meta_path}: missing field(s) {missing}")
    return meta


def check_arrays(model: Any, arrays: Mapping[str, np.ndarray], weights: Path) -> None:
    """Refuse a damaged ``weights.npz`` before the model takes it: a non-finite value in any
    float array (NaN weights used to answer every request with an empty list), or an array
    whose shape disagrees with ``model.json`` (its config and n_users/n_items), as the
    model's ``expected_shapes()`` states them (``None`` = any size; a key ending in
    ``_shape`` holds a sparse matrix's shape: its values are compared)."""
    for key, arr in arrays.items():
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise ModelError(
                f"{weights}: array {key!r} holds {n_bad:,} non-finite value(s) (NaN or "
                f"infinity) among {arr.size:,}: the saved model is damaged; train it again"
            )
    expected = getattr(model, "expected_shapes", None)
    for key, shape in (expected() if expected is not None else {}).items():
        if key not in arrays:
            continue  # a missing array is named when the model reads it
        arr = arrays[key]
        got = tuple(int(v) for v in arr.ravel()) if key.endswith("_shape") else arr.shape
        if len(got) != len(shape) or any(
            e is not None and e != g for e, g in zip(shape, got, strict=True)
        ):
            want = tuple("any" if e is None else e for e in shape)
            raise ModelError(
                f"{weights}: array {key!r} has shape {got}, but {MODEL_JSON} (its config and "
                f"n_users/n_items) says {want}: the files do not belong together"
            )


def load_model(path: Path, expected_fingerprint: str | None = None) -> Any:
    """Load the model (a Recommender) saved in ``path``; check the data fingerprint when
    one is given."""
    from kuairec.models.params import config_from_dict
    from kuairec.models.registry import get_model_class

    meta = read_metadata(path)
    if expected_fingerprint is not None and meta["fingerprint"] != expected_fingerprint:
        raise ModelError(
            f"{path}: model was trained on another dataset (different id maps): "
            f"saved fingerprint {meta['fingerprint']}, expected {expected_fingerprint}"
        )
    registered = meta.get("preset") or meta["name"]
    try:
        cls = get_model_class(registered)
    except ConfigError as exc:
        raise ModelError(f"{path / MODEL_JSON}: {exc}") from None
    if cls.name != meta["name"]:
        raise ModelError(
            f"{path / MODEL_JSON}: preset {registered!r} is a {cls.name!r} model, "
            f"but the file says {meta['name']!r}"
        )
    try:
        config = config_from_dict(cls, meta["config"])
    except ConfigError as exc:
        raise ModelError(f"{path / MODEL_JSON}: saved config is invalid: {exc}") from None
    weights = path / WEIGHTS
    if not weights.is_file():
        raise ModelError(f"{path}: missing {WEIGHTS}; the saved model is incomplete")
    try:
        with np.load(weights, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{weights}: cannot be read as a numpy .npz file ({exc})") from None
    model = cls(config)
    model.registered_as = registered
    model.n_users_ = int(meta["n_users"])
    model.n_items_ = int(meta["n_items"])
    check_arrays(model, arrays, weights)
    try:
        model._set_state(_State(arrays, weights))
    except (ValueError, RuntimeError, IndexError, TypeError) as exc:  # torch, scipy: shapes
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ModelError(
            f"{weights}: the arrays do not fit the config in {MODEL_JSON} ({first})"
        ) from None
    model.fingerprint_ = str(meta["fingerprint"])
    model.trained_on_ = str(meta.get("trained_on", ""))
    if hasattr(model, "_read_files"):
        model._read_files(path)
    return model
