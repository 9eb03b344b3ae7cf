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


def _params(overrides=None):
    return lambda name: dict((overrides or {}).get(name, {}))


def test_the_one_core_fits_wait_for_the_last_of_them_torch_fits_first() -> None:
    lanes = ["autoencoder", "autoencoder_seed_config", "two_tower", "bpr"]
    assert groups(DEFAULTS, _params()) == {"two_tower": lanes}


def test_a_fit_on_more_threads_or_an_accelerator_is_not_a_one_core_fit() -> None:
    # the two-tower model's numbers depend on its threads: on 2 it keeps both cores
    two = groups(DEFAULTS, _params({"two_tower": {"num_threads": 2}}))
    assert two == {"autoencoder_seed_config": ["autoencoder", "autoencoder_seed_config", "bpr"]}
    assert "two_tower" not in str(groups(DEFAULTS, _params({"two_tower": {"num_threads": 0}})))
    # the autoencoder's do not (it runs on one thread there), but a GPU fit is never forked
    gpu = groups(DEFAULTS, _params({"autoencoder": {"accelerator": "gpu"}}))
    assert gpu == {"two_tower": ["autoencoder_seed_config", "two_tower", "bpr"]}


def test_two_torch_models_share_the_lanes_in_two_processes() -> None:
    assert groups(["two_tower", "two_tower_bce", "ease"], _params()) == {
        "two_tower_bce": ["two_tower", "two_tower_bce"]
    }


def test_no_group_across_a_model_that_builds_on_the_fitted_ones() -> None:
    # two_stage between them reuses the fitted models: moving bpr after it would change
    # what it is given
    assert groups(["bpr", "two_stage", "two_tower"], _params()) == {}
    assert groups(["bpr", "ease", "two_tower", "two_stage"], _params()) == {
        "two_tower": ["two_tower", "bpr"]
    }
    # and a group ends where such a model stands: the ones after it form their own
    assert groups(["bpr", "two_tower", "two_stage", "autoencoder", "two_tower_bce"], _params()) == {
        "two_tower": ["two_tower", "bpr"],
        "two_tower_bce": ["autoencoder", "two_tower_bce"],
    }


def test_a_bad_parameter_is_left_to_the_models_own_run() -> None:
    assert "two_tower" not in str(groups(DEFAULTS, _params({"two_tower": {"no_such": 1}})))


def _job():
    from kuairec.display.progress import Progress

    result = SimpleNamespace(models={}, skipped={})
    return SimpleNamespace(
        result=result, fitted={}, tuning={}, untuned={}, valid_fits={}, progress=Progress(False)
    )


def _fitted(job, name, where):
    with job.progress.stage(f"{name}: fit"):
        result = SimpleNamespace(notes=[], pid=os.getpid(), where=where)
    job.fitted[name] = SimpleNamespace(result=result)
    job.result.models[name] = result
    job.tuning[name], job.valid_fits[name] = f"trials of {name}", f"validation fit of {name}"
    job.untuned[name] = f"why {name} was not tuned"


def test_the_second_lane_hands_its_model_back_and_each_failure_is_told(monkeypatch) -> None:
    from kuairec.pipeline import beside

    monkeypatch.setattr(beside, "_build_shared", lambda job, names: None)
    here = os.getpid()

    def run_one(name, job):
        if name == "popularity":
            time.sleep(0.5)  # long enough for ease's process to end first
        if name == "ease":
            os._exit(3)  # the second process dies without a word
        if name == "als":
            job.result.skipped[name] = "failed: the model's own error"
            return
        _fitted(job, name, os.getpid())

    job = _job()
    # popularity here, ease in a second process (dies), then als here, itemknn there
    beside.run_group(["popularity", "ease", "als", "itemknn"], job, run_one)
    assert job.fitted["popularity"].result.pid == here
    assert job.fitted["itemknn"].result.pid != here  # its model came back from there
    assert job.result.models["itemknn"] is job.fitted["itemknn"].result
    assert (job.tuning["itemknn"], job.valid_fits["itemknn"], job.untuned["itemknn"]) == (
        "trials of itemknn", "validation fit of itemknn", "why itemknn was not tuned"
    )  # fmt: skip
    assert "ease" not in job.fitted and "exit code 3" in job.result.skipped["ease"]
    assert job.result.skipped["als"] == "failed: the model's own error"
    assert [n for n, *_ in job.progress.ended] == ["popularity: fit", "itemknn: fit"]
    note = job.result.models["itemknn"].notes[0]
    assert note.startswith("fitted beside popularity, ease, als ") and "second process" in note

    def buggy(name, job):
        if name == "ease":
            raise ZeroDivisionError("a bug there")
        _fitted(job, name, os.getpid())

    with pytest.raises(ZeroDivisionError, match="a bug there"):
        beside.run_group(["popularity", "ease", "itemknn"], _job(), buggy)


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
