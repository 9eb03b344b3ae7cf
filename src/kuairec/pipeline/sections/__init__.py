"""The report's sections as plug-ins: one module (or small package) each, one line here.

A section module defines:

- ``NAME``: its key in ``metrics.json["sections"]``;
- ``Value``: the dataclass it computes (typed all the way down: it is written to and
  read back from metrics.json by :mod:`kuairec.jsontypes`, and the JSON Schema in
  ``docs/metrics.schema.json`` is generated from it);
- ``compute(job: Job) -> Value | None``: from the run's state (None: nothing to report in
  this run, e.g. a protocol the section does not apply to, or the section switched off);
- ``render(value: Value, view: RunView) -> list[Block]``: its part of the report;
- optionally ``fits(job: Job) -> dict[str, dict]``: the models ``compute`` will fit in
  this run (name -> the parameters it fits them with), empty when it fits none. Two
  neighbouring sections that declare it may run at once (:func:`kuairec.pipeline.beside.
  section_pairs`: one of them keeps one core busy, and not both need torch).

The pipeline runs :data:`SECTIONS` in this order after every model has been evaluated;
a section that fails with a :class:`~kuairec.errors.KuaiRecError` is reported as not
computed, with the reason, and the run goes on.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kuairec.errors import KuaiRecError

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.pipeline.job import Job
    from kuairec.report.markdown import Block
    from kuairec.report.view import RunView

SECTIONS: tuple[str, ...] = (
    "kuairec.pipeline.sections.segments",
    "kuairec.pipeline.sections.labels",
    "kuairec.pipeline.sections.ranking",
    "kuairec.pipeline.sections.cold_items",
    "kuairec.pipeline.sections.validity",
    "kuairec.pipeline.sections.tuning",
)


def modules() -> list[ModuleType]:
    """Every registered section module, in report order."""
    return [importlib.import_module(path) for path in SECTIONS]


def value_types() -> dict[str, type]:
    """Section name -> its value type (for reading metrics.json and its schema)."""
    return {mod.NAME: mod.Value for mod in modules()}


def compute_all(job: Job) -> tuple[dict[str, Any], dict[str, str]]:
    """Every section's value (sections with nothing to report left out), and the
    sections that could not be computed with why, both in registry order. Neighbours
    that :func:`kuairec.pipeline.beside.section_pairs` pairs up run at once."""
    from kuairec.pipeline import beside

    mods = modules()
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}

    def one(mod: ModuleType) -> None:
        _compute_one(mod, job, values, errors)

    together = beside.section_pairs(mods, job)
    i = 0
    while i < len(mods):
        if i in together:
            beside.run_sections(mods[i], mods[i + 1], job, one)
            i += 2
        else:
            one(mods[i])
            i += 1
    order = [mod.NAME for mod in mods]
    return (
        {n: values[n] for n in order if n in values},
        {n: errors[n] for n in order if n in errors},
    )


def _compute_one(mod: ModuleType, job: Job, values: dict[str, Any], errors: dict[str, str]) -> None:
    from kuairec.display.resources import release_free_memory

    try:
        value = mod.compute(job)
    except KuaiRecError as exc:
        errors[mod.NAME] = str(exc)
        return
    finally:
        release_free_memory()
    if value is not None:
        values[mod.NAME] = value


def render_all(view: RunView) -> list[Block]:
    """The blocks of every section the run holds, in registry order."""
    from kuairec.report.markdown import Heading, Para

    blocks: list[Block] = []
    sections, errors = view.result.sections, view.result.section_errors
    for mod in modules():
        if mod.NAME in sections:
            blocks += mod.render(sections[mod.NAME], view)
        elif mod.NAME in errors:
            title = getattr(mod, "TITLE", mod.NAME.replace("_", " ").capitalize())
            blocks += [Heading(title), Para(f"Not computed: {errors[mod.NAME]}")]
    return blocks
