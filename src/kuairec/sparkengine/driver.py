"""Models that cannot be Spark work, run on the driver when the catalogue is small enough.

EASE's dense item x item matrix, the torch models and implicit's ALS and BPR need the
whole training matrix in one process. The Spark engine collects the training pairs
(one row per pair: ``max_local_pairs`` caps it) into the local engine's ``TrainSet`` and
runs the local model unchanged, when the items number at most ``max_local_items``;
otherwise the model is skipped with the reason. Models that need what the Spark engine
does not build (the synthetic truth; side features) are skipped everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.data.dataset import IdMap, Interactions, TrainSet
from kuairec.sparkengine.models import Fitted

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

PAIR_COLUMNS = (
    "views",
    "watch_ratio_mean",
    "watch_ratio_max",
    "first_timestamp",
    "last_timestamp",
)


def not_on_spark(name: str) -> str | None:
    """Why a registered model never runs on the Spark engine (None when it may)."""
    from kuairec.models.registry import get_model_class, missing_requirement

    missing = missing_requirement(name)
    if missing:
        return missing
    cls = get_model_class(name)
    if cls.uses_truth:
        return "it needs the synthetic truth, which the Spark engine does not read"
    if cls.scores_cold_items:
        return (
            "it needs side features (tags, captions, user features), which the Spark "
            "engine does not build"
        )
    return None


def driver_reason(
    name: str, n_items: int, n_pairs: int, max_items: int, max_pairs: int
) -> str | None:
    """Why a driver-side model cannot run on this log (too big for one machine), or None."""
    if n_items > max_items:
        return (
            f"{name} needs the whole training matrix on one machine and this log has "
            f"{n_items} items (max_local_items={max_items}): not run on the Spark engine"
        )
    if n_pairs > max_pairs:
        return (
            f"{name} needs the whole training matrix on one machine and this log has "
            f"{n_pairs} training pairs (max_local_pairs={max_pairs}): not run on the Spark engine"
        )
    return None


def collect_train(
    train: DataFrame,
    users: DataFrame,
    items: DataFrame,
    video_duration: np.ndarray | None,
) -> TrainSet:
    """The training pairs as the local engine's TrainSet (ids from the id maps)."""
    users_raw = users.orderBy("user_idx").toArrow().column("user_id").to_numpy()
    items_raw = items.orderBy("item_idx").toArrow().column("video_id").to_numpy()
    n_users, n_items = users_raw.size, items_raw.size
    table = train.select("user_idx", "item_idx", *PAIR_COLUMNS).toArrow()
    u = table.column("user_idx").to_numpy()
    i = table.column("item_idx").to_numpy()
    order = np.lexsort((i, u))
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(np.bincount(u, minlength=n_users), out=indptr[1:])
    cols = {c: table.column(c).to_numpy(zero_copy_only=False)[order] for c in PAIR_COLUMNS}
    inter = Interactions(
        indptr=indptr,
        indices=i[order].astype(np.int32),
        views=cols["views"].astype(np.int32),
        watch_ratio_mean=cols["watch_ratio_mean"].astype(np.float32),
        watch_ratio_max=cols["watch_ratio_max"].astype(np.float32),
        first_timestamp=np.asarray(cols["first_timestamp"], np.float64),
        last_timestamp=np.asarray(cols["last_timestamp"], np.float64),
        n_items=n_items,
    )
    return TrainSet(
        interactions=inter,
        users=IdMap(users_raw, name="user_id"),
        items=IdMap(items_raw, name="video_id"),
        video_duration=video_duration,
    )


def fit_on_driver(
    name: str,
    params: dict[str, Any],
    train: TrainSet,
    test_users: np.ndarray,
    k: int,
    candidates: np.ndarray,
    validation: str,
    seed: int,
) -> Fitted:
    """Fit the local model on ``train`` and rank the candidates for the test users."""
    from kuairec.models.registry import config_to_dict, create_model, get_model_class

    cls = get_model_class(name)
    model = create_model(name, params)
    if cls.uses_validation:
        from kuairec.evaluation.validation import validation_split

        fit_part, valid = validation_split(train, validation, test_users, seed=seed)
        model.fit(fit_part, valid)
    else:
        model.fit(train)
    exclude = train.interactions.csr("ones", bool)[test_users]
    items, scores = model.recommend(test_users, k, exclude=exclude, candidates=candidates)
    return Fitted(config_to_dict(model.config), "driver", lists=(items, scores))
