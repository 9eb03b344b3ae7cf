"""The data a run evaluates every model on: the split, its labels, its validation split.

:func:`prepare` loads the data and builds the protocol named by ``cfg.protocol`` into an
:class:`Experiment`: the training set, the test set, a typed
:class:`~kuairec.result.ProtocolInfo`, and, on first use, the validation split of the
training log (:class:`Validation`) with its two halves of users.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kuairec.display.progress import Progress
from kuairec.result import ProtocolInfo, ValidationInfo

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.data.dataset import Interactions, KuaiRecDataset, TrainSet
    from kuairec.evaluation.evaluate import EvalContext
    from kuairec.evaluation.protocols import TestSet
    from kuairec.pipeline.config import RunConfig

KUAIREC_PROTOCOL = "kuairec-small"
COLD_PROTOCOL = "cold-items"


@dataclass(eq=False)
class Validation:
    """The validation split of a training log, built on first use, and its halves.

    The split (``kind``: the last 7 days, or a random 20% of each test user's pairs) gives
    a fit part and a validation :class:`TestSet` under the run's ``label``. Its users are
    split in two by a seeded, documented hash (:func:`~kuairec.evaluation.validation.
    selection_half`): the *selection* half chooses (the tuner's best trial, early
    stopping: :meth:`for_fit` gives models only that half), the *confirmation* half
    checks what was chosen (tuned against default parameters) and picks the paired
    comparisons' baseline.
    """

    train: TrainSet
    kind: str
    label: str
    users: np.ndarray | None = None  # the protocol's test users (the random split's)
    seed: int = 0
    _parts: tuple[TrainSet, TestSet] | None = field(default=None, repr=False)
    _select: np.ndarray | None = field(default=None, repr=False)
    _scored: dict[str, tuple[TestSet | None, np.ndarray, EvalContext | None]] = field(
        default_factory=dict, repr=False
    )

    def parts(self) -> tuple[TrainSet, TestSet]:
        """(fit part, validation TestSet over every validation user)."""
        if self._parts is None:
            from kuairec.evaluation.validation import selection_half, validation_split

            fit, valid = validation_split(
                self.train, self.kind, self.users, seed=self.seed, label=self.label
            )
            self._parts = (fit, valid)
            self._select = selection_half(valid.users, self.seed)
        return self._parts

    @property
    def select(self) -> np.ndarray:
        """Boolean mask over the validation users: True = selection half."""
        self.parts()
        assert self._select is not None
        return self._select

    def scored(self, part: str = "all") -> tuple[TestSet | None, np.ndarray, EvalContext | None]:
        """What validation scoring ranks for: the validation users with a positive under
        the label (the only ones with an NDCG@10), as a TestSet; their mask over every
        validation user; its evaluation context (NDCG@10 under the label). Ranking only
        them gives every user's value (NaN for the others) for less work: 991 of 1,432
        users on the synthetic default, 6,871 of 7,176 at full size (docs/tuning.md).
        ``part``: ``"all"``, or only the ``"select"`` or ``"confirm"`` half (a tuning
        trial needs the selection half alone); (None, all-False mask, None) when the
        part has no such user."""
        if part not in ("all", "select", "confirm"):
            raise ValueError(f"part must be 'all', 'select' or 'confirm', got {part!r}")
        if part not in self._scored:
            from kuairec.evaluation.evaluate import prepare, with_positives

            fit, valid = self.parts()
            if "all" not in self._scored:
                self._scored["all"] = with_positives(valid, fit, self.label)
            if part != "all":
                keep = self._scored["all"][1] & (self.select if part == "select" else ~self.select)
                test = valid.restrict(keep) if keep.any() else None
                args = {"ks": (10,), "labels": (self.label,), "default_label": self.label}
                ctx = None if test is None else prepare(test, fit, **args)
                self._scored[part] = (test, keep, ctx)
        return self._scored[part]

    def for_fit(self) -> tuple[TrainSet, TestSet]:
        """What a model that stops early is fitted with: the fit part and the selection
        half of the validation users."""
        fit, valid = self.parts()
        return fit, valid.restrict(self.select)

    def info(self) -> ValidationInfo:
        from kuairec.evaluation.validation import HALVES_RULE, WHY, temporal_kind

        _, valid = self.parts()
        why = WHY[self.kind]
        if self.kind == "temporal" and temporal_kind(self.train) == "user":
            why = WHY["temporal/user"]
        n_select = int(self.select.sum())
        return ValidationInfo(
            split=self.kind,
            reason=why,
            label=self.label,
            n_users=int(valid.users.size),
            n_pairs=int(valid.relevance.nnz),
            n_select=n_select,
            n_confirm=int(valid.users.size - n_select),
            halves=f"{HALVES_RULE}; seed {self.seed}",
        )


@dataclass(eq=False)
class Experiment:
    """The data, split and labels one run evaluates every model on."""

    train: TrainSet
    test: TestSet
    protocol: ProtocolInfo
    dataset: KuaiRecDataset | None = None  # None for an own log (temporal protocol)
    data_dir: Path | None = None
    truth: Interactions | None = None  # synthetic only: a fit resource of the oracle alone
    scratch: Path | None = None  # models' checkpoints and logs; removed when the run ends
    notes: list[str] = field(default_factory=list)
    _validation: Validation | None = field(default=None, repr=False)
    _context: EvalContext | None = field(default=None, repr=False)

    def context(self, cfg: RunConfig) -> EvalContext:
        """Label cut-offs and lookups shared by every model's evaluation (built once)."""
        if self._context is None:
            from kuairec.evaluation.evaluate import prepare as prepare_eval

            self._context = prepare_eval(
                self.test, self.train, ks=cfg.ks, labels=cfg.labels, default_label=cfg.label
            )
        return self._context

    def validation(self, cfg: RunConfig) -> Validation:
        """The validation split of the training log (built once, on first use), held out
        from the test set's users."""
        if self._validation is None:
            self._validation = Validation(
                self.train, cfg.validation, cfg.label, self.test.users, cfg.seed
            )
        return self._validation


def prepare(cfg: RunConfig, progress: Progress) -> Experiment:
    """Load the data and build the split named by ``cfg.protocol``; a test set without a
    positive under the run's label is refused here, before any model trains."""
    from kuairec.evaluation.positives import require_positives

    exp = _prepare(cfg, progress)
    require_positives(exp.test, exp.train, cfg.label, exp.protocol.data or "the data")
    return exp


def _prepare(cfg: RunConfig, progress: Progress) -> Experiment:
    if cfg.protocol == "temporal":
        from kuairec.evaluation.protocols import temporal_experiment

        notes: list[str] = []  # what was understood of the user's file
        with progress.stage("loading interactions"):
            train, test = temporal_experiment(
                Path(cfg.interactions), cfg.test_fraction, notes, seed=cfg.seed
            )
        protocol = protocol_info(
            cfg,
            test,
            name="temporal",
            train=f"{Path(cfg.interactions).name}: each user's earlier rows",
            test_text=f"each user's last {cfg.test_fraction:.0%} of rows",
            data=str(cfg.interactions),
        )
        return Experiment(train, test, protocol, notes=notes)

    from kuairec.data.load import load_dataset
    from kuairec.evaluation.protocols import default_protocol

    with progress.stage("preparing data"):
        folder = data_folder(cfg, progress)
        from kuairec.data.footprint import check_fits_locally

        check_fits_locally(folder)  # before loading: a log too big is refused, naming Spark
        ds = load_dataset(folder, progress=progress)
        if cfg.protocol == COLD_PROTOCOL:
            return cold_experiment(ds, cfg, 0.1, None)
        train, test = default_protocol(ds)
    protocol = protocol_info(
        cfg,
        test,
        name=KUAIREC_PROTOCOL,
        train="big_matrix",
        test_text="small_matrix (fully observed)",
        data=str(folder),
        synthetic=ds.truth is not None,
        scale=cfg.scale if uses_default_data(cfg) else None,
    )
    return Experiment(train, test, protocol, ds, folder, truth=ds.truth)


def protocol_info(
    cfg: RunConfig, test: TestSet, *, name: str, train: str, test_text: str, **facts: object
) -> ProtocolInfo:
    """The protocol's description, with the run's evaluation settings."""
    return ProtocolInfo(
        name=name,
        train=train,
        test=test_text,
        n_test_users=int(len(test.users)),
        n_candidates=int(len(test.candidates)),
        default_label=cfg.label,
        labels=list(cfg.labels),
        ks=list(cfg.ks),
        n_bootstrap=cfg.n_bootstrap,
        seed=cfg.seed,
        validation_split=cfg.validation,
        **facts,  # type: ignore[arg-type]
    )


def uses_default_data(cfg: RunConfig) -> bool:
    """Whether the run reads the generated default data (no --data, no $KUAIREC_DATA)."""
    from kuairec import config

    return cfg.data is None and config.data_dir_from_env() is None


def data_folder(cfg: RunConfig, progress: Progress) -> Path:
    from kuairec.data.default import ensure_synthetic, resolve_data_dir

    if uses_default_data(cfg):
        return ensure_synthetic(cfg.scale, cfg.seed, progress=progress)
    return resolve_data_dir(cfg.data, progress=progress)


def cold_experiment(
    ds: KuaiRecDataset, cfg: RunConfig, fraction: float, scratch: Path | None
) -> Experiment:
    """The cold-items split (:func:`kuairec.evaluation.cold.cold_items_protocol`): a
    ``fraction`` of the small matrix's videos held out of training entirely."""
    from kuairec.evaluation.cold import cold_items_protocol

    train, test = cold_items_protocol(ds, fraction=fraction, seed=cfg.seed)
    protocol = protocol_info(
        cfg,
        test,
        name=COLD_PROTOCOL,
        train="big_matrix without the cold videos' pairs; their daily statistics blanked",
        test_text="small_matrix pairs on the cold videos; candidates = the cold videos only",
        data=str(ds.source),
        fraction=fraction,
        n_cold_videos=int(test.candidates.size),
        train_pairs=int(train.interactions.nnz),
        removed_pairs=int(ds.big.nnz - train.interactions.nnz),
    )
    return Experiment(train, test, protocol, ds, ds.source, truth=ds.truth, scratch=scratch)
