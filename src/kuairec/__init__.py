"""kuairec: a measured recommender-system toolkit for the KuaiRec 2.0 dataset.

The handful of names a notebook needs, imported lazily (on first use, through the module
``__getattr__``), so ``import kuairec`` stays fast and loads no backend:

>>> import kuairec                                              # doctest: +SKIP
>>> ds = kuairec.load_dataset(kuairec.synthetic_data(scale=0.05))
>>> train, test = kuairec.default_protocol(ds)
>>> model = kuairec.create_model("ease").fit(train)
>>> result = kuairec.evaluate_model(model, test, train)
>>> result.metrics["ndcg@10"], result.ci["ndcg@10"]

- :func:`load_dataset` (a KuaiRec data folder -> validated, cached dataset),
  :func:`synthetic_data` (the generated default folder for a scale and seed),
- :func:`default_protocol` (train on the big matrix, test on the fully observed small one),
- :func:`available_models`, :func:`create_model`, :class:`Recommender` (the contract),
- :func:`evaluate_model` (one call: lists, metrics, intervals), :func:`compare` (paired
  bootstrap of two results), :func:`evaluate` (from top-item arrays).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_dataset": "kuairec.data.load:load_dataset",
    "synthetic_data": "kuairec.data.default:ensure_synthetic",
    "default_protocol": "kuairec.evaluation.protocols:default_protocol",
    "available_models": "kuairec.models.registry:available_models",
    "create_model": "kuairec.models.registry:create_model",
    "Recommender": "kuairec.models.base:Recommender",
    "evaluate_model": "kuairec.evaluation.fitted:evaluate_model",
    "evaluate": "kuairec.evaluation.evaluate:evaluate",
    "compare": "kuairec.evaluation.evaluate:compare",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'kuairec' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
