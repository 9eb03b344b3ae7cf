"""evaluate(): a hand-computed case, validation of the lists, a per-user reference loop,
labels, segments, bootstrap intervals, flips and paired comparisons."""

from __future__ import annotations

import dataclasses
import functools
import json
import math

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec.data.dataset import IdMap, Interactions, TrainSet
from kuairec.errors import ConfigError, DataError, ModelError
from kuairec.evaluation.evaluate import compare, evaluate, flips, prepare
from kuairec.evaluation.protocols import TestSet, temporal_protocol

L3 = math.log2(3)
N_ITEMS = 6


def _csr(rows: list[dict[int, float]], dtype=float) -> sp.csr_matrix:
    data, ind, ptr = [], [], [0]
    for r in rows:
        ind += sorted(r)
        data += [r[i] for i in sorted(r)]
        ptr.append(len(ind))
    return sp.csr_matrix((np.array(data, dtype), np.array(ind, int), ptr), (len(rows), N_ITEMS))


def _case(video_duration=True):
    """3 test users, candidates 0..4 (item 5 is not a candidate).

    watch ratios: user 0 {0: 3.0, 1: 0.5, 2: 2.5}; user 1 {1: 1.0, 3: 0.2}; user 2 {3: 6.0}
    training pairs: user 0 {4}; user 1 {2, 4}; user 2 {1, 2} (items 0, 3, 5 are cold)
    """
    train_pairs = [(0, 4), (1, 2), (1, 4), (2, 1), (2, 2)]
    u, i = np.array(train_pairs).T
    inter = Interactions.from_log(u, i, np.array([1.0, 2.0, 0.5, 3.0, 1.0]), None, (3, N_ITEMS))
    train = TrainSet(
        inter,
        IdMap(np.arange(3)),
        IdMap(np.arange(N_ITEMS)),
        video_duration=np.full(N_ITEMS, 5000.0) if video_duration else None,
    )
    rel = _csr([{0: 3.0, 1: 0.5, 2: 2.5}, {1: 1.0, 3: 0.2}, {3: 6.0}])
    excl = _csr([{4: 1}, {2: 1, 4: 1}, {1: 1, 2: 1}], bool)
    test = TestSet(np.arange(3), np.arange(5), rel, excl)
    top = np.array([[2, 1], [1, 0], [0, 3]])
    return top, test, train


def test_hand_computed_case():
    top, test, train = _case()
    r = evaluate(top, test, train, ks=(1, 2), n_bootstrap=0)
    m = r.metrics
    # wr>2 positives: user 0 {0, 2}, user 1 none (excluded), user 2 {3}
    # user 0 list [2 1]: hits [1 0]; user 2 list [0 3]: hits [0 1]
    assert m["n_users"] == 3 and m["n_users_evaluated"] == 2 and m["n_users_no_positive"] == 1
    assert m["precision@1"] == pytest.approx((1 + 0) / 2)
    assert m["precision@2"] == pytest.approx((0.5 + 0.5) / 2)
    assert m["recall@2"] == pytest.approx((1 / 2 + 1 / 1) / 2)
    # ndcg@2: user 0 = 1 / (1 + 1/log2 3); user 2 = (1/log2 3) / 1
    assert m["ndcg@2"] == pytest.approx((1 / (1 + 1 / L3) + 1 / L3) / 2)
    # map@2: user 0 = (P@1 * 1) / min(2, 2) = 0.5; user 2 = (P@2 * 1) / min(2, 1) = 0.5
    assert m["map@2"] == pytest.approx(0.5)
    assert m["mrr"] == pytest.approx((1 + 1 / 2) / 2)
    assert m["hit@1"] == pytest.approx(0.5)
    assert np.isnan(r.per_user["ndcg@2"][1])  # user 1 has no positive
    # 4 distinct items {0, 1, 2, 3} of 5 candidates; item 4 never shown
    assert m["coverage@2"] == pytest.approx(4 / 5)
    # popularity (distinct training users): item 0: 0, 1: 1, 2: 2, 3: 0 -> slots 2,1,1,0,0,3
    assert m["mean_popularity@2"] == pytest.approx((2 + 1 + 1 + 0 + 0 + 0) / 6)
    # exposure over candidates [2, 2, 1, 1, 0] -> sorted [0 1 1 2 2], n=5, sum=6:
    # (-4*0 - 2*1 + 0*1 + 2*2 + 4*2) / (5 * 6) = 10 / 30
    assert m["gini@2"] == pytest.approx(1 / 3)


def test_hand_computed_labels():
    top, test, train = _case()
    r = evaluate(top, test, train, ks=(1, 2), n_bootstrap=0)
    ge1 = r.by_label["wr>=1"]
    # wr>=1 adds user 1 {1} (list [1 0]: hit at rank 1): precision@1 = (1 + 1 + 0) / 3
    assert ge1["n_users_evaluated"] == 3
    assert ge1["precision@1"] == pytest.approx(2 / 3)
    graded = r.by_label["graded"]
    # user 0 gains [2.5, 0.5] vs ideal [3, 2.5]; user 1 [1, 0] vs [1, 0.2]; user 2 [0, 5] vs [5, 0]
    u0 = (2.5 + 0.5 / L3) / (3 + 2.5 / L3)
    u1 = 1 / (1 + 0.2 / L3)
    u2 = (5 / L3) / 5
    assert graded["ndcg@2"] == pytest.approx((u0 + u1 + u2) / 3)
    assert set(graded) == {
        "ndcg@1",
        "ndcg@2",
        "n_users",
        "n_users_evaluated",
        "n_users_no_positive",
    }
    assert r.by_label["wr>2"]["ndcg@2"] == r.metrics["ndcg@2"]


def test_hand_computed_segments():
    top, test, train = _case()
    seg = evaluate(top, test, train, ks=(1, 2), n_bootstrap=0).segments
    # cold items {0, 3}: user 0 positives {0} not shown -> 0; user 2 hits 3 at rank 2
    cold = seg["item_coldness"]["cold"]
    assert cold["n_users"] == 2 and cold["n_items"] == 2
    assert cold["recall@2"] == pytest.approx(0.5)
    assert cold["ndcg@2"] == pytest.approx((0 + 1 / L3) / 2)
    # warm items {1, 2, 4}: only user 0 has a warm positive (2), shown at rank 1
    warm = seg["item_coldness"]["warm"]
    assert warm["n_users"] == 1 and warm["ndcg@2"] == pytest.approx(1.0)
    # activity (training pairs): user 0: 1, user 1: 2, user 2: 2
    act = seg["user_activity"]
    assert act["low"]["pairs_max"] == 1 and act["low"]["n_users"] == 1
    assert "duration_bucket" in seg


def test_rating_errors_aligned_with_relevance_data():
    top, test, train = _case()
    users, items = test.pairs()
    assert list(zip(users.tolist(), items.tolist(), strict=True)) == [
        (0, 0), (0, 1), (0, 2), (1, 1), (1, 3), (2, 3)
    ]  # fmt: skip
    pred = np.array([3.0, 0.5, 2.5, 1.0, 0.2, 7.0])  # off by 1 on the last pair only
    m = evaluate(top, test, train, ks=(2,), n_bootstrap=0, predictions=pred).metrics
    assert m["rmse"] == pytest.approx(math.sqrt(1 / 6))
    assert m["mae"] == pytest.approx(1 / 6)
    with pytest.raises(ModelError, match="one value per observed test pair"):
        evaluate(top, test, train, ks=(2,), n_bootstrap=0, predictions=pred[:5])


@pytest.mark.parametrize(
    ("top", "match"),
    [
        ([[2, 5], [1, 0], [0, 3]], "non-candidate"),
        ([[2, 2], [1, 0], [0, 3]], "twice"),
        ([[2, 4], [1, 0], [0, 3]], r"row 0 \(user_idx 0\) holds a training"),
        ([[2, 1], [1, 0]], "shape"),
        ([[2, 1], [1, 0], [0, 9]], "range"),
        ([[2.0, 1.0], [1.0, 0.0], [0.0, 3.0]], "integer"),
    ],
)
def test_bad_lists_are_model_errors(top, match):
    _, test, train = _case()
    with pytest.raises(ModelError, match=match):
        evaluate(np.array(top), test, train, ks=(2,), n_bootstrap=0)


def test_padding_and_short_lists():
    _, test, train = _case()
    # one-column lists padded to K = 2 by the evaluation, -1 allowed anywhere
    r = evaluate(np.array([[2], [-1], [-1]]), test, train, ks=(2,), n_bootstrap=0)
    assert r.metrics["precision@2"] == pytest.approx((1 / 2 + 0) / 2)
    assert r.metrics["coverage@2"] == pytest.approx(1 / 5)


def test_bootstrap_intervals_contain_the_metric():
    top, test, train = _case()
    r = evaluate(top, test, train, ks=(1, 2), n_bootstrap=300, seed=5)
    for name in ("precision@2", "ndcg@2", "mrr"):
        lo, hi = r.ci[name]
        assert lo <= r.metrics[name] <= hi
    assert set(r.ci) == set(r.per_user)
    again = evaluate(top, test, train, ks=(1, 2), n_bootstrap=300, seed=5)
    assert again.ci == r.ci


def test_to_json_is_strict_json():
    top, test, train = _case()
    doc = evaluate(top, test, train, ks=(2,), n_bootstrap=50).to_json()
    text = json.dumps(doc, allow_nan=False)  # NaN became null
    assert json.loads(text)["default_label"] == "wr>2"
    assert doc["labels"]["wr>2"]["rule"] == "watch_ratio > 2"


def test_duration_label_is_skipped_without_durations():
    top, test, train = _case(video_duration=False)
    r = evaluate(top, test, train, ks=(2,), n_bootstrap=0)
    assert "duration" not in r.by_label and "duration_bucket" not in r.segments
    assert any("duration" in note for note in r.notes)
    with pytest.raises(ConfigError, match="needs video durations"):
        evaluate(top, test, train, ks=(2,), default_label="duration", n_bootstrap=0)


def test_graded_default_label_and_bad_parameters():
    top, test, train = _case()
    r = evaluate(
        top, test, train, ks=(2,), labels=("graded",), default_label="graded", n_bootstrap=0
    )
    assert "ndcg@2" in r.metrics and "precision@2" not in r.metrics
    with pytest.raises(ConfigError, match="ks"):
        evaluate(top, test, train, ks=(0, 2))
    with pytest.raises(ConfigError, match="threshold"):
        evaluate(top, test, train, ks=(2,), labels=("wr>nan",))
    with pytest.raises(ConfigError, match="n_bootstrap"):
        evaluate(top, test, train, ks=(2,), n_bootstrap=-1)


@pytest.mark.parametrize("n_users", [3, 0])
def test_test_set_without_observed_pairs_is_a_data_error(n_users):
    _, _, train = _case()
    empty = sp.csr_matrix((n_users, N_ITEMS))
    test = TestSet(np.arange(n_users), np.arange(5), empty, empty.astype(bool))
    top = np.full((n_users, 2), -1)
    with pytest.raises(DataError, match=r"no observed \(user, item\) pair.*relevance is empty"):
        evaluate(top, test, train, ks=(2,), n_bootstrap=0)
    with pytest.raises(DataError, match=f"{n_users} test users, 5 candidate items"):
        prepare(test, train, ks=(2,))


def test_context_reuse_gives_the_same_result():
    top, test, train = _case()
    ctx = prepare(test, train, ks=(1, 2))
    a = evaluate(top, test, train, ks=(1, 2), n_bootstrap=20, context=ctx)
    b = evaluate(top, test, train, ks=(1, 2), n_bootstrap=20)
    assert json.dumps(a.to_json()) == json.dumps(b.to_json())
    with pytest.raises(ConfigError, match="context"):
        evaluate(top, test, train, ks=(2,), context=ctx)


def test_without_context_each_call_prepares_for_its_training_set():
    top, test, train = _case()
    a = evaluate(top, test, train, ks=(2,), n_bootstrap=0)
    # another training set (item 0 now seen by user 0): new numbers, nothing stale reused
    u, i = np.array([(0, 0), (0, 4), (1, 2), (1, 4), (2, 1), (2, 2)]).T
    inter = Interactions.from_log(u, i, np.ones(6), None, (3, N_ITEMS))
    b = evaluate(top, test, dataclasses.replace(train, interactions=inter), ks=(2,), n_bootstrap=0)
    # slots [2 1 1 0 0 3]: popularity of item 0 went from 0 to 1 -> +2/6
    assert b.metrics["mean_popularity@2"] == pytest.approx(a.metrics["mean_popularity@2"] + 2 / 6)
    # no hidden memo on the test set: only its fields and its cached properties
    cached = {n for n, v in vars(TestSet).items() if isinstance(v, functools.cached_property)}
    assert set(test.__dict__) <= {f.name for f in dataclasses.fields(test)} | cached


# ---------------------------------------------------------------- a per-user reference


def _reference(top, test, train, k):
    """Plain per-user loop for wr>2 and graded NDCG at one K."""
    rel = test.relevance
    out = {"ndcg": [], "recall": [], "graded": []}
    for u in range(test.users.size):
        row = dict(
            zip(
                rel.indices[rel.indptr[u] : rel.indptr[u + 1]].tolist(),
                rel.data[rel.indptr[u] : rel.indptr[u + 1]].tolist(),
                strict=True,
            )
        )  # noqa: E501
        pos = {i for i, w in row.items() if w > 2}
        items = [i for i in top[u, :k]]
        if pos:
            dcg = sum(1 / math.log2(j + 2) for j, i in enumerate(items) if i in pos)
            idcg = sum(1 / math.log2(j + 2) for j in range(min(k, len(pos))))
            out["ndcg"].append(dcg / idcg)
            out["recall"].append(sum(i in pos for i in items) / len(pos))
        gains = {i: min(w, 5.0) for i, w in row.items()}
        best = sorted(gains.values(), reverse=True)[:k]
        idcg = sum(g / math.log2(j + 2) for j, g in enumerate(best))
        if idcg > 0:
            dcg = sum(gains.get(i, 0.0) / math.log2(j + 2) for j, i in enumerate(items))
            out["graded"].append(dcg / idcg)
    return {key: float(np.mean(v)) for key, v in out.items()}


def test_matches_a_per_user_loop(rng):
    n_users, n_items, n = 80, 120, 6000
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    wr, ts = rng.lognormal(-0.2, 0.8, n), rng.uniform(0, 1e6, n)
    inter, test = temporal_protocol(u, i, ts, wr, n_users, n_items)
    train = TrainSet(inter, IdMap(np.arange(n_users)), IdMap(np.arange(n_items)))
    scores = rng.random((test.users.size, n_items))
    scores[test.exclude.toarray()] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :20]
    top[np.take_along_axis(scores, top, 1) == -np.inf] = -1
    r = evaluate(top, test, train, ks=(10, 20), n_bootstrap=0)
    ref = _reference(top, test, train, 10)
    assert r.metrics["ndcg@10"] == pytest.approx(ref["ndcg"], abs=1e-12)
    assert r.metrics["recall@10"] == pytest.approx(ref["recall"], abs=1e-12)
    assert r.by_label["graded"]["ndcg@10"] == pytest.approx(ref["graded"], abs=1e-12)


# ---------------------------------------------------------------- comparing models


def _entry(by_label: dict[str, float]) -> dict:
    return {"default_label": "wr>2", "by_label": {k: {"ndcg@10": v} for k, v in by_label.items()}}


def test_flips_by_hand():
    results = {
        "a": _entry({"wr>2": 0.30, "wr>=1": 0.50, "duration": 0.20}),
        "b": _entry({"wr>2": 0.25, "wr>=1": 0.55, "duration": 0.20}),
        "c": _entry({"wr>2": 0.10, "wr>=1": 0.20, "duration": 0.10}),
    }
    out = flips(results)
    # a > b under wr>2 but a < b under wr>=1 (a tie under duration is not a flip);
    # c is last under every label
    assert out == [
        {
            "models": ["a", "b"],
            "metric": "ndcg@10",
            "labels": ["wr>=1"],
            "order": {"wr>2": "a > b", "wr>=1": "a < b", "duration": "a = b"},
        }
    ]


def test_flips_accepts_eval_results_and_compare_identical_models():
    top, test, train = _case()
    r = evaluate(top, test, train, ks=(2,), n_bootstrap=0)
    assert flips({"x": r, "y": r}, "ndcg@2") == []
    res = compare(r, r, "ndcg@2", n_bootstrap=100)
    assert res["diff"] == 0.0 and res["ci"] == [0.0, 0.0] and res["n_users"] == 2


def test_k_beyond_the_candidates_is_capped_at_them():
    top, test, train = _case()  # 5 candidates
    full = np.array([[2, 1, 0, 3, -1], [1, 0, 3, -1, -1], [0, 3, 4, -1, -1]])
    capped = evaluate(full, test, train, ks=(2, 5, 10**12), n_bootstrap=0)
    at_cap = evaluate(full, test, train, ks=(2, 5), n_bootstrap=0)
    assert capped.ks == (2, 5, 10**12)
    for name in ("precision", "recall", "ndcg", "map", "coverage", "mean_popularity"):
        assert capped.metrics[f"{name}@{10**12}"] == at_cap.metrics[f"{name}@5"]
    # precision over the 5 slots, not over 10**12: user 0 hits {2, 0} = 2/5; user 2 {3} = 1/5
    assert capped.metrics[f"precision@{10**12}"] == pytest.approx((2 / 5 + 1 / 5) / 2)
    assert any("larger than the 5 candidates" in n for n in capped.notes)
    assert capped.by_label["wr>2"][f"ndcg@{10**12}"] == at_cap.by_label["wr>2"]["ndcg@5"]
