"""Models by name. The order here is the order of the CLI, the report and metrics.json.

Each name maps to a ``"module:Class"`` string imported only when the model is used, so
heavy backends (implicit, torch, Spark) stay out of ``import kuairec``; or to a
:func:`preset`: a class plus fixed settings under a name of its own (a model's
published configuration beside its tuned default, say). Everything else the registry,
the tuner, the report and the contract suite need, a model class declares itself (see
:class:`~kuairec.models.base.Recommender`). Adding a model is one module plus one line
here.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kuairec.errors import ConfigError, ModelError
from kuairec.models.params import config_from_dict, config_to_dict

# The registry imports no model module statically (models are imported by name, on first
# use), and not even the base class for its annotations: base.Recommender.load looks
# classes up here, so an import of base from here would close a circle.
ModelClass = type  # a Recommender subclass

__all__ = [
    "available_models",
    "check_params",
    "default_models",
    "config_from_dict",
    "config_to_dict",
    "create_model",
    "get_model_class",
    "missing_requirement",
    "preset",
    "preset_settings",
    "tunable_models",
    "variant",
]


@dataclass(frozen=True)
class Preset:
    """A registered name bound to a model class and fixed settings; ``in_default_run``
    says whether ``kuairec run`` without ``--models`` includes it."""

    target: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    in_default_run: bool = True


def preset(target: str, **settings: Any) -> Preset:
    """A registry entry: the class at ``target`` with ``settings`` fixed."""
    return Preset(target, settings)


def variant(target: str, **settings: Any) -> Preset:
    """A preset that runs only when asked for (``--models``): an alternative to a
    model's default (the variational autoencoder, the BCE two-tower...)."""
    return Preset(target, settings, in_default_run=False)


_MODELS: dict[str, str | Preset] = {
    "random": "kuairec.models.baselines:RandomRecommender",
    "popularity": "kuairec.models.baselines:PopularityRecommender",
    "popularity_weighted": "kuairec.models.baselines:WeightedPopularityRecommender",
    "popularity_features": "kuairec.models.content_baselines:PopularityFeaturesRecommender",
    "als": "kuairec.models.implicit_mf:ALSRecommender",
    "spark_als": "kuairec.models.spark_als:SparkALSRecommender",
    "bpr": "kuairec.models.implicit_mf:BPRRecommender",
    "ease": "kuairec.models.ease:EASERecommender",
    "itemknn": "kuairec.models.itemknn:ItemKNNRecommender",
    "autoencoder": "kuairec.models.autoencoder:AutoencoderRecommender",
    "autoencoder_seed_config": preset(
        "kuairec.models.autoencoder:AutoencoderRecommender",
        hidden_dims=[256, 128],
        activation="relu",
        dropout=0.3,
        input_dropout=0.0,
        normalize=False,
        lr=2e-5,
        loss="bce",
        input="binary",
        threshold=0.0,
        batch_size=256,
        max_epochs=80,  # converged: best epoch 55 (synthetic 0.2), 65 (ml-100k); docs/models.md
        patience=50,  # longer than its flat start (~30 epochs at lr 2e-5)
        variational=False,
    ),
    "autoencoder_vae": variant(
        "kuairec.models.autoencoder:AutoencoderRecommender",
        variational=True,
        anneal_steps=1000,
    ),
    "two_tower": "kuairec.models.two_tower:TwoTowerRecommender",
    "two_tower_bce": variant("kuairec.models.two_tower:TwoTowerRecommender", loss="bce"),
    "two_stage": "kuairec.models.two_stage.model:TwoStageRecommender",
    "oracle": "kuairec.models.oracle:OracleRecommender",
}


def available_models() -> list[str]:
    """Every registered model name, in the canonical order."""
    return list(_MODELS)


def default_models() -> list[str]:
    """The models ``kuairec run`` trains without ``--models`` (variants left out)."""
    return [n for n in _MODELS if _entry(n).in_default_run]


def _entry(name: str) -> Preset:
    target = _MODELS.get(name) if isinstance(name, str) else None
    if target is None:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(_MODELS)}")
    return target if isinstance(target, Preset) else Preset(target)


def get_model_class(name: str) -> ModelClass:
    """The model class registered as ``name`` (imported now, on first use)."""
    entry = _entry(name)
    module_name, _, class_name = entry.target.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    if not isinstance(_MODELS[name], Preset) and getattr(cls, "name", None) != name:
        raise ModelError(
            f"registry entry {name!r} points to {entry.target} whose name is {cls.name!r}"
        )
    return cls


def preset_settings(name: str) -> dict[str, Any]:
    """The settings a preset fixes (empty for a plain entry)."""
    return dict(_entry(name).settings)


def missing_requirement(name: str) -> str | None:
    """Why ``name`` cannot run here because an optional package is missing (or None)."""
    try:
        cls = get_model_class(name)
    except ImportError as exc:
        return _missing_text(exc.name or str(exc), None)
    for package in cls.requires:
        if importlib.util.find_spec(package) is None:
            return _missing_text(package, cls.extra)
    return None


def _missing_text(package: str, extra: str | None) -> str:
    how = f"pip install 'kuairec[{extra}]'" if extra else f"pip install {package}"
    return f"needs the optional package {package!r}, which is not installed ({how})"


def check_params(name: str, params: Mapping[str, Any] | None) -> Any:
    """The checked config ``name`` would get from ``params`` (ConfigError otherwise)."""
    return config_from_dict(get_model_class(name), {**preset_settings(name), **(params or {})})


def create_model(name: str, config: Mapping[str, Any] | None = None) -> Any:
    """A new, unfitted model (a Recommender) from its name and a dict of hyperparameters
    (e.g. TOML). A preset's fixed settings come first, then ``config``; the model keeps
    the name it was created under in ``registered_as`` (saved in model.json).
    """
    cls = get_model_class(name)
    values = {**preset_settings(name), **dict(config or {})}
    model = cls(config_from_dict(cls, values))
    model.registered_as = name
    return model


def tunable_models() -> list[str]:
    """Registered names with a search space left after their preset's settings."""
    out = []
    for name in _MODELS:
        try:
            space = get_model_class(name).search_space
        except ImportError:
            continue
        if set(space) - set(preset_settings(name)):
            out.append(name)
    return out
