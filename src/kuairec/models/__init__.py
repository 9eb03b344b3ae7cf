"""The model layer: one :class:`Recommender` contract, models by name, save/load.

>>> from kuairec.models import available_models, create_model
>>> model = create_model("als", {"factors": 32}).fit(train)       # doctest: +SKIP
>>> items, scores = model.recommend(users, k=10, exclude=seen)     # doctest: +SKIP
>>> model.save("runs/als"); Recommender.load("runs/als")           # doctest: +SKIP

Model modules (and their backends: implicit, torch) are imported only when a model is
used. See docs/models.md.
"""

from kuairec.models.base import Recommender
from kuairec.models.registry import (
    available_models,
    config_from_dict,
    config_to_dict,
    create_model,
    get_model_class,
)

__all__ = [
    "Recommender",
    "available_models",
    "config_from_dict",
    "config_to_dict",
    "create_model",
    "get_model_class",
]
