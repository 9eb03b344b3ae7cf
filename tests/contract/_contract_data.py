"""The contract suites' shared data and model factory (imported by name: tests/conftest.py
puts this folder on sys.path).

The data has a known answer: users 0-9 watch items 0-4 (watch_ratio 2.0), users 10-19
watch items 5-9; each also watches one item of the other group (0.3) and the two
"everyone" items 10 and 11. User 0 never saw item 4 and user 10 never saw item 9: a
model that learns the groups must recommend exactly those first. User 20 and item 12
have no training rows (cold). ``TRUTH`` is given to the models that use the synthetic
truth (the oracle).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from kuairec.data.dataset import FeatureMatrix, IdMap, Interactions, TrainSet
from kuairec.models import Recommender, available_models, create_model, get_model_class
from kuairec.models.base import FitResources
from kuairec.models.registry import missing_requirement

N_USERS, N_ITEMS = 21, 13
HELD_OUT = {0: 4, 10: 9}  # user -> the in-group item they never saw
MODELS = available_models()


def _truth() -> Interactions:
    tu, ti = (a.ravel() for a in np.meshgrid(np.arange(N_USERS), np.arange(N_ITEMS), indexing="ij"))
    same = ((tu < 10) & (ti < 5)) | ((tu >= 10) & (tu < 20) & (ti >= 5) & (ti < 10))
    return Interactions.from_log(tu, ti, np.where(same, 2.0, 0.3), None, (N_USERS, N_ITEMS))


TRUTH = _truth()


def tiny_train() -> TrainSet:
    users, items, ratios = [], [], []
    for u in range(20):
        own = np.arange(5) + (5 if u >= 10 else 0)
        other = np.arange(5) + (0 if u >= 10 else 5)
        own = own[own != HELD_OUT.get(u, -1)]
        picked = np.concatenate([own, [other[u % 5], 10, 11]])
        users += [u] * picked.size
        items += picked.tolist()
        ratios += [2.0] * own.size + [0.3, 0.5, 0.8]
    inter = Interactions.from_log(
        np.array(users), np.array(items), np.array(ratios), None, (N_USERS, N_ITEMS)
    )
    rng = np.random.default_rng(0)
    return TrainSet(
        interactions=inter,
        users=IdMap(np.arange(N_USERS) * 10, "user_id"),
        items=IdMap(np.arange(N_ITEMS) + 100, "video_id"),
        user_x=FeatureMatrix(rng.random((N_USERS, 3)), ("a", "b", "c")),
        item_x=FeatureMatrix(rng.random((N_ITEMS, 2)), ("d", "e")),
    )


def make(name: str, truth: Interactions | None = TRUTH, **settings) -> Recommender:
    """A model with its declared fast test settings (and the truth when it uses it)."""
    reason = missing_requirement(name)
    if reason:
        pytest.skip(f"{name}: {reason}")
    cls = get_model_class(name)
    model = create_model(name, {**cls.test_settings, **settings})
    if cls.uses_truth:  # what the pipeline does: the truth is a fit resource of this model
        model.fit = functools.partial(model.fit, resources=FitResources(truth=truth))
    return model
