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
