"""The two-tower model's batches: the epoch order, the accidental hits, the sampled
negatives' distribution and the logQ values, against hand-made cases."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from kuairec.models.registry import missing_requirement

pytestmark = pytest.mark.skipif(
    missing_requirement("two_tower") is not None, reason="needs torch and lightning"
)


def rules(**overrides):
    from kuairec.models.two_tower_batches import BatchRules

    base = dict(threshold=1.0, clip=5.0, history_weighting="binary", uniform_negatives=0,
                bce_negatives=2, loss="softmax", seed=0, batch_size=8,
                pairs_per_user=2)  # fmt: skip
    return BatchRules(**{**base, **overrides})


# ---------------------------------------------------------------- the epoch order
def test_epoch_order_cuts_each_users_shuffled_pairs_into_chunks() -> None:
    from kuairec.models.two_tower_batches import epoch_order

    indptr = np.array([0, 5, 6, 6, 13])  # users of 5, 1, 0 and 7 pairs
    rows = np.repeat(np.arange(4), np.diff(indptr))
    order = epoch_order(indptr, 3, np.random.default_rng(0))
    assert np.array_equal(np.sort(order), np.arange(13))  # every pair once
    # consecutive runs of one user: chunks of 3 (the user's last one shorter)
    runs = np.split(order, np.flatnonzero(np.diff(rows[order])) + 1)
    sizes = sorted((int(rows[r[0]]), r.size) for r in runs)
    assert sizes == [(0, 2), (0, 3), (1, 1), (3, 1), (3, 3), (3, 3)]


def test_epoch_order_shuffles_within_and_across_users() -> None:
    from kuairec.models.two_tower_batches import epoch_order

    indptr = np.array([0, 4, 8])
    rng = np.random.default_rng(1)
    first_pair, leading_user = np.zeros(8), np.zeros(2)
    for _ in range(4000):
        order = epoch_order(indptr, 4, rng)  # a user's whole row is one chunk
        first_pair[order[0]] += 1
        leading_user[order[0] // 4] += 1
    # every pair leads equally often (1/8), each user half of the time
    np.testing.assert_allclose(first_pair / 4000, 1 / 8, atol=0.02)
    np.testing.assert_allclose(leading_user / 4000, 1 / 2, atol=0.03)


def test_one_pair_per_chunk_is_a_uniform_shuffle() -> None:
    from kuairec.models.two_tower_batches import epoch_order

    indptr = np.array([0, 6, 6, 9])
    rng = np.random.default_rng(2)
    position = np.zeros((9, 9))
    for _ in range(3000):
        position[epoch_order(indptr, 1, rng), np.arange(9)] += 1
    np.testing.assert_allclose(position / 3000, 1 / 9, atol=0.025)


# ---------------------------------------------------------------- hits
def test_same_key_pairs_by_hand() -> None:
    from kuairec.models.two_tower_batches import same_key_pairs

    i, j = same_key_pairs(np.array([7, 3, 7, 7, 5]))
    got = sorted(zip(i.tolist(), j.tolist(), strict=True))
    assert got == [(0, 2), (0, 3), (2, 0), (2, 3), (3, 0), (3, 2)]
    assert [a.size for a in same_key_pairs(np.array([], np.int64))] == [0, 0]


def test_accidental_hits_by_hand() -> None:
    from kuairec.models.two_tower_batches import accidental_hits

    items = np.array([4, 9, 4, 6])  # queries 0..3 (the batch's positives)
    users = np.array([0, 0, 1, 2])
    shared = np.array([0, 1, 3])  # shared columns 0..2: videos 4, 9, 6; then negatives
    negatives = np.array([6, 4])  # columns 3, 4
    q, c = accidental_hits(items, users, shared, negatives, mask_user_positives=False)
    want = {(0, 0), (0, 4), (2, 0), (2, 4), (1, 1), (3, 2), (3, 3)}  # same video
    assert set(zip(q.tolist(), c.tolist(), strict=True)) == want
    q, c = accidental_hits(items, users, shared, negatives, mask_user_positives=True)
    # user 0's queries 0 and 1 also mask each other's shared video (columns 0 and 1)
    assert set(zip(q.tolist(), c.tolist(), strict=True)) == want | {(0, 1), (1, 0)}


# ---------------------------------------------------------------- a batch
def tiny_pairs():
    """4 users x 6 videos; user 3 has no pairs."""
    indptr = np.array([0, 3, 5, 8, 8])
    items = np.array([0, 2, 5, 1, 2, 0, 3, 4])
    ratios = np.array([2.0, 0.5, 1.5, 1.0, 0.2, 3.0, 9.0, 0.1], np.float32)
    return indptr, items, ratios


def test_a_batch_holds_its_pairs_users_and_videos() -> None:
    from kuairec.models.two_tower_batches import PairBatches

    indptr, items, ratios = tiny_pairs()
    data = PairBatches(indptr, items, ratios, 6, np.arange(6), rules(uniform_negatives=3))
    pos = np.array([6, 0, 4, 2])
    b = {k: v.numpy() for k, v in data[pos].items()}
    assert b["users"].tolist() == [0, 1, 2]
    assert b["users"][b["user_row"]].tolist() == [2, 0, 1, 0]
    assert b["item"].tolist() == [3, 0, 2, 5]
    assert b["items_u"][b["item_slot"]].tolist() == [3, 0, 2, 5]
    assert np.array_equal(b["items_u"][b["neg_slot"]], b["negatives"])
    np.testing.assert_allclose(b["rating"], [5.0, 2.0, 0.2, 1.5])  # clipped at 5
    assert b["positive"].tolist() == [True, True, False, True]
    assert b["mass"].tolist() == [3.0, 3.0, 2.0, 3.0]  # binary weights: history lengths
    want = np.zeros((3, 6), np.float32)
    want[0, [0, 2, 5]] = want[1, [1, 2]] = want[2, [0, 3, 4]] = 1.0
    np.testing.assert_array_equal(b["history"], want)
    assert b["shared"].tolist() == [0, 1, 2]  # 3 positives, all shared


def test_history_dropout_leaves_entries_out_consistently() -> None:
    """Each batch user's history entries are left out with chance p: the rows hold the
    kept entries' weights, the mass their sum, each pair's own weight its cell, the
    dropped bags exactly the rest; p = 0 gives the batch of old."""
    from kuairec.models.two_tower_batches import PairBatches

    n_users, per_user, n_items = 40, 30, 50
    indptr = np.arange(n_users + 1) * per_user
    rng = np.random.default_rng(1)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    ratios = rng.uniform(0.1, 4.0, items.size).astype(np.float32)
    r = rules(history_weighting="linear", batch_size=200, pairs_per_user=10)
    base = PairBatches(indptr, items, ratios, n_items, np.arange(n_items), r)
    r_drop = dataclasses.replace(r, history_dropout=0.3)
    drop = PairBatches(indptr, items, ratios, n_items, np.arange(n_items), r_drop)
    pos = rng.choice(items.size, 200, replace=False)
    b0 = {k: v.numpy() for k, v in base[pos].items()}
    b = {k: v.numpy() for k, v in drop[pos].items()}
    assert "drop_items" not in b0
    assert np.array_equal(b0["users"], b["users"])
    full = b0["history"]  # every entry's weight
    np.testing.assert_allclose(b0["mass"], full.sum(axis=1)[b0["user_row"]], rtol=1e-6)
    kept = b["history"]
    assert np.all((kept == 0) | (kept == full))  # an entry is kept whole or left out
    np.testing.assert_allclose(b["mass"], kept.sum(axis=1)[b["user_row"]], rtol=1e-6)
    assert np.array_equal(b["weight"], kept[b["user_row"], b["item"]])  # the own entry's cell
    offsets = np.append(b["drop_offsets"], b["drop_items"].size)
    for row in range(b["users"].size):
        lo, hi = offsets[row], offsets[row + 1]
        gone = (full[row] > 0) & (kept[row] == 0)
        assert sorted(b["drop_items"][lo:hi].tolist()) == np.flatnonzero(gone).tolist()
        np.testing.assert_array_equal(np.sort(b["drop_weights"][lo:hi]), np.sort(full[row, gone]))
    share = b["drop_items"].size / np.count_nonzero(full)  # ~0.3 of the rows' entries
    assert 0.25 < share < 0.35
    assert not np.array_equal(b["weight"], b0["weight"])  # some own entries were dropped


def test_dense_and_bag_histories_give_the_same_sums() -> None:
    import torch

    from kuairec.models.two_tower_batches import PairBatches
    from kuairec.models.two_tower_net import NetShape, TwoTowerNet
    from kuairec.models.two_tower_task import TaskSettings, TwoTowerTask

    indptr, items, ratios = tiny_pairs()
    r = rules(history_weighting="linear")
    dense = PairBatches(indptr, items, ratios, 6, np.arange(6), r)
    bags = PairBatches(indptr, items, ratios, 6, np.arange(6), r)
    bags.dense = False
    assert dense.dense  # 8 pairs in 4 x 6: dense
    torch.manual_seed(0)
    shape = NetShape(6, 4, 8, "dot", 0.1, True, True)
    x = np.random.default_rng(0).random((6, 2)).astype(np.float32)
    net = TwoTowerNet(shape, np.zeros((4, 0)), np.zeros((1, 0)), x, x, np.ones(6))
    settings = TaskSettings("softmax", True, 0.5, "huber", 1e-3, 0.0, 0.1)
    task = TwoTowerTask(net, np.zeros(6), settings)
    pos = np.array([0, 3, 7])
    a, b = task.user_sums(dense[pos]), task.user_sums(bags[pos])
    assert "hist_items" in bags[pos] and "history" in dense[pos]
    torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- negatives and logQ
def test_the_negatives_share_and_distribution() -> None:
    """Per query: its own video, min(P, batch_negatives) in-batch videos drawn uniformly
    among the batch's positives without replacement, and uniform_negatives videos drawn
    uniformly among the warm ones."""
    from kuairec.models.two_tower_batches import PairBatches

    n_users, per_user, n_items = 50, 40, 60
    indptr = np.arange(n_users + 1) * per_user
    rng = np.random.default_rng(0)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    ratios = np.where(rng.random(items.size) < 0.5, 2.0, 0.5).astype(np.float32)
    warm = np.arange(0, n_items, 2)  # the uniform negatives come from these only
    r = rules(batch_size=200, pairs_per_user=20, uniform_negatives=64, batch_negatives=16)
    data = PairBatches(indptr, items, ratios, n_items, warm, r)
    counts, shared_hits, n_pos_total = np.zeros(n_items), np.zeros(200), 0
    for _ in range(300):
        b = data[rng.choice(items.size, 200, replace=False)]
        n_pos = int(b["positive"].sum())
        assert b["shared"].numel() == min(16, n_pos) and b["negatives"].numel() == 64
        assert np.all(np.diff(b["shared"].numpy()) > 0)  # without replacement, in order
        shared_hits[b["shared"].numpy()] += 1
        n_pos_total += n_pos
        counts += np.bincount(b["negatives"].numpy(), minlength=n_items)
    assert counts[1::2].sum() == 0  # never a video outside the warm list
    share = counts[warm] / counts.sum()
    np.testing.assert_allclose(share, 1 / warm.size, atol=0.01)
    # each of the first 80 positive positions is shared with probability 16 / P (P ~ 100)
    np.testing.assert_allclose(shared_hits[:80] / 300, 16 / (n_pos_total / 300), atol=0.07)


def test_logq_values_on_a_tiny_batch() -> None:
    """The expected count of a candidate among the sampled ones: n_shared * q_i +
    n_uniform / n_warm, q_i its share of the positive training pairs."""
    import torch

    from kuairec.models.two_tower import positive_log_share
    from kuairec.models.two_tower_net import NetShape, TwoTowerNet
    from kuairec.models.two_tower_task import TaskSettings, TwoTowerTask

    inter = type("I", (), {})()
    inter.watch_ratio_mean = np.array([2.0, 1.0, 0.5, 3.0, 1.2, 0.1])
    inter.indices = np.array([0, 1, 1, 2, 0, 3])
    inter.n_items = 5
    log_q = positive_log_share(inter, 1.0)  # positives: videos 0, 1, 2, 0
    np.testing.assert_allclose(np.exp(log_q[:3]), [0.5, 0.25, 0.25])
    assert log_q[3] == log_q[4] == pytest.approx(math.log(1e-12))
    warm = np.array([1, 1, 1, 1, 0], np.float32)  # 4 warm videos
    net = TwoTowerNet(NetShape(5, 2, 0, "dot", 0.1, True, False), np.zeros((1, 0)),
                      np.zeros((1, 0)), np.zeros((5, 0)), np.zeros((5, 0)), warm)  # fmt: skip
    settings = TaskSettings("softmax", True, 0.0, "huber", 1e-3, 0.0, 0.1)
    task = TwoTowerTask(net, log_q, settings)
    got = task.expected_log_q(torch.tensor([0, 1, 3]), 6, 8).numpy()
    want = np.log([6 * 0.5 + 8 / 4, 6 * 0.25 + 2, 6 * 1e-12 + 2])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    off = TwoTowerTask(net, log_q, dataclasses.replace(settings, logq=False))
    assert off.expected_log_q(torch.tensor([0, 1]), 6, 8).tolist() == [0.0, 0.0]


def step_by_parts(task, net, batch) -> tuple[float, np.ndarray, np.ndarray]:
    """The task's loss on ``batch``, every video's item vector and each pair's user vector
    (its history without the pair's own video): what a hand computation needs."""
    import torch

    with torch.no_grad():
        got = float(task.training_step(batch, 0))
        v = net.warm_items().numpy()
        pooled = task.pooled_without_own(batch)
        u = net.user_tower.finish(pooled + net.user_tower.part("x", net.user_x[batch["users"]])[
            batch["user_row"]]).numpy()  # fmt: skip
    return got, v, u


def test_the_task_loss_equals_the_softmax_by_hand() -> None:
    """The retrieval loss of one batch from the task equals the sampled softmax written
    out with loops: own logit against the shared and uniform candidates, hits masked."""
    import torch

    from kuairec.models.two_tower_batches import PairBatches
    from kuairec.models.two_tower_net import NetShape, TwoTowerNet
    from kuairec.models.two_tower_task import TaskSettings, TwoTowerTask

    indptr, items, ratios = tiny_pairs()
    data = PairBatches(indptr, items, ratios, 6, np.arange(6),
                       rules(uniform_negatives=2, batch_negatives=2, seed=3))  # fmt: skip
    torch.manual_seed(0)
    net = TwoTowerNet(NetShape(6, 3, 0, "dot", 0.1, True, False), np.zeros((4, 0)),
                      np.zeros((1, 0)), np.zeros((6, 0)), np.zeros((6, 0)), np.ones(6))  # fmt: skip
    log_q = np.log([0.3, 0.1, 0.1, 0.2, 0.1, 0.2])
    task = TwoTowerTask(net, log_q, TaskSettings("softmax", True, 0.0, "huber", 1e-3, 0.0, 0.1))
    batch = data[np.arange(8)]
    got, v, u = step_by_parts(task, net, batch)
    b = {k: t.numpy() for k, t in batch.items()}
    q_items, q_users = b["item"][b["positive"]], b["user_row"][b["positive"]]
    shared_items = np.concatenate([q_items[b["shared"]], b["negatives"]])
    shared_users = np.concatenate([q_users[b["shared"]], [-1, -1]])
    n_s, n_u = b["shared"].size, 2
    count = lambda i: n_s * math.exp(log_q[i]) + n_u / 6  # noqa: E731
    losses = []
    for p, (it, us) in enumerate(zip(q_items, q_users, strict=True)):
        uq = u[b["positive"]][p]
        own = float(uq @ v[it]) - math.log(count(it))
        logits = [own] + [
            float(uq @ v[c]) - math.log(count(c))
            for c, cu in zip(shared_items, shared_users, strict=True)
            if c != it and cu != us
        ]
        losses.append(-(own - math.log(sum(map(math.exp, logits)))))
    assert got == pytest.approx(float(np.mean(losses)), rel=1e-5)


def test_the_heads_target_clipped_then_log1p() -> None:
    """The head's target of each pair: min(wr, rating_clip), log1p of it with
    rating_log1p (by hand on the tiny pairs: 9.0 and 3.0 clipped at 2.5)."""
    from kuairec.models.two_tower_batches import PairBatches

    indptr, items, ratios = tiny_pairs()
    pos = np.arange(8)
    clipped = PairBatches(indptr, items, ratios, 6, np.arange(6), rules(rating_clip=2.5))
    logged = PairBatches(
        indptr, items, ratios, 6, np.arange(6), rules(rating_clip=2.5, rating_log1p=True)
    )
    want = [2.0, 0.5, 1.5, 1.0, 0.2, 2.5, 2.5, 0.1]
    np.testing.assert_allclose(clipped[pos]["rating"].numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(logged[pos]["rating"].numpy(), np.log1p(want), rtol=1e-6)


# ---------------------------------------------------------------- the catalogue softmax
def shifted_pairs():
    """tiny_pairs with every video moved up by one: video 0 is cold (no pairs), so a
    warm video's column in the catalogue is its index minus one."""
    indptr, items, ratios = tiny_pairs()
    return indptr, items + 1, ratios


def test_catalogue_fields_by_hand() -> None:
    """Each query's own video as a warm column, and the cells of the batch's users'
    positive videos (ratio >= 1.0), in warm columns; none without the user mask."""
    from kuairec.models.two_tower_batches import PairBatches

    indptr, items, ratios = shifted_pairs()
    data = PairBatches(indptr, items, ratios, 7, np.arange(1, 7), rules(catalogue=True))
    b = {k: v.numpy() for k, v in data[np.array([6, 0, 4, 2])].items()}
    # pairs: (user 2, video 4, 9.0), (0, 1, 2.0), (1, 3, 0.2), (0, 6, 1.5): queries 0, 1, 3
    assert b["positive"].tolist() == [True, True, False, True]
    assert b["target"].tolist() == [3, 0, 5]  # videos 4, 1, 6 -> columns 3, 0, 5
    assert b["users"].tolist() == [0, 1, 2]
    # positives: user 0 videos 1 and 6 (columns 0, 5); user 1 video 2 (ratio 1.0, column
    # 1); user 2 videos 1 and 4 (columns 0, 3); video 5 of user 2 has ratio 0.1
    cells = sorted(zip(b["pos_rows"].tolist(), b["pos_cols"].tolist(), strict=True))
    assert cells == [(0, 0), (0, 5), (1, 1), (2, 0), (2, 3)]
    assert b["negatives"].size == 0  # nothing is drawn
    off = PairBatches(indptr, items, ratios, 7, np.arange(1, 7),
                      rules(catalogue=True, mask_user_positives=False))  # fmt: skip
    assert off[np.array([6, 0])]["pos_rows"].numel() == 0


@pytest.mark.parametrize("mask", [True, False])
def test_the_catalogue_loss_equals_the_full_softmax_by_hand(mask: bool) -> None:
    """Each positive pair's own video against every warm video (the cold one left out),
    its user's other positives masked (with the mask), no logQ: written out with loops."""
    import torch

    from kuairec.models.two_tower_batches import PairBatches
    from kuairec.models.two_tower_net import NetShape, TwoTowerNet
    from kuairec.models.two_tower_task import TaskSettings, TwoTowerTask

    indptr, items, ratios = shifted_pairs()
    data = PairBatches(indptr, items, ratios, 7, np.arange(1, 7),
                       rules(catalogue=True, mask_user_positives=mask))  # fmt: skip
    torch.manual_seed(0)
    warm = np.array([0, 1, 1, 1, 1, 1, 1], np.float32)
    net = TwoTowerNet(NetShape(7, 3, 0, "dot", 0.1, True, False), np.zeros((4, 0)),
                      np.zeros((1, 0)), np.zeros((7, 0)), np.zeros((7, 0)), warm)  # fmt: skip
    log_q = np.log(np.full(7, 1 / 7))  # not used: nothing is sampled
    settings = TaskSettings("softmax", True, 0.0, "huber", 1e-3, 0.0, 0.1, catalogue=True)
    task = TwoTowerTask(net, log_q, settings)
    batch = data[np.arange(8)]
    got, v, u = step_by_parts(task, net, batch)
    users_of_pair = np.repeat(np.arange(4), np.diff(indptr))
    positives = {(int(us), int(it)) for us, it, r in zip(users_of_pair, items, ratios,
                                                         strict=True) if r >= 1.0}  # fmt: skip
    losses = []
    for p, (us, it, r) in enumerate(zip(users_of_pair, items, ratios, strict=True)):
        if r < 1.0:
            continue
        up = u[p]
        own = float(up @ v[it])
        others = [float(up @ v[c]) for c in range(1, 7)
                  if c != it and not (mask and (us, c) in positives)]  # fmt: skip
        losses.append(-(own - math.log(math.exp(own) + sum(map(math.exp, others)))))
    assert got == pytest.approx(float(np.mean(losses)), rel=1e-5)
