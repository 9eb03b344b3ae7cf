"""RecVAE's torch pieces (Shenbin et al., "RecVAE: a New Variational Autoencoder for Top-N
Recommendations with Implicit Feedback", WSDM 2020), behind ``autoencoder``'s
``architecture = "recvae"``.

What differs from Mult-VAE (:mod:`kuairec.models.autoencoder_net`), after the paper:

- **encoder**: ``layers`` dense layers of one width, each ``LayerNorm(swish(W h + the sum
  of every earlier layer's output))`` (densely connected), on the L2-normalised input with
  input dropout; linear heads for the mean and log-variance of the latent code;
- **decoder**: one linear layer (latent -> item logits), multinomial likelihood;
- **composite prior**: a mixture of N(0, I) (weight 3/20), the posterior of the encoder as
  it was before the current decoder phase (weight 3/4) and a wide N(0, e^10 I) (weight
  1/10); the KL term has no closed form, so it is the one-sample estimate
  ``log q(z|x) - log p(z)`` (per latent dimension, summed);
- **KL weight** ``beta(x) = gamma * sum(x)``: proportional to the user's input mass (the
  number of watched items for binary input), unless ``gamma`` is 0 (then Mult-VAE's
  annealed ``beta_max``);
- **alternating updates**: every epoch is ``encoder_passes`` passes over the users that
  update the encoder only (with input dropout), then the old-encoder copy of the prior is
  refreshed, then ``decoder_passes`` passes that update the decoder only (no input
  dropout; the decoder's gradient does not depend on the KL term, so it is not computed).

One difference from the authors' code, on purpose: the prior's old encoder starts as a
copy of the initial encoder (theirs starts as a second random encoder until the first
refresh). The old encoder is not part of the ``state_dict`` (scoring never uses it), so a
saved RecVAE holds the encoder and the decoder only.

Imported only inside :mod:`kuairec.models.autoencoder`'s functions (torch, lightning).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from kuairec.models.autoencoder_net import kl_weight

MIXTURE = (3 / 20, 3 / 4, 1 / 10)  # standard, old posterior, wide (the paper's weights)
WIDE_LOGVAR = 10.0
LN_EPS = 0.1  # the authors' LayerNorm epsilon
ENCODER, DECODER = 0, 1


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log density of N(mu, exp(logvar)) at z."""
    return -0.5 * (logvar + math.log(2 * math.pi) + (z - mu).pow(2) / logvar.exp())


def composite_log_prior(
    z: torch.Tensor, old_mu: torch.Tensor, old_logvar: torch.Tensor
) -> torch.Tensor:
    """Elementwise log density of the composite prior at z (see the module docstring)."""
    zero = torch.zeros_like(z)
    parts = (
        log_normal(z, zero, zero),
        log_normal(z, old_mu, old_logvar),
        log_normal(z, zero, torch.full_like(z, WIDE_LOGVAR)),
    )
    stacked = torch.stack([p + math.log(w) for p, w in zip(parts, MIXTURE, strict=True)])
    return torch.logsumexp(stacked, dim=0)


class DenseEncoder(nn.Module):
    """``layers`` densely connected LayerNorm/swish layers of ``width``, then the mean and
    log-variance heads of a ``latent``-dimensional code."""

    def __init__(self, n_items: int, width: int, latent: int, layers: int) -> None:
        super().__init__()
        self.fcs = nn.ModuleList(
            [nn.Linear(n_items if i == 0 else width, width) for i in range(layers)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(width, eps=LN_EPS) for _ in range(layers)])
        self.mu = nn.Linear(width, latent)
        self.logvar = nn.Linear(width, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x
        earlier: torch.Tensor | int = 0  # the sum of the earlier layers' outputs
        for fc, norm in zip(self.fcs, self.norms, strict=True):
            h = norm(F.silu(fc(h) + earlier))
            earlier = earlier + h
        return self.mu(h), self.logvar(h)


class RecVAENet(L.LightningModule):
    """RecVAE (manual optimisation: one Adam per half, stepped by phase).

    A training batch is ``(phase, rows)`` with phase :data:`ENCODER` or :data:`DECODER`
    (:class:`AlternatingLoader`); the old encoder is refreshed on the first decoder batch
    after encoder batches.
    """

    def __init__(
        self,
        n_items: int,
        hidden_dims: tuple[int, ...] = (600, 200),
        layers: int = 5,
        input_dropout: float = 0.5,
        normalize: bool = True,
        gamma: float = 0.005,
        beta_max: float = 0.2,
        anneal_steps: int = 2000,
        lr: float = 5e-4,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        width, latent = int(hidden_dims[0]), int(hidden_dims[-1])
        self.n_items = int(n_items)
        self.normalize, self.gamma = normalize, gamma
        self.beta_max, self.anneal_steps = beta_max, anneal_steps
        self.lr, self.weight_decay = lr, weight_decay
        self.input_dropout = nn.Dropout(input_dropout)
        self.encoder = DenseEncoder(int(n_items), width, latent, layers)
        self.decoder = nn.Linear(latent, int(n_items))
        self._refresh_old()
        self._last_phase = ENCODER
        self._encoder_steps = 0

    def _refresh_old(self) -> None:
        """Copy the encoder into the prior's old encoder (kept out of the state_dict)."""
        old = copy.deepcopy(self.encoder).requires_grad_(False)
        object.__setattr__(self, "old_encoder", old)  # not a registered submodule

    def _prepare(self, x: torch.Tensor, dropout: bool) -> torch.Tensor:
        h = F.normalize(x, dim=1) if self.normalize else x
        return self.input_dropout(h) if dropout else h

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(self._prepare(x, dropout=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output logits; in eval mode the code is the posterior mean (no sampling)."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder(z)

    def kl_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Per user: ``gamma * sum(x)`` (RecVAE), or the annealed ``beta_max`` if gamma = 0."""
        if self.gamma > 0:
            return self.gamma * x.sum(dim=1)
        beta = kl_weight(self._encoder_steps, self.beta_max, self.anneal_steps)
        return torch.full((x.shape[0],), beta, dtype=x.dtype, device=x.device)

    def encoder_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The negative ELBO with the composite prior's one-sample KL estimate."""
        mu, logvar = self.encoder(self._prepare(x, dropout=True))
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        nll = -(F.log_softmax(self.decoder(z), dim=1) * x).sum(dim=1)
        with torch.no_grad():
            old_mu, old_logvar = self.old_encoder.to(x.device)(self._prepare(x, dropout=False))
        kl = (log_normal(z, mu, logvar) - composite_log_prior(z, old_mu, old_logvar)).sum(1)
        return (nll + self.kl_weights(x) * kl).mean()

    def decoder_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The multinomial NLL through a sampled code of the fixed encoder (no dropout)."""
        with torch.no_grad():
            mu, logvar = self.encoder(self._prepare(x, dropout=False))
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return -(F.log_softmax(self.decoder(z), dim=1) * x).sum(dim=1).mean()

    def training_step(self, batch: tuple[int, torch.Tensor], batch_idx: int) -> torch.Tensor:
        phase, x = batch
        opt_enc, opt_dec = self.optimizers()
        if phase == DECODER and self._last_phase == ENCODER:
            self._refresh_old()
        self._last_phase = phase
        opt = opt_enc if phase == ENCODER else opt_dec
        loss = self.encoder_loss(x) if phase == ENCODER else self.decoder_loss(x)
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        if phase == ENCODER:
            self._encoder_steps += 1
        return loss.detach()

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        def adam(module: nn.Module) -> torch.optim.Optimizer:
            return torch.optim.Adam(module.parameters(), lr=self.lr, weight_decay=self.weight_decay)

        return [adam(self.encoder), adam(self.decoder)]


class AlternatingLoader:
    """One epoch = ``encoder_passes`` passes of ``loader`` tagged :data:`ENCODER`, then
    ``decoder_passes`` tagged :data:`DECODER` (each pass reshuffled by the loader)."""

    def __init__(self, loader: Any, encoder_passes: int, decoder_passes: int) -> None:
        self.loader = loader
        self.passes = [ENCODER] * encoder_passes + [DECODER] * decoder_passes

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        for phase in self.passes:
            for rows in self.loader:
                yield phase, rows

    def __len__(self) -> int:
        return len(self.passes) * len(self.loader)
