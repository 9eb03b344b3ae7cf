"""The autoencoder's published variants against hand-checked small cases.

Mult-VAE (Liang et al. 2018): the whole training loss on a 3 x 4 matrix computed by hand,
the KL weight's schedule as training steps advance. RecVAE (Shenbin et al. 2020): the
Gaussian and composite-prior densities by hand, the per-user KL weight, the densely
connected encoder written out layer by layer, the alternating updates (an encoder step
leaves the decoder alone and the reverse, the prior's old encoder refreshed when the
decoder phase starts), and the fitted model through the public path.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from kuairec.data.dataset import IdMap, Interactions, TrainSet  # noqa: E402
from kuairec.errors import ConfigError  # noqa: E402
from kuairec.evaluation.validation import validation_split  # noqa: E402
from kuairec.models import autoencoder_net as net  # noqa: E402
from kuairec.models import autoencoder_recvae as rv  # noqa: E402
from kuairec.models import create_model  # noqa: E402
from kuairec.models import torch_train as tt  # noqa: E402

LN2 = math.log(2.0)
RECVAE = {"architecture": "recvae", "variational": True, "hidden_dims": [8, 3]}
FAST = {"batch_size": 16, "lr": 1e-2, "num_threads": 1}


def _train(seed: int = 0, n_users: int = 60, n_items: int = 24) -> TrainSet:
    rng = np.random.default_rng(seed)
    gu, gi = rng.integers(0, 2, n_users), rng.integers(0, 2, n_items)
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.4)
    wr = np.where(gu[users] == gi[items], 2.5, 0.4) * rng.uniform(0.7, 1.3, users.size)
    inter = Interactions.from_log(users, items, wr, None, (n_users, n_items))
    return TrainSet(inter, IdMap(np.arange(n_users)), IdMap(np.arange(n_items)))


# ---------------------------------------------------------------- Mult-VAE
def test_mult_vae_loss_on_a_3x4_matrix_by_hand() -> None:
    x = torch.tensor([[1.0, 0, 1, 0], [0, 2, 0, 0], [1, 1, 1, 1]])
    logits = torch.log(torch.tensor([[1.0, 1, 1, 1], [1, 3, 1, 1], [2, 1, 1, 4]]))
    # softmax rows: (1,1,1,1)/4, (1,3,1,1)/6, (2,1,1,4)/8; negative log-likelihoods:
    # row 0: 2 log 4 = 4 log 2; row 1: -2 log(1/2) = 2 log 2;
    # row 2: log 4 + log 8 + log 8 + log 2 = 9 log 2  -> mean 15 log 2 / 3 = 5 log 2
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, LN2], [0.0, 0.0]])
    # KL per user = 0.5 * sum(-logvar + exp(logvar) + mu^2 - 1):
    # 0.5 * 1 = 0.5; 0.5 * (-log 2 + 2 - 1) = 0.5 - log2 / 2; 0.5 * 2 = 1  -> mean
    kl = (0.5 + (0.5 - LN2 / 2) + 1.0) / 3
    got = net.elbo_loss(logits, x, mu, logvar, beta=0.2)
    assert got.item() == pytest.approx(5 * LN2 + 0.2 * kl, rel=1e-6)
    # the DAE (no variational code) is the multinomial part alone
    assert net.elbo_loss(logits, x, mu, None, beta=0.2).item() == pytest.approx(5 * LN2, rel=1e-6)


def test_kl_weight_follows_the_optimiser_steps_of_a_fit() -> None:
    """4 users, batch 2 -> 2 steps an epoch; 3 epochs = steps 0..5; anneal over 4 steps:
    the last step (5) uses the capped weight, and the schedule is by step, not epoch."""
    inter = Interactions.from_log(
        np.array([0, 0, 1, 2, 3, 3]), np.array([0, 1, 1, 2, 0, 3]), np.ones(6), None, (4, 4)
    )
    x = inter.csr("ones", np.float32)
    seen: list[float] = []

    class Recording(net.AutoencoderNet):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            seen.append(self.last_beta)
            return loss

    build = lambda: Recording(4, [2], variational=True, beta_max=0.2, anneal_steps=4)  # noqa: E731
    tt.train_module(build, net.row_loader(x, 2, 0), tt.TrainSettings("t", 3, num_threads=1))
    assert seen == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2, 0.2])


# ---------------------------------------------------------------- RecVAE pieces
def test_log_normal_by_hand() -> None:
    z, mu, logvar = torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([LN2])
    # log N(1 | 0, 2) = -0.5 * (log 2 + log 2 pi + 1 / 2)
    want = -0.5 * (LN2 + math.log(2 * math.pi) + 0.5)
    assert rv.log_normal(z, mu, logvar).item() == pytest.approx(want, rel=1e-6)


def test_composite_prior_by_hand() -> None:
    z = torch.zeros(1, 2)
    old_mu, old_logvar = torch.zeros(1, 2), torch.zeros(1, 2)
    # at 0: N(0|0,1) (twice: standard and old posterior) and the wide N(0|0,e^10)
    a = -0.5 * math.log(2 * math.pi)
    want = a + math.log(3 / 20 + 3 / 4 + math.exp(-5.0) / 10)
    got = rv.composite_log_prior(z, old_mu, old_logvar)
    torch.testing.assert_close(got, torch.full((1, 2), want))
    # the old posterior matters: moved far away it drops out of the mixture
    far = rv.composite_log_prior(z, torch.full((1, 2), 50.0), old_logvar)
    want_far = a + math.log(3 / 20 + math.exp(-5.0) / 10)
    torch.testing.assert_close(far, torch.full((1, 2), want_far))


def test_recvae_kl_weight_is_gamma_times_the_input_mass() -> None:
    m = rv.RecVAENet(4, (3, 2), layers=1, gamma=0.01, beta_max=0.3, anneal_steps=10)
    x = torch.tensor([[1.0, 0, 1, 0], [0, 2.5, 0, 0], [1, 1, 1, 1]])
    torch.testing.assert_close(m.kl_weights(x), torch.tensor([0.02, 0.025, 0.04]))
    annealed = rv.RecVAENet(4, (3, 2), layers=1, gamma=0.0, beta_max=0.3, anneal_steps=10)
    annealed._encoder_steps = 5
    torch.testing.assert_close(annealed.kl_weights(x), torch.full((3,), 0.15))


def test_dense_encoder_written_out_layer_by_layer() -> None:
    torch.manual_seed(0)
    enc = rv.DenseEncoder(5, width=4, latent=2, layers=3).eval()
    x = torch.rand(2, 5)
    f, n = enc.fcs, enc.norms
    h1 = n[0](f[0](x) * torch.sigmoid(f[0](x)))
    a2 = f[1](h1) + h1
    h2 = n[1](a2 * torch.sigmoid(a2))
    a3 = f[2](h2) + h1 + h2
    h3 = n[2](a3 * torch.sigmoid(a3))
    mu, logvar = enc(x)
    torch.testing.assert_close(mu, enc.mu(h3))
    torch.testing.assert_close(logvar, enc.logvar(h3))


def _manual(module: rv.RecVAENet) -> rv.RecVAENet:
    """Drive training_step without a Trainer: real Adam optimisers, plain backward."""
    opts = module.configure_optimizers()
    module.optimizers = lambda: opts
    module.manual_backward = lambda loss: loss.backward()
    return module.train()


def _copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_recvae_alternates_encoder_and_decoder_updates() -> None:
    torch.manual_seed(0)
    m = _manual(rv.RecVAENet(6, (5, 2), layers=2, input_dropout=0.0, lr=1e-2))
    x = torch.rand(4, 6)
    enc0, dec0, old0 = _copy(m.encoder), _copy(m.decoder), _copy(m.old_encoder)
    assert _same(enc0, old0)  # the prior starts from the initial encoder
    m.training_step((rv.ENCODER, x), 0)
    m.training_step((rv.ENCODER, x), 1)
    enc1 = _copy(m.encoder)
    assert not _same(enc1, enc0) and _same(_copy(m.decoder), dec0)
    assert _same(_copy(m.old_encoder), old0)  # not refreshed during the encoder phase
    m.training_step((rv.DECODER, x), 2)
    assert _same(_copy(m.old_encoder), enc1)  # refreshed as the decoder phase starts
    assert _same(_copy(m.encoder), enc1) and not _same(_copy(m.decoder), dec0)
    assert "old_encoder.fcs.0.weight" not in m.state_dict()  # scoring never needs it


def test_alternating_loader_tags_the_passes() -> None:
    loader = rv.AlternatingLoader([torch.zeros(1), torch.ones(1)], 2, 1)
    phases = [p for p, _ in loader]
    assert phases == [rv.ENCODER] * 4 + [rv.DECODER] * 2 and len(loader) == 6


# ---------------------------------------------------------------- RecVAE through the model
@pytest.fixture(scope="module")
def split():
    return validation_split(_train(), "random", fraction=0.25, seed=0)


def test_recvae_fit_is_seeded_and_scores_histories(split) -> None:
    fit_part, valid = split
    params = {**FAST, **RECVAE, "max_epochs": 3, "encoder_layers": 2}
    a = create_model("autoencoder", params).fit(fit_part, valid)
    b = create_model("autoencoder", params).fit(fit_part, valid)
    users = np.arange(fit_part.n_users)
    np.testing.assert_array_equal(a.score(users), b.score(users))
    assert a.history_ == b.history_ and len(a.history_["epoch"]) >= 1
    history = fit_part.interactions.csr("watch_ratio_mean")
    np.testing.assert_array_equal(a.score(history=history), a.score(users))
    c = create_model("autoencoder", {**params, "seed": 1}).fit(fit_part, valid)
    assert not np.array_equal(c.score(users), a.score(users))


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"variational": False}, "variational = true"),
        ({"loss": "bce"}, "loss = 'multinomial'"),
        ({"hidden_dims": [8, 4, 2]}, "hidden_dims = [width, latent]"),
        ({"devices": 2}, "set devices = 1"),
    ],
)
def test_recvae_config_errors_name_the_setting(extra, words) -> None:
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        create_model("autoencoder", {**RECVAE, **extra})


# ---------------------------------------------------------------- fold_in
def test_fold_in_scores_known_users_from_the_whole_log(split) -> None:
    from kuairec.errors import ModelError

    fit_part, valid = split
    whole = _train()
    model = create_model("autoencoder", {**FAST, "hidden_dims": [8], "max_epochs": 2})
    model.fit(fit_part, valid)
    users = valid.users
    before = model.score(users)
    np.testing.assert_array_equal(before, model.score(history=fit_part.interactions.csr()[users]))
    model.fold_in(whole)
    after = model.score(users)
    np.testing.assert_array_equal(after, model.score(history=whole.interactions.csr()[users]))
    assert not np.array_equal(after, before)  # the held-out pairs are input now
    small = TrainSet(
        Interactions.from_log(np.array([0]), np.array([0]), np.ones(1), None, (3, 3)),
        IdMap(np.arange(3)),
        IdMap(np.arange(3)),
    )
    with pytest.raises(ModelError, match="fold_in needs a training log of shape"):
        model.fold_in(small)


def test_no_autoencoder_preset_has_a_clock() -> None:
    """No clock decides a result: every registered autoencoder entry trains by epochs."""
    from kuairec.models.registry import available_models, get_model_class

    names = [n for n in available_models() if get_model_class(n).name == "autoencoder"]
    assert {"autoencoder", "autoencoder_seed_config", "autoencoder_vae"} <= set(names)
    for name in names:
        assert create_model(name).config.max_seconds is None, name
