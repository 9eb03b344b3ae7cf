"""Working with saved models: re-evaluate one, or recommend for one user.

A model saved by ``kuairec run`` lives in ``<run>/models/<name>/``; the run's
``config.json`` two levels up says which data it was trained on, so ``--data`` can be
left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from kuairec.display.progress import Progress
from kuairec.errors import ConfigError, DataError, ModelError
from kuairec.pipeline.config import RunConfig, load_run_config


def config_for_model_dir(model_dir: Path, overrides: dict[str, Any]) -> RunConfig:
    """The run config a saved model came from (if any), with ``overrides`` on top."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: model folder not found")
    run_cfg = model_dir.parent.parent / "config.json"
    base: dict[str, Any] = {}
    if not run_cfg.is_file() and overrides.get("data") is None:
        # without it the synthetic default was loaded, and the model then refused as
        # "trained on another dataset"
        raise ConfigError(
            f"{run_cfg} is missing: a run folder's config.json says which data its models "
            "were trained on; restore it, or name the data with --data"
        )
    if run_cfg.is_file():
        saved = _read_run_config(run_cfg)
        base = {k: saved[k] for k in _DATA_SETTINGS if k in saved}
        if overrides.get("data") is None:
            _check_saved_data(base, run_cfg)
    base.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return load_run_config(None, base)
    except ConfigError as exc:
        raise ConfigError(f"{run_cfg}: {exc}") from None


_DATA_SETTINGS = (
    "data",
    "scale",
    "seed",
    "protocol",
    "interactions",
    "test_fraction",
    "label",
    "labels",
    "ks",
)


def _check_saved_data(saved: dict[str, Any], run_cfg: Path) -> None:
    """The data a saved run names must look like data before anything reads it: a
    KuaiRec folder with its required files, or an interactions CSV with its header (a
    crafted config.json must not make kuairec read, or quote, any other file)."""
    from kuairec.data.load import locate_files, resolve_folder
    from kuairec.data.own_log import COLUMNS, looks_like_own_log

    if saved.get("protocol") == "temporal":
        path = Path(str(saved.get("interactions") or ""))
        if not looks_like_own_log(path):
            raise ConfigError(
                f"{run_cfg}: 'interactions' must name an existing log (CSV, gzip-compressed "
                f"CSV or Parquet) whose columns hold {','.join(COLUMNS)}; {path} does not"
            )
        return
    if saved.get("data"):
        try:
            locate_files(resolve_folder(str(saved["data"])))
        except DataError as exc:
            msg = f"{run_cfg}: 'data' does not name a KuaiRec data folder ({exc})"
            raise ConfigError(msg) from None


def _read_run_config(path: Path) -> dict[str, Any]:
    """A saved run's config.json as a dict; a damaged file is an error naming it (its
    content is never echoed)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "bytes"
        raise ConfigError(f"{path}: not a valid run config.json (bad JSON at {where})") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"{path}: not a valid run config.json (expected a JSON object)")
    return saved


def load_saved(model_dir: Path, train: Any) -> Any:
    from kuairec.models.base import Recommender

    return Recommender.load(Path(model_dir), expected_fingerprint=train.fingerprint())


def evaluate_saved(model_dir: Path, cfg: RunConfig, progress: Progress) -> dict[str, Any]:
    """Re-evaluate a saved model on its protocol: ``{"model": its registered name, **its
    evaluation as plain JSON}`` (metrics, ci, by_label, segments, labels, notes)."""
    from kuairec.pipeline.experiment import prepare
    from kuairec.pipeline.fitting import evaluate_fitted

    exp = prepare(cfg, progress)
    model = load_saved(model_dir, exp.train)
    name = model.registered_as or model.name
    with progress.stage(f"{name}: evaluate"):
        result, _, _ = evaluate_fitted(model, exp, cfg)
    return {"model": name, **result.to_json()}


def recommend_for_user(
    model_dir: Path, user_id: int, k: int, cfg: RunConfig, progress: Progress
) -> list[dict[str, Any]]:
    """Top-k videos for one known user (raw id), with tags and caption categories.

    The user's training videos are excluded. An id absent from the training data is an
    error that says so.
    """
    from kuairec.pipeline.experiment import prepare

    exp = prepare(cfg, progress)
    train = exp.train
    idx = train.users.to_index([user_id], unknown="mask")[0]
    if idx < 0:
        raise DataError(f"user_id {user_id} is not in the training data ({len(train.users)} users)")
    model = load_saved(model_dir, train)
    seen = train.interactions.csr("ones")[[idx]]
    items, scores = model.recommend(np.array([idx]), k, exclude=seen)
    keep = items[0] >= 0
    return describe_items(exp.dataset, train, items[0][keep], scores[0][keep])


def describe_items(ds: Any, train: Any, items: np.ndarray, scores: np.ndarray) -> list[dict]:
    from kuairec.data.side import tag_ids

    tags = ds.item_tags if ds is not None else None
    categories = _category_names(ds)
    rows = []
    for rank, (item, score) in enumerate(zip(items.tolist(), scores.tolist(), strict=True), 1):
        row = {"rank": rank, "video_id": train.items.to_raw([item])[0].item(), "score": score}
        if tags is not None:
            cols = tags.indices[tags.indptr[item] : tags.indptr[item + 1]]
            row["tags"] = tag_ids(tags)[cols].tolist()  # tag ids, not column numbers
        if categories is not None:
            row["category"] = categories.get(item, "UNKNOWN")
        rows.append(row)
    return rows


def _category_names(ds: Any) -> dict[int, str] | None:
    caps = getattr(ds, "captions", None)
    if caps is None or "first_level_category_name" not in caps.columns:
        return None
    names = caps.select("item_idx", "first_level_category_name")
    return dict(
        zip(names["item_idx"].to_list(), names["first_level_category_name"].to_list(), strict=True)
    )
