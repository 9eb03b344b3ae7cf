"""What a run has when its sections are computed: the job's state, typed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kuairec.display.progress import Progress
from kuairec.result import RunResult

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.models.matrices import GramStore
    from kuairec.pipeline.config import RunConfig
    from kuairec.pipeline.experiment import Experiment
    from kuairec.pipeline.fitting import FittedModel
    from kuairec.pipeline.tuning import TuningRecord, ValidationFit


@dataclass(eq=False)
class Job:
    """The run so far: its settings and data, each fitted model with its evaluation, what
    tuning tried, the models fitted on the validation split, and the result being built
    (models, skipped, paired comparisons, notes). A section reads it and returns a typed
    value of its own; it never writes to it."""

    cfg: RunConfig
    exp: Experiment | None  # None on the Spark engine: nothing of the log is local
    progress: Progress
    result: RunResult
    engine: str = "local"
    fitted: dict[str, FittedModel] = field(default_factory=dict)
    tuning: dict[str, TuningRecord] = field(default_factory=dict)
    untuned: dict[str, str] = field(default_factory=dict)  # tunable in the run, and why not
    valid_fits: dict[str, ValidationFit] = field(default_factory=dict)
    recommendations: dict[str, str] = field(default_factory=dict)  # Spark: Parquet folders
    _grams: GramStore | None = field(default=None, repr=False)

    def local(self) -> Experiment:
        """The local experiment; a section that needs it on the Spark engine says so."""
        if self.exp is None:
            from kuairec.errors import KuaiRecError

            raise KuaiRecError(
                "on the Spark engine: this section refits models on the local dataset"
            )
        return self.exp

    def gram_store(self) -> GramStore | None:
        """Where the tuning studies keep their Gram matrices for the next study (in the
        run's scratch folder; None without one)."""
        if self._grams is None and self.exp is not None and self.exp.scratch is not None:
            from kuairec.models.matrices import GramStore

            self._grams = GramStore(self.exp.scratch / "grams")
        return self._grams
