"""Which models a step may fit again: decided by what the models declare and by the
training log's size, never by a measured time.

A step that refits the run's models (in-run tuning, whose every trial is a fit on the
validation split's fit part; the validation scores' refits; the validity section's
logged splits) takes a model when its declared ``cost`` allows it at this log size:
``"cheap"`` always; ``"moderate"`` while the training log has at most
:data:`MODERATE_REFIT_PAIRS` (user, video) pairs; ``"heavy"`` never. The synthetic
default (scale 0.2) has 0.4M pairs and every moderate model takes part; KuaiRec's full
big matrix has about 10-12M, where the moderate models' refits (the torch models, BPR
and the two-stage model, each minutes on 2 cores) would be most of the run
(docs/benchmarks-run.md), so they keep their main-loop fits only. The same command on
the same data makes the same choice on any machine.
"""

from __future__ import annotations

from typing import Any

MODERATE_REFIT_PAIRS = 2_000_000


def refit_refusal(cls: Any, n_pairs: int) -> str | None:
    """None when a section may refit a model of class ``cls`` on a log of ``n_pairs``
    training pairs; otherwise the reason, for the report."""
    if cls.cost == "heavy":
        return (
            "it declares cost 'heavy' (a session of its own): refits are left to the lighter models"
        )
    if cls.cost == "moderate" and n_pairs > MODERATE_REFIT_PAIRS:
        return (
            f"it declares cost 'moderate' and the training log has {n_pairs:,} pairs, "
            f"more than {MODERATE_REFIT_PAIRS:,}: refits are left to the cheap models"
        )
    return None
