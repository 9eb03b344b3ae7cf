"""One-core fits on two lanes: models whose fits each keep one core busy are fitted two at
a time, one here and one in a forked second process, so that a 2-core machine has no
idle core.

Which models share the lanes is decided by what they declare, never by a measured time:
:meth:`~kuairec.models.base.Recommender.one_core_fit` is true for each (BPR's sequential
SGD; the two-tower model on its default one torch thread; the autoencoder, whose numbers
do not depend on its torch thread count, run on one thread), on the CPU. Such models
form a group from the first of them on, as long as no model in between follows one of
them or builds on fitted models (what each model sees of the run is what it saw in the
run's order); the group is fitted at its last member's turn, so the models before it
wait (the run's memory follows the order the models are listed in). In the group the
torch fits start first, in the run's order (their epochs are the long fits), then the
others; the first starts here, the second in a second process, and whenever this lane
is free it takes the next, while the second process takes the next one when it has
delivered its model and more than one is waiting. Every fit runs on one thread with
its own seed, so the numbers are those of one after the other (the forked process
starts from the run's state, and torch's seed and thread count are its own there); only
the fit times and peak memory of the group's rows include each other's load, which
their notes say. At KuaiRec's full size the autoencoder, the seed's autoencoder, the
two-tower model and BPR share the lanes: the seed's configuration (80 epochs) in the
second process, the other three here.

Report sections pair up in the same spirit (:func:`section_pairs`): two neighbours in
the registry that declare the models they fit (``fits(job)``) run at once, in two
threads, when one of them keeps one core busy (every model it fits is a one-core fit or
a non-personalised baseline) and not both fit torch models (torch's seed, thread count
and deterministic mode are process-wide). A section reads the job and never writes to
it, so the values are the ones of one after the other. At KuaiRec's full size the
cold-video section (the two-tower refit on one thread) runs beside the validity
section (whose refits leave the two-tower model out above 2M training pairs); at scale
0.2 validity refits the torch models too, and the two run one after the other.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.pipeline.job import Job


def one_core(name: str, params: dict[str, Any]) -> bool:
    """Whether model ``name`` with run parameters ``params`` declares a one-core fit (on
    the CPU: an accelerator's fit is never forked)."""
    from kuairec.models.registry import check_params, get_model_class

    cls = get_model_class(name)
    config = check_params(name, params)
    if cls.uses_accelerator and (config.accelerator != "cpu" or config.devices != 1):
        return False
    return bool(cls.one_core_fit(config))


def groups(names: list[str], params: Callable[[str], dict[str, Any]]) -> dict[str, list[str]]:
    """``{turn: members}``: at model ``turn``'s turn the group's ``members`` are fitted on
    the two lanes, in the order they start (module docstring); ``params(name)`` gives a
    model's run parameters before tuning. Only groups of two or more."""
    from kuairec.models.registry import get_model_class

    def cls(name: str) -> Any:
        return get_model_class(name)

    def leans(name: str) -> bool:  # what it sees depends on the models before it
        return cls(name).follows is not None or cls(name).reuses_fitted

    single = [n for n in names if not leans(n) and _safe_one_core(n, params)]
    out: dict[str, list[str]] = {}
    taken: set[str] = set()
    for i, first in enumerate(names):
        if first not in single or first in taken:
            continue
        members = [first]
        for name in names[i + 1 :]:
            if cls(name).reuses_fitted or cls(name).follows in members:
                break
            if name in single and name not in taken:
                members.append(name)
        if len(members) > 1:
            taken |= set(members)
            out[members[-1]] = [n for n in members if _torch(n)] + [
                n for n in members if not _torch(n)
            ]
    return out


def _safe_one_core(name: str, params: Callable[[str], dict[str, Any]]) -> bool:
    from kuairec.errors import KuaiRecError

    try:
        return one_core(name, params(name))
    except KuaiRecError:  # a bad parameter: the model's own run reports it
        return False


def run_group(members: list[str], job: Job, run_one: Callable[[str, Job], None]) -> None:
    """``run_one`` for every member on the two lanes (module docstring): here, and in a
    forked second process whose job entries for its model come back to this one. Lazily
    built state the members share (the evaluation context, the validation split) is
    built first, so the second process starts with it. A member whose second process
    ends without a result is listed under ``skipped`` with the exit code; an error there
    that is not the model's own (a bug) is raised here once the lanes have stopped."""
    _build_shared(job, tuple(members))
    waiting, where = list(members), {}
    lane: _Lane | None = None
    failed: list[BaseException] = []
    with _one_thread(any(_torch(n) for n in members)) as here:
        try:
            while waiting or lane is not None:
                if lane is not None and not waiting:
                    lane.lift()  # nothing left here: its fit may use both cores
                if lane is not None and (not waiting or lane.ready()):
                    failed += lane.deliver(job)
                    lane = None
                if lane is None and len(waiting) > 1:
                    lane = _Lane.start(waiting.pop(1), job, run_one)
                    where[lane.name] = "in a second process"
                if lane is None:
                    here.lifted.set()  # nothing runs there any more: both cores here
                if waiting:
                    name = waiting.pop(0)
                    where[name] = "here"
                    run_one(name, job)
        finally:
            if lane is not None:
                lane.stop()
    if failed:
        raise failed[0]
    for name in members:
        result = job.result.models.get(name)
        if result is not None:
            others = ", ".join(n for n in members if n != name)
            result.notes.append(
                f"fitted beside {others} (one-core fits on two lanes, this one "
                f"{where[name]}; each on one thread with its own seed, so the same numbers "
                "as one after the other): its fit time and peak memory include the others' "
                "load"
            )


@dataclass
class _Outcome:
    """What a member's run added to the job, sent back from the second process."""

    name: str
    fitted: Any = None
    skipped: str | None = None
    tuning: Any = None
    untuned: str | None = None
    valid_fit: Any = None
    ended: list[tuple[str, float, float, float]] = field(default_factory=list)


@dataclass
class _Lane:
    """One member's run in a forked process, and the pipe its outcome comes back on."""

    name: str
    process: Any
    conn: Any
    shown: Callable[[], None]
    lifted: Any  # set: the fit there may take the threads it asked for

    @classmethod
    def start(cls, name: str, job: Job, run_one: Callable[[str, Job], None]) -> _Lane:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        here, there = ctx.Pipe(duplex=False)
        lifted = ctx.Event()
        process = ctx.Process(
            target=_second_process,
            args=(there, lifted, name, job, run_one),
            name=f"kuairec {name}",
        )
        process.daemon = True
        process.start()
        there.close()
        shown = job.progress.elsewhere(f"{name}: fit and evaluate")
        return cls(name, process, here, shown, lifted)

    def ready(self) -> bool:
        return bool(self.conn.poll())

    def lift(self) -> None:
        """This lane has nothing left: the fit there, if its numbers do not depend on its
        thread count (the only fits ever capped), takes the threads it asked for from its
        next epoch on (:func:`kuairec.models.torch_train.cap_threads`)."""
        self.lifted.set()

    def deliver(self, job: Job) -> list[BaseException]:
        """The member's entries into ``job`` (errors that are not the model's: returned)."""
        try:  # plain pickle, from our own forked process (torch's reducers would hand
            # tensors over through that process, which has ended)
            kind, payload = pickle.loads(self.conn.recv_bytes())
        except EOFError:
            kind, payload = "lost", None
        self.process.join()
        self.conn.close()
        self.shown()
        if kind == "error":
            return [payload]
        if kind == "lost":
            job.result.skipped[self.name] = (
                "failed: its fit in a second process ended without a result (exit code "
                f"{self.process.exitcode}; a negative code is the signal that killed it, "
                "9: perhaps out of memory)"
            )
            return []
        out: _Outcome = payload
        if out.fitted is not None:
            job.fitted[self.name] = out.fitted
            job.result.models[self.name] = out.fitted.result
        for store, value in (
            (job.result.skipped, out.skipped),
            (job.tuning, out.tuning),
            (job.untuned, out.untuned),
            (job.valid_fits, out.valid_fit),
        ):
            if value is not None:
                store[self.name] = value
        job.progress.add_ended(out.ended)
        return []

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.conn.close()
        self.shown()


def _second_process(
    conn: Any, lifted: Any, name: str, job: Job, run_one: Callable[[str, Job], None]
) -> None:
    """The forked lane: one member's run on a copy of the job, its entries sent back."""
    import traceback

    try:
        job.progress.in_child()
        _one_thread_here(lifted)
        start = len(job.progress.ended)
        run_one(name, job)
        fitted = job.fitted.get(name)
        out = _Outcome(
            name,
            fitted=fitted,
            skipped=job.result.skipped.get(name),
            tuning=job.tuning.get(name),
            untuned=job.untuned.get(name),
            valid_fit=job.valid_fits.get(name),
            ended=job.progress.ended[start:],
        )
        conn.send_bytes(pickle.dumps(("done", out), protocol=pickle.HIGHEST_PROTOCOL))
    except BaseException as exc:  # noqa: BLE001 - handed to the run's process
        try:
            conn.send_bytes(pickle.dumps(("error", exc)))
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            why = RuntimeError(f"{name}, in a second process:\n{traceback.format_exc()}")
            conn.send_bytes(pickle.dumps(("error", why)))
    finally:
        conn.close()


def _one_thread_here(lifted: Any) -> None:
    """torch on one thread in this (forked) process until ``lifted`` is set, when torch
    is loaded."""
    import sys

    if "torch" in sys.modules:
        from kuairec.models import torch_train

        torch_train.cap_threads(1, lifted)


class _one_thread:  # noqa: N801 - a context manager
    """Every torch fit here on one thread while the lanes run (when a member needs
    torch), until ``lifted`` is set (the other lane has nothing left)."""

    def __init__(self, on: bool) -> None:
        self.on, self.before = on, None
        self.lifted = threading.Event()

    def __enter__(self) -> _one_thread:
        if self.on:
            from kuairec.models import torch_train

            self.before = torch_train.cap_threads(1, self.lifted)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.on:
            from kuairec.models import torch_train

            torch_train.cap_threads(self.before)


def at_once(here: Callable[[], None], beside: Callable[[], None], name: str) -> None:
    """``beside()`` in a second thread (named ``name``) while ``here()`` runs on this
    one; returns when both have ended, and raises what the second thread raised. An
    interrupt here leaves the daemon thread to the process's end."""
    failed: list[BaseException] = []

    def there() -> None:
        try:
            beside()
        except BaseException as exc:  # noqa: BLE001 - handed to this thread
            failed.append(exc)

    thread = threading.Thread(target=there, name=name, daemon=True)
    thread.start()
    here()
    thread.join()
    if failed:
        raise failed[0]


def _torch(name: str) -> bool:
    """Whether model ``name`` needs torch (whose seed and threads are process-wide)."""
    from kuairec.models.registry import get_model_class

    return "torch" in get_model_class(name).requires


def _build_shared(job: Job, names: tuple[str, ...]) -> None:
    from kuairec.models.registry import get_model_class

    exp, cfg = job.exp, job.cfg
    exp.context(cfg)
    if cfg.tune or any(get_model_class(n).uses_validation for n in names):
        validation = exp.validation(cfg)
        validation.parts()  # and the selection half
        if cfg.tune:  # what the trials rank, and the kept trials' and scores' sets
            for part in ("all", "select", "confirm"):
                validation.scored(part)


# ----------------------------------------------------------------- report sections


def section_fits(mod: Any, job: Job) -> dict[str, dict[str, Any]] | None:
    """What section ``mod`` declares it fits in this run (None: it declares nothing)."""
    fits = getattr(mod, "fits", None)
    return None if fits is None else dict(fits(job))


def section_pairs(mods: list[Any], job: Job) -> set[int]:
    """The indices ``i`` whose section runs at once with section ``i + 1`` (module
    docstring): both declare non-empty fits, not both fit torch models, and at least one
    of them keeps one core busy. Each section is in one pair at most."""
    from kuairec.models.registry import get_model_class

    def light(fits: dict[str, Any]) -> bool:
        return all(
            not get_model_class(n).personalised or _safe_one_core(n, fits.__getitem__) for n in fits
        )

    declared = [section_fits(mod, job) for mod in mods]
    out: set[int] = set()
    i = 0
    while i + 1 < len(mods):
        a, b = declared[i], declared[i + 1]
        if a and b and not (_any_torch(a) and _any_torch(b)) and (light(a) or light(b)):
            out.add(i)
            i += 2
        else:
            i += 1
    return out


def run_sections(first: Any, second: Any, job: Job, compute: Callable[[Any], None]) -> None:
    """``compute(mod)`` for both sections at once: the one that fits torch models here,
    the other in a second thread (the second section there when neither does). The run
    gets a note: the rows the sections fit carry each other's load in their fit times
    and peak memory."""
    main, other = (second, first) if _any_torch(section_fits(second, job)) else (first, second)
    at_once(lambda: compute(main), lambda: compute(other), f"kuairec {other.NAME}")
    job.result.notes.append(
        f"the {_title(first)} and {_title(second)} sections were computed side by side "
        "(two threads; every fit with its own seed and thread count, so the same numbers "
        "as one after the other): the fit times and peak memory of the models they refit "
        "include the other section's load"
    )


def _any_torch(fits: dict[str, Any] | None) -> bool:
    """Whether a section that declares ``fits`` fits a torch model."""
    return any(_torch(n) for n in fits or {})


def _title(mod: Any) -> str:
    return str(getattr(mod, "TITLE", mod.NAME.replace("_", " "))).lower()
