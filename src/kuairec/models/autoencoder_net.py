"""The autoencoder's torch pieces: the network (a LightningModule), its losses, the KL
schedule and the data loader that densifies CSR rows one batch at a time.

Imported only inside :mod:`kuairec.models.autoencoder`'s functions (it imports torch and
lightning). Everything here is module-level so that ``ddp_spawn`` can pickle it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "swish": nn.SiLU}


def kl_weight(step: int, beta_max: float, anneal_steps: int) -> float:
    """The VAE's KL weight after ``step`` optimiser steps: linear from 0 to ``beta_max``
    over ``anneal_steps`` steps, then ``beta_max`` (Liang et al. 2018, section 2.2.2)."""
    if anneal_steps <= 0:
        return float(beta_max)
    return float(beta_max) * min(1.0, step / anneal_steps)


def multinomial_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mult-DAE/VAE's negative multinomial log-likelihood: ``-sum_i x_i log softmax(z)_i``
    per user, averaged over the batch."""
    return -(F.log_softmax(logits, dim=1) * x).sum(dim=1).mean()


def bce_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the sigmoid outputs against watched (x > 0) / not watched,
    averaged over every (user, item) cell (torch's default reduction).

    Computed on one thread: torch splits a mean over every cell of a batch among its
    threads, so its last bits (the epoch's logged training loss) would depend on the
    thread count, which the run's lanes change between epochs. Its gradient is the same
    on any count (each cell's own), and so are the weights."""
    threads = torch.get_num_threads()
    if threads == 1:
        return F.binary_cross_entropy_with_logits(logits, (x > 0).to(logits.dtype))
    torch.set_num_threads(1)
    try:
        return F.binary_cross_entropy_with_logits(logits, (x > 0).to(logits.dtype))
    finally:
        torch.set_num_threads(threads)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per user, averaged over the batch."""
    return (0.5 * (-logvar + logvar.exp() + mu.pow(2) - 1.0).sum(dim=1)).mean()


def elbo_loss(
    logits: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor | None,
    beta: float,
    loss: str = "multinomial",
) -> torch.Tensor:
    """The training loss: the reconstruction loss (``"multinomial"`` or ``"bce"``), plus
    ``beta`` times the KL term when there is a variational code (``logvar`` not None):
    Mult-VAE's negative ELBO with the KL term weighted (Liang et al. 2018, eq. 6)."""
    rec = (multinomial_loss if loss == "multinomial" else bce_loss)(logits, x)
    return rec if logvar is None else rec + beta * kl_divergence(mu, logvar)


def _mlp(dims: Sequence[int], activation: str, dropout: float, last_active: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2 or last_active:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class AutoencoderNet(L.LightningModule):
    """``n_items -> hidden_dims... -> mirrored -> n_items``; the last hidden width is the
    code (the VAE's latent size: the encoder then outputs its mean and log-variance).

    Input rows are optionally L2-normalised, then input dropout; hidden layers have
    ``activation`` and ``dropout``; the code layer and the output are linear.
    """

    def __init__(
        self,
        n_items: int,
        hidden_dims: Sequence[int],
        activation: str = "tanh",
        dropout: float = 0.0,
        input_dropout: float = 0.5,
        normalize: bool = True,
        loss: str = "multinomial",
        variational: bool = False,
        beta_max: float = 0.2,
        anneal_steps: int = 2000,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        dims = [int(n_items), *map(int, hidden_dims)]
        self.n_items = int(n_items)
        self.variational, self.normalize, self.loss_name = variational, normalize, loss
        self.beta_max, self.anneal_steps = beta_max, anneal_steps
        self.lr, self.weight_decay = lr, weight_decay
        self.input_dropout = nn.Dropout(input_dropout)
        self.last_beta = 0.0  # the KL weight of the last training step
        enc = dims[:-1] + [2 * dims[-1]] if variational else dims
        self.encoder = _mlp(enc, activation, dropout, last_active=False)
        self.decoder = _mlp(dims[::-1], activation, dropout, last_active=False)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = F.normalize(x, dim=1) if self.normalize else x
        h = self.encoder(self.input_dropout(h))
        if not self.variational:
            return h, None
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output logits; in eval mode the VAE decodes its mean (no sampling)."""
        mu, logvar = self.encode(x)
        z = mu
        if self.variational and self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(z)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        mu, logvar = self.encode(batch)
        z = mu if logvar is None else mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        self.last_beta = kl_weight(self.global_step, self.beta_max, self.anneal_steps)
        return elbo_loss(self.decoder(z), batch, mu, logvar, self.last_beta, self.loss_name)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam, fused on CPU and CUDA (one kernel for all parameters; the two-tower model's
        choice too): at KuaiRec's full size a step over the 10,728-video layers took
        25 ms with the per-tensor loop against 3.4 ms fused, a third of the seed
        configuration's fit. The same update up to float rounding (docs/models.md)."""
        return torch.optim.Adam(
            self.parameters(),
            lr=self.lr,
            weight_decay=self.weight_decay,
            fused=self.device.type in ("cpu", "cuda"),
        )


class DenseRows:
    """A DataLoader's ``collate_fn``: the CSR rows of a batch of row indices, as one dense
    float32 tensor (the whole matrix is never densified)."""

    def __init__(self, x: sp.csr_matrix) -> None:
        self.x = x

    def __call__(self, rows: list[int]) -> torch.Tensor:
        return torch.from_numpy(self.x[np.asarray(rows)].toarray().astype(np.float32))


def row_loader(x: sp.csr_matrix, batch_size: int, seed: int) -> torch.utils.data.DataLoader:
    """Shuffled batches of the non-empty rows of ``x`` (a seeded order)."""
    rows = np.flatnonzero(np.diff(x.indptr) > 0).tolist()
    return torch.utils.data.DataLoader(
        rows,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=DenseRows(x),
        generator=torch.Generator().manual_seed(seed),
    )


@torch.no_grad()
def score_dense(net: L.LightningModule, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """float32 scores (output logits) of dense input rows, in eval mode, in batches
    (``net``: an :class:`AutoencoderNet` or a RecVAE net; both have ``n_items``)."""
    net.eval()
    device = next(net.parameters()).device
    out = np.empty((x.shape[0], net.n_items), dtype=np.float32)
    for start in range(0, x.shape[0], batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size]))
        out[start : start + batch_size] = net(chunk.to(device)).float().cpu().numpy()
    return out


def score_users(net: AutoencoderNet, users: np.ndarray, x: sp.csr_matrix) -> np.ndarray:
    """Scores of known users from their rows of the training input ``x`` (validation)."""
    return score_dense(net, x[users].toarray().astype(np.float32))
