"""The autoencoder and the shared Lightning trainer: hand-checkable pieces.

Losses and the KL schedule against hand computations, L2 normalisation, early stopping
(a fake validation sequence: the best epoch is kept and its weights restored, the
checkpoint folder is cleaned up), determinism, history scoring of a user's own history.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from kuairec.data.dataset import IdMap, Interactions, TrainSet  # noqa: E402
from kuairec.evaluation.evaluate import evaluate  # noqa: E402
from kuairec.evaluation.validation import validation_split  # noqa: E402
from kuairec.models import autoencoder_net as net  # noqa: E402
from kuairec.models import create_model  # noqa: E402
from kuairec.models import torch_train as tt  # noqa: E402

FAST = {"hidden_dims": [8], "batch_size": 16, "lr": 1e-2, "num_threads": 1}


def _train(seed: int = 0, n_users: int = 80, n_items: int = 30) -> TrainSet:
    """Two taste groups: users watch their group's items long, the others briefly."""
    rng = np.random.default_rng(seed)
    gu, gi = rng.integers(0, 2, n_users), rng.integers(0, 2, n_items)
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.4)
    same = gu[users] == gi[items]
    wr = np.where(same, 2.5, 0.4) * rng.uniform(0.7, 1.3, users.size)
    inter = Interactions.from_log(users, items, wr, None, (n_users, n_items))
    return TrainSet(inter, IdMap(np.arange(n_users)), IdMap(np.arange(n_items)))


@pytest.fixture(scope="module")
def split() -> tuple[TrainSet, object]:
    return validation_split(_train(), "random", fraction=0.25, seed=0)


# ---------------------------------------------------------------- losses and schedule
def test_multinomial_loss_by_hand() -> None:
    logits = torch.tensor([[0.0, math.log(2.0), math.log(5.0)], [0.0, 0.0, 0.0]])
    x = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    # row 0: softmax = (1, 2, 5) / 8 -> -(1 * log(1/8) + 2 * log(5/8)); row 1: -log(1/3)
    want = (-(math.log(1 / 8) + 2 * math.log(5 / 8)) - math.log(1 / 3)) / 2
    assert net.multinomial_loss(logits, x).item() == pytest.approx(want, rel=1e-6)


def test_bce_loss_by_hand() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]])  # sigmoid: 1/2, 3/4
    x = torch.tensor([[0.0, 2.5]])  # targets 0, 1 (watched = stored value > 0)
    want = (-math.log(1 - 0.5) - math.log(0.75)) / 2
    assert net.bce_loss(logits, x).item() == pytest.approx(want, rel=1e-6)


def test_kl_divergence_by_hand() -> None:
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    # 0.5 * sum(-logvar + var + mu^2 - 1) = 0.5 * ((0 + 1 + 1 - 1) + (-log 2 + 2 + 0 - 1))
    want = 0.5 * (1.0 + 1.0 - math.log(2.0))
    assert net.kl_divergence(mu, logvar).item() == pytest.approx(want, rel=1e-6)


def test_kl_weight_anneals_linearly_then_holds() -> None:
    assert net.kl_weight(0, 0.2, 500) == 0.0
    assert net.kl_weight(250, 0.2, 500) == pytest.approx(0.1)
    assert net.kl_weight(500, 0.2, 500) == pytest.approx(0.2)
    assert net.kl_weight(10_000, 0.2, 500) == pytest.approx(0.2)
    assert net.kl_weight(3, 0.2, 0) == pytest.approx(0.2)  # no annealing


def test_l2_normalised_input_ignores_the_row_scale() -> None:
    torch.manual_seed(0)
    x = torch.tensor([[1.0, 0.0, 3.0, 0.0], [0.0, 2.0, 0.0, 0.0]])
    on = net.AutoencoderNet(4, [3], normalize=True).eval()
    off = net.AutoencoderNet(4, [3], normalize=False).eval()
    off.load_state_dict(on.state_dict())
    torch.testing.assert_close(on(5.0 * x), on(x))
    # normalised input == the raw network on rows divided by their L2 norm
    unit = x / x.norm(dim=1, keepdim=True)
    torch.testing.assert_close(on(x), off(unit))
    assert not torch.allclose(off(5.0 * x), off(x))


def test_vae_scores_with_the_mean_no_sampling() -> None:
    torch.manual_seed(0)
    vae = net.AutoencoderNet(6, [4, 2], variational=True).eval()
    x = torch.rand(3, 6)
    torch.testing.assert_close(vae(x), vae(x))
    mu, _ = vae.encode(x)
    torch.testing.assert_close(vae(x), vae.decoder(mu))


# ---------------------------------------------------------------- early stopping
def test_early_stopping_bookkeeping() -> None:
    stop = tt.EarlyStopping(patience=2)
    flags = [stop.update(e, v) for e, v in enumerate([0.1, 0.3, 0.3, 0.2])]
    assert flags == [True, True, False, False]  # a tie is not an improvement
    assert stop.best_epoch == 1 and stop.best_value == 0.3 and stop.should_stop


class FakeValidation:
    """Returns a fixed sequence and keeps a copy of the weights it was shown each epoch."""

    def __init__(self, values: list[float], scratch) -> None:
        self.values, self.scratch = values, scratch
        self.seen: list[dict] = []
        self.checkpoints: list[int] = []

    def __call__(self, module) -> float:
        self.seen.append({k: v.clone() for k, v in module.state_dict().items()})
        self.checkpoints.append(len(list(self.scratch.rglob("*.ckpt"))))
        return self.values[len(self.seen) - 1]


def test_early_stopping_restores_the_best_epoch(tmp_path, split) -> None:
    fit_part, _ = split
    model = create_model("autoencoder", FAST)
    x = model._input(fit_part.interactions)
    fake = FakeValidation([0.1, 0.3, 0.2, 0.25, 0.9, 0.9], tmp_path)
    settings = tt.TrainSettings("t", max_epochs=6, patience=2, num_threads=1)
    out = tt.train_module(
        lambda: model._build(x.shape[1]),
        net.row_loader(x, 16, 0),
        settings,
        validate=fake,
        scratch_dir=tmp_path,
    )
    assert out.best_epoch == 1
    assert out.history["epoch"] == [0.0, 1.0, 2.0, 3.0]  # stopped after 2 epochs without gain
    assert out.history[tt.VALID_METRIC] == [0.1, 0.3, 0.2, 0.25]
    assert all(isinstance(v, float) and v > 0 for v in out.history["train_loss"])
    final = out.module.state_dict()
    for name, tensor in final.items():
        torch.testing.assert_close(tensor, fake.seen[1][name])
    assert any(not torch.equal(final[n], fake.seen[3][n]) for n in final)
    assert fake.checkpoints[1] == 1  # the first epoch's checkpoint was written by then
    assert list(tmp_path.iterdir()) == []  # logs and checkpoints are gone


def test_the_learning_rate_decays_after_each_epoch_without_a_new_best(tmp_path, split) -> None:
    """lr_decay multiplies the learning rate after every epoch whose validation value is
    no new best (ties included), never after one that is; 1.0 leaves it alone."""
    fit_part, _ = split
    model = create_model("autoencoder", FAST)
    x = model._input(fit_part.interactions)
    seen: list[float] = []

    def validate(module) -> float:  # the lr the epoch trained with, then the next value
        seen.append(module.trainer.optimizers[0].param_groups[0]["lr"])
        return [0.1, 0.3, 0.3, 0.2, 0.5, 0.4][len(seen) - 1]

    settings = tt.TrainSettings("t", max_epochs=6, patience=9, num_threads=1, lr_decay=0.5)
    tt.train_module(
        lambda: model._build(x.shape[1]), net.row_loader(x, 16, 0), settings,
        validate=validate, scratch_dir=tmp_path,
    )  # fmt: skip
    lr = seen[0]
    assert seen == pytest.approx([lr, lr, lr, lr / 2, lr / 4, lr / 4])


def test_the_weight_average_by_hand() -> None:
    """The moving average after each step, against the formula: per-step decay from the
    half-life (1 epoch of 4 steps: b = 0.5 ** (1 / 4)), the warm-up min(b, (1 + t) /
    (10 + t)); a frozen parameter is not averaged."""
    module = torch.nn.Linear(1, 1)
    module.bias.requires_grad_(False)
    with torch.no_grad():
        module.weight.fill_(0.0)
    avg = tt.WeightAverage(module, half_life_epochs=1.0, steps_per_epoch=4)
    assert avg.decay == pytest.approx(0.5**0.25)
    assert set(avg.values) == {"weight"}
    expected = 0.0
    for t, w in enumerate([1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0], 1):
        with torch.no_grad():
            module.weight.fill_(w)
        avg.update(module)
        b = min(0.5**0.25, (1 + t) / (10 + t))
        expected = expected + (1 - b) * (w - expected)
        assert float(avg.values["weight"]) == pytest.approx(expected, rel=1e-6)
    assert (1 + 12) / (10 + 12) < 0.5**0.25  # the warm-up still holds at step 12
    live = avg.copy_to(module)
    assert float(module.weight.detach()) == pytest.approx(expected, rel=1e-6)
    assert float(live["weight"]) == 8.0


class _Recording(net.AutoencoderNet):
    """The autoencoder recording its weights before training and after every step."""

    def on_train_start(self) -> None:
        self.trajectory = [self._weights()]

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.trajectory.append(self._weights())

    def _weights(self) -> dict:
        return {n: p.detach().clone() for n, p in self.named_parameters()}


def test_validation_and_the_fit_see_the_averaged_weights(tmp_path, split) -> None:
    """With ``average_epochs`` validation scores, early stopping keeps and the fit returns
    the moving average of the steps' weights (recomputed here from the recorded
    trajectory); training itself goes on from the trained weights, step for step the
    same trajectory as without the average. Without validation the fit returns the last
    average."""
    fit_part, _ = split
    model = create_model("autoencoder", FAST)
    x = model._input(fit_part.interactions)
    steps = len(net.row_loader(x, 16, 0))
    built = []

    def build():
        module = _Recording(x.shape[1], hidden_dims=[8], lr=1e-2)
        built.append(module)
        return module

    runs = {}
    for half_life in (0.0, 1.0):
        fake = FakeValidation([0.1, 0.3, 0.2, 0.25], tmp_path / str(half_life))
        settings = tt.TrainSettings(
            "t", max_epochs=4, patience=9, num_threads=1, average_epochs=half_life
        )
        loader = net.row_loader(x, 16, 0)  # a fresh one: its shuffling generator is seeded
        out = tt.train_module(build, loader, settings, validate=fake, scratch_dir=tmp_path)
        runs[half_life] = (out, fake, built[-1].trajectory)
    plain, averaged = runs[0.0][2], runs[1.0][2]
    assert len(plain) == len(averaged) == 1 + 4 * steps
    for a, b in zip(plain, averaged, strict=True):  # the same training, step for step
        for n in a:
            torch.testing.assert_close(a[n], b[n], rtol=0, atol=0)
    decay = 0.5 ** (1.0 / steps)
    expected = dict(averaged[0])
    at_epoch_end = []
    for t, w in enumerate(averaged[1:], 1):
        b = min(decay, (1 + t) / (10 + t))
        expected = {n: expected[n] + (1 - b) * (w[n] - expected[n]) for n in expected}
        if t % steps == 0:
            at_epoch_end.append(expected)
    out, fake, _ = runs[1.0]
    for epoch, want in enumerate(at_epoch_end):
        for n, value in want.items():
            torch.testing.assert_close(fake.seen[epoch][n], value, rtol=1e-5, atol=1e-6)
    final = dict(out.module.named_parameters())
    for n, value in at_epoch_end[1].items():  # the best epoch (0.3), averaged
        torch.testing.assert_close(final[n].detach(), value, rtol=1e-5, atol=1e-6)
    live = averaged[2 * steps]
    assert any(not torch.allclose(live[n], at_epoch_end[1][n], atol=1e-4) for n in live)
    for n, value in runs[0.0][1].seen[1].items():  # without the average: the live weights
        if n in live:
            torch.testing.assert_close(value, live[n], rtol=0, atol=0)
    settings = tt.TrainSettings("t", max_epochs=4, num_threads=1, average_epochs=1.0)
    out = tt.train_module(build, net.row_loader(x, 16, 0), settings, scratch_dir=tmp_path)
    final = dict(out.module.named_parameters())  # no validation: the last average
    for n, value in at_epoch_end[-1].items():
        torch.testing.assert_close(final[n].detach(), value, rtol=1e-5, atol=1e-6)


def test_fit_records_history_and_stops_on_validation(split) -> None:
    fit_part, valid = split
    model = create_model("autoencoder", {**FAST, "lr": 3e-2, "max_epochs": 30, "patience": 2})
    model.fit(fit_part, valid)
    h = model.history_
    assert model.best_epoch_ < len(h["epoch"]) - 1  # it stopped early: the restore matters
    assert set(h) == {"epoch", "train_loss", tt.VALID_METRIC}
    assert len(h["epoch"]) == len(h["train_loss"]) == len(h[tt.VALID_METRIC])
    assert all(type(v) is float for series in h.values() for v in series)
    best = int(np.argmax(h[tt.VALID_METRIC]))
    assert model.best_epoch_ == best
    # the kept model's validation NDCG, through the public recommend path, is the best one
    items, _ = model.recommend(valid.users, 10, exclude=valid.exclude, candidates=valid.candidates)
    got = evaluate(items, valid, fit_part, ks=(10,), labels=("wr>2",), n_bootstrap=0)
    assert got.metrics["ndcg@10"] == pytest.approx(h[tt.VALID_METRIC][best], abs=1e-12)


def test_fit_without_validation_trains_the_fixed_epochs(split) -> None:
    fit_part, _ = split
    model = create_model("autoencoder", {**FAST, "max_epochs": 3}).fit(fit_part)
    assert model.history_["epoch"] == [0.0, 1.0, 2.0]
    assert tt.VALID_METRIC not in model.history_ and model.best_epoch_ is None


def test_fit_leaves_torch_global_settings_as_they_were(split) -> None:
    threads = torch.get_num_threads()
    before = torch.are_deterministic_algorithms_enabled()
    create_model("autoencoder", {**FAST, "max_epochs": 1}).fit(split[0])
    assert torch.are_deterministic_algorithms_enabled() == before
    assert torch.get_num_threads() == threads


def test_scoring_never_sets_torch_threads(split, monkeypatch) -> None:
    """torch's thread count is process-wide: a scoring call that set and restored it
    would race with the server's other threads. The server sets it once at load."""
    model = create_model("autoencoder", {**FAST, "max_epochs": 1}).fit(split[0])

    def refuse(n: int) -> None:
        raise AssertionError("scoring set torch's thread count")

    monkeypatch.setattr(torch, "set_num_threads", refuse)
    model.recommend(np.arange(5), 3)
    history = model.x_[:2]
    model.recommend(history=history, k=3)


def test_early_stopping_follows_the_splits_label(split) -> None:
    import dataclasses

    fit_part, valid = split
    valid = dataclasses.replace(valid, label="wr>=1")  # the run's --label travels with it
    model = create_model("autoencoder", {**FAST, "lr": 3e-2, "max_epochs": 4})
    model.fit(fit_part, valid)
    best = int(np.argmax(model.history_[tt.VALID_METRIC]))
    items, _ = model.recommend(valid.users, 10, exclude=valid.exclude, candidates=valid.candidates)
    under = {
        lab: evaluate(items, valid, fit_part, ks=(10,), labels=(lab,), default_label=lab,
                      n_bootstrap=0).metrics["ndcg@10"]
        for lab in ("wr>=1", "wr>2")
    }  # fmt: skip
    assert under["wr>=1"] == pytest.approx(model.history_[tt.VALID_METRIC][best], abs=1e-12)
    assert under["wr>=1"] != pytest.approx(under["wr>2"])


def test_an_opt_in_time_limit_marks_the_fit(split) -> None:
    fit_part, valid = split
    capped = create_model("autoencoder", {**FAST, "max_epochs": 5, "max_seconds": 1e-6})
    capped.fit(fit_part, valid)
    assert len(capped.history_["epoch"]) == 1  # stopped after the first epoch
    assert "max_seconds" in capped.time_limit_fired_
    free = create_model("autoencoder", {**FAST, "max_epochs": 2, "patience": 5})
    free.fit(fit_part, valid)
    assert free.time_limit_fired_ is None
    assert free.fit_remark_ is not None and "epoch cap" in free.fit_remark_


# ---------------------------------------------------------------- determinism, history
@pytest.mark.parametrize("extra", [{}, {"variational": True, "anneal_steps": 5}])
def test_same_seed_same_scores(split, extra) -> None:
    fit_part, valid = split
    runs = [create_model("autoencoder", {**FAST, **extra, "max_epochs": 3}) for _ in range(2)]
    for m in runs:
        m.fit(fit_part, valid)
    users = np.arange(fit_part.n_users)
    np.testing.assert_array_equal(runs[0].score(users), runs[1].score(users))
    assert runs[0].history_ == runs[1].history_
    other = create_model("autoencoder", {**FAST, **extra, "max_epochs": 3, "seed": 1})
    assert not np.array_equal(other.fit(fit_part, valid).score(users), runs[0].score(users))


@pytest.mark.parametrize(
    "extra",
    [{}, {"input": "weighted", "threshold": 1.0}, {"variational": True, "loss": "bce"}],
)
def test_own_history_scores_equal_scoring_by_index(split, extra) -> None:
    fit_part, _ = split
    model = create_model("autoencoder", {**FAST, **extra, "max_epochs": 2}).fit(fit_part)
    users = np.arange(fit_part.n_users)
    history = fit_part.interactions.csr("watch_ratio_mean")
    np.testing.assert_array_equal(model.score(history=history), model.score(users))
    items = np.array([4, 0, 7])
    np.testing.assert_array_equal(model.score(users, items), model.score(users)[:, items])


def test_top_candidates_follows_recommend_rules() -> None:
    import scipy.sparse as sp

    from kuairec.models.base import top_candidates

    scores = np.array([[0.5, 0.9, 0.9, 0.1, np.nan], [0.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
    exclude = sp.csr_matrix(np.array([[0, 0, 1, 0, 0], [1, 0, 0, 0, 0]], bool))
    cand = np.array([0, 1, 2, 4])
    got = top_candidates(lambda users: scores[users], np.array([0, 1]), exclude[:, cand], cand, 4)
    # row 0: 2 excluded, NaN never ranked above a real score; row 1: ties by item_idx
    np.testing.assert_array_equal(got, [[1, 0, -1, -1], [1, 2, 4, -1]])


def test_the_fit_threads_follow_the_catalogue_and_leave_the_numbers_alone() -> None:
    """0 picks 2 threads from 4,096 videos on (never the machine's cores); and the
    numbers must not depend on it: a fit with 1 and with 2 threads scores alike, to the
    bit, which is what lets the rule choose threads by size alone."""
    from kuairec.models.autoencoder import WIDE_CATALOGUE, fit_threads

    wide = 1 if tt.sums_split_over_threads() else 2  # the machine's BLAS decides
    assert fit_threads(0, WIDE_CATALOGUE - 1) == 1 and fit_threads(0, WIDE_CATALOGUE) == wide
    assert fit_threads(3, 10) == 3
    train = _train(n_users=300, n_items=700)
    # the default and the seed's configuration (BCE over every cell, ReLU, dropout):
    # the run's two lanes fit either on one thread (kuairec.pipeline.beside)
    for name in ("autoencoder", "autoencoder_seed_config"):
        scores = []
        for n in (1, 2):
            settings = {"hidden_dims": [64], "batch_size": 128, "max_epochs": 2, "lr": 1e-2}
            model = create_model(name, {**settings, "num_threads": n}).fit(train)
            scores.append(model.score(np.arange(50)))
        assert np.array_equal(scores[0], scores[1]), name
        assert create_model(name).one_core_fit(create_model(name).config)
    # RecVAE's numbers move with its threads: never run on a lane that changes them
    recvae = create_model(
        "autoencoder", {"architecture": "recvae", "variational": True, "hidden_dims": [64, 16]}
    )
    assert not recvae.one_core_fit(recvae.config)


def test_the_probe_of_split_sums_compares_one_thread_with_two() -> None:
    """sums_split_over_threads is what the products of its shapes show on this machine
    (recomputed here), and it leaves torch's thread count as it found it."""
    torch.set_num_threads(2)
    tt.sums_split_over_threads.cache_clear()
    found = tt.sums_split_over_threads()
    assert torch.get_num_threads() == 2
    gen = torch.Generator().manual_seed(0)
    differs = False
    for m, k, n in tt._SPLIT_PROBE:
        a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
        torch.set_num_threads(1)
        one = a @ b
        torch.set_num_threads(2)
        differs = differs or not torch.equal(one, a @ b)
    assert found == differs


@pytest.mark.parametrize("split", [False, True])
def test_where_sums_split_a_wide_fit_keeps_to_one_thread(monkeypatch, split) -> None:
    """On a machine whose products split their sums over threads, the autoencoder's fit
    keeps to one thread (fit_threads, fit_cores) and so is a one-core fit the run never
    widens (beside: among the fits that stay on one thread); elsewhere it takes two on
    a wide catalogue and may be widened. An explicit thread count on such a machine is
    not a one-core fit. RecVAE never is."""
    from kuairec.models.autoencoder import WIDE_CATALOGUE, AutoencoderRecommender, fit_threads
    from kuairec.models.registry import check_params
    from kuairec.pipeline import beside

    monkeypatch.setattr(tt, "sums_split_over_threads", lambda: split)
    assert fit_threads(0, WIDE_CATALOGUE) == (1 if split else 2)
    assert fit_threads(0, WIDE_CATALOGUE - 1) == 1 and fit_threads(3, 10) == 3
    for name in ("autoencoder", "autoencoder_seed_config"):
        config = check_params(name, {})
        assert AutoencoderRecommender.fit_cores(config) == (1 if split else None)
        assert AutoencoderRecommender.one_core_fit(config)
    two = check_params("autoencoder", {"num_threads": 2})
    assert AutoencoderRecommender.one_core_fit(two) is (not split)
    recvae = check_params(
        "autoencoder", {"architecture": "recvae", "variational": True, "hidden_dims": [64, 16]}
    )
    assert not AutoencoderRecommender.one_core_fit(recvae)
    names = ["bpr", "autoencoder", "autoencoder_seed_config"]
    group = beside.groups(names, lambda n: {})["autoencoder_seed_config"]
    widened = () if split else ("autoencoder_seed_config", "autoencoder")
    assert group.here == widened
    assert set(group.there) == set(names) - set(widened)
    assert group.order[0 if not split else -1] == "autoencoder_seed_config"  # first taken


def test_a_wide_fit_gives_the_same_numbers_whether_or_not_a_lane_widens_it(tmp_path) -> None:
    """What the run's lanes do to a wide autoencoder fit (kuairec.pipeline.beside): it
    starts on one thread under the cap and takes its own count from the epoch after the
    cap is lifted. Its weights equal those of the same fit alone, on this machine,
    whichever way its products split."""
    import threading

    from kuairec.models.autoencoder import WIDE_CATALOGUE, fit_threads

    train = _train(n_users=160, n_items=WIDE_CATALOGUE + 96)
    model = create_model("autoencoder", {"hidden_dims": [32], "batch_size": 32, "lr": 1e-2})
    x = model._input(train.interactions)
    own = fit_threads(model.config.num_threads, x.shape[1])

    def fit(validate):
        settings = tt.TrainSettings("t", max_epochs=3, patience=9, num_threads=own)
        return tt.train_module(
            lambda: model._build(x.shape[1]), net.row_loader(x, 32, 0), settings,
            validate=validate, scratch_dir=tmp_path,
        ).module  # fmt: skip

    alone = fit(lambda m: float(m.current_epoch))  # the last epoch is the best
    lift, seen = threading.Event(), []

    def validate(m) -> float:  # the threads the epoch ran on; then the lane frees up
        seen.append(torch.get_num_threads())
        lift.set()
        return float(m.current_epoch)

    before = tt.cap_threads(1, lift)
    try:
        lane = fit(validate)
    finally:
        tt.cap_threads(before)
    assert seen == [1, own, own]
    for (n, a), b in zip(alone.state_dict().items(), lane.state_dict().values(), strict=True):
        assert torch.equal(a, b), n


def test_the_bce_loss_is_the_same_on_any_thread_count() -> None:
    """The seed configuration's loss averages every cell of a batch; torch's mean of a
    large tensor splits among its threads (its last bits changed with the count in 14 of
    30 such batches), and the run's lanes change the count between epochs: its logged
    value must not follow."""
    from kuairec.models.autoencoder_net import bce_loss

    gen = torch.Generator().manual_seed(0)
    before = torch.get_num_threads()
    try:
        for _ in range(10):
            logits = torch.randn(256, 10_000, generator=gen) * 3
            x = (torch.rand(256, 10_000, generator=gen) < 0.12).float()
            values = []
            for n in (1, 2):
                torch.set_num_threads(n)
                values.append(bce_loss(logits, x).item())
                assert torch.get_num_threads() == n  # given back
            assert values[0] == values[1]
    finally:
        torch.set_num_threads(before)


def test_a_thread_cap_holds_every_fit_to_it_until_it_is_lifted() -> None:
    import threading

    from kuairec.models import torch_train

    before = torch.get_num_threads()
    lifted = threading.Event()
    seen = []
    assert torch_train.cap_threads(1, lifted) is None
    try:
        assert torch.get_num_threads() == 1
        with torch_train.threads(2):
            seen.append(torch.get_num_threads())
            torch_train.check_lift()  # an epoch ends: not lifted yet
            seen.append(torch.get_num_threads())
            lifted.set()  # the other lane has nothing left
            torch_train.check_lift()
            seen.append(torch.get_num_threads())
        with torch_train.threads(1):  # a one-thread fit stays on one
            torch_train.check_lift()
            seen.append(torch.get_num_threads())
        with torch_train.threads(2):  # lifted: a new fit gets what it asks for
            seen.append(torch.get_num_threads())
    finally:
        assert torch_train.cap_threads(None) == 1
    assert seen == [1, 1, 2, 1, 2] and torch.get_num_threads() == before
    with torch_train.threads(0):  # no cap: left as they are
        assert torch.get_num_threads() == before
