"""Protocols: the TestSet contract, KuaiRec's protocol, temporal splits and the CSV loader."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec.data.dataset import IdMap, Interactions, KuaiRecDataset, TrainSet
from kuairec.errors import ConfigError, DataError
from kuairec.evaluation.protocols import (
    TestSet,
    default_protocol,
    load_interactions_csv,
    temporal_experiment,
    temporal_protocol,
)
from kuairec.evaluation.validation import temporal_holdout

DAY = 86_400.0


def _rows(m: sp.csr_matrix) -> list[list[int]]:
    return [m.indices[m.indptr[i] : m.indptr[i + 1]].tolist() for i in range(m.shape[0])]


def _pairs(inter: Interactions) -> set[tuple[int, int]]:
    return set(zip(inter.row_users().tolist(), inter.indices.tolist(), strict=True))


# ---------------------------------------------------------------- TestSet


def _ok_parts():
    rel = sp.csr_matrix(np.array([[0.0, 1.5, 0.0], [2.0, 0.0, 0.0]]))
    excl = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 1]], dtype=bool))
    return {
        "users": np.array([3, 7]),
        "candidates": np.array([0, 1]),
        "relevance": rel,
        "exclude": excl,
    }


def test_testset_accepts_consistent_parts_and_keeps_explicit_zeros():
    parts = _ok_parts()
    # user 3 watched item 0 with watch_ratio 0.0: an observed pair, stored as an explicit zero
    r = sp.csr_matrix((np.array([0.0, 1.5, 2.0]), np.array([0, 1, 0]), np.array([0, 2, 3])), (2, 3))
    excl = sp.csr_matrix((2, 3), dtype=bool)
    t = TestSet(np.array([3, 7]), np.array([0, 1]), r, excl)
    assert t.relevance.nnz == 3  # the observed wr = 0 pair stays
    users, items = t.pairs()
    assert users.tolist() == [3, 3, 7] and items.tolist() == [0, 1, 0]
    assert TestSet(**parts).candidate_mask.tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"users": np.array([7, 3])}, "users must be sorted"),
        ({"users": np.array([3])}, "relevance has 2 rows"),
        ({"candidates": np.array([0, 5])}, "out of range"),
        ({"candidates": np.array([1])}, "not candidates"),
        ({"relevance": np.zeros((2, 3))}, "must be a scipy sparse matrix"),
        ({"exclude": sp.csr_matrix((2, 4), dtype=bool)}, "exclude has shape"),
        ({"exclude": sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 0]], bool))}, "also excluded"),
        ({"relevance": sp.csr_matrix(np.array([[0, np.nan, 0], [1.0, 0, 0]]))}, "nan"),
        ({"relevance": sp.csr_matrix(np.array([[0, -1.0, 0], [1.0, 0, 0]]))}, ">= 0"),
    ],
)
def test_testset_refuses_inconsistent_parts(change, message):
    with pytest.raises(DataError, match=message):
        TestSet(**{**_ok_parts(), **change})


def test_testset_refuses_duplicate_entries():
    dup = sp.csr_matrix((np.array([1.0, 2.0]), np.array([1, 1]), np.array([0, 2, 2])), (2, 3))
    with pytest.raises(DataError, match="twice"):
        TestSet(**{**_ok_parts(), "relevance": dup})


# ---------------------------------------------------------------- KuaiRec's protocol


def _dataset(big_pairs, small_pairs, n_users=4, n_items=6) -> KuaiRecDataset:
    def inter(pairs):
        u, i = np.array(pairs).T
        wr = 0.5 + np.arange(len(pairs), dtype=float)
        return Interactions.from_log(u, i, wr, None, (n_users, n_items))

    return KuaiRecDataset(
        users=IdMap(np.arange(10, 10 + n_users), "user_id"),
        items=IdMap(np.arange(100, 100 + n_items), "video_id"),
        big=inter(big_pairs),
        small=inter(small_pairs),
        video_duration=np.full(n_items, 5000.0),
    )


BIG = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 3), (2, 0), (3, 2), (3, 3), (3, 4)]
SMALL = [(0, 3), (0, 5), (1, 0), (1, 2), (1, 5)]  # item 5 is never in training: cold


def test_default_protocol_excludes_training_pairs_and_keeps_cold_candidates():
    ds = _dataset(BIG, SMALL)
    train, test = default_protocol(ds)
    assert test.users.tolist() == [0, 1]  # the small matrix's users only
    assert test.candidates.tolist() == [0, 2, 3, 5]  # the small matrix's videos, cold 5 kept
    assert _rows(test.relevance) == [[3, 5], [0, 2, 5]]
    # small watch ratios in pair order: 0.5 .. 4.5
    assert test.relevance.data.tolist() == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert _rows(test.exclude) == [[0, 1, 2], [1, 3]]  # each user's training videos
    assert _pairs(train.interactions) == set(BIG)
    assert not _pairs(train.interactions) & set(SMALL)
    assert train.n_users == 4 and train.video_duration is ds.video_duration


def test_default_protocol_drops_small_pairs_found_in_training():
    ds = _dataset([*BIG, (0, 3)], SMALL)  # (0, 3) is a small pair: must not be trained on
    with pytest.warns(UserWarning, match="1 small-matrix pairs"):
        train, test = default_protocol(ds)
    assert (0, 3) not in _pairs(train.interactions)
    assert _pairs(train.interactions) == set(BIG)
    assert _rows(test.exclude)[0] == [0, 1, 2]


# ---------------------------------------------------------------- temporal holdout


def _train_set(u, i, ts, n_users, n_items) -> TrainSet:
    wr = np.linspace(0.1, 3.0, len(u))
    inter = Interactions.from_log(
        np.array(u), np.array(i), wr, np.array(ts, float), (n_users, n_items)
    )
    return TrainSet(inter, IdMap(np.arange(n_users)), IdMap(np.arange(n_items)))


def _random_train(rng, start: float, days: float, n=4000, n_users=60, n_items=90):
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    ts = start + rng.uniform(0, days * DAY, n)
    ts[rng.random(n) < 0.05] = np.nan  # some rows without time
    return _train_set(u, i, ts, n_users, n_items)


@pytest.mark.parametrize(("start", "days"), [(1.59e9, 60.0), (-3.0e8, 30.0), (4.1e9, 20.0)])
def test_temporal_holdout_never_leaks(rng, start, days):
    train = _random_train(rng, start, days)
    fit, test = temporal_holdout(train, holdout_days=7.0)
    inter = train.interactions
    ts = inter.first_timestamp
    cut = np.nanmax(ts) - 7 * DAY  # the span is >= 14 days here
    fit_ts = fit.interactions.first_timestamp
    assert np.nanmax(fit_ts) <= cut  # nothing from the last 7 days is fitted on
    # every pair without a timestamp stays in training
    assert np.isnan(fit_ts).sum() == np.isnan(ts).sum()
    # the fit part is exactly the pairs up to the cut (or without time)
    keep = ~(ts > cut)
    assert _pairs(fit.interactions) == {
        p for p, k in zip(sorted(_pairs(inter)), keep, strict=True) if k
    }
    # held-out pairs are after the cut and disjoint from the fit pairs
    users, items = test.pairs()
    held = set(zip(users.tolist(), items.tolist(), strict=True))
    assert not held & _pairs(fit.interactions)
    lookup = dict(zip(sorted(_pairs(inter)), ts, strict=True))
    assert min(lookup[p] for p in held) > cut
    # test users have earlier pairs; candidates are the fit items
    assert np.all(fit.interactions.user_counts()[test.users] > 0)
    assert test.candidates.tolist() == np.flatnonzero(fit.interactions.item_counts()).tolist()
    assert fit.users is train.users


def test_temporal_holdout_short_span_uses_last_20_percent():
    # user 0: 11 pairs on items 0..10 at days 0..10; user 1 watched items 9 and 10 on day 0
    # (so they are known items). Span 10 < 2 * 7 -> the cut is at 10 - 0.2 * 10 = day 8
    u = [0] * 11 + [1, 1]
    i = list(range(11)) + [9, 10]
    train = _train_set(u, i, [d * DAY for d in range(11)] + [0, 0], 2, 12)
    fit, test = temporal_holdout(train, holdout_days=7.0)
    assert test.users.tolist() == [0]
    assert _rows(test.relevance) == [[9, 10]]  # days 9 and 10 (> day 8)
    assert sorted(i for u, i in _pairs(fit.interactions) if u == 0) == list(range(9))


def test_temporal_holdout_drops_users_without_earlier_pairs_and_unknown_items():
    # user 0: item 0 on day 0, item 1 on day 20 (held out, item 1 also fitted by user 2)
    # user 1: only day-20 pairs -> not a test user; user 2: item 1 on day 1, item 2 on day 20
    # item 3 appears only in the held-out days -> not a candidate, its pair is dropped
    u = [0, 0, 1, 2, 2, 0]
    i = [0, 1, 0, 1, 2, 3]
    t = [0, 20, 20, 1, 20, 20]
    fit, test = temporal_holdout(_train_set(u, i, np.array(t) * DAY, 3, 4), holdout_days=7.0)
    assert test.users.tolist() == [0]
    assert _rows(test.relevance) == [[1]]
    assert test.candidates.tolist() == [0, 1]


def test_temporal_holdout_errors():
    same = _train_set([0, 1], [0, 1], [5.0, 5.0], 2, 2)
    with pytest.raises(DataError, match="same time"):
        temporal_holdout(same)
    with pytest.raises(DataError, match="no training pair has a timestamp"):
        temporal_holdout(_train_set([0, 1], [0, 1], [np.nan, np.nan], 2, 2))
    for bad in (float("nan"), 0, -1.0):
        with pytest.raises(ConfigError, match="holdout_days"):
            temporal_holdout(same, holdout_days=bad)


# ---------------------------------------------------------------- one-log protocol


def test_temporal_protocol_by_hand():
    log = [  # (user, item, time)
        *[(0, i, t) for i, t in zip([0, 1, 2, 3, 4], [5, 1, 4, 2, 3], strict=True)],
        *[(1, i, i) for i in range(10)],  # 10 rows -> floor(0.2 * 10) = 2 test rows: 8, 9
        (2, 0, 1),  # one row: train only
        (3, 5, 1), (3, 6, 2), (3, 5, 3),  # last row (item 5) is a training item: dropped
        (4, 8, 10), (4, 7, 10),  # tie at t = 10: tie_hash(0, 4, 7) > tie_hash(0, 4, 8)
        (5, 1, np.nan), (5, 2, 0),  # no time counts as the oldest: item 2 is the test row
    ]  # fmt: skip
    u, i, t = (np.array(c) for c in zip(*log, strict=True))
    train, test = temporal_protocol(u, i, t.astype(float), np.ones(len(u)), 6, 10)
    assert test.users.tolist() == [0, 1, 4, 5]
    assert _rows(test.relevance) == [[0], [8, 9], [7], [2]]
    assert sorted(i for uu, i in _pairs(train) if uu == 0) == [1, 2, 3, 4]
    assert sorted(i for uu, i in _pairs(train) if uu == 3) == [5, 6]
    assert test.candidates.tolist() == list(range(10))


def test_temporal_protocol_ties_do_not_depend_on_file_order():
    from kuairec.data.ties import tie_hash

    rng = np.random.default_rng(5)
    n = 4000  # 40 users, times drawn from 5 values: many ties
    u, i = rng.integers(0, 40, n), rng.integers(0, 300, n)
    t, wr = rng.integers(0, 5, n).astype(float), rng.integers(0, 3, n).astype(float)
    splits = []
    for seed, perm in ((0, np.arange(n)), (0, rng.permutation(n)), (1, np.arange(n))):
        train, test = temporal_protocol(u[perm], i[perm], t[perm], wr[perm], 40, 300, seed=seed)
        splits.append((_pairs(train), _rows(test.relevance), train.watch_ratio_mean.tolist()))
    assert splits[0] == splits[1]  # shuffled rows: the same split
    assert splits[0] != splits[2]  # another seed breaks the ties differently
    # user 0's test rows by the definition: its last floor(0.2 n) rows by (time, hash,
    # item, watch_ratio), less the pairs it also has among its training rows
    rows = np.flatnonzero(u == 0)
    ordered = rows[np.lexsort((wr[rows], i[rows], tie_hash(0, u[rows], i[rows]), t[rows]))]
    n_test = int(np.floor(0.2 * rows.size))
    train_items = set(i[ordered[:-n_test]].tolist())
    expected = sorted(set(i[ordered[-n_test:]].tolist()) - train_items)
    assert splits[0][1][0] == expected and len(expected) > 0


def test_temporal_protocol_rejects_bad_input():
    with pytest.raises(ConfigError, match="test_fraction"):
        temporal_protocol([0], [0], [0.0], [1.0], 1, 1, test_fraction=1.0)
    with pytest.raises(DataError, match="item_idx"):
        temporal_protocol([0], [3], [0.0], [1.0], 1, 2)
    with pytest.raises(DataError, match="watch_ratio"):
        temporal_protocol([0, 0], [0, 1], [0.0, 1.0], [1.0, np.nan], 1, 2)


# ---------------------------------------------------------------- CSV


def _write(tmp_path, text: str):
    path = tmp_path / "log.csv"
    path.write_text(text)
    return path


def test_load_interactions_csv(tmp_path):
    path = _write(
        tmp_path,
        "user_id,video_id,timestamp,watch_ratio,extra\n"
        "50,900,1600000010.5,1.2,x\n7,900,1600000011,0.3,y\n50,3,1600000012,2.5,z\n",
    )
    users, items, log = load_interactions_csv(path)
    assert users.raw.tolist() == [7, 50] and items.raw.tolist() == [3, 900]
    assert log.user_idx.tolist() == [1, 0, 1]
    assert log.item_idx.tolist() == [1, 1, 0]
    assert log.timestamp.tolist() == [1600000010.5, 1600000011.0, 1600000012.0]
    assert log.watch_ratio.tolist() == [1.2, 0.3, 2.5]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("user_id,video_id,watch_ratio\n1,2,0.5\n", r"missing column\(s\) \['timestamp'\]"),
        ("user_id,video_id,timestamp,watch_ratio\n", "no data rows"),
        (
            "user_id,video_id,timestamp,watch_ratio\n1,2,3,0.5\n1,2.5,3,0.5\n",
            r"line 3, column 'video_id': expected an integer or text id, found '2.5'",
        ),
        (
            "user_id,video_id,timestamp,watch_ratio\n1,2,3,0.5\n,2,3,0.5\n",
            r"line 3, column 'user_id': expected an id, found a missing value",
        ),
        (
            "user_id,video_id,timestamp,watch_ratio\n1,2,1997-09-20,0.5\n1,2,yesterday,0.5\n",
            r"line 3, column 'timestamp': expected a unix time or an ISO 8601 date-time",
        ),
        (
            "user_id,video_id,timestamp,watch_ratio\n"
            "1,2,1600000000,0.5\n1,2,0,0.5\n1,2,1600000000000,0.5\n1,2,1600000001,0.5\n",
            r"line 4, column 'timestamp': found '1600000000000', a unix time in another unit "
            r"than the column's seconds \(2 of 3 values\)",
        ),
        (
            "user_id,video_id,timestamp,watch_ratio\n1,2,3,0.5\n1,2,3,NaN\n",
            r"line 3, column 'watch_ratio': expected a finite number >= 0, found 'NaN'",
        ),
        (
            "user_id,video_id,timestamp,watch_ratio\n1,2,inf,0.5\n",
            r"line 2, column 'timestamp': expected a unix time .*, found 'inf'",
        ),
        (
            "user_id,video_id,timestamp,watch_ratio\n1,2,3,-0.5\n",
            r"column 'watch_ratio'",
        ),
    ],
)
def test_load_interactions_csv_errors(tmp_path, text, match):
    with pytest.raises(DataError, match=match) as info:
        load_interactions_csv(_write(tmp_path, text))
    assert "log.csv" in str(info.value)


def test_load_interactions_csv_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_interactions_csv(tmp_path / "nope.csv")


def test_temporal_experiment_from_csv(tmp_path):
    rows = ["user_id,video_id,timestamp,watch_ratio"]
    t0 = 1_600_000_000  # 2020-09-13: inside the loader's timestamp range
    rows += [f"1,{v},{t0 + v},1.0" for v in range(10, 20)]  # user 1: 10 rows -> 2 test rows
    rows += [f"2,10,{t0 + 5},3.0"]  # user 2: train only
    train, test = temporal_experiment(_write(tmp_path, "\n".join(rows) + "\n"))
    assert isinstance(train, TrainSet) and train.video_duration is None
    assert train.items.raw.tolist() == list(range(10, 20))
    assert test.users.tolist() == [0]  # raw user 1
    assert train.items.to_raw(_rows(test.relevance)[0]).tolist() == [18, 19]
    assert train.interactions.nnz == 9  # 8 of user 1, 1 of user 2


def test_temporal_holdout_cuts_per_user_when_few_users_are_in_the_last_days():
    """MovieLens-like: most users rated long ago, 5 of 200 in the last week. Validating
    on 5 users is noise: each user's last 20% of pairs is held out instead."""
    from kuairec.evaluation.validation import temporal_kind

    rng = np.random.default_rng(0)
    u, i, ts = [], [], []
    for user in range(200):
        late = user < 5
        for j, item in enumerate(rng.choice(50, size=10, replace=False)):
            u.append(user)
            i.append(int(item))
            ts.append(((55 if late else 0) + j * 0.5) * DAY)
    train = _train_set(u, i, ts, 200, 50)
    assert temporal_kind(train) == "user"
    fit, test = temporal_holdout(train, holdout_days=7.0)
    assert test.users.size > 150  # nearly every user validates, not 5
    inter = train.interactions
    for user in (0, 17, 199):  # each user's 2 latest pairs (20% of 10) are held out
        lo, hi = inter.indptr[user], inter.indptr[user + 1]
        latest = set(inter.indices[lo:hi][np.argsort(inter.first_timestamp[lo:hi])[-2:]])
        held = {int(c) for c in _rows(test.relevance)[int(np.searchsorted(test.users, user))]}
        assert held <= latest  # (a held-out video unknown to the fit part is dropped)
        assert not held & {int(c) for uu, c in _pairs(fit.interactions) if uu == user}
