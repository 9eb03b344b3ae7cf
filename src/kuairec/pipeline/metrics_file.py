"""``metrics.json``: a :class:`~kuairec.result.RunResult` written and read in one place.

:func:`write` turns the result into strict JSON (NaN as null) with its
``schema_version``; :func:`read` checks every value against the declared types (the
sections' too, through the section registry) and gives the typed result back: a
``true`` where a number belongs, an unknown key, a missing one or another schema version
is an error naming the file and the path of the value. :func:`schema` is the JSON Schema
of the same types, kept in ``docs/metrics.schema.json``
(``python -m kuairec.pipeline.metrics_file > docs/metrics.schema.json``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from kuairec import atomic
from kuairec.errors import DataError
from kuairec.jsontypes import from_json, json_schema, to_json
from kuairec.result import SCHEMA_VERSION, RunResult

FILE_NAME = "metrics.json"


def to_document(result: RunResult) -> dict[str, Any]:
    """The result as plain JSON values."""
    return to_json(result)


def write(result: RunResult, path: Path) -> Path:
    """Write ``result`` to ``path`` (atomically: a reader never sees half a file)."""
    text = json.dumps(to_document(result), indent=2, allow_nan=False)
    return atomic.write_text(Path(path), text + "\n")


def read(path: Path) -> RunResult:
    """The typed result saved in ``path`` (a DataError naming what does not fit)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    return from_document(data, str(path))


def from_document(data: Any, where: str = FILE_NAME) -> RunResult:
    """A parsed metrics.json as the typed result; see :func:`read`."""
    from kuairec.pipeline.sections import value_types

    if not isinstance(data, dict):
        raise DataError(f"{where}: expected a JSON object, found {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataError(
            f"{where}: schema_version {version!r}, this kuairec reads {SCHEMA_VERSION} (a run "
            "written by another version: run it again)"
        )
    result = from_json(RunResult, data, where)
    types = value_types()
    for name, value in list(result.sections.items()):
        if name not in types:
            raise DataError(f"{where}.sections: unknown section {name!r}; known: {sorted(types)}")
        result.sections[name] = from_json(types[name], value, f"{where}.sections.{name}")
    return result


def schema() -> dict[str, Any]:
    """The JSON Schema of metrics.json (sections included, each by its own type)."""
    from kuairec.pipeline.sections import value_types

    out = json_schema(RunResult)
    out["properties"]["sections"] = {
        "type": "object",
        "properties": {name: json_schema(tp) for name, tp in value_types().items()},
        "additionalProperties": False,
    }
    out["properties"]["schema_version"] = {"const": SCHEMA_VERSION}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "kuairec run result (metrics.json)",
        **out,
    }


if __name__ == "__main__":  # pragma: no cover - writes docs/metrics.schema.json
    sys.stdout.write(json.dumps(schema(), indent=2) + "\n")
