"""Vectorised metrics against hand-computed values (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec.evaluation import metrics as M

L3, L5 = math.log2(3), math.log2(5)  # discounts: rank 1 -> 1, 2 -> 1/log2(3), 4 -> 1/log2(5)


def _rel(rows: list[dict[int, float]], n_items: int) -> sp.csr_matrix:
    """A relevance CSR from one {item: value} dict per user."""
    data, ind, ptr = [], [], [0]
    for r in rows:
        for item in sorted(r):
            ind.append(item)
            data.append(r[item])
        ptr.append(len(ind))
    return sp.csr_matrix(
        (np.array(data, float), np.array(ind), np.array(ptr)), (len(rows), n_items)
    )


def _binary(top: list[list[int]], positives: list[set[int]], n_items: int, ks=(5,)):
    rel = _rel([dict.fromkeys(p, 1.0) for p in positives], n_items)
    hits = M.hit_matrix(M.pad_columns(np.array(top), max(ks)), rel)
    return M.ranking_metrics(hits, M.row_counts(rel.data, rel.indptr), ks)


def test_one_user_by_hand():
    # list [0 1 2 3 4], positives {1, 3, 7}: hits at ranks 2 and 4, P_u = 3
    m = _binary([[0, 1, 2, 3, 4]], [{1, 3, 7}], 10)
    assert m["precision@5"][0] == pytest.approx(2 / 5)
    assert m["recall@5"][0] == pytest.approx(2 / 3)
    # DCG = 1/log2(3) + 1/log2(5) = 1.06161; IDCG over min(5, 3) = 3 terms = 1 + 1/log2(3) + 1/2
    assert m["ndcg@5"][0] == pytest.approx((1 / L3 + 1 / L5) / (1 + 1 / L3 + 0.5))
    assert m["ndcg@5"][0] == pytest.approx(0.498189257)
    # AP = (P@2 + P@4) / min(5, 3) = (1/2 + 2/4) / 3
    assert m["map@5"][0] == pytest.approx(1 / 3)
    assert m["hit@5"][0] == 1.0
    assert m["mrr"][0] == pytest.approx(1 / 2)  # first hit at rank 2


def test_k_larger_than_candidates_and_padding():
    # 3 candidates only, the list is [0 1 2 -1 -1]; positives {0, 2}
    m = _binary([[0, 1, 2, -1, -1]], [{0, 2}], 3)
    assert m["precision@5"][0] == pytest.approx(2 / 5)  # K stays 5
    assert m["recall@5"][0] == pytest.approx(1.0)
    # DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3): 0.919721
    assert m["ndcg@5"][0] == pytest.approx(1.5 / (1 + 1 / L3))
    # a list shorter than K is padded: same numbers
    m2 = _binary([[0, 1, 2]], [{0, 2}], 3)
    assert m2["precision@5"][0] == pytest.approx(2 / 5)


def test_padding_never_hits_even_where_item_0_is_relevant():
    # -1 is looked up as item 0 internally; item 0 is relevant, yet -1 must not hit
    rel = _rel([{0: 1.0}], 4)
    assert M.hit_matrix(np.array([[-1, -1, 0]]), rel).tolist() == [[0.0, 0.0, 1.0]]
    m = _binary([[-1, -1, -1, -1, -1]], [{0}], 4)
    assert m["recall@5"][0] == 0.0 and m["mrr"][0] == 0.0


def test_recall_not_capped_at_k():
    # 20 positives, the 5 returned items are all positives
    m = _binary([[0, 1, 2, 3, 4]], [set(range(20))], 30)
    assert m["recall@5"][0] == pytest.approx(5 / 20)  # not 5 / min(5, 20) = 1
    assert m["precision@5"][0] == 1.0
    assert m["ndcg@5"][0] == pytest.approx(1.0)  # ideal over min(5, 20) = 5 terms
    assert m["map@5"][0] == pytest.approx(1.0)  # (1 + 1 + 1 + 1 + 1) / min(5, 20)


def test_map_normalisation_by_min_k_positives():
    # hits at ranks 1 and 3: sum of P@k * rel_k = 1/1 + 2/3
    two = _binary([[0, 9, 1, 8, 7]], [{0, 1}], 10)
    assert two["map@5"][0] == pytest.approx((1 + 2 / 3) / 2)  # min(5, 2) = 2
    ten = _binary([[0, 29, 1, 28, 27]], [set(range(10))], 30)
    assert ten["map@5"][0] == pytest.approx((1 + 2 / 3) / 5)  # min(5, 10) = 5


def test_user_without_positive_is_nan():
    m = _binary([[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]], [{1}, set()], 6)
    for name in ("precision@5", "recall@5", "ndcg@5", "map@5", "hit@5", "mrr"):
        assert not np.isnan(m[name][0]) and np.isnan(m[name][1]), name


def test_several_ks_from_one_list():
    # positives {2, 6}; list [0..9]: hits at ranks 3 and 7
    m = _binary([list(range(10))], [{2, 6}], 10, ks=(1, 5, 10))
    assert m["precision@1"][0] == 0.0 and m["hit@1"][0] == 0.0
    assert m["recall@5"][0] == pytest.approx(1 / 2)
    assert m["recall@10"][0] == pytest.approx(1.0)
    assert m["ndcg@10"][0] == pytest.approx((1 / 2 + 1 / 3) / (1 + 1 / L3))  # log2(4)=2, log2(8)=3
    assert m["mrr"][0] == pytest.approx(1 / 3)


def test_graded_ndcg_by_hand():
    # gains of the user (already clipped): {0: 5, 1: 2, 2: 0.5}; list [1, 0, 3]
    rel = _rel([{0: 5.0, 1: 2.0, 2: 0.5}], 4)
    gains = M.hit_matrix(np.array([[1, 0, 3]]), rel)
    ideal = M.ideal_gains(rel.data, rel.indptr, 3)
    assert ideal.tolist() == [[5.0, 2.0, 0.5]]
    # DCG = 2 + 5/log2(3) = 5.15465; IDCG = 5 + 2/log2(3) + 0.5/2 = 6.51186
    v = M.graded_ndcg(gains, ideal, [3])["ndcg@3"][0]
    assert v == pytest.approx((2 + 5 / L3) / (5 + 2 / L3 + 0.25))
    assert v == pytest.approx(0.791578621)
    # a user with only zero gains is excluded
    rel0 = _rel([{0: 0.0}], 4)
    g0 = M.graded_ndcg(
        M.hit_matrix(np.array([[0, 1, 2]]), rel0), M.ideal_gains(rel0.data, rel0.indptr, 3), [3]
    )
    assert np.isnan(g0["ndcg@3"][0])


def test_ideal_gains_blocks_match_a_plain_sort(monkeypatch, rng):
    rel = sp.random(37, 50, density=0.3, format="csr", random_state=1)
    rel.data = np.round(rel.data * 5, 1)  # ties
    monkeypatch.setattr(M, "_DENSE_BLOCK", 60)  # several row blocks
    got = M.ideal_gains(rel.data, rel.indptr, 4)
    for u in range(37):
        row = sorted(rel.data[rel.indptr[u] : rel.indptr[u + 1]], reverse=True)[:4]
        assert got[u].tolist() == row + [0.0] * (4 - len(row))


def test_ranking_metrics_match_a_per_user_loop(rng):
    n_users, n_items, k = 60, 40, 12
    rel = sp.random(n_users, n_items, density=0.15, format="csr", random_state=3)
    top = np.array([rng.permutation(n_items)[:k] for _ in range(n_users)])
    top[rng.random(top.shape) < 0.1] = -1  # some padding
    got = M.ranking_metrics(M.hit_matrix(top, rel), M.row_counts(rel.data, rel.indptr), [3, 12])
    for u in range(n_users):
        pos = set(rel.indices[rel.indptr[u] : rel.indptr[u + 1]].tolist())
        if not pos:
            assert np.isnan(got["ndcg@3"][u])
            continue
        hits = [1.0 if i in pos else 0.0 for i in top[u]]
        for kk in (3, 12):
            h = hits[:kk]
            dcg = sum(x / math.log2(j + 2) for j, x in enumerate(h))
            idcg = sum(1 / math.log2(j + 2) for j in range(min(kk, len(pos))))
            ap = sum(sum(h[: j + 1]) / (j + 1) * x for j, x in enumerate(h)) / min(kk, len(pos))
            assert got[f"ndcg@{kk}"][u] == pytest.approx(dcg / idcg, abs=1e-12)
            assert got[f"map@{kk}"][u] == pytest.approx(ap, abs=1e-12)
            assert got[f"recall@{kk}"][u] == pytest.approx(sum(h) / len(pos), abs=1e-12)
        first = next((j for j, x in enumerate(hits) if x), None)
        assert got["mrr"][u] == pytest.approx(0.0 if first is None else 1 / (first + 1))


def test_ties_in_scores_resolved_by_lower_item():
    # items 1 and 2 tie at 3.0, items 0 and 4 tie at 1.0; NaN ranks last
    scores = np.array([[1.0, 3.0, 3.0, 2.0, 1.0, np.nan]])
    assert M.top_k_from_scores(scores, 6).tolist() == [[1, 2, 3, 0, 4, 5]]
    assert M.top_k_from_scores(scores, 2).tolist() == [[1, 2]]
    # columns shuffled to [5 3 1 0 4 2]: ties are broken by column position, so item 1
    # (column 2) still precedes item 2 (column 5), item 0 (column 3) precedes item 4
    perm = np.array([5, 3, 1, 0, 4, 2])
    assert perm[M.top_k_from_scores(scores[:, perm], 4)].tolist() == [[1, 2, 3, 0]]


def test_beyond_accuracy_by_hand():
    top = np.array([[0, 1, -1], [0, 2, 3]])
    cand = np.array([0, 1, 2, 3])
    # top-2: items {0, 1, 2} of 4 candidates
    assert M.coverage(top, 2, 4) == pytest.approx(3 / 4)
    # exposure over candidates [2, 1, 1, 0] -> sorted [0, 1, 1, 2], n = 4, sum = 4:
    # sum (2i - n - 1) x_i = -3*0 - 1*1 + 1*1 + 3*2 = 6 -> G = 6 / (4 * 4)
    assert M.gini(top, 2, cand) == pytest.approx(0.375)
    # popularity [10, 4, 1, 0]: top-3 slots 0, 1, 0, 2, 3 (the -1 is skipped):
    # (10 + 4 + 10 + 1 + 0) / 5
    assert M.mean_popularity(top, 3, np.array([10, 4, 1, 0])) == pytest.approx(5.0)
    assert M.gini(np.array([[0], [1]]), 1, np.array([0, 1])) == pytest.approx(0.0)


def test_rating_errors_by_hand():
    # errors [0, 0, 2]: RMSE = sqrt(4/3), MAE = 2/3; SS_tot = 1 + 0 + 1 = 2 -> R2 = 1 - 4/2
    e = M.rating_errors(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert e["rmse"] == pytest.approx(math.sqrt(4 / 3))
    assert e["mae"] == pytest.approx(2 / 3)
    assert e["r2"] == pytest.approx(-1.0)
