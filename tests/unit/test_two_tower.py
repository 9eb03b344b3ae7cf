"""The two-tower model: its losses against hand computations, the own video left out of
the pooled history, the watch_ratio head, history scoring and determinism."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.sparse as sp
from _contract_data import tiny_train

from kuairec.errors import ModelError
from kuairec.models import create_model, get_model_class
from kuairec.models.registry import missing_requirement

pytestmark = pytest.mark.skipif(
    missing_requirement("two_tower") is not None, reason="needs torch and lightning"
)

FAST = (
    dict(get_model_class("two_tower").test_settings) if not missing_requirement("two_tower") else {}
)


@pytest.fixture(scope="module")
def fitted():
    return create_model("two_tower", FAST).fit(tiny_train())


def test_shared_softmax_loss_by_hand() -> None:
    import torch

    from kuairec.models.two_tower_net import shared_softmax_loss

    own = torch.tensor([2.0 - math.log(0.5), 1.5 - math.log(0.25)], dtype=torch.float64)
    shared = torch.tensor(
        [[0.5 - math.log(0.25), -math.inf], [0.0 - math.log(0.5), -1.0 - math.log(0.25)]],
        dtype=torch.float64,
    )  # query 0's second candidate is an accidental hit
    got = shared_softmax_loss(own, shared)
    z0, z1 = [float(own[0]), float(shared[0, 0])], [float(own[1]), *map(float, shared[1])]
    want = -(z0[0] - math.log(sum(map(math.exp, z0))))
    want -= z1[0] - math.log(sum(map(math.exp, z1)))
    assert float(got) == pytest.approx(want / 2, rel=1e-12)


def test_sampled_bce_loss_by_hand() -> None:
    import torch

    from kuairec.models.two_tower_net import sampled_bce_loss

    def softplus(x: float) -> float:
        return math.log1p(math.exp(x))

    got = sampled_bce_loss(torch.tensor([1.0, -0.5]), torch.tensor([[0.2, -1.0], [0.0, 3.0]]))
    want = (softplus(-1.0) + (softplus(0.2) + softplus(-1.0)) / 2) + (
        softplus(0.5) + (softplus(0.0) + softplus(3.0)) / 2
    )
    assert float(got) == pytest.approx(want / 2, rel=1e-6)


def test_expected_log_q_counts_batch_and_uniform_candidates(fitted) -> None:
    import torch

    from kuairec.models.two_tower import build_task, net_arrays, positive_log_share

    train = tiny_train()
    log_q = positive_log_share(train.interactions, fitted.config.threshold)
    task = build_task(
        fitted.net_shape(train.n_items), net_arrays(train), log_q, fitted.config, None
    )
    items = torch.tensor([0, 10])
    got = task.expected_log_q(items, 8, 4).numpy()
    n_warm = int((train.interactions.item_counts() > 0).sum())
    want = np.log(8 * np.exp(log_q[[0, 10]]) + 4 / n_warm)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_own_video_is_left_out_of_the_pooled_history(fitted) -> None:
    import torch

    from kuairec.models.matrices import weight_values
    from kuairec.models.two_tower import build_task, net_arrays, positive_log_share
    from kuairec.models.two_tower_batches import PairBatches

    train = tiny_train()
    inter = train.interactions
    c = dataclasses.replace(fitted.config, history_weighting="linear")
    hist = fitted._history(inter.indptr, inter.indices, inter.watch_ratio_mean)
    hist = dataclasses.replace(hist, weighting="linear")
    task = build_task(
        fitted.net_shape(train.n_items),
        net_arrays(train),
        positive_log_share(inter, 1.0),
        c,
        hist,
    )
    task.net.load_state_dict(fitted.net_.state_dict())
    fitted_rules = dataclasses.replace(fitted._rules(), history_weighting="linear")
    data = PairBatches(
        inter.indptr, inter.indices, inter.watch_ratio_mean, 13, np.arange(12), fitted_rules
    )
    positions = np.array([0, 3, 40, 41])
    batch = data[positions]
    with torch.no_grad():
        got = task.pooled_without_own(batch).numpy()
        table = task.net.history_table().numpy()
    users, items = inter.row_users()[positions], inter.indices[positions]
    w = weight_values(inter.watch_ratio_mean, "linear", 5.0)
    for row, (u, i) in enumerate(zip(users, items, strict=True)):
        lo, hi = inter.indptr[u], inter.indptr[u + 1]
        others = [(inter.indices[e], w[e]) for e in range(lo, hi) if inter.indices[e] != i]
        want = sum(wt * table[j] for j, wt in others) / sum(wt for _, wt in others)
        np.testing.assert_allclose(got[row], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dense", [True, False])
def test_history_dropout_pools_only_the_kept_videos(fitted, dense: bool) -> None:
    """With history_dropout each pair's pooled history is the weighted mean of the
    history table's rows over its user's *kept* videos, its own left out: both the id
    embeddings' part (the batch's rows) and the item features' part (the precomputed
    whole-history sums less the dropped videos' bag)."""
    import torch

    from kuairec.models.two_tower import build_task, net_arrays, positive_log_share
    from kuairec.models.two_tower_batches import PairBatches

    train = tiny_train()
    inter = train.interactions
    c = dataclasses.replace(fitted.config, history_weighting="linear")
    hist = dataclasses.replace(
        fitted._history(inter.indptr, inter.indices, inter.watch_ratio_mean), weighting="linear"
    )
    task = build_task(
        fitted.net_shape(train.n_items), net_arrays(train), positive_log_share(inter, 1.0), c, hist
    )
    task.net.load_state_dict(fitted.net_.state_dict())
    r = dataclasses.replace(fitted._rules(), history_weighting="linear", history_dropout=0.5)
    data = PairBatches(inter.indptr, inter.indices, inter.watch_ratio_mean, 13, np.arange(12), r)
    data.dense = dense
    positions = np.array([0, 3, 40, 41, 42])
    batch = data[positions]
    assert batch["drop_items"].numel() > 0  # some videos were left out
    with torch.no_grad():
        got = task.pooled_without_own(batch).numpy()
        table = task.net.history_table().numpy()
    users = batch["users"].numpy()
    if dense:
        kept_w = batch["history"].numpy()
    else:  # the bags, spread into rows
        kept_w = np.zeros((users.size, 13), np.float32)
        offsets = np.append(batch["hist_offsets"].numpy(), batch["hist_items"].numel())
        for row in range(users.size):
            lo, hi = offsets[row], offsets[row + 1]
            kept_w[row, batch["hist_items"][lo:hi].numpy()] = batch["hist_weights"][lo:hi].numpy()
    items = inter.indices[positions]
    for k, (row, i) in enumerate(zip(batch["user_row"].numpy(), items, strict=True)):
        w = kept_w[row].copy()
        w[i] = 0.0  # its own video left out
        want = (w[:, None] * table).sum(axis=0) / w.sum() if w.sum() > 0 else 0.0 * table[0]
        np.testing.assert_allclose(got[k], want, rtol=1e-4, atol=1e-5)


def test_a_user_with_one_pair_has_an_empty_pooled_history() -> None:
    import torch

    from kuairec.models.two_tower_net import leave_one_out

    total = torch.tensor([[2.0, 4.0]])
    out = leave_one_out(total, torch.tensor([2.0]), torch.tensor([[1.0, 2.0]]), torch.tensor([2.0]))
    assert out.tolist() == [[0.0, 0.0]]


def test_rating_head_predictions_and_rmse_decreasing() -> None:
    train = tiny_train()
    users, items = (a.astype(np.int64) for a in (train.interactions.row_users(),
                                                 train.interactions.indices))  # fmt: skip
    target = np.minimum(train.interactions.watch_ratio_mean, 5.0)
    rmse = []
    for epochs in (1, 30):
        model = create_model("two_tower", {**FAST, "max_epochs": epochs}).fit(train)
        pred = model.predict(users, items)
        assert pred.shape == users.shape and pred.dtype == np.float32
        assert (pred >= 0).all() and (pred <= 5).all()
        rmse.append(float(np.sqrt(np.mean((pred - target) ** 2))))
    assert rmse[1] < 0.6 * rmse[0], rmse


def test_without_the_head_predict_refuses(fitted) -> None:
    model = create_model("two_tower", {**FAST, "rating_head": False, "max_epochs": 2})
    assert not model.predicts_ratings and fitted.predicts_ratings
    model.fit(tiny_train())
    with pytest.raises(ModelError, match="does not predict"):
        model.predict(np.array([0]), np.array([1]))


def test_own_history_scores_as_by_index_without_user_features() -> None:
    train = dataclasses.replace(tiny_train(), user_x=None)
    model = create_model("two_tower", FAST).fit(train)
    users = np.arange(20)
    history = train.interactions.csr("watch_ratio_mean")[users]
    np.testing.assert_array_equal(model.score(history=history), model.score(users))


def test_history_scoring_uses_the_unknown_user_features(fitted) -> None:
    from kuairec.models.two_tower_net import score_users

    train = tiny_train()
    history = train.interactions.csr("watch_ratio_mean")[[3]]
    rows = fitted._history(history.indptr, history.indices, history.data)
    want = score_users(fitted.net_, rows, fitted.net_.new_user_x)
    np.testing.assert_array_equal(fitted.score(history=history), want)
    assert not np.array_equal(fitted.score(np.array([3])), want)  # user 3's own features
    empty = sp.csr_matrix((1, train.n_items), dtype=np.float32)
    assert np.isfinite(fitted.score(history=empty)).all()


def test_fits_are_deterministic(fitted) -> None:
    again = create_model("two_tower", FAST).fit(tiny_train())
    users = np.arange(21)
    np.testing.assert_array_equal(again.score(users), fitted.score(users))
    other = create_model("two_tower", {**FAST, "seed": 1}).fit(tiny_train())
    assert not np.array_equal(other.score(users), fitted.score(users))


def test_cold_videos_get_the_cold_tower(fitted) -> None:
    import torch

    with torch.no_grad():
        items = fitted.net_.all_items().numpy()
        cold = fitted.net_.cold_items().numpy()
    np.testing.assert_array_equal(items[12], cold[12])  # item 12 has no training pairs
    assert not np.allclose(items[:12], cold[:12])


def test_the_cold_tower_is_the_ridge_solution() -> None:
    """solve_cold minimises sum |x W + b - v|^2 / sum |v|^2 + ridge |W|^2 over the warm
    videos: its gradient there is zero, and it matches numpy's normal equations."""
    import torch

    from kuairec.models.two_tower_net import NetShape, TwoTowerNet, solve_cold

    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 3)).astype(np.float32)
    warm = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0], np.float32)
    torch.manual_seed(0)
    net = TwoTowerNet(NetShape(9, 2, 4, "dot", 0.1, True, False), np.zeros((1, 0)),
                      np.zeros((1, 0)), x, x[::-1].copy(), warm)  # fmt: skip
    solve_cold(net, 0.3)
    with torch.no_grad():
        v = net.warm_items()[:7].double()
    w = net.cold_tower.first["x"].weight.detach().double().T.clone().requires_grad_(True)
    b = net.cold_tower.bias.detach().double().clone().requires_grad_(True)
    xc = torch.as_tensor(x[::-1].copy()[:7], dtype=torch.float64)
    objective = ((xc @ w + b - v) ** 2).sum() / (v**2).sum() + 0.3 * (w**2).sum()
    objective.backward()
    assert float(w.grad.abs().max()) < 1e-5 and float(b.grad.abs().max()) < 1e-5
    # numpy: augment with a column of ones, no penalty on it
    a = np.hstack([xc.numpy(), np.ones((7, 1))])
    pen = np.diag([0.3 * float((v**2).sum())] * 3 + [0.0])
    sol = np.linalg.solve(a.T @ a + pen, a.T @ v.numpy())
    np.testing.assert_allclose(w.detach().numpy(), sol[:3], rtol=1e-4, atol=1e-6)
    with torch.no_grad():  # the cold videos get it; the warm ones keep the item tower
        all_v = net.all_items().numpy()
    np.testing.assert_allclose(all_v[7:], (xc.new_tensor(x[::-1].copy()[7:]) @ w + b).detach(),
                               rtol=1e-4, atol=1e-5)  # fmt: skip


def test_batch_size_follows_the_log_size() -> None:
    from kuairec.models.two_tower import batch_size

    assert batch_size(64_000, 0) == 1000  # a 64th of the pairs
    assert batch_size(10_000, 0) == 512 and batch_size(9_000_000, 0) == 4096  # the bounds
    assert batch_size(9_000_000, 300) == 300  # a setting wins


def test_rating_clip_and_the_log1p_target(tmp_path) -> None:
    """The head learns log1p(min(wr, c)); predict gives expm1 of it within [0, c], with c
    the 0.9 quantile of the training watch ratios (below clip)."""
    from kuairec.models.two_tower import rating_clip

    train = tiny_train()
    wr = train.interactions.watch_ratio_mean
    assert rating_clip(wr, 5.0, 1.0) == 5.0
    assert rating_clip(wr, 5.0, 0.5) == pytest.approx(float(np.quantile(wr, 0.5)))
    assert rating_clip(wr, 0.4, 0.9) == 0.4  # clip wins when lower
    model = create_model("two_tower", {**FAST, "rating_target": "log1p", "rating_quantile": 0.9})
    model.fit(train)
    c = float(np.quantile(wr, 0.9))
    assert model.rating_clip_ == pytest.approx(c)
    users, items = train.interactions.row_users().astype(np.int64), train.interactions.indices
    pred = model.predict(users, items.astype(np.int64))
    assert pred.min() >= 0 and pred.max() <= c + 1e-5
    # the fitted head follows the targets: group items (2.0 -> clipped c) above the rest
    own = wr >= 2.0
    assert pred[own].mean() > pred[~own].mean() + 0.3
    model.save(tmp_path / "m")
    again = type(model).load(tmp_path / "m")  # the clip travels with the saved state
    np.testing.assert_allclose(
        again.predict(users[:5], items[:5].astype(np.int64)), pred[:5], rtol=1e-5
    )


def test_a_batch_worker_gives_the_same_fit(monkeypatch) -> None:
    """Batches built in a worker process are the same batches: the same scores."""
    from kuairec.models import two_tower_batches

    settings = {"max_epochs": 3, "uniform_negatives": 3, "batch_negatives": 4}  # draws
    monkeypatch.setattr(two_tower_batches, "WORKER_PAIRS", 0)
    with_worker = create_model("two_tower", {**FAST, **settings}).fit(tiny_train())
    monkeypatch.setattr(two_tower_batches, "WORKER_PAIRS", 10**9)
    without = create_model("two_tower", {**FAST, **settings}).fit(tiny_train())
    users = np.arange(20)
    np.testing.assert_array_equal(with_worker.score(users), without.score(users))


def test_hard_negatives_come_from_the_unseen_top_list(fitted) -> None:
    import torch

    from kuairec.models.two_tower import build_task, net_arrays, positive_log_share

    train = tiny_train()
    inter = train.interactions
    c = dataclasses.replace(fitted.config, hard_negatives=3, hard_pool=2)
    hist = fitted._history(inter.indptr, inter.indices, inter.watch_ratio_mean)
    task = build_task(fitted.net_shape(train.n_items), net_arrays(train),
                      positive_log_share(inter, 1.0), c, hist)  # fmt: skip
    task.net.load_state_dict(fitted.net_.state_dict())
    table = task.top_unseen(2).numpy()
    scores = fitted.score(np.arange(train.n_users))
    for u in range(train.n_users):
        seen = set(inter.indices[inter.indptr[u] : inter.indptr[u + 1]].tolist()) | {12}
        unseen = [i for i in np.argsort(-scores[u], kind="stable") if i not in seen]
        assert set(table[u].tolist()) == set(unseen[:2]), u  # item 12 is cold
    task.hard_table = torch.as_tensor(table)
    logits = task.hard_logits(torch.randn(5, 8), torch.tensor([0, 0, 3, 10, 19]))
    assert logits.shape == (5, 3)


def test_last_items_by_hand() -> None:
    from kuairec.models.two_tower_net import last_items

    indptr = np.array([0, 4, 4, 6])
    items = np.array([10, 11, 12, 13, 20, 21])
    times = np.array([5.0, 1.0, np.nan, 3.0, 2.0, 2.0])  # no time: oldest; a tie: position
    got = last_items(indptr, items, 3, times)
    assert got.tolist() == [[11, 13, 10], [-1, -1, -1], [20, 21, -1]]
    assert last_items(indptr, items, 2).tolist() == [[12, 13], [-1, -1], [20, 21]]


def test_attention_leaves_the_own_video_out_exactly() -> None:
    """A pair's attention pooling equals the softmax over its user's last videos without
    the pair's own video, computed directly."""
    import torch

    from kuairec.models.two_tower_batches import PairBatches
    from kuairec.models.two_tower_net import NetShape, TwoTowerNet, last_items
    from kuairec.models.two_tower_task import TaskSettings, TwoTowerTask

    indptr, items = np.array([0, 4, 5, 8]), np.array([0, 2, 3, 5, 1, 0, 4, 5])
    ratios = np.ones(8, np.float32)
    recent = last_items(indptr, items, 3)  # user 0: 2, 3, 5 (video 0 is older)
    rules = create_model("two_tower", {**FAST, "batch_size": 8})
    rules.rating_clip_, rules.batch_size_ = 5.0, 8
    data = PairBatches(indptr, items, ratios, 6, np.arange(6), rules._rules(), recent)
    torch.manual_seed(0)
    net = TwoTowerNet(NetShape(6, 4, 0, "dot", 0.1, True, False, recent=3), np.zeros((3, 0)),
                      np.zeros((1, 0)), np.zeros((6, 0)), np.zeros((6, 0)), np.ones(6))  # fmt: skip
    with torch.no_grad():
        net.attention_query.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
    task = TwoTowerTask(net, np.zeros(6), TaskSettings("softmax", True, 0, "huber", 1e-3, 0, 0.1))
    batch = data[np.arange(8)]
    with torch.no_grad():
        got = task.recent_without_own(batch).numpy()
        e = net.history_id.weight.numpy()
    q = net.attention_query.detach().numpy()
    users = np.repeat(np.arange(3), np.diff(indptr))
    for p in range(8):
        others = [i for i in recent[users[p]] if i >= 0 and i != items[p]]
        if not others:
            np.testing.assert_allclose(got[p], 0.0)  # user 1's only video
            continue
        w = np.exp(np.array([e[i] @ q / 2.0 for i in others]))
        want = sum(wi * e[i] for wi, i in zip(w / w.sum(), others, strict=True))
        np.testing.assert_allclose(got[p], want, rtol=1e-5, atol=1e-6)


def test_attention_round_trips_through_save_and_load(tmp_path) -> None:
    settings = {**FAST, "history_encoder": "attention", "history_length": 3, "max_epochs": 3}
    train = tiny_train()
    inter = train.interactions  # times against the stored order: the last videos differ
    times = -np.arange(inter.nnz, dtype=np.float64)
    train = dataclasses.replace(train, interactions=dataclasses.replace(inter,
                                first_timestamp=times))  # fmt: skip
    model = create_model("two_tower", settings).fit(train)
    model.save(tmp_path / "m")
    again = type(model).load(tmp_path / "m")
    users = np.arange(20)
    np.testing.assert_array_equal(again.score(users), model.score(users))
    assert again.history_arrays_.recent.shape == (21, 3)


def test_a_user_embedding_scores_known_users_only() -> None:
    """With user_embedding a known user's scores include the user's own vector; a posted
    history (a new user) goes without it: its scores equal the known user's with the id
    embedding zeroed."""
    import torch

    train = dataclasses.replace(tiny_train(), user_x=None)
    model = create_model("two_tower", {**FAST, "user_embedding": True}).fit(train)
    users = np.arange(20)
    history = train.interactions.csr("watch_ratio_mean")[users]
    assert not np.allclose(model.score(history=history), model.score(users))
    with torch.no_grad():
        model.net_.user_id.weight.zero_()
    np.testing.assert_allclose(model.score(history=history), model.score(users), rtol=1e-5)


def test_the_epoch_cap_counts_training_pairs() -> None:
    from kuairec.models.two_tower import epoch_cap

    assert epoch_cap(358_618, 50, 1_800_000) == 5  # whole epochs within the pairs
    assert epoch_cap(64_000, 50, 1_800_000) == 28
    assert epoch_cap(10_000, 50, 1_800_000) == 50  # max_epochs still caps
    assert epoch_cap(9_000_000, 50, 1_800_000) == 1  # at least one epoch
    assert epoch_cap(10_000, 7, 0) == 7  # 0: no pair budget


def test_the_pair_budget_sets_the_epochs_of_a_fit() -> None:
    train = tiny_train()  # 20 users x 7 or 8 pairs
    n = train.interactions.nnz
    model = create_model("two_tower", {**FAST, "max_epochs": 30, "epoch_pairs": 3 * n + 1})
    model.fit(train, _valid(train))
    assert len(model.history_["epoch"]) == 3
    assert "epoch cap (3 epochs)" in model.fit_remark_


def _valid(train):
    """A validation TestSet over the tiny log's users (their own rows as the truth)."""
    from kuairec.evaluation.protocols import TestSet

    users = np.arange(train.n_users)
    rel = train.interactions.csr()
    empty = sp.csr_matrix(rel.shape, dtype=np.float32)
    return TestSet(users, np.arange(train.n_items), rel, empty)


def test_fold_in_pools_the_whole_training_log() -> None:
    """After fold_in(train) a known user scores as a new user posting that user's rows of
    ``train`` (no user features, no id embedding): the history is the one pooled; the fit
    part's copy is untouched (fold_in replaces, never edits)."""
    import copy

    full = tiny_train()
    keep = np.ones(full.interactions.nnz, bool)
    keep[full.interactions.indptr[:-1][:10]] = False  # the first pair of users 0..9 held
    part = dataclasses.replace(full, interactions=full.interactions.select(keep))
    model = create_model("two_tower", FAST).fit(part)
    before = model.score(np.arange(5))
    kept = copy.copy(model)
    assert model.fold_in(full) is model
    after = model.score(np.arange(5))
    assert not np.allclose(after, before)
    np.testing.assert_array_equal(kept.score(np.arange(5)), before)
    # the same pooling as a fit on the whole log's rows: the whole rows' mean
    h = model.history_arrays_
    rows = h.rows(np.arange(5))
    assert np.diff(rows.indptr).tolist() == np.diff(full.interactions.indptr[:6]).tolist()
    with pytest.raises(ModelError, match="fold_in needs a training log of shape"):
        model.fold_in(dataclasses.replace(full, interactions=_other_shape(full)))


def _other_shape(train):
    from kuairec.data.dataset import Interactions

    inter = train.interactions
    u = inter.row_users()
    return Interactions.from_log(u, inter.indices, inter.watch_ratio_mean, None,
                                 (inter.n_users + 1, inter.n_items))  # fmt: skip


def test_auto_takes_the_catalogue_softmax_within_its_cell_budget() -> None:
    """softmax_over="auto": the whole catalogue while positive pairs x warm videos are at
    most catalogue_cells (a count, never seconds), else sampled with a remark; the
    sampled softmax's own options (uniform or hard negatives) and BCE keep it sampled."""
    from kuairec.models.two_tower import softmax_over

    config = lambda **kw: create_model("two_tower", kw).config  # noqa: E731
    assert softmax_over(config(), 180_000, 2_100) == (True, None)  # the synthetic default
    assert softmax_over(config(catalogue_cells=100), 10, 10) == (True, None)  # at the limit
    sampled, remark = softmax_over(config(), 2_897_591, 10_499)  # KuaiRec's full size
    assert not sampled
    assert "30,421,807,909 logits" in remark and "catalogue_cells=2,000,000,000" in remark
    assert softmax_over(config(catalogue_cells=99), 10, 10)[0] is False
    assert softmax_over(config(softmax_over="catalogue", catalogue_cells=0), 9, 9) == (True, None)
    assert softmax_over(config(softmax_over="sampled"), 1, 1) == (False, None)
    assert softmax_over(config(uniform_negatives=8), 1, 1) == (False, None)
    assert softmax_over(config(hard_negatives=2), 1, 1) == (False, None)
    assert softmax_over(config(loss="bce"), 1, 1) == (False, None)


def test_a_fit_says_when_the_catalogue_was_too_large() -> None:
    """The tiny log fits over its catalogue by default; with a budget below its cells the
    fit is sampled, its weights differ, and its remark says why."""
    train = tiny_train()
    whole = create_model("two_tower", FAST).fit(train)
    small = create_model("two_tower", {**FAST, "catalogue_cells": 1}).fit(train)
    assert whole.catalogue_ and not small.catalogue_
    assert whole.fit_remark_ is None
    assert "softmax over sampled candidates" in small.fit_remark_
    assert not np.allclose(whole.score(np.arange(3)), small.score(np.arange(3)))
