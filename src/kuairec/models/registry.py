"""Models by name. The order here is the order of the CLI, the report and metrics.json.

Each name maps to a ``"module:Class"`` string imported only when the model is used, so
heavy backends (implicit, torch, Spark) stay out of ``import kuairec``. Adding a model is
one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kuairec.errors import ConfigError, ModelError
from kuairec.models.params import config_from_dict, config_to_dict

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.models.base import Recommender

__all__ = [
    "available_models",
    "config_from_dict",
    "config_to_dict",
    "create_model",
    "get_model_class",
]

_MODELS: dict[str, str] = {
    "random": "kuairec.models.baselines:RandomRecommender",
    "popularity": "kuairec.models.baselines:PopularityRecommender",
    "popularity_weighted": "kuairec.models.baselines:WeightedPopularityRecommender",
    "als": "kuairec.models.implicit_mf:ALSRecommender",
    "bpr": "kuairec.models.implicit_mf:BPRRecommender",
    "ease": "kuairec.models.ease:EASERecommender",
    "itemknn": "kuairec.models.itemknn:ItemKNNRecommender",
    "oracle": "kuairec.models.oracle:OracleRecommender",
}


def available_models() -> list[str]:
    """Every registered model name, in the canonical order."""
    return list(_MODELS)


def get_model_class(name: str) -> type[Recommender]:
    """The model class registered as ``name`` (imported now, on first use)."""
    target = _MODELS.get(name) if isinstance(name, str) else None
    if target is None:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(_MODELS)}")
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    if getattr(cls, "name", None) != name:
        raise ModelError(f"registry entry {name!r} points to {target} whose name is {cls.name!r}")
    return cls


def create_model(name: str, config: Mapping[str, Any] | None = None) -> Recommender:
    """A new, unfitted model from its name and a dict of hyperparameters (e.g. TOML)."""
    cls = get_model_class(name)
    return cls(config_from_dict(cls, config))
