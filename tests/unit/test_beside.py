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
