"""Loading a run for serving: its data, every saved model, their NDCG@10, the catalogue.

``load_state(run_dir)`` does all the work before the server listens: the run's
``config.json`` says where its data came from (read through
:func:`kuairec.pipeline.saved.config_for_model_dir`, which checks it), the data is
prepared as ``kuairec evaluate`` prepares it, and each ``models/<name>/`` is loaded with
the training data's fingerprint. EASE is replaced by its sparse top-N serving form
(``ease_top_n``; 0 keeps the dense ``B``).

The :class:`ServeState` is read-only once built: requests share it across threads (and,
with ``--workers``, across forked processes) and never write to it.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kuairec.display.progress import Progress
from kuairec.errors import ConfigError, DataError, ModelError
from kuairec.serve.catalogue import Catalogue, build_catalogue

DEFAULT_EASE_TOP_N = 200
METRIC = "ndcg@10"


@dataclass(frozen=True, eq=False)
class ServedModel:
    name: str
    model: Any  # a fitted Recommender (read only)
    ndcg_at_10: float | None
    reference: bool
    form: str  # how it serves, e.g. "sparse B, top 200 weights per item"
    takes_user_features: bool

    @property
    def supports_history(self) -> bool:
        return bool(self.model.supports_history)

    @property
    def history_reason(self) -> str | None:
        return None if self.supports_history else str(self.model.history_reason)


@dataclass(frozen=True, eq=False)
class ServeState:
    run_dir: Path
    models: Mapping[str, ServedModel]
    default_model: str
    train: Any  # TrainSet
    seen: Any  # CSR (n_users, n_items) 0/1: the training pairs, excluded when asked
    small_candidates: np.ndarray  # item_idx of the test matrix's videos
    catalogue: Catalogue
    user_feature_columns: tuple[str, ...]
    load_seconds: float

    @property
    def n_users(self) -> int:
        return int(self.train.n_users)

    @property
    def n_items(self) -> int:
        return int(self.train.n_items)


def load_state(
    run_dir: Path | str,
    model: str | None = None,
    ease_top_n: int = DEFAULT_EASE_TOP_N,
    progress: Progress | None = None,
) -> ServeState:
    """Everything a server needs from the run folder ``run_dir`` (see the module doc).

    ``model`` names the default model (else the best learned one by NDCG@10)."""
    from kuairec.pipeline.experiment import prepare
    from kuairec.pipeline.saved import config_for_model_dir

    start = time.perf_counter()
    progress = progress or Progress(enabled=False)
    run_dir = Path(run_dir)
    folders = _model_folders(run_dir)
    if model is not None and model not in folders:
        raise ConfigError(f"{run_dir}: no saved model {model!r}; the run has {sorted(folders)}")
    cfg = config_for_model_dir(next(iter(folders.values())), {})
    exp = prepare(cfg, progress)
    scores = _run_scores(run_dir)
    served = {}
    for name, folder in folders.items():
        with progress.stage(f"{name}: load"):
            served[name] = _load_model(name, folder, exp.train, scores.get(name), ease_top_n)
    default = model or best_model(served)
    _one_torch_thread()
    return ServeState(
        run_dir=run_dir,
        models=served,
        default_model=default,
        train=exp.train,
        seen=exp.train.interactions.csr("ones"),
        small_candidates=np.asarray(exp.test.candidates, dtype=np.int64),
        catalogue=build_catalogue(exp.dataset, exp.train),
        user_feature_columns=_user_feature_columns(exp.train),
        load_seconds=round(time.perf_counter() - start, 2),
    )


def best_model(models: Mapping[str, ServedModel]) -> str:
    """The learned (not reference) model with the highest NDCG@10 in the run; the first
    served model when none has a score."""
    learned = [m for m in models.values() if not m.reference] or list(models.values())
    scored = [m for m in learned if m.ndcg_at_10 is not None]
    if not scored:
        return learned[0].name
    return max(scored, key=lambda m: m.ndcg_at_10 or 0.0).name


def _model_folders(run_dir: Path) -> dict[str, Path]:
    """``models/<name>/`` folders holding a saved model, in the registry's order."""
    from kuairec.models.registry import available_models

    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: run folder not found")
    root = run_dir / "models"
    found = (
        {p.name: p for p in root.iterdir() if (p / "model.json").is_file()} if root.is_dir() else {}
    )
    if not found:
        raise ConfigError(f"{run_dir}: no saved models (expected models/<name>/model.json)")
    order = {name: i for i, name in enumerate(available_models())}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def _run_scores(run_dir: Path) -> dict[str, float | None]:
    """Each model's test NDCG@10 from the run's metrics.json, read through the typed
    result (:mod:`kuairec.pipeline.metrics_file`): a value of the wrong type is refused
    with the file and its path, never read as a number."""
    from kuairec.pipeline import metrics_file

    path = run_dir / metrics_file.FILE_NAME
    if not path.is_file():
        return {}
    try:
        result = metrics_file.read(path)
    except DataError as exc:
        raise ConfigError(f"not a valid metrics.json: {exc}") from None
    return {name: m.value(METRIC) for name, m in result.models.items()}


def _load_model(
    name: str, folder: Path, train: Any, ndcg: float | None, ease_top_n: int
) -> ServedModel:
    from kuairec.models.base import Recommender

    try:
        model = Recommender.load(folder, expected_fingerprint=train.fingerprint())
    except ModelError as exc:
        raise ModelError(f"cannot serve {name!r}: {exc}") from None
    model = model.serving_copy(top_n=ease_top_n)
    form = model.serving_form()
    takes = "user_features" in inspect.signature(model.recommend).parameters
    _warm(model, train)
    return ServedModel(name, model, ndcg, bool(type(model).reference), form, takes)


def _warm(model: Any, train: Any) -> None:
    """One known-user list and one fold-in before any request: lazy caches (the factor
    models' fold-in Gram) are built now, once, before workers fork, so no request writes
    to the state and the first one is not slower than the rest."""
    import scipy.sparse as sp

    model.recommend(np.array([0]), k=1)
    if model.supports_history:
        one = sp.csr_matrix(([1.0], [0], [0, 1]), shape=(1, train.n_items), dtype=np.float32)
        model.recommend(history=one, k=1)


def _one_torch_thread() -> None:
    """torch's process-wide intra-op thread count, set once, before any request: one
    per worker (``--workers`` gives each core its own process). Scoring never sets it: a
    set-and-restore per call would race between the batch endpoint's thread pool and the
    event loop's micro-batches."""
    import sys

    torch = sys.modules.get("torch")  # only when a loaded model brought torch in
    if torch is not None:
        torch.set_num_threads(1)


def _user_feature_columns(train: Any) -> tuple[str, ...]:
    frame = getattr(train, "user_features", None)
    if frame is None:
        return ()
    return tuple(c for c in frame.columns if c not in ("user_id", "user_idx"))
