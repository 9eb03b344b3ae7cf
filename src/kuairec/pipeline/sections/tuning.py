"""Tuning: what each tuned model tried on the validation split, what it chose and why
(the selection half chose the best trial; the confirmation half confirmed it or not)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kuairec.pipeline.job import Job
from kuairec.pipeline.tuning import TuningRecord
from kuairec.report.markdown import Block, Bullets, Heading, Para, Table, fmt, fmt_ci
from kuairec.report.view import RunView

NAME = "tuning"
TITLE = "Tuning"


@dataclass
class Value:
    models: dict[str, TuningRecord]
    not_tuned: dict[str, str] = field(default_factory=dict)  # tunable, not tuned here: why


def compute(job: Job) -> Value | None:
    if not job.tuning and not job.untuned:
        return None
    return Value(dict(job.tuning), dict(job.untuned))


def render(value: Value, view: RunView) -> list[Block]:
    rows = []
    for name, r in value.models.items():
        c = r.confirmation
        confirm = "" if c is None else f"{fmt(c.diff)} {fmt_ci(c.ci)}".strip()
        trials = f"{len(r.trials)} of {r.n_trials}" if len(r.trials) < r.n_trials else len(r.trials)
        rows.append([
            name, str(trials), fmt(r.default_value), fmt(r.best_value), confirm or "-",
            r.decision, r.why + (f" ({r.time_limited})" if r.time_limited else ""),
        ])  # fmt: skip
    v = view.result.validation
    where = f"the {v.split} validation split ({v.n_select} + {v.n_confirm} users)" if v else ""
    header = ["model", "trials", "defaults (selection)", "best trial (selection)",
              "tuned - defaults (confirmation)", "used", "why"]  # fmt: skip
    blocks: list[Block] = [
        Heading(TITLE),
        Para(
            f"Validation NDCG@10 on {where or 'the validation split'}, never the test. "
            "Trial 0 is the model's defaults; the selection half chooses the best trial, "
            "and it replaces the defaults only when the paired-bootstrap 95% interval of "
            "tuned - defaults on the confirmation half lies above 0. The trial count is "
            "fixed per model (no clock decides it).",
            note=True,
        ),
        Table(header, rows) if rows else Para("No model was tuned in this run."),
    ]
    if value.not_tuned:
        blocks.append(Para("Not tuned in this run (their defaults are used):"))
        blocks.append(Bullets([f"{name}: {why}" for name, why in value.not_tuned.items()]))
    return blocks
