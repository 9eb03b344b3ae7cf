"""Typed model configs: frozen dataclasses of hyperparameters, checked when built.

Every model's ``Config`` is a frozen dataclass whose fields all have defaults. A field's
range or allowed values are declared once with :func:`param`; :func:`config_from_dict`
checks types and ranges and names the parameter, what it must be and what it got.

Configs round-trip through JSON and TOML dicts: :func:`config_to_dict` writes plain
values (tuples as lists) and leaves out ``None`` values, which TOML cannot hold, so a
field that may be ``None`` must default to ``None``.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kuairec.errors import ConfigError


def param(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    doc: str = "",
) -> Any:
    """A config field with a default, optional bounds and a one-line description.

    A mutable default (a list or dict) is copied for every instance."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "doc": doc}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Param:
    """One dimension of a model's search space (``Recommender.search_space``)."""

    kind: Literal["int", "float", "choice"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        return isinstance(value, numbers.Real) and self.low <= value <= self.high


def config_class(owner: Any) -> type:
    """The Config dataclass of a model class (or the dataclass itself)."""
    cls = owner if dataclasses.is_dataclass(owner) else getattr(owner, "Config", None)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ConfigError(f"{owner!r} has no Config dataclass")
    return cls


def _owner_name(owner: Any) -> str:
    """How errors name a config's owner: ``owner_name``, a model's ``name``, the class."""
    for attr in ("owner_name", "name", "__name__"):
        value = getattr(owner, attr, None)
        if isinstance(value, str) and value:
            return value
    return "config"


def config_from_dict(owner: Any, values: Mapping[str, Any] | None = None) -> Any:
    """Build and check ``owner``'s Config from a dict (e.g. a TOML table).

    ``owner`` is a model class or a Config dataclass. Unknown keys, wrong types and values
    out of range raise :class:`ConfigError` naming the parameter.
    """
    cls = config_class(owner)
    who = _owner_name(owner)
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{who}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
            f"known parameters: {', '.join(fields) or '(none)'}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(who, k, hints[k], v) for k, v in values.items()}
    config = cls(**kwargs)
    for f in fields.values():
        _check_bounds(who, f.name, getattr(config, f.name), f.metadata)
    check = getattr(config, "check", None)
    if callable(check):
        check()
    return config


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON/TOML-ready dict of a config: tuples become lists, ``None`` values are left out."""
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        raise ConfigError(f"expected a model config dataclass, got {type(config).__name__}")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value is None:
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def config_values(config: Any) -> dict[str, Any]:
    """All field values of a config, ``None`` included (for merging overrides)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def describe_params(owner: Any) -> list[dict[str, Any]]:
    """One dict per parameter (name, type, default, doc): for docs and ``--help`` text."""
    cls = config_class(owner)
    hints = typing.get_type_hints(cls)
    return [
        {
            "name": f.name,
            "type": _type_text(hints[f.name]),
            "default": f.default_factory() if f.default is dataclasses.MISSING else f.default,
            "doc": f.metadata.get("doc", ""),
        }
        for f in dataclasses.fields(cls)
    ]


def _type_text(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _fail(who: str, key: str, what: str, got: Any) -> ConfigError:
    return ConfigError(f"{who}: parameter {key!r} must be {what}, got {got!r}")


def _coerce(who: str, key: str, tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(who, key, inner[0], value)
        return value
    if origin is Literal:
        if value not in args or isinstance(value, bool) != isinstance(args[0], bool):
            raise _fail(who, key, f"one of {', '.join(map(repr, args))}", value)
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise _fail(who, key, "a list", value)
        elem = args[0] if args else Any
        return origin(_coerce(who, f"{key}[{i}]", elem, v) for i, v in enumerate(value))
    if origin in (dict, Mapping, collections.abc.Mapping):
        if not isinstance(value, Mapping):
            raise _fail(who, key, "a table (mapping)", value)
        k_tp, v_tp = args if args else (Any, Any)
        out = {}
        for k, v in value.items():
            name = _coerce(who, f"{key} key", k_tp, k)
            out[name] = _coerce(who, f"{key}[{k!r}]", v_tp, v)
        return out
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(who, key, "true or false", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise _fail(who, key, "an integer", value)
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _fail(who, key, "a number", value)
        if math.isnan(float(value)):
            raise _fail(who, key, "a number (not NaN)", value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _fail(who, key, "a string", value)
        return value
    if tp is Any or tp is object:
        return value
    raise ConfigError(f"{who}: parameter {key!r} has an unsupported type {tp!r}")


def _check_bounds(who: str, key: str, value: Any, meta: Mapping[str, Any]) -> None:
    if value is None or not isinstance(value, numbers.Real) or isinstance(value, bool):
        return
    kind = "an integer" if isinstance(value, numbers.Integral) else "a number"
    for bound, ok, sign in (
        ("ge", lambda v, b: v >= b, ">="),
        ("gt", lambda v, b: v > b, ">"),
        ("le", lambda v, b: v <= b, "<="),
        ("lt", lambda v, b: v < b, "<"),
    ):
        limit = meta.get(bound)
        if limit is not None and not ok(value, limit):
            raise _fail(who, key, f"{kind} {sign} {limit:g}", value)
