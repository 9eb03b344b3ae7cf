"""The dataset report's numbers against hand computations."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from kuairec.data.dataset import IdMap, Interactions
from kuairec.eda import side as sd
from kuairec.eda import stats as st


def _inter(users, items, shape, wr=None) -> Interactions:
    wr = np.ones(len(users)) if wr is None else np.asarray(wr, dtype=np.float64)
    return Interactions.from_log(np.array(users), np.array(items), wr, None, shape)


def test_gini_hand_values_and_pairwise_definition(rng):
    assert st.gini(np.array([0, 0, 0, 1.0])) == pytest.approx(0.75)
    assert st.gini(np.full(7, 3.0)) == pytest.approx(0.0)
    x = rng.pareto(1.3, 400)
    mad = np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * x.mean())
    assert st.gini(x) == pytest.approx(mad, rel=1e-9)


def test_top_share_counts_ceil_of_fraction():
    x = np.arange(1, 101, dtype=float)  # 100 values: top 1% = {100}, top 10% = 91..100
    assert st.top_share(x, 0.01) == pytest.approx(100 / 5050)
    assert st.top_share(x, 0.10) == pytest.approx(sum(range(91, 101)) / 5050)
    assert st.top_share(np.array([5.0, 1.0, 1.0]), 0.01) == pytest.approx(5 / 7)  # at least 1


def test_lorenz_endpoints_and_convexity(rng):
    x, y = st.lorenz(rng.pareto(1.0, 1000), points=50)
    assert (x[0], y[0]) == (0.0, 0.0) and x[-1] == pytest.approx(1) and y[-1] == pytest.approx(1)
    assert np.all(y <= x + 1e-12)


def test_popularity_counts_repeated_views():
    # item 0: 3 views from 2 users, item 1: 1 view, item 2 never viewed
    inter = _inter([0, 0, 1, 1], [0, 0, 0, 1], (2, 3))
    pop = st.popularity(inter)
    assert pop.views.tolist() == [3, 1, 0]
    assert (pop.n_items, pop.zero_items) == (2, 1)
    assert pop.top1 == pytest.approx(0.75)
    # over the viewed items (3, 1): sum |x_i - x_j| = 4, / (2 n^2 mean) = 4 / 16
    assert pop.gini == pytest.approx(0.25)


def test_density_grid_sorts_by_activity():
    # pattern (rows = users 0..2): user 2 has 3 items, user 0 has 2, user 1 has 1
    inter = _inter([2, 2, 2, 0, 0, 1], [1, 0, 2, 1, 0, 1], (3, 3))
    g = st.density_grid(inter, bins=3, block=0.3)
    # sorted: users (2, 0, 1), items by popularity (1: 3 users, 0: 2, 2: 1)
    assert g.grid.tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 0]]
    assert g.density == pytest.approx(6 / 9)
    assert (g.top_block, g.bottom_block) == (1.0, 0.0)
    coarse = st.density_grid(inter, bins=2)  # 3 -> 2 bins: sizes (2, 1) and (2, 1)
    assert coarse.grid[0, 0] == pytest.approx(4 / 4) and coarse.grid[1, 1] == 0.0
    assert coarse.grid[0, 1] == pytest.approx(1 / 2)


def test_label_rates_hand_example():
    d0, d1 = [1000, 2000, 3000, 4000, 5000], [12000, 20000, 50000, 80000, 100000]
    wr = np.array([0.5, 1, 1.5, 2.5, 3, 0.1, 0.2, 0.3, 0.4, 5])
    dur = np.array(d0 + d1, dtype=float)
    edges = st.duration_edges(dur, 2)
    assert edges == pytest.approx([1000, 10000, 100000])
    r = st.label_rates(wr, dur, edges)
    # cut-offs: 0.8 quantile (linear) of each bucket: 2.5 + 0.2 * 0.5, 0.4 + 0.2 * 4.6
    assert r.thresholds == pytest.approx([2.6, 1.32])
    assert r.per_bucket[0].tolist() == pytest.approx([0.4, 0.2])  # wr > 2
    assert r.per_bucket[1].tolist() == pytest.approx([0.8, 0.2])  # wr >= 1
    assert r.per_bucket[2].tolist() == pytest.approx([0.2, 0.2])  # duration-aware
    assert r.overall.tolist() == pytest.approx([0.3, 0.5, 0.2])
    # given cut-offs (the training matrix's) are applied as they are
    test = st.label_rates(
        np.array([2.7, 2.0, 1.5]), np.array([1500.0, 1500, 30000]), edges, thresholds=r.thresholds
    )
    assert test.per_bucket[2].tolist() == pytest.approx([0.5, 1.0])


def test_duration_profile_quantiles():
    dur = np.array([1000.0] * 4 + [100000.0] * 2)
    wr = np.array([1.0, 2.0, 3.0, 4.0, 0.5, 0.7])
    p = st.duration_profile(wr, dur, n_buckets=2)
    assert p.rows.tolist() == [4, 2]
    assert p.q[0.5].tolist() == pytest.approx([2.5, 0.6])
    assert p.above2.tolist() == pytest.approx([0.5, 0.0])


def test_activity_by_hour_is_beijing_time():
    ts = np.array([0.0, 16 * 3600.0, 16 * 3600.0 - 1, np.nan])  # 08:00, 00:00, 23:59 UTC+8
    hours = st.activity_by_hour(ts)
    assert hours.sum() == 3 and hours[8] == 1 and hours[0] == 1 and hours[23] == 1


def test_activity_by_day_counts_and_skips_missing():
    days, counts = st.activity_by_day(np.array([20200705, 20200801, 20200705, np.nan]))
    assert days == [dt.date(2020, 7, 5), dt.date(2020, 8, 1)]
    assert counts.tolist() == [2, 1]


def test_log_histogram_clips_into_range():
    edges, counts = st.log_histogram(np.array([0.0, 1e-9, 0.5, 5.0, 1e9]), 1e-3, 1e3, 6)
    assert edges == pytest.approx([1e-3, 1e-2, 1e-1, 1, 10, 100, 1e3])
    assert counts.tolist() == [1, 0, 1, 1, 0, 1]  # the zero is dropped


def test_spearman_matches_scipy(rng):
    from scipy.stats import spearmanr

    a, b = rng.normal(size=200), rng.normal(size=200)
    b[:50] = a[:50] * 3
    a[7] = np.nan
    ok = np.isfinite(a)
    assert sd.spearman(a, b) == pytest.approx(spearmanr(a[ok], b[ok]).statistic)


def test_tag_popularity_counts_multi_tag_videos_once_per_tag():
    tags = sp.csr_matrix(np.array([[1, 0, 1], [0, 0, 1], [0, 0, 0]]))
    ts = sd.tag_popularity(tags, np.array([10.0, 5.0, 7.0]))
    assert ts.videos.tolist() == [1, 0, 2]
    assert ts.views.tolist() == [10, 0, 15]
    assert (ts.n_tagged, ts.n_multi, ts.n_items) == (2, 1, 3)


def test_category_popularity_shares_and_order():
    cap = pl.DataFrame(
        {
            "item_idx": [0, 1, 2, 3],
            "first_level_category_id": [5, 5, 7, -124],
            "first_level_category_name": ["a", "a", "b", "UNKNOWN"],
        }
    )
    cat = sd.category_popularity(cap, np.array([1.0, 2.0, 6.0, 1.0]))
    assert cat["id"].to_list() == [7, 5, -124]
    assert cat["videos"].to_list() == [1, 2, 1]
    assert cat["view_share"].to_list() == pytest.approx([0.6, 0.3, 0.1])
    assert cat["name"].to_list() == ["b", "a", "UNKNOWN"]


def test_user_activity_aligns_by_user_id_and_groups_degrees():
    users = IdMap(np.array([10, 20, 30, 40]), "user_id")
    frame = pl.DataFrame(
        {
            "user_id": [40, 10, 20, 30],
            "user_active_degree": ["high", "low", "high", "high"],
            "register_days": [4, 1, 2, 3],
        }
    )
    activity = np.array([5, 50, 500, 5000])  # per user_idx: 10, 20, 30, 40
    us = sd.user_activity(frame, users, activity)
    assert us.degrees == ["high", "low"] and us.users.tolist() == [3, 1]
    assert sorted(us.activity[0].tolist()) == [50, 500, 5000]
    assert us.correlations["register_days"] == pytest.approx(1.0)


def test_daily_correlations_finds_aggregated_columns():
    n = 50
    play = np.arange(1, n + 1, dtype=float)
    frame = pl.DataFrame(
        {
            "item_idx": np.arange(n),
            "play_cnt_sum": play,
            "complete_play_cnt_sum": play**2 / n,
            "mean_play_progress": -play,
            "mostly_null": [None] * n,
        }
    )
    d = sd.daily_correlations(frame, views=play[::-1].copy())
    assert set(d.names) == {
        "play_cnt",
        "complete_play_cnt",
        "play_progress",
        "big_views",
        "complete_play_rate",
    }
    pos = {k: i for i, k in enumerate(d.names)}
    assert d.corr[pos["play_cnt"], pos["play_progress"]] == pytest.approx(-1.0)
    assert d.corr[pos["play_cnt"], pos["big_views"]] == pytest.approx(-1.0)
    assert d.complete_rate == pytest.approx(play / n)


def test_social_degrees_and_activity_split():
    adj = sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0], [0, 0, 0]]))
    ss = sd.social_degrees(adj, np.array([10, 30, 4]))
    assert ss.degree.tolist() == [2, 1, 0] and ss.with_friends == 2
    assert (ss.median_activity_with, ss.median_activity_without) == (20.0, 4.0)


def test_summary_rows_flattens_nested_dicts():
    rows = sd.summary_rows({"big": {"rows": 3, "users": {"n": 2}}, "dups": 1})
    assert rows == [("big.rows", 3), ("big.users.n", 2), ("dups", 1)]
