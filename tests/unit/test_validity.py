"""The validity section's arithmetic, recomputed by hand from its inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec.pipeline.sections.validity.estimators import (
    SampledLists,
    agreement,
    flipped_pairs,
    ips_metrics,
    kendall_spearman,
    ordering,
    propensities,
    sampled_lists,
    sampled_metrics,
)
from kuairec.pipeline.sections.validity.render import largest_move
from kuairec.pipeline.sections.validity.types import ProtocolModel, ProtocolResult


def _csr(rows: list[list[int]], n: int) -> sp.csr_matrix:
    data = [(r, c) for r, cols in enumerate(rows) for c in cols]
    r, c = (np.array(x, dtype=np.int64) for x in zip(*data, strict=True)) if data else ([], [])
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n))


def test_sampled_ndcg_and_recall_on_a_hand_made_list() -> None:
    # one user, positives 3 and 7; negatives 1, 2, 5 (scores below)
    lists = SampledLists(
        users=np.array([0]),
        starts=np.array([0, 5]),
        items=np.array([3, 7, 1, 2, 5]),
        positive=np.array([True, True, False, False, False]),
        n_pos=np.array([2]),
    )
    scores = np.array([0.5, 0.9, 0.7, 0.5, 0.1])  # item 3 ties item 2: lower index first
    m = sampled_metrics(scores, lists)
    # ranked: 7 (0.9), 1 (0.7), 2 (0.5), 3 (0.5), 5 -> positives at ranks 1 and 4
    dcg = 1 / math.log2(2) + 1 / math.log2(5)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert m["ndcg@10"][0] == pytest.approx(dcg / idcg)
    assert m["recall@10"][0] == pytest.approx(1.0)


def test_sampled_metrics_in_blocks_of_lists_equal_one_pass() -> None:
    """Lists ranked a few at a time (a block smaller than one list, a block of several)
    give exactly the values of one pass over all of them; scores with many ties."""
    rng = np.random.default_rng(3)
    n_pos = rng.integers(1, 4, size=40)
    sizes = n_pos * 11
    starts = np.concatenate([[0], np.cumsum(sizes)])
    positive = np.zeros(starts[-1], dtype=bool)
    for a, p in zip(starts[:-1], n_pos, strict=True):
        positive[a : a + p] = True
    lists = SampledLists(
        users=np.arange(40) * 3,
        starts=starts,
        items=rng.integers(0, 50, size=starts[-1]),
        positive=positive,
        n_pos=n_pos,
    )
    scores = rng.integers(0, 4, size=starts[-1]).astype(np.float32)  # ties everywhere
    whole = sampled_metrics(scores, lists, block=10**9)
    assert np.isfinite(whole["ndcg@10"]).all() and 0 < whole["ndcg@10"].mean() < 1
    for block in (5, 60, 200):
        part = sampled_metrics(scores, lists, block=block)
        for metric in ("ndcg@10", "recall@10"):
            np.testing.assert_array_equal(part[metric], whole[metric])


def test_sampled_lists_hold_100_never_logged_negatives_per_positive() -> None:
    n_items = 300
    positives = _csr([[1, 2], [], [5]], n_items)
    logged = _csr([[1, 2, 3, 4], [9], list(range(5, 290))], n_items)
    cand = np.arange(n_items)
    lists = sampled_lists(np.array([10, 11, 12]), positives, logged, cand, None, 100, seed=4)
    assert lists.users.tolist() == [10, 12]  # user 11 has no positive
    assert np.diff(lists.starts).tolist() == [2 * 101, 1 * 101]
    for r, row_logged in ((0, {1, 2, 3, 4}), (1, set(range(5, 290)))):
        seg = slice(lists.starts[r], lists.starts[r + 1])
        neg = lists.items[seg][~lists.positive[seg]]
        assert neg.size == 100 * lists.n_pos[r] and not set(neg.tolist()) & row_logged
    # user 12 has only items 0-4 and 290-299 free: drawn from exactly those
    seg = slice(lists.starts[1], lists.starts[2])
    assert set(lists.items[seg][~lists.positive[seg]].tolist()) <= {*range(5), *range(290, 300)}
    again = sampled_lists(np.array([10, 11, 12]), positives, logged, cand, None, 100, seed=4)
    np.testing.assert_array_equal(again.items, lists.items)


def test_pop100_draws_in_proportion_to_popularity() -> None:
    n_items = 4
    positives = _csr([[0]] * 200, n_items)
    logged = _csr([[0]] * 200, n_items)
    pop = np.array([100.0, 1.0, 1.0, 2.0])
    lists = sampled_lists(np.arange(200), positives, logged, np.arange(4), pop, 100, seed=0)
    neg = lists.items[~lists.positive]
    share = np.bincount(neg, minlength=4)[1:] / neg.size
    np.testing.assert_allclose(share, [0.25, 0.25, 0.5], atol=0.01)  # 1 : 1 : 2


def test_propensities_and_ips_snips_by_hand() -> None:
    pop = np.array([100.0, 25.0, 4.0, 0.0])
    p = propensities(pop, 0.5)
    np.testing.assert_allclose(p[:3], [1.0, 0.5, 0.2])  # (n / 100) ** 0.5
    positives = _csr([[1, 2], [0]], 4)
    top = np.array([[2, 0, 1] + [-1] * 7, [3, 1, 2] + [-1] * 7])
    m = ips_metrics(top, positives, p)
    d1, d3 = 1.0, 1 / math.log2(4)
    # user 0: item 2 at rank 1 (w = 5), item 1 at rank 3 (w = 2); P_u = 2
    assert m["ips_dcg@10"][0] == pytest.approx((d1 * 5 + d3 * 2) / 2)
    assert m["snips_dcg@10"][0] == pytest.approx((d1 * 5 + d3 * 2) / (5 + 2))
    assert m["dcg@10_per_positive"][0] == pytest.approx((d1 + d3) / 2)
    assert m["ips_dcg@10"][1] == 0.0  # item 0 not in user 1's top 10


def _tau_by_hand(a: list[float], b: list[float]) -> float:
    pairs = list(itertools.combinations(range(len(a)), 2))
    s = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs)
    return s / len(pairs)


def test_tau_and_rho_from_the_two_orderings() -> None:
    ref = [0.46, 0.37, 0.30, 0.28, 0.13]
    other = [0.37, 0.24, 0.26, 0.37 + 0.01, 0.04]  # no ties: tau-b = tau-a
    tau, rho = kendall_spearman(ref, other)
    assert tau == pytest.approx(_tau_by_hand(ref, other))
    ra, rb = np.argsort(np.argsort(ref)), np.argsort(np.argsort(other))
    n = len(ref)
    assert rho == pytest.approx(1 - 6 * np.sum((ra - rb) ** 2) / (n * (n * n - 1)))
    assert ordering(other) == [2, 4, 3, 1, 5]
    assert flipped_pairs(list("abcde"), ref, other) == [
        ["a", "d"],
        ["b", "c"],
        ["b", "d"],
        ["c", "d"],
    ]


def test_agreement_interval_resamples_each_protocols_users() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal([0.4, 0.3, 0.2], 0.05, size=(300, 3))
    same = rng.normal([0.4, 0.3, 0.2], 0.05, size=(120, 3))  # other users, same order
    out = agreement(ref, same, n_bootstrap=100, seed=1)
    assert out["tau"] == pytest.approx(1.0) and out["tau_ci"][0] == pytest.approx(1.0)
    flipped = agreement(ref, same[:, ::-1], n_bootstrap=100, seed=1)
    assert flipped["tau"] == pytest.approx(-1.0) and flipped["rho_ci"][1] == pytest.approx(-1.0)


def test_report_sentence_names_the_largest_move() -> None:
    def model(rank: int, reference_rank: int) -> ProtocolModel:
        return ProtocolModel(0.1, 0.1, 0.0, 0.0, rank, reference_rank)

    d = ProtocolResult(0.5, 0.5, None, None, {"ease": model(1, 1), "popularity": model(2, 6)}, [])
    assert largest_move("temporal/logged", d) == (
        "the logged holdout, temporal split ranks popularity 2nd; the fully observed test "
        "ranks it 6th"
    )


def test_ips_with_users_without_positives_at_the_end() -> None:
    positives = _csr([[1], [], []], 4)  # the last rows are empty (reduceat's trap)
    m = ips_metrics(np.array([[1, 0], [0, 1], [2, 3]]), positives, np.ones(4))
    assert m["snips_dcg@10"][0] == pytest.approx(1.0)
    assert np.isnan(m["snips_dcg@10"][1:]).all() and np.isnan(m["ips_dcg@10"][2])


def test_vectorised_correlations_match_scipy_with_ties() -> None:
    from scipy.stats import kendalltau, spearmanr

    from kuairec.pipeline.sections.validity.estimators import rank_correlations

    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, size=(50, 6)).astype(float)  # many ties
    b = rng.integers(0, 4, size=(50, 6)).astype(float)
    tau, rho = rank_correlations(a, b)
    for r in range(50):
        if np.ptp(a[r]) and np.ptp(b[r]):
            assert tau[r] == pytest.approx(kendalltau(a[r], b[r]).statistic)
            assert rho[r] == pytest.approx(spearmanr(a[r], b[r]).statistic)


@pytest.mark.parametrize("kind", ["float32", "float64", "wide"])
def test_list_order_is_the_lexsort_with_ties_signed_zeros_and_infinities(kind: str) -> None:
    """The packed-key order equals lexsort((items, -scores, rows)) entry for entry: tied
    scores by item, -0.0 equal to 0.0, -inf last, repeated (row, item) entries stable;
    float64 scores and ids too wide to pack take the lexsort itself."""
    from kuairec.models.base import row_score_order as list_order

    rng = np.random.default_rng(11)
    n = 5000
    rows = np.sort(rng.integers(0, 40, n))
    items = rng.integers(0, 300, n)
    scores = rng.choice([-np.inf, -1.5, -0.0, 0.0, 0.25, 2.0, np.inf], n)
    scores[::7] = rng.standard_normal(n)[::7].astype(np.float32)
    if kind == "float64":
        scores[::5] += 1e-12  # not a float32 value
    if kind == "wide":
        items = items + (1 << 40)
    want = np.lexsort((items, -scores, rows))
    np.testing.assert_array_equal(list_order(rows, scores, items), want)


def test_score_entries_of_scores_each_batch_once_for_every_list_set() -> None:
    """uni100 and pop100 lists of the same users: one score call per batch of users,
    and each set's entries as score_entries gives them alone (NaN -> -inf)."""
    from kuairec.pipeline.sections.validity.estimators import score_entries, score_entries_of

    n_items, n_users = 200, 7
    rng = np.random.default_rng(2)
    positives = _csr([[1, 2], [3], [4, 5, 6], [7], [8], [9, 10], [11]], n_items)
    logged = _csr([[1, 2, 30], [3], [4, 5, 6], [7], [8], [9, 10], [11]], n_items)
    users, cand = np.arange(100, 100 + n_users), np.arange(n_items)
    uni = sampled_lists(users, positives, logged, cand, None, 100, seed=1)
    pop = sampled_lists(users, positives, logged, cand, rng.random(n_items) + 0.1, 100, seed=1)
    table = rng.standard_normal((200, n_items))
    table[100, 5] = np.nan
    calls = []

    def score(batch):
        calls.append(batch.size)
        return table[batch]

    both = score_entries_of(score, [uni, pop], batch=3)
    assert calls == [3, 3, 1]
    for got, ls in zip(both, (uni, pop), strict=True):
        assert got.dtype == np.float64  # float64 scores keep their precision
        np.testing.assert_array_equal(got, score_entries(lambda b: table[b], ls, batch=3))
        want = table[np.repeat(ls.users, np.diff(ls.starts)), ls.items]
        np.testing.assert_array_equal(got, np.where(np.isnan(want), -np.inf, want))


def test_the_ranking_pass_fills_the_sampled_lists_without_scoring_anyone_twice() -> None:
    """The section ranks its users with top_candidates and hands each score block to an
    EntryGatherer: users without a list among them, batches that do not follow the lists.
    Every user is scored once, and the entries are those score_entries gives."""
    from kuairec.errors import ConfigError
    from kuairec.models.base import top_candidates
    from kuairec.pipeline.sections.validity.estimators import EntryGatherer, score_entries

    n_items = 200
    rng = np.random.default_rng(3)
    positives = _csr([[1, 2], [3], [4, 5, 6], [7], [8]], n_items)
    logged = _csr([[1, 2, 30], [3], [4, 5, 6], [7], [8]], n_items)
    listed = np.array([101, 104, 105, 108, 111])
    ranked = np.arange(100, 112)  # 7 of them have no list
    cand = np.arange(n_items)
    uni = sampled_lists(listed, positives, logged, cand, None, 100, seed=1)
    pop = sampled_lists(listed, positives, logged, cand, rng.random(n_items) + 0.1, 100, 1)
    table = rng.standard_normal((200, n_items)).astype(np.float32)
    table[104, 5] = np.nan
    scored: list[np.ndarray] = []

    def score(batch):
        scored.append(batch)
        return table[batch]

    gather = EntryGatherer(ranked, [uni, pop])
    with pytest.raises(ConfigError, match="never scored"):
        gather.result()
    exclude = sp.csr_matrix((ranked.size, n_items), dtype=bool)
    top = top_candidates(score, ranked, exclude, cand, 10, batch_size=5, on_block=gather)
    np.testing.assert_array_equal(np.concatenate(scored), ranked)  # each user once
    np.testing.assert_array_equal(top, np.argsort(-table[ranked], axis=1, kind="stable")[:, :10])
    for got, ls in zip(gather.result(), (uni, pop), strict=True):
        assert got.dtype == np.float32  # float32 blocks: no float64 copy of every entry
        np.testing.assert_array_equal(got, score_entries(lambda b: table[b], ls, batch=2))
    with pytest.raises(ConfigError, match="in order"):
        EntryGatherer(ranked[::-1][:6], [uni])  # 101 is not among them
