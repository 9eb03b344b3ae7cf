"""Which one-core fits share the two lanes (kuairec.pipeline.beside): decided by what the
models declare, and never so that a model sees a different run than in order; and what
the lanes do with a member's outcome in the second process."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from kuairec.pipeline.beside import groups

DEFAULTS = [
    "random",
    "popularity",
    "als",
    "spark_als",
    "bpr",
    "ease",
    "itemknn",
    "autoencoder",
    "autoencoder_seed_config",
    "two_tower",
    "two_stage",
    "oracle",
]


@pytest.fixture(autouse=True)
def _products_split_their_outputs(monkeypatch):
    """The plans below are those of a machine whose products split their outputs over
    threads, where the autoencoders may be widened (MKL on AMD EPYC); on one that splits
    the sums they keep to one thread: test_autoencoder.py's
    test_where_sums_split_a_wide_fit_keeps_to_one_thread."""
    try:
        from kuairec.models import torch_train
    except ImportError:  # no torch: the autoencoders are not installed either
        return
    monkeypatch.setattr(torch_train, "sums_split_over_threads", lambda: False)


def _params(overrides=None):
    return lambda name: dict((overrides or {}).get(name, {}))


def _orders(found):
    return {turn: group.order for turn, group in found.items()}


def test_the_one_core_fits_wait_for_the_last_of_them() -> None:
    # here, from the front: the autoencoders (their numbers do not depend on their
    # threads), the seed's first (patience 50: it trains at least 51 epochs); the
    # second process, from the back: the two-tower model (patience 3: 4 epochs at least),
    # then BPR (one thread by config), the longest declared training first there too
    (group,) = groups(DEFAULTS, _params()).values()
    assert groups(DEFAULTS, _params()).keys() == {"two_tower"}
    assert group.here == ("autoencoder_seed_config", "autoencoder")
    assert group.there == ("two_tower", "bpr")
    assert group.order == ["autoencoder_seed_config", "autoencoder", "bpr", "two_tower"]
    # a seed configuration that stops sooner than the default: the default first
    short = groups(DEFAULTS, _params({"autoencoder_seed_config": {"patience": 2}}))
    assert short["two_tower"].here == ("autoencoder", "autoencoder_seed_config")


def test_a_fit_on_more_threads_or_an_accelerator_is_not_a_one_core_fit() -> None:
    # the two-tower model's numbers depend on its threads: on 2 it keeps both cores
    two = groups(DEFAULTS, _params({"two_tower": {"num_threads": 2}}))
    assert _orders(two) == {
        "autoencoder_seed_config": ["autoencoder_seed_config", "autoencoder", "bpr"]
    }
    assert "two_tower" not in str(groups(DEFAULTS, _params({"two_tower": {"num_threads": 0}})))
    # the autoencoder's do not (it starts on one thread there), but a GPU fit is never
    # forked nor shares a core
    gpu = groups(DEFAULTS, _params({"autoencoder": {"accelerator": "gpu"}}))
    assert _orders(gpu) == {"two_tower": ["autoencoder_seed_config", "bpr", "two_tower"]}


def test_two_torch_models_share_the_lanes_in_two_processes() -> None:
    assert _orders(groups(["two_tower", "two_tower_bce", "ease"], _params())) == {
        "two_tower_bce": ["two_tower_bce", "two_tower"]
    }


def test_no_group_across_a_model_that_builds_on_the_fitted_ones() -> None:
    # two_stage between them reuses the fitted models: moving bpr after it would change
    # what it is given
    assert groups(["bpr", "two_stage", "two_tower"], _params()) == {}
    assert _orders(groups(["bpr", "ease", "two_tower", "two_stage"], _params())) == {
        "two_tower": ["bpr", "two_tower"]
    }
    # and a group ends where such a model stands: the ones after it form their own
    names = ["bpr", "two_tower", "two_stage", "autoencoder", "two_tower_bce"]
    assert _orders(groups(names, _params())) == {
        "two_tower": ["bpr", "two_tower"],
        "two_tower_bce": ["autoencoder", "two_tower_bce"],
    }


def test_a_bad_parameter_is_left_to_the_models_own_run() -> None:
    assert "two_tower" not in str(groups(DEFAULTS, _params({"two_tower": {"no_such": 1}})))


def _job():
    from kuairec.display.progress import Progress

    result = SimpleNamespace(models={}, skipped={})
    return SimpleNamespace(
        exp=None, result=result, fitted={}, tuning={}, untuned={}, valid_fits={},
        progress=Progress(False),
    )  # fmt: skip


def _fitted(job, name):
    with job.progress.stage(f"{name}: fit"):
        result = SimpleNamespace(notes=[], pid=os.getpid())
    job.fitted[name] = SimpleNamespace(result=result)
    job.result.models[name] = result
    job.tuning[name], job.valid_fits[name] = f"trials of {name}", f"validation fit of {name}"
    job.untuned[name] = f"why {name} was not tuned"


def test_the_second_lane_hands_its_models_back_and_each_failure_is_told(monkeypatch) -> None:
    from kuairec.pipeline import beside

    monkeypatch.setattr(beside, "_build_shared", lambda job, names: None)
    here = os.getpid()

    def run_one(name, job):
        if name == "popularity":
            time.sleep(1.0)  # the second process takes three from the back meanwhile
        if name == "als":
            job.result.skipped[name] = "failed: the model's own error"
            return
        _fitted(job, name)

    job = _job()
    group = beside.Group(here=("popularity",), there=("ease", "itemknn", "als"))
    beside.run_group(group, job, run_one)
    assert job.fitted["popularity"].result.pid == here
    for name in ("ease", "itemknn"):  # their models came back from there
        assert job.fitted[name].result.pid != here
        assert job.result.models[name] is job.fitted[name].result
        assert (job.tuning[name], job.valid_fits[name], job.untuned[name]) == (
            f"trials of {name}", f"validation fit of {name}", f"why {name} was not tuned"
        )  # fmt: skip
    assert job.result.skipped["als"] == "failed: the model's own error"
    assert sorted(n for n, *_ in job.progress.ended) == [
        "ease: fit", "itemknn: fit", "popularity: fit"
    ]  # fmt: skip
    note = job.result.models["itemknn"].notes[0]
    assert note.startswith("fitted beside popularity, als, ease ") and "second process" in note
    assert "this one here" in job.result.models["popularity"].notes[0]

    def dies(name, job):
        if name == "popularity":
            time.sleep(1.0)
        if name == "ease":
            os._exit(3)  # the second process dies without a word, holding ease
        _fitted(job, name)

    job = _job()
    beside.run_group(beside.Group(("popularity",), ("ease", "itemknn")), job, dies)
    assert "exit code 3" in job.result.skipped["ease"] and "ease" not in job.fitted
    assert job.fitted["itemknn"].result.pid == here  # left by the dead one: fitted here

    def buggy(name, job):
        if name == "ease":
            raise ZeroDivisionError("a bug there")
        _fitted(job, name)

    with pytest.raises(ZeroDivisionError, match="a bug there"):
        beside.run_group(beside.Group(("popularity",), ("itemknn", "ease")), _job(), buggy)


# ----------------------------------------------------------------- report sections


class _Section:
    def __init__(self, name: str, fits: dict | None) -> None:
        self.NAME = name
        if fits is not None:
            self.fits = lambda job: fits


def test_a_one_core_section_runs_beside_its_neighbour() -> None:
    from kuairec.pipeline.beside import section_pairs

    cold = _Section("cold_items", {"popularity_features": {}, "two_tower": {}})
    validity = _Section("validity", {"als": {}, "ease": {}, "itemknn": {}})
    mods = [_Section("segments", None), cold, validity, _Section("tuning", None)]
    assert section_pairs(mods, None) == {1}
    # torch on both sides (validity refits the two-tower model on a small log): in turn
    validity_torch = _Section("validity", {"als": {}, "two_tower": {}})
    assert section_pairs([cold, validity_torch], None) == set()
    # neither keeps one core busy: nothing to gain, the memory of both at once
    heavy = _Section("cold_items", {"two_tower": {"num_threads": 2}})
    assert section_pairs([heavy, validity], None) == set()
    # one that fits nothing (switched off) runs alone
    assert section_pairs([_Section("cold_items", {}), validity], None) == set()


def test_each_section_is_in_one_pair_at_most() -> None:
    from kuairec.pipeline.beside import section_pairs

    light = {"popularity_features": {}, "bpr": {}}
    mods = [_Section(f"s{i}", light) for i in range(5)]
    assert section_pairs(mods, None) == {0, 2}


def test_at_once_runs_both_and_raises_what_the_second_thread_raised() -> None:
    import threading

    import pytest

    from kuairec.pipeline.beside import at_once

    ran: dict[str, str] = {}

    def here() -> None:
        ran["here"] = threading.current_thread().name

    def there() -> None:
        ran["there"] = threading.current_thread().name
        raise ValueError("from the second thread")

    with pytest.raises(ValueError, match="second thread"):
        at_once(here, there, "kuairec probe")
    assert ran == {"here": threading.main_thread().name, "there": "kuairec probe"}
    at_once(here, lambda: ran.update(there="quiet"), "kuairec probe")  # nothing raised
    assert ran["there"] == "quiet"


def test_the_fit_here_takes_both_cores_once_the_second_process_is_done(monkeypatch) -> None:
    pytest.importorskip("torch")
    from kuairec.models import torch_train
    from kuairec.pipeline import beside

    monkeypatch.setattr(beside, "_build_shared", lambda job, names: None)
    capped = []

    def run_one(name, job):
        if name == "autoencoder":  # here, first: one thread while BPR fits there
            capped.append(torch_train._capped())
            time.sleep(1.0)
            capped.append(torch_train._capped())  # BPR is done: lifted
        _fitted(job, name)

    beside.run_group(beside.Group(("autoencoder",), ("bpr",)), _job(), run_one)
    assert capped == [True, False]
    assert not torch_train._capped() and torch_train._CAP is None  # let go after the group


def test_an_error_here_ends_the_second_process_even_one_that_ignores_sigterm(
    monkeypatch,
) -> None:
    import signal

    from kuairec.pipeline import beside

    monkeypatch.setattr(beside, "_build_shared", lambda job, names: None)

    def run_one(name, job):
        if name == "popularity":  # here
            time.sleep(0.5)
            raise ValueError("an error here")
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stuck, as in C code
        time.sleep(60)

    start = time.perf_counter()
    with pytest.raises(ValueError, match="an error here"):
        beside.run_group(beside.Group(("popularity",), ("ease",)), _job(), run_one)
    assert time.perf_counter() - start < 10  # not the 60 s of the one there
