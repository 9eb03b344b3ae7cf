"""The two-stage model fitted on generated KuaiRec-shaped data (scale 0.05): the cut and
its summary, saving and loading, new users, reused retrievers, the recall ceiling, and
the leakage proofs (nothing after T reaches the ranker; the test matrix never does)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightgbm")

from kuairec.errors import ModelError  # noqa: E402
from kuairec.evaluation.protocols import default_protocol  # noqa: E402
from kuairec.evaluation.validation import temporal_cutoff  # noqa: E402
from kuairec.models import Recommender, create_model  # noqa: E402

pytestmark = pytest.mark.slow  # each test fits a model (seconds each on 2 cores)

FAST = {"n_candidates": 30, "n_trials": 2, "max_rounds": 30, "patience": 10}


@pytest.fixture(scope="module")
def split(small_dataset):
    return default_protocol(small_dataset)


@pytest.fixture(scope="module")
def model(split):
    return create_model("two_stage", FAST).fit(split[0])


def _ranker_text(m) -> str:
    return m.booster_.model_to_string()


def test_the_cut_and_its_summary(model, split) -> None:
    train, _ = split
    s = model.fit_summary_
    inter = train.interactions
    cutoff = temporal_cutoff(inter.first_timestamp, 7.0)
    assert s.split == "temporal" and s.cutoff == cutoff
    assert s.target_pairs == int((inter.first_timestamp > cutoff).sum())
    assert s.straddling_pairs == int(
        ((inter.first_timestamp <= cutoff) & (inter.last_timestamp > cutoff)).sum()
    )
    assert s.history_pairs + s.target_pairs + s.straddling_pairs == inter.nnz
    assert sum(s.users_by_role.values()) == s.target_users
    assert s.retrievers == ["ease", "popularity"] and s.reused == []
    assert len(s.trials) == 2 and s.decision in ("defaults", "tuned")
    assert set(s.held_out_ndcg) == {
        name + part for name in ("two_stage", "ease", "popularity") for part in ("", ", shown only")
    }
    assert sum(g.gain_share for g in s.importance) == pytest.approx(1.0)
    groups = {g.name: g.group for g in s.importance}
    assert groups["ease_rank"] == "retrieval" and groups["item_show_log1p"] == "item"
    assert groups["tag_share"] == "match" and groups["user_pos_rate"] == "user"
    assert model.history_["epoch"] and len(model.history_["valid_ndcg@10"]) == len(
        model.history_["epoch"]
    )


def test_candidates_score_above_every_other_video(model, split) -> None:
    _, test = split
    users = test.users[:5]
    cand = model.candidates(users)
    scores = model.score(users)
    for r in range(users.size):
        mine = cand.items[cand.rows == r]
        assert scores[r, mine].min() >= 2.0
        rest = np.setdiff1d(np.arange(model.n_items_), mine)
        assert scores[r, rest].max() < 1.0
        assert not np.isin(mine, model.context_.history[users[r]].indices).any()  # unseen


def test_candidates_follow_the_ranker_plus_the_first_retrievers_prior(model, split) -> None:
    from kuairec.models.two_stage.features import candidate_features
    from kuairec.models.two_stage.ranker import prior_of

    users = split[1].users[:8]
    cand = model.candidates(users)
    feats = candidate_features(model.context_, cand, model.context_.history[users], users)
    want = model.booster_.predict(feats.values) + prior_of(cand.ranks[:, 0])
    got = model.score(users)[cand.rows, cand.items]
    for r in range(users.size):
        mine = cand.rows == r
        order = np.lexsort((cand.items[mine], -cand.scores[mine, 0], -want[mine]))
        assert np.all(np.diff(got[mine][order]) < 0)  # strictly descending in that order


def test_save_load_round_trip_gives_identical_scores(model, split, tmp_path: Path) -> None:
    train, test = split
    path = model.save(tmp_path / "m")
    assert (path / "ranker.txt").read_text().startswith("tree")
    for name in ("ease", "popularity"):
        assert (path / "retrievers" / name / "model.json").is_file()
    summary = json.loads((path / "two_stage.json").read_text())
    assert summary["trials"] and summary["importance"][0]["name"]
    loaded = Recommender.load(path, expected_fingerprint=train.fingerprint())
    users = test.users
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    a = loaded.recommend(users, 10, exclude=test.exclude, candidates=test.candidates)
    b = model.recommend(users, 10, exclude=test.exclude, candidates=test.candidates)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_a_damaged_or_missing_ranker_file_is_refused(model, tmp_path: Path) -> None:
    path = model.save(tmp_path / "m")
    (path / "ranker.txt").write_text("not a model")
    with pytest.raises(ModelError, match="ranker.txt"):
        Recommender.load(path)
    (path / "ranker.txt").unlink()
    with pytest.raises(ModelError, match="missing ranker.txt"):
        Recommender.load(path)
    model.save(tmp_path / "n")
    shutil.rmtree(tmp_path / "n" / "retrievers" / "ease")
    with pytest.raises(ModelError, match="ease"):
        Recommender.load(tmp_path / "n")


def test_new_user_scoring_equals_known_user_scoring_for_the_same_history(split) -> None:
    # EASE and popularity score a history exactly as the user it came from; without a
    # profile (user_x) and friends (social) nothing else tells a known user apart
    train = dataclasses.replace(split[0], user_x=None, social=None)
    m = create_model("two_stage", FAST).fit(train)
    from kuairec.models.two_stage.features import candidate_features

    users = np.array([0, 3, 17, 40])
    history = m.context_.history[users]
    known, new = m.candidates(users), m.candidates(history=history)
    for field in ("rows", "items", "scores", "ranks"):
        np.testing.assert_array_equal(getattr(known, field), getattr(new, field))
    a = candidate_features(m.context_, known, history, users)
    b = candidate_features(m.context_, new, history, None)
    assert a.names == b.names
    np.testing.assert_array_equal(a.values, b.values)  # every column, used or not
    np.testing.assert_array_equal(m.score(history=history), m.score(users))
    a = m.recommend(history=history, k=20)
    b = m.recommend(users, 20, exclude=history.astype(bool))
    np.testing.assert_array_equal(a[0], b[0])


def test_a_new_user_with_the_profile_model_is_scored_without_error(model) -> None:
    import scipy.sparse as sp

    history = sp.csr_matrix(([2.5, 0.4], ([0, 0], [3, 7])), shape=(1, model.n_items_))
    items, scores = model.recommend(history=history, k=5)
    assert (items >= 0).all() and 3 not in items and 7 not in items


def test_fitted_retrievers_with_matching_parameters_are_reused(split) -> None:
    from kuairec.models.two_stage.training import fit_retrievers, retriever_configs

    train = split[0]
    ease = create_model("ease").fit(train)
    from kuairec.models.base import FitResources

    m = create_model("two_stage", FAST).fit(train, resources=FitResources(fitted={"ease": ease}))
    assert m.retrievers_["ease"] is ease and m.fit_summary_.reused == ["ease"]
    pop = create_model("popularity").fit(train)
    other = retriever_configs(["ease", "popularity"], {"ease": {"l2": 50.0}})
    got, reused = fit_retrievers(other, train, {"ease": ease, "popularity": pop})
    assert reused == ["popularity"] and got["ease"] is not ease  # other parameters: refit
    half = dataclasses.replace(train, interactions=train.interactions.select(
        np.arange(train.interactions.nnz) % 2 == 0))  # fmt: skip
    got, reused = fit_retrievers(other, train, {"popularity": create_model("popularity").fit(half)})
    assert reused == []  # fitted on another log: refit


def test_recall_ceiling_by_hand(model, split) -> None:
    from kuairec.evaluation.labels import label_values
    from kuairec.models.two_stage.summary import recall_ceiling

    train, test = split
    rc = recall_ceiling(model, test, "wr>2", train)
    positive = label_values("wr>2", test) > 0
    cand = model.candidates(test.users)
    for r in (0, 5, 11):
        lo, hi = test.relevance.indptr[r], test.relevance.indptr[r + 1]
        pos = set(test.relevance.indices[lo:hi][positive[lo:hi]].tolist())
        got = set(cand.items[cand.rows == r].tolist())
        want = len(pos & got) / len(pos) if pos else np.nan
        assert rc.per_user[r] == pytest.approx(want, nan_ok=True)
    assert rc.mean == pytest.approx(np.nanmean(rc.per_user))
    assert set(rc.by_retriever) == {"ease", "popularity"}
    assert max(rc.by_retriever.values()) <= rc.mean + 1e-12  # the union holds each list
    assert rc.catalogue == model.n_items_


def test_daily_statistics_after_t_never_reach_the_ranker(model, split) -> None:
    train = split[0]
    daily = train.daily
    last = daily.last_day_ended_by(model.fit_summary_.cutoff)
    after = daily.values.copy()
    after[daily.day > last] *= 7.0
    m = create_model("two_stage", FAST).fit(
        dataclasses.replace(train, daily=dataclasses.replace(daily, values=after))
    )
    assert _ranker_text(m) == _ranker_text(model)  # byte-identical ranker
    before = daily.values.copy()
    before[daily.day <= last] *= 7.0  # while the days before T do matter
    m2 = create_model("two_stage", FAST).fit(
        dataclasses.replace(train, daily=dataclasses.replace(daily, values=before))
    )
    assert _ranker_text(m2) != _ranker_text(model)


def test_fitting_twice_gives_the_same_ranker(model, split) -> None:
    again = create_model("two_stage", FAST).fit(split[0])
    assert _ranker_text(again) == _ranker_text(model)


@pytest.mark.slow
def test_perturbed_test_labels_leave_the_fitted_ranker_byte_identical(
    small_synthetic_dir: Path, small_dataset, model, tmp_path: Path
) -> None:
    """The test matrix (small_matrix.csv) never reaches fit: every test watch ratio
    changed, the fitted ranker's text and the retrievers' arrays stay the same."""
    import polars as pl

    from kuairec.data.load import load_dataset

    folder = tmp_path / "data"
    shutil.copytree(small_synthetic_dir, folder)
    small = pl.read_csv(folder / "small_matrix.csv", infer_schema=False)
    wr = small["watch_ratio"].cast(pl.Float64)
    small = small.with_columns((wr * 3.0 + 0.7).round(6).cast(pl.String).alias("watch_ratio"))
    small.write_csv(folder / "small_matrix.csv")
    ds = load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)
    assert not np.array_equal(ds.small.watch_ratio_mean, small_dataset.small.watch_ratio_mean)
    train, _ = default_protocol(ds)
    m = create_model("two_stage", FAST).fit(train)
    assert _ranker_text(m) == _ranker_text(model)
    for name, r in model.retrievers_.items():
        mine, theirs = r._get_state(), m.retrievers_[name]._get_state()
        assert all(np.array_equal(mine[k], theirs[k]) for k in mine)
    np.testing.assert_array_equal(m.context_.items.values, model.context_.items.values)


@pytest.mark.slow
def test_the_runs_ranking_section(small_synthetic_dir, tmp_path) -> None:
    from kuairec.pipeline import metrics_file
    from kuairec.pipeline.config import load_run_config
    from kuairec.pipeline.run import execute

    cfg = load_run_config(None, {
        "data": str(small_synthetic_dir), "runs_dir": str(tmp_path), "tune": False,
        "eda": False, "validity": False, "cold_items": False, "n_bootstrap": 50,
        "models": ["popularity", "ease", "two_stage"], "save_models": False,
    })  # fmt: skip
    folder = execute(cfg)
    result = metrics_file.read(folder / "metrics.json")
    r = result.sections["ranking"].models["two_stage"]
    assert r.retrievers == ["ease", "popularity"] and set(r.reused) == {"ease", "popularity"}
    assert 0 < r.recall_ceiling <= 1 and r.mean_candidates >= r.n_candidates
    assert max(r.recall_by_retriever.values()) <= r.recall_ceiling + 1e-12  # a union
    assert set(r.lifts) == {"ease", "popularity"}
    m = result.models
    for other, c in r.lifts.items():
        assert c.diff == pytest.approx(m["two_stage"].value() - m[other].value(), abs=1e-9)
    assert r.features and abs(sum(f.gain_share for f in r.features)) <= 1 + 1e-9
    assert "## Two-stage ranking" in (folder / "report.md").read_text()
