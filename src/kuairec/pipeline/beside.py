"""One-core fits side by side: two models whose fits each keep one core busy are fitted
at the same time, one in a second thread, so that a 2-core machine has no idle core.

Which models pair up is decided by what they declare, never by a measured time:
:meth:`~kuairec.models.base.Recommender.fit_cores` is 1 for both (BPR's sequential SGD;
the two-tower model on its default one torch thread). The first such model in the run's
order waits for the next one and runs beside it, at the later one's turn (so the run's
memory follows the order the models are listed in), when

- at most one of the two needs torch (torch's seed, thread count and deterministic mode
  are process-wide: the torch model runs on the main thread, the other beside it);
- neither follows another model's parameters nor builds on fitted models, and no model
  between the two follows the first or builds on fitted models (what each model sees of
  the run is what it saw in the run's order).

Each fit uses its own seed and a fixed thread count, so side by side gives the same
numbers as one after the other; only the fit times and peak memory of the two models
include each other's load, which their rows' notes say. At KuaiRec's full size BPR (65
s on one core) runs beside the two-tower fit (120 s on one core).

Report sections pair up the same way (:func:`section_pairs`): two neighbours in the
registry that declare the models they fit (``fits(job)``) run at once when one of them
keeps one core busy (every model it fits is a one-core fit or a non-personalised
baseline) and not both fit torch models. A section reads the job and never writes to
it, so the values are the ones of one after the other. At KuaiRec's full size the
cold-video section (the two-tower refit on one thread) runs beside the validity
section (whose refits leave the two-tower model out above 2M training pairs); at scale
0.2 validity refits the torch models too, and the two run one after the other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.pipeline.job import Job


def one_core(name: str, params: dict[str, Any]) -> bool:
    """Whether model ``name`` with run parameters ``params`` declares a one-core fit."""
    from kuairec.models.registry import check_params, get_model_class

    return get_model_class(name).fit_cores(check_params(name, params)) == 1


def pairs(names: list[str], params: Callable[[str], dict[str, Any]]) -> dict[str, str]:
    """``{later: earlier}``: at ``later``'s turn, ``earlier`` runs beside it (module
    docstring); ``params(name)`` gives a model's run parameters before tuning."""
    from kuairec.models.registry import get_model_class

    def cls(name: str) -> Any:
        return get_model_class(name)

    def leans(name: str) -> bool:  # what it sees depends on the models before it
        return cls(name).follows is not None or cls(name).reuses_fitted

    single = [n for n in names if not leans(n) and _safe_one_core(n, params)]
    out: dict[str, str] = {}
    taken: set[str] = set()
    for i, first in enumerate(names):
        if first not in single or first in taken:
            continue
        for j in range(i + 1, len(names)):
            between = names[i + 1 : j]
            if any(cls(n).follows == first or cls(n).reuses_fitted for n in between):
                break
            second = names[j]
            if second not in single or second in taken or (_torch(first) and _torch(second)):
                continue
            out[second] = first
            taken |= {first, second}
            break
    return out


def _safe_one_core(name: str, params: Callable[[str], dict[str, Any]]) -> bool:
    from kuairec.errors import KuaiRecError

    try:
        return one_core(name, params(name))
    except KuaiRecError:  # a bad parameter: the model's own run reports it
        return False


def run_pair(first: str, second: str, job: Job, run_one: Callable[[str, Job], None]) -> None:
    """Run ``run_one`` for both models at once: the one without torch in a second thread
    (the first when neither needs it), the other here. Lazily built state the two share
    (the evaluation context, the validation split) is built first, on this thread."""
    main, other = (first, second) if _torch(first) else (second, first)
    _build_shared(job, (first, second))
    at_once(lambda: run_one(main, job), lambda: run_one(other, job), f"kuairec {other}")
    for name, partner in ((main, other), (other, main)):
        result = job.result.models.get(name)
        if result is not None and partner in job.result.models:
            result.notes.append(
                f"fitted beside {partner} (both one-core fits, in two threads; each with "
                "its own seed and thread count, so the same numbers as one after the "
                "other): its fit time and peak memory include the other's load"
            )


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
