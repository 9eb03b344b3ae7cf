"""Side-data sections of the dataset report degrade to notes, never errors."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from kuairec.data.dataset import IdMap, Interactions, KuaiRecDataset
from kuairec.display.html import use_agg
from kuairec.eda import side_sections as ss
from kuairec.eda.sections import Context, describe_tables, fmt, overview


@pytest.fixture
def ds() -> KuaiRecDataset:
    users, items = np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 0, 1, 2])
    big = Interactions.from_log(users, items, np.ones(6), None, (3, 3))
    small = Interactions.from_log(np.array([0]), np.array([2]), np.ones(1), None, (3, 3))
    return KuaiRecDataset(
        users=IdMap(np.array([5, 6, 7]), "user_id"),
        items=IdMap(np.array([1, 2, 3]), "video_id"),
        big=big,
        small=small,
        video_duration=np.array([1000.0, 2000.0, 3000.0]),
    )


def test_absent_side_fields_give_notes(ds):
    ctx = Context(ds)
    for build, file in (
        (ss.tags, "item_categories.csv"),
        (ss.categories, "kuairec_caption_category.csv"),
        (ss.users, "user_features.csv"),
        (ss.daily, "item_daily_features.csv"),
        (ss.social, "social_network.csv"),
    ):
        sec = build(ctx)
        assert sec.figures == []
        assert len(sec.notes) == 1 and f"({file} missing or empty)" in sec.notes[0]


def test_unusable_side_columns_give_notes(ds):
    ds.captions = pl.DataFrame({"item_idx": [0, 1, 2], "caption": ["a", "b", "c"]})
    ds.item_daily = pl.DataFrame({"item_idx": [0, 1, 2], "video_type": ["A", "B", "A"]})
    ds.user_features = pl.DataFrame({"other": [1, 2]})  # neither ids nor one row per user
    ds.social = sp.csr_matrix((3, 3))
    ctx = Context(ds)
    assert "no item_idx or first-level category" in ss.categories(ctx).notes[0]
    # big_views alone (from the matrix) is one usable column: not enough for correlations
    assert "Fewer than two usable numeric columns" in ss.daily(ctx).notes[0]
    assert "cannot be matched to users" in ss.users(ctx).notes[0]
    assert "social_network.csv missing or empty" in ss.social(ctx).notes[0]


def test_users_without_degree_column_still_plot_correlations(ds):
    use_agg()
    ds.user_features = pl.DataFrame({"user_id": [7, 5, 6], "register_days": [30, 10, 20]})
    sec = ss.users(Context(ds))
    # activity per user_idx: 2, 1, 3 videos; register_days per user_idx: 10, 20, 30
    assert len(sec.figures) == 1 and sec.figures[0].file_name == "users.png"
    assert sec.figures[0].caption == (
        "register_days has the strongest rank correlation with activity (Spearman rho = 0.50)."
    )


def test_overview_tables_by_hand(ds):
    # big: the fixture's 6 pairs plus a repeated view of (user 0, video 0): 7 rows
    users, items = np.array([0, 0, 0, 1, 2, 2, 2]), np.array([0, 0, 1, 1, 0, 1, 2])
    ds.big = Interactions.from_log(users, items, np.ones(7), None, (3, 3))
    ds.report.duplicates_dropped, ds.report.small_rows_without_time = 4, 1
    html = "".join(overview(Context(ds)).html)
    # users, videos, pairs, rows, pairs / (users x videos), rows / users
    assert "<tr><td>big</td><td>3</td><td>3</td><td>6</td><td>7</td><td>66.67%</td>" in html
    assert "<td>66.67%</td><td>2.333</td></tr>" in html
    assert "<tr><td>small</td><td>1</td><td>1</td><td>1</td><td>1</td><td>100.00%</td>" in html
    assert "<tr><td>exact duplicate rows dropped (big)</td><td>4</td></tr>" in html
    assert "<tr><td>small-matrix rows without time</td><td>1</td></tr>" in html


def test_describe_tables_put_big_before_small():
    summary = {
        "users": 3,
        "matrices": {"small": {"rows": 10, "wr": {"p50": 0.5}}, "big": {"rows": 1234}},
        "notes": ["x"],
    }
    general, head, per = describe_tables(summary)
    assert general == [["users", "3"]]
    assert head == ["field", "big", "small"]
    assert per == [["rows", "1,234", "10"], ["wr.p50", "", "0.5"]]


def test_fmt():
    assert [fmt(1234567), fmt(2.0), fmt(0.123456), fmt(np.int32(7)), fmt([]), fmt(None)] == [
        "1,234,567",
        "2",
        "0.1235",
        "7",
        "none",
        "None",
    ]
