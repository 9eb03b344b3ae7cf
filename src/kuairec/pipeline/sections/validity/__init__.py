"""Offline-evaluation validity: the run's models under the logged-data protocols people
use, against the fully observed truth (docs/validity.md).

For each logged split of the training log (temporal: pairs first seen in the last 7
days; random: 20% of every user's pairs) each learned model is fitted on the rest with
the run's parameters (the fits the run already made on its own validation split are
reused), then measured by the logged holdout, sampled ``uni100`` / ``pop100`` lists and
IPS / SNIPS estimates (gamma 0.25, 0.5, 1). Which models take part follows what they
declare: reference rows are left out, heavy models too, and moderate ones on a training
log of more than 2M pairs (:mod:`kuairec.pipeline.refits`).

The package: :mod:`.estimators` (the protocols' arithmetic), :mod:`.compute` (the
refits and the comparisons), :mod:`.render` (the report's part); the typed value is
:class:`Value`.
"""

from kuairec.pipeline.sections.validity.compute import compute, fits
from kuairec.pipeline.sections.validity.render import render
from kuairec.pipeline.sections.validity.types import TITLE, Value

NAME = "validity"

__all__ = ["NAME", "TITLE", "Value", "compute", "fits", "render"]
