"""Typed dataclasses to and from strict JSON, and their JSON Schema, from one type walk.

The run's result (:mod:`kuairec.result`) and every report section are dataclasses. This
module turns them into plain JSON values (:func:`to_json`), reads them back with every
value checked against its declared type (:func:`from_json`: a ``true`` where a number is
declared is refused, not read as 1.0), and writes the JSON Schema that says the same
(:func:`json_schema`), so the file, the reader and the schema cannot disagree.

Supported field types: ``str``, ``int``, ``float`` (NaN and infinities are written as
``null``, so a float field that may be undefined is declared ``float | None``), ``bool``,
``Literal[...]``, ``X | None``, ``list[X]``, ``tuple[X, ...]`` and fixed tuples,
``dict[str, X]``, nested dataclasses and ``Any`` (any JSON value, unchecked). A field
whose metadata holds ``{"json": False}`` (:data:`MEMORY_ONLY`) lives in memory only
(per-user arrays): it is neither written nor read. Unknown keys are refused.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from kuairec.errors import DataError

MEMORY_ONLY = {"json": False}


def memory_only(default_factory: Any = dict) -> Any:
    """A dataclass field kept in memory but never written to JSON."""
    return dataclasses.field(default_factory=default_factory, metadata=MEMORY_ONLY, repr=False)


def _json_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("json", True)]


def to_json(obj: Any) -> Any:
    """Plain JSON values: dataclasses become objects, NaN/inf become None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in _json_fields(type(obj))}
    if isinstance(obj, Mapping):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return to_json(obj.item())
    if hasattr(obj, "tolist"):  # numpy arrays
        return to_json(obj.tolist())
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def from_json(cls: Any, data: Any, where: str = "") -> Any:
    """``data`` (parsed JSON) as an instance of the type ``cls``, checked all the way
    down; a DataError names the path of the first value that does not fit."""
    return _read(cls, data, where or "$")


def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls, vars(sys.modules[cls.__module__]))


def _describe(tp: Any) -> str:
    schema = json_schema(tp)
    kind = schema.get("type", "any JSON value")
    if "enum" in schema:
        return f"one of {schema['enum']}"
    return kind if isinstance(kind, str) else " or ".join(kind)


def _fail(where: str, tp: Any, data: Any) -> DataError:
    found = "null" if data is None else type(data).__name__
    if isinstance(data, bool):
        found = f"{str(data).lower()} (a boolean)"
    return DataError(f"{where}: expected {_describe(tp)}, found {found}")


def _read(tp: Any, data: Any, where: str) -> Any:  # noqa: C901 - one branch per type kind
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return data
    if origin in (Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _read(a, data, where)
            except DataError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else _fail(where, tp, data)
    if origin is Literal:
        if data not in args or isinstance(data, bool) != any(isinstance(a, bool) for a in args):
            raise DataError(f"{where}: expected one of {list(args)}, found {data!r}")
        return data
    if dataclasses.is_dataclass(tp):
        return _read_dataclass(tp, data, where)
    if origin in (list, tuple):
        if not isinstance(data, list):
            raise _fail(where, tp, data)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(data) != len(args):
                raise DataError(f"{where}: expected {len(args)} values, found {len(data)}")
            pairs = enumerate(zip(args, data, strict=True))
            return tuple(_read(a, v, f"{where}[{i}]") for i, (a, v) in pairs)
        item = args[0] if args else Any
        values = [_read(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
        return tuple(values) if origin is tuple else values
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(data, dict):
            raise _fail(where, tp, data)
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): _read(value_type, v, f"{where}[{k!r}]") for k, v in data.items()}
    return _read_scalar(tp, data, where)


def _read_scalar(tp: Any, data: Any, where: str) -> Any:
    if tp is bool:
        if not isinstance(data, bool):
            raise _fail(where, tp, data)
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise _fail(where, tp, data)
        return data
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise _fail(where, tp, data)
        return float(data)
    if tp is str:
        if not isinstance(data, str):
            raise _fail(where, tp, data)
        return data
    raise TypeError(f"{where}: unsupported declared type {tp!r}")


def _read_dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise _fail(where, cls, data)
    hints = _hints(cls)
    fields = {f.name: f for f in _json_fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise DataError(f"{where}: unknown key(s) {unknown}; expected {sorted(fields)}")
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _read(hints[name], data[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise DataError(f"{where}: missing key {name!r}")
    return cls(**values)


def json_schema(tp: Any) -> dict[str, Any]:  # noqa: C901 - one branch per type kind
    """The JSON Schema (draft 2020-12 vocabulary) of values :func:`from_json` accepts."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return {}
    if origin in (Union, types.UnionType):
        inner = [json_schema(a) for a in args if a is not type(None)]
        nullable = type(None) in args
        if len(inner) == 1 and set(inner[0]) == {"type"} and isinstance(inner[0]["type"], str):
            return {"type": [inner[0]["type"], "null"] if nullable else inner[0]["type"]}
        return {"anyOf": inner + ([{"type": "null"}] if nullable else [])}
    if origin is Literal:
        return {"enum": list(args)}
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        fields = _json_fields(tp)
        required = [
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        out: dict[str, Any] = {
            "type": "object",
            "properties": {f.name: json_schema(hints[f.name]) for f in fields},
            "additionalProperties": False,
        }
        if required:
            out["required"] = required
        if tp.__doc__ and not tp.__doc__.startswith(f"{tp.__name__}("):
            out["description"] = " ".join(tp.__doc__.split())
        return out
    if origin in (list, tuple):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return {
                "type": "array",
                "prefixItems": [json_schema(a) for a in args],
                "minItems": len(args),
                "maxItems": len(args),
            }
        return {"type": "array", "items": json_schema(args[0] if args else Any)}
    if origin in (dict, Mapping) or tp is dict:
        return {"type": "object", "additionalProperties": json_schema(args[1] if args else Any)}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    raise TypeError(f"unsupported type for a JSON schema: {tp!r}")


__all__ = ["MEMORY_ONLY", "from_json", "json_schema", "memory_only", "to_json"]
