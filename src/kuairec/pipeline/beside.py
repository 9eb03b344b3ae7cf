"""One-core fits on two lanes: models whose fits each keep one core busy are fitted two at
a time, one here and one in a forked second process, so that a 2-core machine has no
idle core.

Which models share the lanes is decided by what they declare, never by a measured time:
:meth:`~kuairec.models.base.Recommender.one_core_fit` is true for each (BPR's sequential
SGD; the two-tower model on its default one torch thread; the autoencoder, whose numbers
do not depend on its torch thread count where the machine's products split their outputs
over threads, run on one thread, and which keeps to one thread by itself where they
split their sums: ``torch_train.sums_split_over_threads``), on the CPU. Such models
form a group from the first of them on, as long as no model in between follows one of
them or builds on fitted models (what each model sees of the run is what it saw in the
run's order); the group is fitted at its last member's turn, so the models before it
wait (the run's memory follows the order the models are listed in).

In the group every fit starts on one thread. The fits whose numbers do not depend on
their thread count (the autoencoder's) are taken by this process, the one declaring the
longest training first (its patience + 1 epochs, at most its epoch cap); the one-thread
fits by their own config (BPR, the two-tower model; and the autoencoders where they keep
to one thread) by the forked second process, also the longest declared training first,
which takes the rest from the other end when it has done those. Once the second process finds
nothing left, this process's fit takes the threads it asked for from its next epoch on
(never the second process's: OpenMP's threads do not survive a fork). The second process
starts from the run's state, and torch's seed and thread count are its own there; it
writes each member's entries for the job to a file this process reads back. Every fit
has its own seed, so the numbers are those of one after the other; only the fit times
and peak memory of the group's rows include each other's load, which their notes say.
At KuaiRec's full size the seed's autoencoder (80 epochs, patience 50) fits here while
the second process fits BPR, the two-tower model and then the autoencoder; the seed's
configuration then finishes on both cores.

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


@dataclass(frozen=True)
class Group:
    """A group of one-core fits (module docstring): ``here``, the fits that may take both
    cores once the second process is done (their numbers do not depend on their thread
    count; the one declaring the longest training first), and ``there``, the fits on one
    thread by their own config. This process takes them from the front of ``here +
    reversed(there)``, the second process from the back."""

    here: tuple[str, ...]
    there: tuple[str, ...]

    @property
    def order(self) -> list[str]:
        return [*self.here, *reversed(self.there)]


def groups(names: list[str], params: Callable[[str], dict[str, Any]]) -> dict[str, Group]:
    """``{turn: group}``: at model ``turn``'s turn the group's members are fitted on the
    two lanes (module docstring); ``params(name)`` gives a model's run parameters before
    tuning. Only groups of two or more."""
    from kuairec.models.registry import get_model_class

    def cls(name: str) -> Any:
        return get_model_class(name)

    def longest_first(name: str) -> int:  # sorted() is stable: ties in run order
        return -_least_epochs(name, params(name))

    def leans(name: str) -> bool:  # what it sees depends on the models before it
        return cls(name).follows is not None or cls(name).reuses_fitted

    single = [n for n in names if not leans(n) and _safe_one_core(n, params)]
    out: dict[str, Group] = {}
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
            grows = sorted((n for n in members if _grows(n, params(n))), key=longest_first)
            there = sorted((n for n in members if n not in grows), key=longest_first)
            out[members[-1]] = Group(tuple(grows), tuple(there))
    return out


def _grows(name: str, params: dict[str, Any]) -> bool:
    """Whether a one-core fit may take more threads (its numbers do not depend on them)."""
    from kuairec.models.registry import check_params, get_model_class

    return get_model_class(name).fit_cores(check_params(name, params)) != 1


def _least_epochs(name: str, params: dict[str, Any]) -> int:
    """The epochs a fit declares it trains at least: its patience + 1, at most its
    epoch cap (0 for a model without both)."""
    from kuairec.models.registry import check_params

    config = check_params(name, params)
    patience, cap = getattr(config, "patience", None), getattr(config, "max_epochs", None)
    return min(int(patience) + 1, int(cap)) if patience and cap else 0


def _safe_one_core(name: str, params: Callable[[str], dict[str, Any]]) -> bool:
    from kuairec.errors import KuaiRecError

    try:
        return one_core(name, params(name))
    except KuaiRecError:  # a bad parameter: the model's own run reports it
        return False


def run_group(group: Group, job: Job, run_one: Callable[[str, Job], None]) -> None:
    """``run_one`` for every member on the two lanes (module docstring): here, and in a
    forked second process that takes members as it finishes them and writes each one's
    entries for the job to a file this process reads back. Lazily built state the
    members share (the evaluation context, the validation split) is built first, so the
    second process starts with it. A member whose second process ends without a result
    is listed under ``skipped`` with the exit code (the members it had not taken are
    fitted here); an error there that is not the model's own (a bug) is raised here once
    the lanes have stopped."""
    import tempfile

    order = group.order
    _build_shared(job, tuple(order))
    where = {}
    failed: list[BaseException] = []
    scratch = None if job.exp is None else job.exp.scratch
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="lanes-", dir=scratch) as folder,
        _one_thread(any(_torch(n) for n in order)) as here,
    ):
        lane = _Lane.start(order, job, run_one, folder, here)
        try:
            while (name := lane.take_front()) is not None:
                where[name] = "here"
                run_one(name, job)
            for name in order:
                where.setdefault(name, "in a second process")
            failed += lane.deliver(job, [n for n in order if where[n] != "here"])
        finally:
            lane.stop()
    if failed:
        raise failed[0]
    for name in order:
        result = job.result.models.get(name)
        if result is not None:
            others = ", ".join(n for n in order if n != name)
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
    """The forked second process, the two ends of the members' order both processes take
    from, and the folder its outcomes are written to."""

    order: list[str]
    ends: Any  # multiprocessing Array [front, back]: the next index from each end
    process: Any
    folder: str
    shown: Callable[[], None]

    @classmethod
    def start(
        cls, order: list[str], job: Job, run_one: Callable[[str, Job], None], folder: str,
        here: _one_thread,
    ) -> _Lane:  # fmt: skip
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        ends = ctx.Array("i", [0, len(order) - 1])
        process = ctx.Process(
            target=_second_process,
            args=(order, ends, here.lifted, job, run_one, folder),
            name="kuairec lane",
        )
        process.daemon = False  # its fits may start processes (the two-tower's loader)
        process.start()
        return cls(order, ends, process, folder, job.progress.elsewhere("one-core fits"))

    def take_front(self) -> str | None:
        """The next member for this process, or None when every member is taken."""
        return _take(self.order, self.ends, 0)

    def deliver(self, job: Job, names: list[str]) -> list[BaseException]:
        """Wait for the second process; its members' entries into ``job`` (errors that
        are not the model's own: returned)."""
        import os

        self.process.join()
        failed: list[BaseException] = []
        for name in names:
            path = os.path.join(self.folder, f"{name}.pickle")
            if not os.path.exists(path):
                job.result.skipped[name] = (
                    "failed: its fit in a second process ended without a result (exit "
                    f"code {self.process.exitcode}; a negative code is the signal that "
                    "killed it, 9: perhaps out of memory)"
                )
                continue
            with open(path, "rb") as fh:  # our own forked process wrote it, just now
                kind, payload = pickle.load(fh)
            if kind == "error":
                failed.append(payload)
                continue
            _merge(job, payload)
        return failed

    def stop(self) -> None:
        """End the second process if it still runs (an error or an interrupt here: its
        work is lost anyway, and SIGTERM may never be handled by a process stuck in C),
        and its spinner; called on every path."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.shown()


def _take(order: list[str], ends: Any, side: int) -> str | None:
    """The next member from the front (``side`` 0) or the back (1) of ``order``."""
    with ends.get_lock():
        front, back = ends[0], ends[1]
        if front > back:
            return None
        if side == 0:
            ends[0] = front + 1
            return order[front]
        ends[1] = back - 1
        return order[back]


def _merge(job: Job, out: _Outcome) -> None:
    if out.fitted is not None:
        job.fitted[out.name] = out.fitted
        job.result.models[out.name] = out.fitted.result
    for store, value in (
        (job.result.skipped, out.skipped),
        (job.tuning, out.tuning),
        (job.untuned, out.untuned),
        (job.valid_fits, out.valid_fit),
    ):
        if value is not None:
            store[out.name] = value
    job.progress.add_ended(out.ended)


def _second_process(
    order: list[str], ends: Any, done: Any, job: Job, run_one: Callable[[str, Job], None],
    folder: str,
) -> None:  # fmt: skip
    """The forked lane: members from the back of ``order`` on a copy of the job, each
    one's entries written to ``folder``; ``done`` set when none is left (this process's
    threads never grow: OpenMP's do not survive a fork, so the fits that may take both
    cores are taken from the front, by the run's process)."""
    import os
    import traceback

    from kuairec import atomic

    _end_with_parent()
    job.progress.in_child()
    _one_thread_here()
    try:
        while (name := _take(order, ends, 1)) is not None:
            start = len(job.progress.ended)
            try:
                run_one(name, job)
                result: tuple[str, Any] = ("done", _Outcome(
                    name,
                    fitted=job.fitted.get(name),
                    skipped=job.result.skipped.get(name),
                    tuning=job.tuning.get(name),
                    untuned=job.untuned.get(name),
                    valid_fit=job.valid_fits.get(name),
                    ended=job.progress.ended[start:],
                ))  # fmt: skip
            except BaseException as exc:  # noqa: BLE001 - handed to the run's process
                exc.add_note(f"{name}, in a second process:\n{traceback.format_exc()}")
                result = ("error", exc)
            path = os.path.join(folder, f"{name}.pickle")
            try:
                data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - an exception that does not pickle
                why = RuntimeError(f"{name}, in a second process:\n{traceback.format_exc()}")
                data = pickle.dumps(("error", why))
            atomic.write_bytes(path, data)
            if result[0] == "error":
                break  # the run's process fits what is left
    finally:
        done.set()


def _end_with_parent() -> None:
    """Linux: this process is killed when the run's process dies (not a daemon, so that
    its fits may start processes of their own; the run joins it on every path)."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # not glibc
            pass


def _one_thread_here() -> None:
    """torch on one thread in this (forked) process, when torch is loaded."""
    import sys

    if "torch" in sys.modules:
        from kuairec.models import torch_train

        torch_train.cap_threads(1)


class _one_thread:  # noqa: N801 - a context manager
    """Every torch fit here on one thread while the lanes run (when a member needs
    torch), until ``lifted`` is set (the other lane has nothing left)."""

    def __init__(self, on: bool) -> None:
        import multiprocessing

        self.on, self.before = on, None
        self.lifted = multiprocessing.get_context("fork").Event()  # set by the second one

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
