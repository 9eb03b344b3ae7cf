"""The evaluation on generated KuaiRec-shaped data: protocol invariants and sane orderings."""

from __future__ import annotations

import json

import numpy as np

from kuairec.evaluation import default_protocol, evaluate, temporal_holdout
from kuairec.evaluation.metrics import top_k_from_scores


def _pairs(rows: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    return rows.astype(np.int64) * n_items + items


def _ranked(scores: np.ndarray, candidates: np.ndarray, k: int = 50) -> np.ndarray:
    """Top-k candidates per row of (users x candidates) scores; -inf is never returned."""
    cols = top_k_from_scores(scores, k)
    top = candidates[cols]
    top[np.take_along_axis(scores, cols, axis=1) == -np.inf] = -1
    return top


def test_default_protocol_on_generated_data(small_dataset):
    ds = small_dataset
    train, test = default_protocol(ds)
    assert test.users.tolist() == np.flatnonzero(ds.small.user_counts()).tolist()
    assert test.candidates.tolist() == np.flatnonzero(ds.small.item_counts()).tolist()
    assert test.relevance.nnz == ds.small.nnz
    # no small pair is trained on; every training pair of a test user is excluded
    inter = train.interactions
    trained = _pairs(inter.row_users(), inter.indices, ds.n_items)
    tested = _pairs(test.users[test.entry_rows], test.relevance.indices, ds.n_items)
    assert not np.isin(tested, trained).any()
    excl_rows = np.repeat(np.arange(test.users.size), np.diff(test.exclude.indptr))
    excluded = _pairs(test.users[excl_rows], test.exclude.indices, ds.n_items)
    assert set(excluded.tolist()) == set(trained[np.isin(inter.row_users(), test.users)].tolist())


def test_oracle_beats_popularity_beats_random(small_dataset):
    train, test = default_protocol(small_dataset)
    n_users, cand = test.users.size, test.candidates
    col = np.full(small_dataset.n_items, -1)
    col[cand] = np.arange(cand.size)

    def masked(scores: np.ndarray) -> np.ndarray:
        rows = np.repeat(np.arange(n_users), np.diff(test.exclude.indptr))
        cols = col[test.exclude.indices]
        scores[rows[cols >= 0], cols[cols >= 0]] = -np.inf
        return scores

    truth = np.zeros((n_users, cand.size))
    t = test.truth
    truth[np.repeat(np.arange(n_users), np.diff(t.indptr)), col[t.indices]] = t.data
    popularity = np.tile(train.interactions.item_counts()[cand].astype(float), (n_users, 1))
    random = np.random.default_rng(0).random((n_users, cand.size))
    results = {
        name: evaluate(_ranked(masked(s), cand), test, train, n_bootstrap=200)
        for name, s in (("oracle", truth), ("popularity", popularity), ("random", random))
    }
    ndcg = {name: r.metrics["ndcg@10"] for name, r in results.items()}
    assert ndcg["oracle"] > ndcg["popularity"] > ndcg["random"]
    lo, hi = results["random"].ci["ndcg@10"]
    assert lo <= ndcg["random"] <= hi < ndcg["oracle"]
    assert results["random"].metrics["coverage@50"] > results["popularity"].metrics["coverage@50"]
    json.dumps(results["oracle"].to_json(), allow_nan=False)


def test_temporal_holdout_on_generated_data(small_dataset):
    train, _ = default_protocol(small_dataset)
    fit, valid = temporal_holdout(train)
    ts, fit_ts = train.interactions.first_timestamp, fit.interactions.first_timestamp
    assert fit.interactions.nnz < train.interactions.nnz
    assert np.nanmax(fit_ts) < np.nanmax(ts)
    assert valid.users.size > 0 and valid.relevance.nnz > 0
