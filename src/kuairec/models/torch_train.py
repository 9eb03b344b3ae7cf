"""Shared Lightning training for the torch models (the autoencoder, the two-tower model).

:func:`train_module` trains a ``lightning.LightningModule`` the same way for every torch
model:

- on ``accelerator`` / ``devices`` from the model's config (CPU and one device by
  default; the pipeline fills them from ``--accelerator`` / ``--devices`` for models that
  declare ``uses_accelerator``). Several devices run Lightning's ``ddp_spawn`` strategy
  (plain ``ddp`` would relaunch the whole command line, ``kuairec run`` included, in every
  process);
- seeded: ``lightning.seed_everything(seed, workers=True)`` before the module is built,
  deterministic algorithms switched on for the fit (and restored after), a seeded
  shuffling generator: the same seed gives the same weights and metrics on CPU;
- quietly: no Lightning progress bar, model summary or info logs, no third-party bars;
  epochs are reported through the project's one display
  (:func:`kuairec.display.progress.using`);
- with a CSV log (Lightning's ``CSVLogger``) and the best epoch's checkpoint written under
  the model's ``scratch_dir`` (a temporary folder when None) and deleted when the fit ends.
  Lightning's ``.ckpt`` files are pickles: no load path of this project ever reads them
  (the best weights are restored from memory; saved models are ``weights.npz`` arrays);
- with early stopping on NDCG@10 of the validation split under its label (the run's
  ``--label``; :class:`ValidationNDCG`), computed at the end of every epoch; training stops after
  ``patience`` epochs without improvement and the best epoch's weights are restored.

**The final model is the best-validation-epoch model trained on the fit part** of the
training log; it is not refitted on the whole log. A refit would need the epoch count
carried over to a larger data set (where an epoch has more steps), would double the fit
time within the run's time budget, and would train on the validation pairs, so that
nothing could check the refitted model stopped at a good point. Without a validation
split (``fit(train)`` with ``valid=None``) a fixed ``max_epochs`` are trained.

The training curves come back as ``{"epoch": [...], "train_loss": [...],
"valid_ndcg@10": [...]}`` (plain floats; the validation series is absent without a split),
which a model stores as ``history_`` (the pipeline writes it into metrics.json).

This module imports torch and lightning: import it inside the functions that train, never
at the top of a model module (the catalogue and ``import kuairec`` must work without
them). Everything handed to the trainer (module, data loader, scoring function) must be
picklable for ``ddp_spawn``: module-level classes and functions (or ``functools.partial``
of them), no lambdas or closures.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import math
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch

from kuairec.display.progress import Progress, using
from kuairec.models.base import top_candidates

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.data.dataset import TrainSet
    from kuairec.evaluation.protocols import TestSet

VALID_METRIC = "valid_ndcg@10"
_QUIET_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning")


@dataclass(frozen=True)
class TrainSettings:
    """How :func:`train_module` trains (a model copies these from its config)."""

    name: str
    max_epochs: int
    patience: int = 5
    seed: int = 0
    accelerator: str = "cpu"
    devices: int = 1
    max_seconds: float | None = None  # opt-in safety cap: stop after the epoch past it
    deterministic: bool = True
    num_threads: int = 0  # torch's intra-op CPU threads for the fit; 0 = torch's default
    lr_decay: float = 1.0  # each epoch without a new best validation value: lr *= lr_decay
    average_epochs: float = 0.0  # >0: validate and keep a running average of the weights
    # (an exponential moving average whose half-life is this many epochs; 0 = off)


@dataclass
class Trained:
    """What :func:`train_module` returns: the module (best epoch's weights) and curves."""

    module: Any
    history: dict[str, list[float]]
    best_epoch: int | None
    time_limited: bool = False  # the opt-in time cap ended training (not reproducible)
    epoch_capped: bool = False  # max_epochs ended training, not early stopping


class ValidationNDCG:
    """NDCG@10 of top-10 lists on a validation split, under the split's ``label``.

    ``score(module, users)`` gives a dense float array ``(len(users), n_items)`` of the
    module's scores for known user indices; it must be picklable (a module-level function
    or a ``functools.partial`` of one). The evaluation context is prepared once. Only the
    users with a positive are ranked: the others have no NDCG, and the mean skips them.
    """

    def __init__(
        self,
        valid: TestSet,
        train: TrainSet,
        score: Callable[[Any, np.ndarray], np.ndarray],
        batch_size: int = 1024,
    ) -> None:
        from kuairec.evaluation.evaluate import with_positives

        self.label = valid.label
        scored, _, self.ctx = with_positives(valid, train, self.label)  # the others: no NDCG
        self.valid, self.train, self.score, self.batch_size = scored, train, score, batch_size
        # the excluded pairs in candidate columns, sliced once for every epoch
        self.exclude = scored.exclude[:, scored.candidates].tocsr()

    def __call__(self, module: Any) -> float:
        from kuairec.evaluation.evaluate import evaluate

        items = top_candidates(
            lambda users: self.score(module, users),
            self.valid.users,
            self.exclude,
            self.valid.candidates,
            k=10,
            batch_size=self.batch_size,
        )
        result = evaluate(
            items,
            self.valid,
            self.train,
            ks=(10,),
            labels=(self.label,),
            default_label=self.label,
            n_bootstrap=0,
            context=self.ctx,
        )
        value = result.metrics["ndcg@10"]
        return float(value) if value is not None else math.nan


class EarlyStopping:
    """Best-epoch bookkeeping (plain Python, testable without a trainer).

    ``update(epoch, value)`` returns True when the value is a new best (strictly higher);
    ``should_stop`` is True once ``patience`` epochs have passed without a new best.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_value = -math.inf
        self.best_epoch: int | None = None
        self.bad_epochs = 0

    def update(self, epoch: int, value: float) -> bool:
        if value > self.best_value:
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience


class EpochEnd(L.Callback):
    """Per epoch: mean training loss, validation NDCG@10, early stopping, best weights,
    the time cap, the display; at the end: the best weights and the curves (a JSON file
    in the log folder, so they come back from ``ddp_spawn``'s processes too)."""

    def __init__(
        self,
        settings: TrainSettings,
        validate: Callable[[Any], float] | None,
        history_path: Path,
        advance: Callable[[int], None] | None = None,
    ) -> None:
        self.settings, self.validate, self.history_path = settings, validate, history_path
        self.advance = advance
        self.stopper = EarlyStopping(settings.patience)
        self.history: dict[str, list[float]] = {"epoch": [], "train_loss": []}
        if validate is not None:
            self.history[VALID_METRIC] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.average: WeightAverage | None = None
        self.time_limited = False
        self.interrupt: KeyboardInterrupt | None = None
        self._losses: list[torch.Tensor] = []
        self._t0 = time.perf_counter()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # unpickled in a ddp_spawn process: quiet it before Lightning sets it up
        _silence()
        self.__dict__.update(state)

    def on_train_start(self, trainer, pl_module) -> None:
        if self.settings.average_epochs > 0:
            self.average = WeightAverage(
                pl_module, self.settings.average_epochs, trainer.num_training_batches
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._losses.append(loss.detach().float().cpu())
        if self.average is not None:
            self.average.update(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        check_lift()
        epoch = trainer.current_epoch
        loss = float(torch.stack(self._losses).mean()) if self._losses else math.nan
        self._losses = []
        self.history["epoch"].append(float(epoch))
        self.history["train_loss"].append(loss)
        if self.validate is not None:
            with averaged(self.average, pl_module):  # the averaged weights are the model
                value = self._validate(pl_module)
                improved = self.stopper.update(epoch, value)
                if improved:
                    self.best_state = copy.deepcopy(pl_module.state_dict())
            self.history[VALID_METRIC].append(value)
            pl_module.log(VALID_METRIC, value, on_epoch=True, logger=True)
            # decided by the curve, never by a clock
            if not improved and self.settings.lr_decay != 1.0:
                for optimizer in trainer.optimizers:
                    for group in optimizer.param_groups:
                        group["lr"] *= self.settings.lr_decay
            trainer.should_stop = trainer.should_stop or self.stopper.should_stop
        cap = self.settings.max_seconds
        if cap is not None and time.perf_counter() - self._t0 > cap and not trainer.should_stop:
            trainer.should_stop = True
            self.time_limited = True
        if self.advance is not None:
            self.advance(1)

    def _validate(self, pl_module) -> float:
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                return float(self.validate(pl_module))
        finally:
            pl_module.train(was_training)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):  # Ctrl-C, or SIGTERM raised as one
            self.interrupt = exception

    def on_train_end(self, trainer, pl_module) -> None:
        if self.best_state is not None:
            pl_module.load_state_dict(self.best_state)
        elif self.average is not None:  # no validation (or none improved): the average
            self.average.copy_to(pl_module)
        if trainer.is_global_zero:
            record = {
                "history": self.history,
                "best_epoch": self.stopper.best_epoch,
                "time_limited": self.time_limited,
                "early_stopped": self.stopper.should_stop,
            }
            self.history_path.write_text(json.dumps(record))


class WeightAverage:
    """An exponential moving average of a module's trainable parameters, updated after
    every optimiser step: ``a <- a + (1 - b) (w - a)`` with ``b`` the per-step decay whose
    half-life is ``half_life_epochs`` epochs of ``steps_per_epoch`` steps, and a warm-up
    ``b_t = min(b, (1 + t) / (10 + t))`` so the initial weights fade within a few steps
    (a one-epoch fit is not pulled towards its random start). Counted in steps, never
    in seconds. The averaged weights are what validation scores, what early stopping
    keeps and what the fit returns (Polyak averaging; Izmailov et al. 2018 found such
    averages land in flatter, better-generalising regions than the last iterate)."""

    def __init__(self, module: Any, half_life_epochs: float, steps_per_epoch: float) -> None:
        steps = steps_per_epoch if math.isfinite(steps_per_epoch) and steps_per_epoch > 0 else 1
        self.decay = 0.5 ** (1.0 / (half_life_epochs * steps))
        self.steps = 0
        self.values = {
            n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad
        }

    def update(self, module: Any) -> None:
        self.steps += 1
        b = min(self.decay, (1 + self.steps) / (10 + self.steps))
        with torch.no_grad():
            for n, p in module.named_parameters():
                a = self.values.get(n)
                if a is not None:
                    a.lerp_(p.detach(), 1.0 - b)

    def copy_to(self, module: Any) -> dict[str, torch.Tensor]:
        """Put the averages into ``module``; returns the weights they replaced."""
        return _put_parameters(module, self.values)


def _put_parameters(module: Any, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copy ``values`` into the module's parameters of those names; returns copies of the
    values they replaced."""
    params = dict(module.named_parameters())
    replaced = {}
    with torch.no_grad():
        for n, value in values.items():
            replaced[n] = params[n].detach().clone()
            params[n].copy_(value)
    return replaced


@contextlib.contextmanager
def averaged(average: WeightAverage | None, module: Any) -> Iterator[None]:
    """Within the block ``module`` holds the averaged weights (none: as it is); the
    trained weights come back after it, so training goes on from them."""
    if average is None:
        yield
        return
    live = average.copy_to(module)
    try:
        yield
    finally:
        _put_parameters(module, live)


def train_module(
    build: Callable[[], Any],
    loader: Any,
    settings: TrainSettings,
    *,
    validate: Callable[[Any], float] | None = None,
    scratch_dir: Path | None = None,
    progress: bool | Progress = False,
) -> Trained:
    """Seed, build the module (``build()``, after seeding: its initial weights are
    seeded), train it on ``loader`` and return it with the best epoch's weights.

    ``validate(module) -> float`` (e.g. a :class:`ValidationNDCG`) drives early stopping;
    None trains ``settings.max_epochs`` epochs. See the module docstring.
    """
    L.seed_everything(settings.seed, workers=True, verbose=False)
    module = build()
    if scratch_dir is not None:
        Path(scratch_dir).mkdir(parents=True, exist_ok=True)
    spawn = settings.devices > 1
    with (
        tempfile.TemporaryDirectory(prefix="torch-", dir=scratch_dir) as root,
        _quiet(),
        _deterministic(settings.deterministic),
        threads(settings.num_threads),
        _shared_tensors_by_file(spawn),
        using(progress) as display,
        display.task(f"{settings.name}: epochs", settings.max_epochs) as advance,
    ):
        history_path = Path(root) / "history.json"
        # a display cannot cross into ddp_spawn's processes: there the bar shows the end only
        end = EpochEnd(settings, validate, history_path, None if spawn else advance)
        trainer = _trainer(settings, Path(root), end, validate is not None)
        _fit_interruptibly(trainer, module, loader, end)
        record = json.loads(history_path.read_text())
        if spawn:
            advance(settings.max_epochs)
    epochs = len(record["history"]["epoch"])
    capped = epochs >= settings.max_epochs and not record["early_stopped"]
    return Trained(module, record["history"], record["best_epoch"], record["time_limited"], capped)


def _fit_interruptibly(trainer: Any, module: Any, loader: Any, end: EpochEnd) -> None:
    """``trainer.fit``, giving an interruption back to the caller. Lightning catches a
    KeyboardInterrupt (Ctrl-C, and the CLI's SIGTERM), ignores SIGINT from then on and
    calls ``sys.exit(1)``: the command would end with status 1 instead of 130 or 143.
    The interruption is re-raised as it came, and SIGINT's handler restored."""
    import signal
    import threading

    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        trainer.fit(module, train_dataloaders=loader)
    except SystemExit:
        if end.interrupt is not None:
            raise end.interrupt from None
        raise
    finally:
        if handler is not None and signal.getsignal(signal.SIGINT) is not handler:
            signal.signal(signal.SIGINT, handler)


def fit_notes(trained: Trained, settings: TrainSettings) -> tuple[str | None, str | None]:
    """What a model says about one fit: (the time cap that fired, or None; a remark on
    how training ended when it is not early stopping, or None)."""
    epochs = len(trained.history.get("epoch", []))
    fired = None
    if trained.time_limited:
        fired = f"training stopped after {epochs} epochs by max_seconds={settings.max_seconds:g}"
    remark = None
    if trained.epoch_capped and VALID_METRIC in trained.history:
        remark = (
            f"ended by its epoch cap ({settings.max_epochs} epochs), not by early stopping "
            f"(best epoch {trained.best_epoch}, {settings.patience} epochs of patience)"
        )
    return fired, remark


def _trainer(settings: TrainSettings, root: Path, end: EpochEnd, monitored: bool) -> Any:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    checkpoint = ModelCheckpoint(
        dirpath=root / "checkpoints",
        monitor=VALID_METRIC if monitored else None,
        mode="max",
        save_top_k=1,
        save_weights_only=True,
    )
    return L.Trainer(
        accelerator=settings.accelerator,
        devices=settings.devices,
        # a module may hold parameters a batch does not reach (an optional head, the
        # two-tower's cold tower): DDP must be told, or it refuses
        strategy="ddp_spawn_find_unused_parameters_true" if settings.devices > 1 else "auto",
        max_epochs=settings.max_epochs,
        logger=CSVLogger(root, name="logs", version=0),
        callbacks=[end, checkpoint],
        default_root_dir=root,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=settings.deterministic,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )


def _silence() -> None:
    """Lightning's info logs and its advice warnings off (for good: a spawned process)."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"lightning(\..*)?")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """:func:`_silence` for the duration of a fit; log levels and filters restored after."""
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    try:
        with warnings.catch_warnings():
            _silence()
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextlib.contextmanager
def _shared_tensors_by_file(on: bool) -> Iterator[None]:
    """ddp_spawn passes the module's tensors to its processes through shared memory;
    torch's default (file descriptors) failed to map them on the Firecracker VM this was
    developed on ("unable to resize file ... Invalid argument"), the ``file_system``
    strategy works. Set for the fit only."""
    if not on:
        yield
        return
    import torch.multiprocessing as tmp

    before = tmp.get_sharing_strategy()
    tmp.set_sharing_strategy("file_system")
    try:
        yield
    finally:
        tmp.set_sharing_strategy(before)


_SPLIT_PROBE = ((256, 4096, 256), (256, 10_000, 256), (256, 16_384, 128), (1024, 16_384, 256))


@functools.cache
def sums_split_over_threads() -> bool:
    """Whether this machine's matrix product splits a long sum over threads, so that a
    wide layer's output (a batch times ~10,000 videos times 256 units) differs in its
    last bits between one thread and two. It depends on the CPU and the BLAS's code
    path for it, not on us: measured 2026-12-07, MKL on AMD EPYC (AVX2) splits the
    output (False) and MKL on an Intel Xeon with AVX-512 splits the sum (True). Decided
    once per process, before any fork (the run plans its lanes first), by products of
    the autoencoder's shapes on one and on two threads; torch's thread count is left as
    it was. A fact of the machine, never of a clock: the same on every run of it."""
    before = torch.get_num_threads()
    gen = torch.Generator().manual_seed(0)
    try:
        for m, k, n in _SPLIT_PROBE:
            a = torch.randn(m, k, generator=gen)
            b = torch.randn(k, n, generator=gen)
            torch.set_num_threads(1)
            one = a @ b
            torch.set_num_threads(2)
            if not torch.equal(one, a @ b):
                return True
        return False
    finally:
        torch.set_num_threads(before)


_CAP: int | None = None  # cap_threads: at most this many threads for every fit
_UNCAPPED = 0  # torch's thread count before the cap
_WANTED = 0  # the thread count the running fit asked for (threads())
_LIFT: Any = None  # the event that ends the cap (cap_threads)


def cap_threads(n: int | None, lift: Any = None) -> int | None:
    """At most ``n`` torch threads for every fit from now on (None: no cap; torch's own
    thread count set to ``n``, or back to what it was before the cap); returns the
    previous cap. The run's two lanes of one-core fits cap at 1
    (:mod:`kuairec.pipeline.beside`), only for fits whose numbers do not depend on it.
    ``lift``, an event (threading or multiprocessing): once it is set, the cap ends at
    the running fit's next epoch (:func:`check_lift`), which then takes the threads it
    asked for: a lane with nothing left to fit hands its core to the other."""
    global _CAP, _UNCAPPED, _LIFT
    before = _CAP
    if before is None:
        _UNCAPPED = torch.get_num_threads()
    _CAP, _LIFT = n, (lift if n is not None else None)
    torch.set_num_threads(n if n is not None else _UNCAPPED)
    return before


def _capped() -> bool:
    return _CAP is not None and not (_LIFT is not None and _LIFT.is_set())


def check_lift() -> None:
    """Between epochs: the running fit's own thread count once the cap is lifted."""
    if _CAP is not None and not _capped() and _WANTED > torch.get_num_threads():
        torch.set_num_threads(_WANTED)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """torch's intra-op CPU threads set to ``n`` for the block (0: left as they are; at
    most the cap of :func:`cap_threads`).

    Small networks lose most of their time to thread synchronisation when the cores are
    shared (a tiny fit measured 12x slower with 2 threads than with 1 on a busy 2-core
    machine), so the models expose this as a setting."""
    global _WANTED
    wanted, _WANTED = _WANTED, n
    if _capped() and n > _CAP:
        n = _CAP
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        _WANTED = wanted
        if n > 0:
            torch.set_num_threads(before)


@contextlib.contextmanager
def _deterministic(on: bool) -> Iterator[None]:
    """Lightning switches deterministic algorithms on for the process; switch them back."""
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        if on:
            torch.use_deterministic_algorithms(before, warn_only=warn_only)


def state_arrays(module: Any, prefix: str = "w:") -> dict[str, np.ndarray]:
    """A module's ``state_dict()`` as numpy arrays keyed ``prefix + name`` (weights.npz)."""
    return {
        f"{prefix}{name}": t.detach().cpu().numpy().copy()
        for name, t in module.state_dict().items()
    }


def load_state_arrays(module: Any, state: Any, prefix: str = "w:") -> Any:
    """Load :func:`state_arrays`' arrays back into a module built from the same config."""
    tensors = {
        key[len(prefix) :]: torch.from_numpy(np.array(value))
        for key, value in state.items()
        if key.startswith(prefix)
    }
    module.load_state_dict(tensors, strict=True)
    return module.eval()
