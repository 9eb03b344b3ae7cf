"""The main job's wiring on small generated data: who gets the truth, the validation
split, the tuning record, skipped models and runs where nothing succeeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kuairec.errors import ModelError
from kuairec.models import Recommender, registry
from kuairec.pipeline import metrics_file
from kuairec.pipeline.config import load_run_config
from kuairec.pipeline.run import execute


def _result(folder: Path):
    return metrics_file.read(folder / "metrics.json")


def _cfg(data: Path, runs: Path, **settings):
    base = {
        "data": str(data),
        "runs_dir": str(runs),
        "tune": False,
        "eda": False,
        "n_bootstrap": 20,
        "save_models": False,
        "validity": False,
        "cold_items": False,
    }
    return load_run_config(None, {**base, **settings})


def test_only_the_oracle_is_given_the_truth(small_synthetic_dir, tmp_path, monkeypatch) -> None:
    given: dict[str, object] = {}
    fitted: list[tuple[str, object]] = []
    fit = Recommender.fit

    def spy_fit(self, train, valid=None, progress=False, resources=None):
        given[self.registered_as] = resources.truth if resources is not None else None
        fitted.append((self.registered_as, train))
        return fit(self, train, valid, progress, resources)

    monkeypatch.setattr(Recommender, "fit", spy_fit)
    cfg = _cfg(small_synthetic_dir, tmp_path, models=["popularity", "ease", "oracle"])
    folder = execute(cfg)
    truth = given["oracle"]
    assert truth is not None and given["popularity"] is None and given["ease"] is None
    for name, train in fitted:  # no field of any TrainSet is, or holds, the truth arrays
        for value in vars(train).values():
            assert value is not truth
            for array in getattr(value, "__dict__", {}).values():
                if isinstance(array, np.ndarray):
                    assert not any(array is getattr(truth, f) for f in vars(truth)), name
    assert _result(folder).models["oracle"].value("ndcg@10") > 0.5


def test_tuning_records_the_halves_and_the_decision(small_synthetic_dir, tmp_path) -> None:
    cfg = _cfg(small_synthetic_dir, tmp_path, models=["itemknn"], tune=True, tune_trials=3)
    cfg.validation = "random"
    result = _result(execute(cfg))
    v = result.validation
    assert v.split == "random" and "test user" in v.reason
    assert v.n_select + v.n_confirm == v.n_users > 0 and v.n_select > 0 and v.n_confirm > 0
    info = result.sections["tuning"].models["itemknn"]
    assert info.n_trials == 3 and len(info.trials) == 3 and info.time_limited is None
    assert info.trials[0].value == pytest.approx(info.default_value)  # trial 0: defaults
    assert info.best_value == pytest.approx(max(t.value for t in info.trials))
    assert info.decision in ("tuned", "defaults") and info.why
    assert result.protocol.validation_split == "random"
    used = result.models["itemknn"].config
    for key, value in info.best_params.items():
        assert used[key] == value
    if info.decision == "tuned":  # only when the confirmation half agrees
        assert info.confirmation.ci[0] > 0
    elif info.confirmation is not None:
        assert info.confirmation.ci[0] <= 0


def test_bootstrap_zero_skips_the_paired_comparison(small_synthetic_dir, tmp_path) -> None:
    cfg = _cfg(small_synthetic_dir, tmp_path, models=["popularity", "ease"], n_bootstrap=0)
    result = _result(execute(cfg))
    assert result.paired is None
    assert any("n_bootstrap is 0" in n for n in result.notes)


def test_a_run_where_no_model_succeeds_fails(small_synthetic_dir, tmp_path) -> None:
    cfg = _cfg(
        small_synthetic_dir, tmp_path, models=["ease"], model_params={"ease": {"max_items": 1}}
    )
    with pytest.raises(ModelError, match="no model could be trained.*ease: failed"):
        execute(cfg)
    assert not any(tmp_path.iterdir())  # no run folder, not even an empty one


def test_a_model_missing_its_package_is_skipped(small_synthetic_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(
        registry,
        "missing_requirement",
        lambda name: "needs the optional package 'x'" if name == "ease" else None,
    )
    cfg = _cfg(small_synthetic_dir, tmp_path, models=["popularity", "ease"])
    metrics = json.loads((execute(cfg) / "metrics.json").read_text())
    assert set(metrics["models"]) == {"popularity"}
    assert "optional package" in metrics["skipped"]["ease"]


def test_models_get_a_scratch_folder_removed_with_the_run(
    small_synthetic_dir, tmp_path, monkeypatch
):
    seen: dict[str, Path] = {}
    fit = Recommender.fit

    def spy_fit(self, train, valid=None, progress=False, resources=None):
        seen[self.name] = self.scratch_dir
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        (self.scratch_dir / "checkpoint.ckpt").write_bytes(b"pickle-like")
        return fit(self, train, valid, progress, resources)

    monkeypatch.setattr(Recommender, "fit", spy_fit)
    folder = execute(_cfg(small_synthetic_dir, tmp_path, models=["popularity", "ease"]))
    assert set(seen) == {"popularity", "ease"}
    assert seen["ease"].parent.parent == tmp_path and seen["ease"].name == "ease"
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # scratch removed
    assert not list(folder.rglob("*.ckpt"))


def test_a_huge_k_is_capped_at_the_candidates(small_synthetic_dir, tmp_path) -> None:
    from kuairec.display.resources import measure

    cfg = _cfg(small_synthetic_dir, tmp_path, models=["popularity"], ks=[10, 3_000_000])
    with measure() as cost:
        folder = execute(cfg)
    metrics = json.loads((folder / "metrics.json").read_text())
    n_cand = metrics["protocol"]["n_candidates"]
    m = metrics["models"]["popularity"]["metrics"]
    assert m["ndcg@3000000"] == m[f"ndcg@{n_cand}"]
    assert m["recall@3000000"] == m[f"recall@{n_cand}"] > m["recall@10"]
    assert any("is larger than the" in n for n in metrics["notes"])
    assert cost.peak_rss_mb < 4000  # 3M-column lists for every test user would be GBs


def test_validity_section_in_metrics_and_report(small_synthetic_dir, tmp_path) -> None:
    cfg = _cfg(
        small_synthetic_dir, tmp_path, models=["random", "popularity", "ease", "itemknn"],
        validity=True,
    )  # fmt: skip
    folder = execute(cfg)
    result = _result(folder)
    v = result.sections["validity"]
    assert v.models == ["popularity", "ease", "itemknn"]
    assert "random" in v.left_out
    protos = v.protocols
    for split in ("temporal", "random"):
        for kind in ("logged", "uni100", "pop100", "ips", "snips", "ips_gamma0.25", "snips_gamma1"):
            d = protos[f"{split}/{kind}"]
            assert -1 <= d.tau <= 1 and set(d.models) == set(v.models)
            for m in d.models.values():
                assert m.abs_error == pytest.approx(m.value - m.reference)
    logged = protos["temporal/logged"].models
    assert logged["ease"].reference == pytest.approx(result.models["ease"].value("ndcg@10"))
    assert set(v.expected_label) == set(v.models)
    report = (folder / "report.md").read_text()
    assert "Offline-evaluation validity" in report
    assert (folder / "plots" / "validity.png").is_file()


def test_validity_ranks_only_users_with_a_positive_and_gets_the_same_numbers(
    small_synthetic_dir, tmp_path, monkeypatch
) -> None:
    """The validity section ranks only the validation users with a positive; ranking
    every user (what it did before) gives the same section, number for number."""
    import dataclasses
    import importlib

    validity = importlib.import_module("kuairec.pipeline.sections.validity.compute")

    cfg = _cfg(small_synthetic_dir, tmp_path / "a", models=["popularity", "ease"],
               validity=True)  # fmt: skip
    rank = validity._ranked
    counts: list[tuple[int, int]] = []

    def spy(positives):
        mask = rank(positives)
        counts.append((int(mask.sum()), mask.size))
        return mask

    monkeypatch.setattr(validity, "_ranked", spy)
    fewer = _result(execute(cfg)).sections["validity"]
    assert counts and all(0 < k < n for k, n in counts)  # users without one are here
    monkeypatch.setattr(validity, "_ranked", lambda p: np.ones(p.shape[0], dtype=bool))
    cfg = dataclasses.replace(cfg, runs_dir=str(tmp_path / "b"))
    everyone = _result(execute(cfg)).sections["validity"]
    assert fewer == everyone


def test_a_killed_runs_leftovers_are_swept_and_reported(small_synthetic_dir, tmp_path) -> None:
    import subprocess
    import sys

    from kuairec import atomic

    code = (
        "import sys, time; from kuairec import atomic; "
        f"tmp = atomic.temp_dir({str(tmp_path / 'run-x')!r}); "
        "(tmp / 'metrics.json').write_text('{}'); print(tmp, flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    leftover = Path(child.stdout.readline().strip())
    assert leftover.is_dir() and atomic.sweep_orphans(tmp_path) == []  # its writer is alive
    child.kill()  # SIGKILL: no clean-up
    child.wait()
    folder = execute(_cfg(small_synthetic_dir, tmp_path, models=["popularity"]))
    assert not leftover.exists()
    notes = _result(folder).notes
    assert any("swept 1 leftover" in n and leftover.name in n for n in notes)


def test_cold_video_section_in_metrics_and_report(small_synthetic_dir, tmp_path) -> None:
    models = ["popularity", "popularity_features", "ease"]
    folder = execute(_cfg(small_synthetic_dir, tmp_path, models=models, cold_items=True))
    doc = _result(folder).sections["cold_items"]
    assert set(doc.models) == {"popularity_features"}  # the one scoring from content
    assert set(doc.cannot_score) == {"popularity", "ease"}
    entry = doc.models["popularity_features"]
    assert 0 <= entry.value("ndcg@10") <= 1 and entry.ci["ndcg@10"]
    assert doc.protocol.n_candidates == doc.protocol.n_cold_videos > 0
    report = (folder / "report.md").read_text()
    assert "## Cold videos" in report and "popularity_features" in report.split("## Cold")[1]


def test_cold_items_protocol_runs_the_content_models(small_synthetic_dir, tmp_path) -> None:
    cfg = _cfg(small_synthetic_dir, tmp_path, models=["popularity_features", "ease"])
    cfg.protocol = "cold-items"
    metrics = json.loads((execute(cfg) / "metrics.json").read_text())
    assert metrics["protocol"]["name"] == "cold-items"
    assert set(metrics["models"]) == {"popularity_features"}
    assert "cannot score cold videos" in metrics["skipped"]["ease"]


def test_a_follower_takes_over_the_followed_models_parameters(
    small_synthetic_dir, tmp_path, monkeypatch
) -> None:
    from kuairec.models.itemknn import ItemKNNRecommender

    seen = {}

    def params_from(cls, params):
        seen.update(params)
        return {"shrinkage": 7.0}

    monkeypatch.setattr(ItemKNNRecommender, "follows", "ease")
    monkeypatch.setattr(ItemKNNRecommender, "params_from", classmethod(params_from))
    cfg = _cfg(small_synthetic_dir, tmp_path, models=["ease", "itemknn"])
    metrics = json.loads((execute(cfg) / "metrics.json").read_text())
    assert seen == metrics["models"]["ease"]["config"]  # ease's config as used
    assert metrics["models"]["itemknn"]["config"]["shrinkage"] == 7.0


def test_a_model_folds_in_after_its_validation_scores(small_synthetic_dir, tmp_path, monkeypatch):
    """A model fitted on the validation fit part is scored there as fitted (the baseline
    choice and the validity section read that), and only then folded in on the whole
    log for the test: folding in first would put the held-out pairs into its input."""
    from kuairec.models.autoencoder import AutoencoderRecommender
    from kuairec.pipeline import fitting, tuning

    events: list[tuple[str, int]] = []
    score, fold = tuning.score_validation, AutoencoderRecommender.fold_in

    def spy_score(model, validation):
        if isinstance(model, AutoencoderRecommender):
            events.append(("score", int(model.x_.nnz)))
        return score(model, validation)

    def spy_fold(self, train):
        events.append(("fold_in", int(train.interactions.nnz)))
        return fold(self, train)

    monkeypatch.setattr(tuning, "score_validation", spy_score)
    monkeypatch.setattr(AutoencoderRecommender, "fold_in", spy_fold)
    cfg = _cfg(small_synthetic_dir, tmp_path, models=["popularity", "autoencoder"],
               model_params={"autoencoder": {"max_epochs": 2}})  # fmt: skip
    job_models = []
    real = fitting.fit_and_evaluate

    def keep(*args, **kwargs):
        f = real(*args, **kwargs)
        job_models.append(f)
        return f

    monkeypatch.setattr(fitting, "fit_and_evaluate", keep)
    result = _result(execute(cfg))
    (ae,) = [f for f in job_models if f.name == "autoencoder"]
    assert [e[0] for e in events] == ["score", "fold_in"]
    fit_part_nnz, whole_nnz = events[0][1], events[1][1]
    assert fit_part_nnz < whole_nnz  # scored on the fit part's rows, folded in the whole log
    assert ae.early.model.x_.nnz == fit_part_nnz and ae.model.x_.nnz == whole_nnz
    assert result.models["autoencoder"].validation.source == "its own fit on the fit part"


@pytest.mark.parametrize(("limit", "trials"), [(10, None), (10**9, None), (10, 1)])
def test_moderate_models_are_tuned_in_the_run_only_on_a_log_their_cost_allows(
    small_synthetic_dir, tmp_path, monkeypatch, limit, trials
) -> None:
    """Tuning trials are refits on the fit part: above the declared size the moderate
    model (bpr) keeps its defaults and the tuning section says why; the cheap one (ease)
    is tuned either way; an explicit trial count tunes both."""
    from kuairec.models.registry import get_model_class
    from kuairec.pipeline import refits

    monkeypatch.setattr(refits, "MODERATE_REFIT_PAIRS", limit)
    for name in ("ease", "bpr"):  # one trial each (the defaults) keeps the test short
        monkeypatch.setattr(get_model_class(name), "tune_trials", 1)
    cfg = _cfg(small_synthetic_dir, tmp_path, models=["popularity", "ease", "bpr"],
               tune=True, tune_trials=trials)  # fmt: skip
    folder = execute(cfg)
    result, report = _result(folder), (folder / "report.md").read_text()
    t = result.sections["tuning"]
    assert "ease" in t.models and "ease" not in t.not_tuned
    assert ("- bpr: it declares cost 'moderate'" in report) == ("bpr" in t.not_tuned)
    if limit == 10 and trials is None:
        assert "bpr" not in t.models and result.models["bpr"].cost.tune_seconds is None
        assert "cost 'moderate'" in t.not_tuned["bpr"] and "more than 10:" in t.not_tuned["bpr"]
        assert "kuairec tune --model bpr" in t.not_tuned["bpr"]
        assert result.models["bpr"].validation is None  # no tuner's fit, no refit
    else:
        assert "bpr" in t.models and t.not_tuned == {}
        assert result.models["bpr"].validation.source == "the tuner's default trial"


@pytest.mark.parametrize("limit", [10, 10**9])
def test_moderate_models_are_refitted_only_on_a_log_their_cost_allows(
    small_synthetic_dir, tmp_path, monkeypatch, limit
) -> None:
    """A declared size, not a measured time: on a log above the limit the moderate model
    (bpr) keeps its main fit but gets no validation refit and no validity refits; the
    cheap one (ease) gets both; below the limit both take part."""
    from kuairec.pipeline import refits

    monkeypatch.setattr(refits, "MODERATE_REFIT_PAIRS", limit)
    cfg = _cfg(small_synthetic_dir, tmp_path, models=["popularity", "ease", "bpr"], validity=True)
    result = _result(execute(cfg))
    v = result.sections["validity"]
    assert result.models["bpr"].value("ndcg@10") > 0  # the main fit runs either way
    assert result.models["ease"].validation is not None
    if limit == 10:
        assert v.models == ["popularity", "ease"]
        assert "cost 'moderate'" in v.left_out["bpr"] and "more than 10:" in v.left_out["bpr"]
        assert result.models["bpr"].validation is None
    else:
        assert v.models == ["popularity", "ease", "bpr"]
        assert result.models["bpr"].validation is not None


def test_validation_scoring_ranks_only_the_users_with_a_positive(
    small_synthetic_dir, tmp_path, monkeypatch
) -> None:
    """The tuner's and the early stopper's NDCG@10 rank only the validation users with a
    positive; every user's value is the one a full evaluation gives (NaN without one)."""
    from kuairec.display.progress import Progress
    from kuairec.evaluation.evaluate import evaluate
    from kuairec.models.registry import create_model
    from kuairec.models.torch_train import ValidationNDCG
    from kuairec.pipeline.experiment import prepare
    from kuairec.pipeline.tuning import score_validation

    cfg = _cfg(small_synthetic_dir, tmp_path)
    validation = prepare(cfg, Progress(False)).validation(cfg)
    fit, valid = validation.parts()
    model = create_model("ease").fit(fit)
    ranked: list[np.ndarray] = []
    recommend = model.recommend

    def spy(users, *args, **kwargs):
        ranked.append(np.asarray(users))
        return recommend(users, *args, **kwargs)

    monkeypatch.setattr(model, "recommend", spy)
    got = score_validation(model, validation)
    items, _ = recommend(valid.users, 10, exclude=valid.exclude, candidates=valid.candidates)
    full = evaluate(items, valid, fit, ks=(10,), labels=(valid.label,),
                    default_label=valid.label, n_bootstrap=0).per_user["ndcg@10"]  # fmt: skip
    has_positive = np.isfinite(full)
    assert 0 < has_positive.sum() < valid.users.size  # both kinds of user are here
    np.testing.assert_array_equal(got, full)  # NaN where full is NaN
    np.testing.assert_array_equal(np.concatenate(ranked), valid.users[has_positive])

    scored_users: list[np.ndarray] = []

    def score(module, users):
        scored_users.append(np.asarray(users))
        return model.score(users)

    value = ValidationNDCG(valid, fit, score)(None)
    assert value == pytest.approx(float(np.nanmean(full)), abs=1e-12)
    np.testing.assert_array_equal(np.concatenate(scored_users), valid.users[has_positive])


def test_tuning_trials_rank_the_selection_half_and_the_kept_ones_both_halves(
    small_synthetic_dir, tmp_path, monkeypatch
) -> None:
    """A trial is chosen on the selection half, so only those users are ranked; the two
    kept trials (defaults, best) are then scored on the confirmation half too, and
    their values are what a full scoring of their models gives."""
    from kuairec.display.progress import Progress
    from kuairec.pipeline import tuning
    from kuairec.pipeline.experiment import prepare

    cfg = _cfg(small_synthetic_dir, tmp_path)
    validation = prepare(cfg, Progress(False)).validation(cfg)
    parts: list[str] = []
    score = tuning.score_validation

    def spy(model, v, part="all"):
        parts.append(part)
        return score(model, v, part)

    monkeypatch.setattr(tuning, "score_validation", spy)
    record, fit = tuning.study("ease", validation, n_trials=4, n_bootstrap=50)
    assert parts[:4] == ["select"] * 4 and set(parts[4:]) == {"confirm"}
    assert len(parts) - 4 == (1 if record.best_value == record.default_value else 2)
    monkeypatch.setattr(tuning, "score_validation", score)
    np.testing.assert_array_equal(fit.per_user, score(fit.model, validation))
    select = validation.select
    assert np.isfinite(fit.per_user[select]).any() and np.isfinite(fit.per_user[~select]).any()


def _without_costs(value):
    """A JSON value with every "cost" entry (times, memory) left out."""
    if isinstance(value, dict):
        return {k: _without_costs(v) for k, v in value.items() if k != "cost"}
    if isinstance(value, list):
        return [_without_costs(v) for v in value]
    return value


def test_sections_side_by_side_give_the_values_of_one_after_the_other(
    small_synthetic_dir, tmp_path, monkeypatch
) -> None:
    """The cold-video section (a non-personalised baseline: one core) and the validity
    section (ALS and EASE refits) run at once, the validity section in a second thread;
    both values equal those of the run that computes them in turn, the sections keep
    their order, and the run says they shared the cores."""
    import threading

    from kuairec.jsontypes import to_json
    from kuairec.pipeline import beside

    threads: dict[str, set[str]] = {}
    fit = Recommender.fit

    def spy(self, *args, **kwargs):
        threads.setdefault(self.name, set()).add(threading.current_thread().name)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Recommender, "fit", spy)
    models = ["popularity", "popularity_features", "als", "ease"]
    settings = {"models": models, "validity": True, "cold_items": True}
    paired = _result(execute(_cfg(small_synthetic_dir, tmp_path / "a", **settings)))
    main = threading.main_thread().name
    assert threads["als"] - {main} and threads["ease"] - {main}  # the validity refits
    monkeypatch.setattr(beside, "section_pairs", lambda mods, job: set())
    alone = _result(execute(_cfg(small_synthetic_dir, tmp_path / "b", **settings)))
    assert list(paired.sections) == list(alone.sections)
    assert list(paired.sections).index("cold_items") < list(paired.sections).index("validity")
    for name in ("cold_items", "validity"):
        a, b = to_json(paired.sections[name]), to_json(alone.sections[name])
        assert _without_costs(a) == _without_costs(b), name
    said = [n for n in paired.notes if "computed side by side" in n]
    assert len(said) == 1 and "cold videos" in said[0]
    assert not any("computed side by side" in n for n in alone.notes)


def test_one_core_fits_on_two_lanes_give_the_numbers_of_one_after_the_other(
    small_synthetic_dir, tmp_path, monkeypatch
) -> None:
    """The autoencoder fits here while the two-tower model (and the process that builds
    its batches) fits in a forked second process; every figure equals the run that fits
    them one after the other, the rows keep the run's order and say that they shared the
    cores."""
    import os

    from kuairec.pipeline import beside

    fit = Recommender.fit
    pids = tmp_path / "pids"
    pids.mkdir()

    def spy(self, *args, **kwargs):  # a file: the second process's memory is its own
        path = pids / self.name
        if not path.exists():  # its first fit: later ones (validation scores) are here
            path.write_text(str(os.getpid()))
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Recommender, "fit", spy)
    # the two-tower model alone from the second process's end (BPR at its own turn),
    # its batches built by a process of its own even on this small log
    from kuairec.models import two_tower_batches

    monkeypatch.setattr(two_tower_batches, "WORKER_PAIRS", 0)
    group = beside.Group(here=("autoencoder",), there=("two_tower",))
    monkeypatch.setattr(beside, "groups", lambda names, params: {"two_tower": group})
    models = ["popularity", "bpr", "ease", "autoencoder", "two_tower"]
    settings = {
        "models": models,
        "model_params": {"two_tower": {"max_epochs": 2}, "autoencoder": {"max_epochs": 2}},
    }
    paired = _result(execute(_cfg(small_synthetic_dir, tmp_path / "a", **settings)))
    where = {n: int((pids / n).read_text()) for n in models}
    assert where["two_tower"] != os.getpid()
    assert where["autoencoder"] == where["bpr"] == where["ease"] == os.getpid()
    monkeypatch.setattr(beside, "groups", lambda names, params: {})
    alone = _result(execute(_cfg(small_synthetic_dir, tmp_path / "b", **settings)))
    assert list(paired.models) == list(alone.models) == models
    for name in models:
        a, b = paired.models[name], alone.models[name]
        assert a.metrics == b.metrics and a.ci == b.ci, name
        assert a.history == b.history, name  # the learning curves, epoch by epoch
        for metric, values in a.per_user.items():
            np.testing.assert_array_equal(values, b.per_user[metric])
        shared = [n for n in a.notes if n.startswith("fitted beside")]
        assert bool(shared) == (name in ("autoencoder", "two_tower")), name
        if shared:
            assert ("second process" in shared[0]) == (where[name] != os.getpid()), name
        assert not any(n.startswith("fitted beside") for n in b.notes)


def test_the_tuning_studies_of_a_run_share_their_gram_matrices(
    small_synthetic_dir, tmp_path, monkeypatch
) -> None:
    """EASE's and item-kNN's studies fit every trial on the validation split's one fit
    part: a Gram matrix one study computed is read back by the next (from the run's
    scratch folder, removed with it) instead of computed again, so no matrix is computed
    twice; every figure equals the run without the store, which computes some again."""
    from kuairec.jsontypes import to_json
    from kuairec.models import ease as ease_module
    from kuairec.models import itemknn as knn_module
    from kuairec.models import matrices
    from kuairec.pipeline.job import Job

    asked: list[tuple[int, str, float]] = []
    computed: list[tuple[int, str, float]] = []
    weighted, gram = matrices.weighted_gram, matrices.item_gram

    def spy(inter, x, weighting, clip, threshold, writable=True):
        asked.append((id(inter), weighting, threshold))
        return weighted(inter, x, weighting, clip, threshold, writable)

    def counted(x, *args, **kwargs):
        computed.append(asked[-1])
        return gram(x, *args, **kwargs)

    for module in (ease_module, knn_module):
        monkeypatch.setattr(module, "weighted_gram", spy)
    monkeypatch.setattr(matrices, "item_gram", counted)
    settings = {"models": ["popularity", "ease", "itemknn"], "tune": True, "tune_trials": 6}
    shared = _result(execute(_cfg(small_synthetic_dir, tmp_path / "a", **settings)))
    fit_part = asked[0][0]  # the first trial's: the validation split's fit part
    in_studies = [c for c in computed if c[0] == fit_part]
    assert len(in_studies) == len(set(in_studies)) < len([a for a in asked if a[0] == fit_part])
    assert not any("scratch" in p.name for p in (tmp_path / "a").iterdir())
    tuned = shared.sections["tuning"].models
    ease_keys = {(t.params["weighting"], t.params["threshold"]) for t in tuned["ease"].trials}
    knn_keys = {(t.params["weighting"], t.params["threshold"]) for t in tuned["itemknn"].trials}
    assert ease_keys & knn_keys  # the seed's trials meet (what this test needs)
    asked.clear()
    computed.clear()
    monkeypatch.setattr(Job, "gram_store", lambda self: None)
    alone = _result(execute(_cfg(small_synthetic_dir, tmp_path / "b", **settings)))
    in_studies = [c for c in computed if c[0] == asked[0][0]]
    assert len(in_studies) > len(set(in_studies))
    for name in settings["models"]:
        assert shared.models[name].metrics == alone.models[name].metrics, name
    a, b = to_json(shared.sections["tuning"]), to_json(alone.sections["tuning"])
    assert _without_costs(a) == _without_costs(b)
