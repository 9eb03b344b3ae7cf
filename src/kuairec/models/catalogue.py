"""The models' table for docs/models.md, written from their own declarations.

``python -m kuairec.models.catalogue`` prints it; docs/models.md holds it between the
``<!-- models:begin -->`` / ``<!-- models:end -->`` markers and a test checks that the
two agree, so the documented defaults can never drift from the code.
"""

from __future__ import annotations

from typing import Any

from kuairec.models.params import describe_params
from kuairec.models.registry import (
    available_models,
    default_models,
    get_model_class,
    preset_settings,
)

BEGIN, END = "<!-- models:begin -->", "<!-- models:end -->"


def _value(v: Any) -> str:
    if isinstance(v, str):
        return f"'{v}'"
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return repr(v)


def _row(name: str) -> str:
    cls = get_model_class(name)
    fixed = preset_settings(name)
    params = [
        f"`{p['name']}`={_value(fixed.get(p['name'], p['default']))}" for p in describe_params(cls)
    ]
    doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
    if fixed:
        doc = f"preset of `{cls.name}`: {doc}"
    traits = [
        "new users" if cls.supports_history else "",
        f"tuned in run ({cls.tune_trials} trials)" if cls.tune_in_run else "",
        f"cost {cls.cost}",
        "" if cls.deterministic else "not deterministic",
        "reference row" if cls.reference else "",
        f"extra `{cls.extra}`" if cls.extra else "",
        "" if name in default_models() else "only with `--models`",
    ]
    return (
        f"| `{name}` | {doc} | {', '.join(params) or 'none'} | "
        f"{', '.join(t for t in traits if t) or '-'} |"
    )


def markdown_table() -> str:
    """The table of every registered model: what it is, its defaults, its traits."""
    head = "| name | what | parameters (defaults) | traits |\n|---|---|---|---|"
    return "\n".join([head, *(_row(n) for n in available_models())])


def docs_block() -> str:
    """The table between its markers, as docs/models.md holds it."""
    return f"{BEGIN}\n{markdown_table()}\n{END}"


if __name__ == "__main__":  # pragma: no cover
    print(docs_block())
