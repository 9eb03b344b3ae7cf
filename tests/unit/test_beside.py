"""Which one-core fits run side by side (kuairec.pipeline.beside): decided by what the
models declare, and never so that a model sees a different run than in order."""

from __future__ import annotations

from kuairec.pipeline.beside import pairs

DEFAULTS = [
    "random",
    "popularity",
    "als",
    "spark_als",
    "bpr",
    "ease",
    "itemknn",
    "autoencoder",
    "two_tower",
    "two_stage",
    "oracle",
]


def _params(overrides=None):
    return lambda name: dict((overrides or {}).get(name, {}))


def test_bpr_waits_for_the_two_tower_model_and_runs_beside_it() -> None:
    assert pairs(DEFAULTS, _params()) == {"two_tower": "bpr"}


def test_a_two_tower_model_on_more_threads_is_not_a_one_core_fit() -> None:
    assert pairs(DEFAULTS, _params({"two_tower": {"num_threads": 2}})) == {}
    assert pairs(DEFAULTS, _params({"two_tower": {"num_threads": 0}})) == {}


def test_two_torch_models_never_run_at_once() -> None:
    # two one-core two-tower models: torch's state is process-wide, so no pair
    assert pairs(["two_tower", "two_tower_bce", "ease"], _params()) == {}
    # BPR pairs with the first of them; the second waits for its turn
    assert pairs(["bpr", "two_tower", "two_tower_bce"], _params()) == {"two_tower": "bpr"}


def test_no_pair_across_a_model_that_builds_on_the_fitted_ones() -> None:
    # two_stage between them reuses the fitted models: moving bpr after it would change
    # what it is given
    assert pairs(["bpr", "two_stage", "two_tower"], _params()) == {}
    assert pairs(["bpr", "ease", "two_tower", "two_stage"], _params()) == {"two_tower": "bpr"}


def test_a_bad_parameter_is_left_to_the_models_own_run() -> None:
    assert pairs(DEFAULTS, _params({"two_tower": {"no_such": 1}})) == {}


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
