"""The two-stage model's parts on hand-made cases whose every value is worked out by
hand: the union and ranks of retrievers' lists, the cut at T, the feature windows, the
groups, the ranker on a toy where one feature decides, the final scores."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec.data.dataset import DailyStats, IdMap, Interactions, TrainSet
from kuairec.errors import ConfigError
from kuairec.models import create_model
from kuairec.models.params import config_from_dict

pytest.importorskip("lightgbm")

from kuairec.models.two_stage.features import build_context, label_rule  # noqa: E402
from kuairec.models.two_stage.item_features import daily_columns, item_block  # noqa: E402
from kuairec.models.two_stage.model import TwoStageRecommender, _with_fallback  # noqa: E402
from kuairec.models.two_stage.ranker import (  # noqa: E402
    RankData,
    assign_roles,
    groups_of,
    held_out_ndcg,
    ndcg_at_k,
    prior_of,
    search,
)
from kuairec.models.two_stage.retrieval import Candidates, retrieve  # noqa: E402
from kuairec.models.two_stage.split import cut_at  # noqa: E402

DAY = 86_400.0
T0 = 1_600_000_000.0  # an arbitrary origin (unix seconds)


# ---------------------------------------------------------------- retrieval


def _scorer(table: np.ndarray):
    return lambda rows: table[rows]


def test_union_and_ranks_of_two_retrievers() -> None:
    a = np.array([[5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5]], np.float32)
    b = np.array([[0, 0, 9, 8, 0, 0], [9, 0, 0, 0, 0, 8]], np.float32)
    seen = sp.csr_matrix(([1.0], ([0], [0])), shape=(2, 6))  # row 0 has seen item 0
    cand = retrieve([("a", _scorer(a)), ("b", _scorer(b))], seen, 2)
    # row 0: a proposes 1, 2 (item 0 is seen), b proposes 2, 3; row 1: a 5, 4; b 0, 5
    assert cand.rows.tolist() == [0, 0, 0, 1, 1, 1]
    assert cand.items.tolist() == [1, 2, 3, 0, 4, 5]
    assert cand.scores[:, 0].tolist() == [4, 3, 2, 0, 4, 5]  # every retriever scores all
    assert cand.scores[:, 1].tolist() == [0, 9, 8, 9, 0, 8]
    assert cand.ranks[:, 0].tolist() == [0, 1, 2, 2, 1, 0]  # 2 = not in a's list
    assert cand.ranks[:, 1].tolist() == [2, 0, 1, 0, 2, 1]
    assert cand.counts().tolist() == [3, 3]
    assert cand.proposed_by("b").tolist() == [False, True, True, True, False, True]


def test_a_retriever_without_history_scoring_proposes_nothing() -> None:
    a = np.array([[3, 2, 1]], np.float32)
    seen = sp.csr_matrix((1, 3))
    cand = retrieve([("a", _scorer(a)), ("b", None)], seen, 1, keep_first=True)
    assert cand.items.tolist() == [0]
    assert np.isnan(cand.scores[:, 1]).all() and np.isnan(cand.ranks[:, 1]).all()
    assert cand.first_scores.tolist() == [[3, 2, 1]]


def test_fewer_unseen_items_than_n_give_shorter_lists() -> None:
    a = np.array([[1, 2, 3]], np.float32)
    seen = sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, 2])), shape=(1, 3))
    cand = retrieve([("a", _scorer(a))], seen, 5)
    assert cand.items.tolist() == [1] and cand.ranks[:, 0].tolist() == [0]


# ---------------------------------------------------------------- the cut at T


def _log(rows: list[tuple[int, int, float, float]], shape=(3, 5)) -> Interactions:
    u, i, t, w = (np.array(c) for c in zip(*rows, strict=True))
    return Interactions.from_log(u, i, w, t, shape)


def _train(inter: Interactions, **side) -> TrainSet:
    n_users, n_items = inter.shape
    return TrainSet(inter, IdMap(np.arange(n_users)), IdMap(np.arange(n_items)), **side)


def test_labels_come_after_t_and_straddling_pairs_are_in_neither_part() -> None:
    inter = _log([
        (0, 0, T0, 3.0),
        (0, 1, T0 + 25 * DAY, 3.0),  # first seen after T: a target
        (0, 2, T0 + 10 * DAY, 1.0), (0, 2, T0 + 26 * DAY, 4.0),  # straddles T
        (1, 0, T0 + 24 * DAY, 0.5),  # a target
        (1, 3, np.nan, 1.0),  # no time: history
        (2, 4, T0 + 30 * DAY, 2.5),  # the last first view: T is 7 days before it
        (2, 0, T0 + 5 * DAY, 1.0),
    ])  # fmt: skip
    cut = cut_at(_train(inter), holdout_days=7.0)
    assert cut.kind == "temporal" and cut.cutoff == T0 + 23 * DAY
    assert cut.n_straddling == 1
    t = cut.targets.toarray()
    assert {(u, i): t[u, i] for u, i in zip(*np.nonzero(t), strict=True)} == {
        (0, 1): 3.0, (1, 0): 0.5, (2, 4): 2.5,
    }  # fmt: skip
    hist = cut.history.interactions.csr("ones").toarray()
    assert sorted(zip(*np.nonzero(hist), strict=True)) == [(0, 0), (1, 3), (2, 0)]
    seen = cut.seen.toarray()  # the straddling pair was seen before T: never a candidate
    assert sorted(zip(*np.nonzero(seen), strict=True)) == [(0, 0), (0, 2), (1, 3), (2, 0)]
    assert cut.target_users.tolist() == [0, 1, 2]


def test_without_timestamps_the_targets_are_a_seeded_random_share() -> None:
    u = np.repeat(np.arange(3), 10)
    i = np.tile(np.arange(10), 3)
    inter = Interactions.from_log(u, i, np.ones(30), None, (3, 10))
    a, b = cut_at(_train(inter), 7.0, seed=1), cut_at(_train(inter), 7.0, seed=1)
    assert a.kind == "random" and math.isinf(a.cutoff)
    assert np.diff(a.targets.indptr).tolist() == [2, 2, 2]  # 20% of each user's 10 pairs
    assert (a.targets != b.targets).nnz == 0
    assert (a.targets != cut_at(_train(inter), 7.0, seed=2).targets).nnz > 0
    assert a.history.interactions.nnz == 24 and a.seen.nnz == 24


def test_the_per_user_cut_holds_out_each_users_last_pairs() -> None:
    # user 0 rates 10 items on day 0, user 1 five on day 100, users 2-22 one item each:
    # only user 1 of 23 has pairs in the last 7 days (< a tenth), so "auto" cuts per user
    rows = [(0, i, T0 + i, 1.0) for i in range(10)]
    rows += [(1, i, T0 + 100 * DAY + i, 3.0) for i in range(5)]
    rows += [(u, 0, T0, 1.0) for u in range(2, 23)]
    train = _train(_log(rows, shape=(23, 10)))
    cut = cut_at(train, 7.0, mode="auto")
    assert cut.kind == "user" and math.isinf(cut.cutoff)
    assert cut.targets[0].indices.tolist() == [8, 9]  # the last 20% of 10, by time
    assert cut.targets[1].indices.tolist() == [4]  # floor(0.2 * 5) = 1
    assert cut.targets[2].nnz == 0  # a single pair stays history
    assert cut.history.interactions.nnz == 33 and cut.n_straddling == 0
    by_time = cut_at(train, 7.0, mode="time")
    assert by_time.kind == "temporal" and by_time.target_users.tolist() == [1]


# ---------------------------------------------------------------- feature windows


def _daily(rows: list[tuple[int, int, float, float]], n_items: int, upload=None) -> DailyStats:
    """(item, day, show_cnt, like_cnt) rows; every other count = show_cnt / 2."""
    item, day, show, like = (np.array(c) for c in zip(*rows, strict=True))
    cols = ("show_cnt", "play_cnt", "complete_play_cnt", "valid_play_cnt", "play_duration",
            "like_cnt", "comment_cnt", "follow_cnt", "share_cnt")  # fmt: skip
    values = np.column_stack([show, *[show / 2] * 4, like, *[show / 2] * 3]).astype(np.float32)
    up = np.full(n_items, np.nan) if upload is None else np.asarray(upload, float)
    return DailyStats(item.astype(np.int32), day.astype(np.int32), values, cols, up)


def test_a_daily_statistic_dated_after_the_cutoff_never_enters() -> None:
    cutoff = T0 + 0.5 * DAY
    last = DailyStats.last_day_ended_by(cutoff)
    rows = [(0, last - 1, 10, 1), (0, last, 10, 1)]
    after = _daily([*rows, (0, last + 1, 1000, 500)], 1)
    before = _daily(rows, 1)
    a, b = daily_columns(after, 1, cutoff), daily_columns(before, 1, cutoff)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.values[0, a.names.index("item_show_log1p")] == pytest.approx(math.log1p(20))
    assert a.values[0, a.names.index("item_like_rate")] == pytest.approx(2 / 20)
    moved = daily_columns(after, 1, cutoff + DAY)  # one day later the row is over: it counts
    assert moved.values[0, moved.names.index("item_show_log1p")] == pytest.approx(math.log1p(1020))


def test_windowed_daily_columns_by_hand() -> None:
    cutoff = T0
    d = DailyStats.last_day_ended_by(cutoff)
    # item 0: 7 recent days of 10 shows, the 7 before of 30; uploaded 20 days before d + 1
    rows = [(0, d - k, 10, 1) for k in range(7)] + [(0, d - 7 - k, 30, 0) for k in range(7)]
    block = daily_columns(_daily(rows, 2, upload=[d - 19, np.nan]), 2, cutoff)
    col = dict(zip(block.names, block.values.T, strict=True))
    assert col["item_show_7d_log1p"][0] == pytest.approx(math.log1p(70))
    assert col["item_trend_7d"][0] == pytest.approx(math.log(71 / 211))
    assert col["item_like_rate_7d"][0] == pytest.approx(7 / 70)
    assert col["item_age_days"][0] == 20 and col["item_days_since_first_show"][0] == 14
    assert np.isnan(col["item_play_rate"][1])  # no row: undefined, not 0
    assert np.isnan(col["item_age_days"][1])


def test_log_columns_by_hand() -> None:
    from kuairec.models.two_stage.item_features import log_columns

    c = T0 + 30 * DAY
    inter = _log([
        (0, 0, c - 8 * DAY, 3.0), (1, 0, c - 6 * DAY, 1.0), (2, 0, c - DAY, 9.0),
        (0, 1, c - 20 * DAY, 0.5),
    ], shape=(3, 3))  # fmt: skip
    positive = inter.watch_ratio_mean > 2
    block = log_columns(inter, positive, c)
    col = dict(zip(block.names, block.values.T, strict=True))
    assert col["item_viewers_log1p"].tolist() == pytest.approx([math.log(4), math.log(2), 0])
    assert col["item_viewers_7d_log1p"].tolist() == pytest.approx([math.log(3), 0, 0])
    assert col["item_pos_rate"][:2].tolist() == pytest.approx([2 / 3, 0])
    assert col["item_mean_wr"][0] == pytest.approx((3 + 1 + 5) / 3)  # 9 clipped at 5
    assert np.isnan(col["item_pos_rate"][2]) and np.isnan(col["item_mean_wr"][2])


def test_an_upload_after_the_cutoff_is_unknown_at_the_cutoff() -> None:
    d = DailyStats.last_day_ended_by(T0)
    block = daily_columns(_daily([(0, d, 5, 0)], 1, upload=[d + 3]), 1, T0)
    assert np.isnan(block.values[0, block.names.index("item_age_days")])


def _timed_train(n_users=100, n_items=6, days=40, seed=0) -> TrainSet:
    rng = np.random.default_rng(seed)
    u = rng.integers(0, n_users, 300)
    i = rng.integers(0, n_items, 300)
    t = T0 + rng.uniform(0, days, 300) * DAY
    inter = Interactions.from_log(u, i, rng.exponential(1.5, 300), t, (n_users, n_items))
    first = DailyStats.day_of(T0)
    rows = [(it, first + k, 10 + 3 * k + it, k % 4) for it in range(n_items) for k in range(days)]
    daily = _daily(rows, n_items, upload=[first - 5 + 4 * it for it in range(n_items)])
    return _train(inter, daily=daily, video_duration=np.linspace(2000, 9000, n_items))


TIME_WINDOWED = (
    "item_show_log1p", "item_show_7d_log1p", "item_like_rate_7d", "item_trend_7d",
    "item_age_days", "item_days_since_first_show", "item_viewers_log1p",
    "item_viewers_7d_log1p",
)  # fmt: skip


def test_shifting_t_moves_every_feature_window() -> None:
    train = _timed_train()
    blocks = {}
    for holdout in (7.0, 4.0):  # T, then T three days later
        cut = cut_at(train, holdout)
        rule = label_rule("wr>2", cut.history.interactions, train.video_duration)
        ctx = build_context(cut.history, cut.cutoff, rule)
        # nothing after T is read: the same block from daily rows physically cut at T
        last = DailyStats.last_day_ended_by(cut.cutoff)
        d = train.daily
        keep = d.day <= last
        cut_daily = dataclasses.replace(d, item_idx=d.item_idx[keep], day=d.day[keep],
                                        values=d.values[keep])  # fmt: skip
        inter = cut.history.interactions
        positive = rule.positive(inter.watch_ratio_mean.astype(float), inter.indices)
        same = item_block(cut_daily, inter, positive, train.video_duration, cut.cutoff)
        np.testing.assert_array_equal(ctx.items.values, same.values)
        assert ctx.history.nnz == inter.nnz and (inter.last_timestamp <= cut.cutoff).all()
        blocks[holdout] = dict(zip(ctx.items.names, ctx.items.values.T, strict=True))
    for name in TIME_WINDOWED:  # and every windowed column moves with T
        assert not np.array_equal(blocks[7.0][name], blocks[4.0][name], equal_nan=True), name
    static = "item_duration_log1p_s"  # a property of the video, not of time
    assert np.array_equal(blocks[7.0][static], blocks[4.0][static])


def test_missing_side_tables_drop_their_columns_with_notes() -> None:
    train = _train(_log([(0, 0, T0, 3.0), (1, 1, T0 + DAY, 1.0)], shape=(2, 2)))
    rule = label_rule("wr>2", train.interactions, None)
    ctx = build_context(train, T0 + 2 * DAY, rule)
    assert not [n for n in ctx.items.names if n.startswith(("item_show", "item_duration"))]
    notes = " ".join(ctx.notes)
    for file in ("item_daily_features.csv", "kuairec_caption_category.csv",
                 "item_categories.csv", "social_network.csv", "user_features.csv"):  # fmt: skip
        assert file in notes or file in " ".join(ctx.profile.notes), file
    assert ctx.category is None and ctx.tags is None and ctx.social is None


# ---------------------------------------------------------------- labels and groups


def test_label_rules() -> None:
    inter = _log([(0, 0, T0, 2.0), (0, 1, T0, 1.0)], shape=(1, 2))
    items = np.array([0, 1, 0])
    assert label_rule("wr>2", inter, None).positive(np.array([2.0, 2.1, 3.0]), items).tolist() == [
        False, True, True,
    ]  # fmt: skip
    ge1 = label_rule("wr>=1", inter, None)
    assert ge1.positive(np.array([1.0, 0.99, 5.0]), items).tolist() == [True, False, True]
    graded = label_rule("graded", inter, None)
    assert graded.relevance(np.array([0.5, 2.7, 9.0]), items).tolist() == [0, 2, 5]


def test_duration_label_agrees_with_the_evaluation() -> None:
    from kuairec.evaluation.labels import label_values
    from kuairec.evaluation.protocols import TestSet

    rng = np.random.default_rng(3)
    n_items = 40
    inter = Interactions.from_log(rng.integers(0, 30, 600), rng.integers(0, n_items, 600),
                                  rng.exponential(1.0, 600), None, (30, n_items))  # fmt: skip
    duration = rng.uniform(1_000, 60_000, n_items)
    rule = label_rule("duration", inter, duration)
    rel = sp.csr_matrix(rng.exponential(1.0, (2, n_items)))
    test = TestSet(np.array([0, 1]), np.arange(n_items), rel, sp.csr_matrix((2, n_items)))
    expected = label_values("duration", test, inter, duration)
    got = rule.positive(test.relevance.data, test.relevance.indices)
    np.testing.assert_array_equal(got, expected > 0)


def test_groups_keep_only_users_with_a_ranking_signal() -> None:
    user = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    label = np.array([1, 0, -1, 0, 0, 1, -1, 0])  # -1: never exposed after T
    rows, sizes = groups_of(user, label, np.arange(8))
    assert rows.tolist() == [0, 1, 5, 7] and sizes.tolist() == [2, 2]  # user 1: all negative
    rows, sizes = groups_of(user, label, np.array([3, 4]))
    assert rows.size == 0 and sizes.size == 0


def test_roles_are_seeded_halves_of_the_held_out_share() -> None:
    roles = assign_roles(np.arange(100), 0.3, seed=4)
    assert np.bincount(roles).tolist() == [70, 15, 15]
    assert np.array_equal(roles, assign_roles(np.arange(100), 0.3, seed=4))
    assert not np.array_equal(roles, assign_roles(np.arange(100), 0.3, seed=5))


def test_ndcg_counts_the_positives_the_candidates_missed() -> None:
    data = RankData(
        x=np.array([[0.1], [0.9], [0.5]], np.float32), names=("f",),
        user=np.array([0, 0, 0]), item=np.array([0, 1, 2]), label=np.array([1, 0, 1]),
        ideal={0: np.array([1, 1, 1])},  # a third positive was not retrieved
    )  # fmt: skip
    got = ndcg_at_k(data, np.arange(3), np.array([0.1, 0.9, 0.5]))
    dcg = 1 / math.log2(3) + 1 / math.log2(4)  # order: item 1 (0), item 2 (1), item 0 (1)
    assert got.tolist() == pytest.approx([dcg / (1 + 1 / math.log2(3) + 1 / math.log2(4))])


def test_shown_ndcg_ranks_only_what_each_user_was_shown() -> None:
    """Among the shown candidates only, ideal from those rows: user 0's unshown video
    (scored first) and its missed positive do not count; user 1 has no shown positive."""
    from kuairec.models.two_stage.ranker import shown_ndcg

    data = RankData(
        x=np.zeros((6, 1), np.float32), names=("f",),
        user=np.array([0, 0, 0, 0, 1, 1]), item=np.array([0, 1, 2, 3, 4, 5]),
        label=np.array([0, 2, 0, 1, 0, 0]),  # after the unexposed rule: item 2 unshown
        ideal={0: np.array([2, 1, 1]), 1: np.array([1])},
        shown=np.array([True, True, False, True, True, False]),
    )  # fmt: skip
    got = shown_ndcg(data, np.arange(6), np.array([0.5, 0.2, 0.9, 0.7, 0.1, 0.3]))
    # user 0, shown: items 0 (0.5, gain 0), 3 (0.7, 1), 1 (0.2, 2) -> order 3, 0, 1
    dcg = 1 / math.log2(2) + 2 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert got[0] == pytest.approx(dcg / ideal)
    assert math.isnan(got[1])
    # the rows argument is honoured: user 0's rows without item 3
    only = shown_ndcg(data, np.array([0, 1, 2]), np.array([0.5, 0.2, 0.9]))
    assert only.tolist() == pytest.approx([(2 / math.log2(3)) / 2.0])


# ---------------------------------------------------------------- the ranker


def _toy(n_users=300, per_user=10, seed=0) -> RankData:
    """Feature 0 decides: label 1 iff f0 > 0.7; features 1-2 are noise."""
    rng = np.random.default_rng(seed)
    x = rng.random((n_users * per_user, 3)).astype(np.float32)
    label = (x[:, 0] > 0.7).astype(np.int32)
    user = np.repeat(np.arange(n_users), per_user)
    ideal = {u: label[user == u] for u in range(n_users)}
    return RankData(x, ("f0", "f1", "f2"), user, np.tile(np.arange(per_user), n_users),
                    label, ideal)  # fmt: skip


def _cfg(**values):
    return config_from_dict(TwoStageRecommender, {"min_data_in_leaf": 5, **values})


def test_the_ranker_recovers_the_feature_that_decides() -> None:
    data = _toy()
    choice = search(data, _cfg(n_trials=1, max_rounds=50))
    booster = choice.booster
    assert choice.decision == "defaults" and choice.users == {
        "train": 210, "selection": 45, "confirmation": 45,
    }  # fmt: skip
    gain = booster.feature_importance(importance_type="gain")
    assert gain[0] > 0.9 * gain.sum()
    sel = choice.row_roles == 1
    assert np.nanmean(held_out_ndcg(booster, data, sel)) == pytest.approx(1.0)
    grid = np.column_stack([np.linspace(0, 1, 21), np.full(21, 0.5), np.full(21, 0.5)])
    p = booster.predict(grid)
    assert p[grid[:, 0] > 0.75].min() > p[grid[:, 0] < 0.65].max()


def test_the_search_is_deterministic_and_keeps_defaults_without_a_clear_gain() -> None:
    data = _toy(seed=1)
    a = search(data, _cfg(n_trials=3, max_rounds=30))
    b = search(data, _cfg(n_trials=3, max_rounds=30))
    assert a.booster.model_to_string() == b.booster.model_to_string()
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert a.trials[0].params == {"num_leaves": 31, "min_data_in_leaf": 5, "learning_rate": 0.05}
    assert len({tuple(t.params.values()) for t in a.trials}) == 3
    # every trial is perfect on this toy: no gain over the defaults, so they stay
    assert a.chosen == 0 and a.decision == "defaults"


def test_the_ranker_is_the_same_with_one_thread_and_two() -> None:
    """The default runs two LightGBM threads (a fixed count); deterministic, row-wise
    histograms give the trees one thread gives, byte for byte (noisy labels, so the
    trees split on sums where a thread order could show)."""
    data = _toy(n_users=400, per_user=30, seed=2)
    rng = np.random.default_rng(3)
    data.label[:] = data.x[:, 0] + 0.5 * rng.standard_normal(data.label.size) > 0.7
    texts = [
        search(data, _cfg(n_trials=1, max_rounds=40, num_threads=t)).booster.model_to_string()
        for t in (1, 2)
    ]
    strip = [t.split("parameters:")[0] for t in texts]  # the text names num_threads
    assert strip[0] == strip[1]
    assert strip[0].count("Tree=") >= 5  # boosted for a while, not one stump


def test_boosting_starts_from_the_first_retrievers_order() -> None:
    assert prior_of(np.array([0, 1, 9, np.nan])).tolist() == pytest.approx(
        [0.0, -math.log(2), -math.log(10), -math.log1p(1e9)]
    )  # NaN: a row the first retriever did not score, below every ranked one
    data = _toy(seed=2)
    rank = np.tile(np.arange(10), 300).astype(float)  # the first retriever's positions
    data.item = 9 - rank.astype(np.int64)  # item order is the reverse of its order
    data.label[:] = (rank < 2).astype(np.int32)  # it is right: its top 2 are the positives
    data.ideal = {u: np.array([1, 1]) for u in range(300)}
    data.x[:] = 0.5  # and the features say nothing: no tree can split
    data.prior = prior_of(rank)
    choice = search(data, _cfg(n_trials=1, max_rounds=10))
    sel = choice.row_roles == 1
    assert np.nanmean(held_out_ndcg(choice.booster, data, sel)) == pytest.approx(1.0)
    data.prior = None  # the same booster alone: every score ties, ties go by item index
    assert np.nanmean(held_out_ndcg(choice.booster, data, sel)) < 0.5


def test_no_signal_leaves_no_ranker() -> None:
    data = _toy()
    data.label[:] = 0
    choice = search(data, _cfg(n_trials=1, max_rounds=5))
    assert choice.booster is None and choice.decision == "none"


# ---------------------------------------------------------------- final scores


def test_candidates_rank_above_the_rest_ties_by_the_first_retriever() -> None:
    first = np.array([[0.1, 0.3, 0.2, 0.9, 0.5], [0.0, 0.0, 1.0, 0.0, 0.0]], np.float32)
    cand = Candidates(
        rows=np.array([0, 0, 0, 1]), items=np.array([1, 3, 4, 2]),
        scores=np.zeros((4, 1), np.float32), ranks=np.zeros((4, 1), np.float32),
        names=("a",), n_rows=2, n_candidates=3, first_scores=first,
    )  # fmt: skip
    out = _with_fallback(cand, np.array([2.0, 1.0, 2.0, 0.5]))
    # row 0: items 1 and 4 tie at 2.0; the first retriever prefers 4 (0.5 > 0.3)
    assert out[0, [4, 1, 3]].tolist() == [4.0, 3.0, 2.0]
    assert 0 <= out[0, 0] < out[0, 2] < 1  # the rest in the first retriever's order
    assert out[1, 2] == 2.0 and (out[1, [0, 1, 3, 4]] == 0).all()


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"feature_groups": ["item", "nope"]}, "feature_groups"),
        ({"feature_groups": []}, "feature_groups"),
        ({"label": "likes"}, "unknown label"),
        ({"unexposed": "maybe"}, "unexposed"),
        ({"n_candidates": 0}, "n_candidates"),
    ],
)
def test_bad_config_is_refused(values, message) -> None:
    with pytest.raises(ConfigError, match=message):
        create_model("two_stage", values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"retrievers": ["ease", "ease"]}, "repeats"),
        ({"retrievers": ["eas"]}, "unknown model"),
        ({"retrievers": ["two_stage"]}, "its own retriever"),
        ({"retrievers": []}, "at least one"),
        ({"retriever_params": {"als": {"factors": 3}}}, "not retrieving"),
        ({"retriever_params": {"ease": {"l2": -1}}}, "l2"),
    ],
)
def test_bad_retrievers_are_refused_before_any_work(values, message) -> None:
    model = create_model("two_stage", values)
    train = _timed_train()
    with pytest.raises(ConfigError, match=message):
        model.fit(train)


def test_non_finite_values_are_saved_as_finite_arrays_and_codes() -> None:
    from kuairec.models.two_stage.features import pack, unpack

    arr = np.array([[1.5, np.nan], [np.inf, -np.inf]], np.float32)
    state = pack("x", arr)
    assert set(state) == {"x", "x_nonfinite"} and np.isfinite(state["x"]).all()
    np.testing.assert_array_equal(unpack("x", state), arr)
    assert set(pack("y", np.ones(3))) == {"y"}  # finite arrays are saved as they are
