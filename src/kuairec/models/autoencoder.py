"""A deep autoencoder over users' watch histories: Mult-DAE / Mult-VAE (Liang et al.,
"Variational Autoencoders for Collaborative Filtering", WWW 2018), RecVAE (Shenbin et
al., WSDM 2020; ``architecture="recvae"``, :mod:`kuairec.models.autoencoder_recvae`) and
a plain BCE autoencoder (the seed configuration).

A user's input is their row of the training matrix over all items: binary (watched) or
``weighted`` (clipped watch_ratio), pairs below ``threshold`` dropped
(:func:`kuairec.models.matrices.weighted_matrix`). The published recipe L2-normalises the
row and drops half of it (input dropout 0.5) before the encoder; the loss is the
multinomial log-likelihood of the softmax output (``"multinomial"``) or per-item binary
cross-entropy (``"bce"``); the VAE adds a KL term whose weight rises linearly to
``beta_max`` over ``anneal_steps`` optimiser steps. Scores are the decoder's output logits
(the VAE decodes its mean: no sampling), so any user with a history can be scored, a
posted one included, and a known user's own history gives exactly that user's scores.

Training goes through :mod:`kuairec.models.torch_train` (Lightning, seeded, early stopping
on the validation split's NDCG@10, the best epoch kept, no refit on the whole log).
CSR rows are densified one batch at a time. Known users are scored from their rows of the
fit part until :meth:`AutoencoderRecommender.fold_in` gives the whole training log.
``max_seconds`` (off by default) caps the fit: training stops after the first epoch that
ends past it (an opt-in safety cap; when it triggers, the epoch count, and so the model,
depends on the machine's speed, and the run marks the row).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from kuairec.errors import ConfigError, ModelError
from kuairec.models.base import Recommender
from kuairec.models.matrices import (
    csr_from_state,
    csr_state,
    select_rows,
    weighted_matrix,
    weighted_rows,
)
from kuairec.models.params import Param, param

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import TrainSet
    from kuairec.evaluation.protocols import TestSet

_NET_FIELDS = (
    "hidden_dims",
    "activation",
    "dropout",
    "input_dropout",
    "normalize",
    "loss",
    "variational",
    "beta_max",
    "anneal_steps",
    "lr",
    "weight_decay",
)
_RECVAE_FIELDS = (
    "hidden_dims",
    "input_dropout",
    "normalize",
    "gamma",
    "beta_max",
    "anneal_steps",
    "lr",
    "weight_decay",
)


@dataclass(frozen=True)
class AutoencoderConfig:
    # defaults chosen on the temporal validation split of the training log (docs/models.md)
    input: Literal["binary", "weighted"] = "weighted"
    threshold: float = param(0.0, ge=0, doc="pairs with watch_ratio below it are dropped")
    clip: float = param(5.0, gt=0, doc="watch_ratio is clipped at this value ('weighted')")
    architecture: Literal["mlp", "recvae"] = "mlp"  # recvae: autoencoder_recvae.py
    hidden_dims: tuple[int, ...] = param(
        (200,), doc="mlp: encoder widths (mirrored decoder); recvae: (width, latent)"
    )
    activation: Literal["tanh", "relu", "sigmoid", "swish"] = "tanh"
    dropout: float = param(0.0, ge=0, lt=1, doc="dropout after every hidden layer")
    input_dropout: float = param(0.5, ge=0, lt=1, doc="dropout on the (normalised) input")
    normalize: bool = True
    loss: Literal["multinomial", "bce"] = "multinomial"
    variational: bool = False
    beta_max: float = param(0.2, ge=0, doc="VAE: the KL weight's final value")
    anneal_steps: int = param(2000, ge=0, doc="VAE: optimiser steps to reach beta_max")
    gamma: float = param(0.005, ge=0, doc="RecVAE: KL weight per unit of input (0: beta_max)")
    encoder_layers: int = param(5, ge=1, doc="RecVAE: densely connected encoder layers")
    encoder_passes: int = param(3, ge=1, doc="RecVAE: encoder-only passes per epoch")
    decoder_passes: int = param(1, ge=1, doc="RecVAE: decoder-only passes per epoch")
    lr: float = param(3e-3, gt=0, doc="Adam learning rate")
    weight_decay: float = param(0.0, ge=0, doc="Adam L2 penalty")
    batch_size: int = param(64, ge=1, doc="users per batch")
    max_epochs: int = param(100, ge=1, doc="epochs at most (all of them without a split)")
    patience: int = param(5, ge=1, doc="epochs without a better validation NDCG@10")
    max_seconds: float | None = param(None, gt=0, doc="stop after the epoch that ends past it")
    seed: int = param(0, ge=0, doc="seeds weights, dropout, shuffling and sampling")
    accelerator: str = param("cpu", doc="Lightning accelerator: cpu, gpu, auto")
    devices: int = param(1, ge=1, doc="devices (more than 1: DDP, ddp_spawn)")
    num_threads: int = param(
        0, ge=0, doc="torch CPU threads while fitting (0: 2 from 4,096 videos on, else 1)"
    )

    def check(self) -> None:
        if not self.hidden_dims or min(self.hidden_dims) < 1:
            raise ConfigError(
                f"autoencoder: parameter 'hidden_dims' must be a non-empty list of widths "
                f">= 1, got {list(self.hidden_dims)!r}"
            )
        if self.architecture != "recvae":
            return
        if len(self.hidden_dims) != 2:
            raise ConfigError(
                "autoencoder: architecture 'recvae' needs hidden_dims = [width, latent], "
                f"got {list(self.hidden_dims)!r}"
            )
        if not self.variational or self.loss != "multinomial":
            raise ConfigError(
                "autoencoder: architecture 'recvae' is a variational autoencoder with the "
                "multinomial loss: set variational = true and loss = 'multinomial', got "
                f"variational = {self.variational}, loss = {self.loss!r}"
            )
        if self.devices > 1:
            raise ConfigError(
                "autoencoder: architecture 'recvae' trains on one device (its alternating "
                f"passes are not split across processes): set devices = 1, got {self.devices}"
            )


class AutoencoderRecommender(Recommender):
    """Deep autoencoder of watch histories (Mult-DAE/VAE, RecVAE; torch + Lightning)."""

    name = "autoencoder"
    Config = AutoencoderConfig
    supports_history = True
    uses_validation = True
    uses_accelerator = True
    requires = ("torch", "lightning")
    extra = "deep"
    tune_in_run = False  # see tune_trials and docs/models.md ("In-run tuning")
    tune_trials = 3  # in-run trials (the defaults' included), when the run tunes it
    cost = "moderate"  # one fit: ~15 s at scale 0.2 on 2 idle cores
    deterministic = True  # seeded: the same seed gives the same scores on CPU
    search_space = {
        "lr": Param("float", 1e-3, 1e-2, log=True),
        "input_dropout": Param("float", 0.2, 0.7),
        "variational": Param("choice", choices=(False, True)),
    }
    test_settings = {
        "hidden_dims": [8],
        "max_epochs": 10,
        "batch_size": 4,
        "lr": 3e-2,
        "input_dropout": 0.0,
        "num_threads": 1,
    }

    @classmethod
    def fit_cores(cls, config: Any) -> int | None:
        # one thread when asked for, and where the machine's products split their sums
        # over threads (a fit's numbers then depend on its thread count: fit_threads)
        if config.architecture == "recvae":
            return None
        if config.num_threads == 1 or (config.num_threads == 0 and _sums_split()):
            return 1
        return None

    @classmethod
    def one_core_fit(cls, config: Any) -> bool:
        # where the layers' products split their output, not their sums, over the
        # threads (the machine's BLAS decides: :func:`fit_threads`), the numbers are the
        # same on one thread as on two, and the run may widen a fit between epochs;
        # elsewhere the fit keeps to one thread by itself (fit_cores). Not RecVAE's: its
        # scores after 2 epochs differed between 1 and 2 threads (at 512 users x 6,000
        # videos) on any machine, so its thread count must not change under it.
        if config.architecture == "recvae":
            return False
        return cls.fit_cores(config) == 1 or not _sums_split()

    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None:
        from kuairec.models import autoencoder_net as net
        from kuairec.models.torch_train import TrainSettings, ValidationNDCG, train_module

        c = self.config
        self.x_ = self._input(train.interactions)
        loader = net.row_loader(self.x_, c.batch_size, c.seed)
        if c.architecture == "recvae":
            from kuairec.models.autoencoder_recvae import AlternatingLoader

            loader = AlternatingLoader(loader, c.encoder_passes, c.decoder_passes)
        validate = None
        if valid is not None:
            validate = ValidationNDCG(valid, train, functools.partial(net.score_users, x=self.x_))
        settings = TrainSettings(
            name=self.name,
            max_epochs=c.max_epochs,
            patience=c.patience,
            seed=c.seed,
            accelerator=c.accelerator,
            devices=c.devices,
            max_seconds=c.max_seconds,
            num_threads=fit_threads(c.num_threads, train.n_items),
        )
        trained = train_module(
            functools.partial(self._build, train.n_items),
            loader,
            settings,
            validate=validate,
            scratch_dir=self.scratch_dir,
            progress=progress,
        )
        self.net_ = trained.module.cpu().eval()
        self.history_ = trained.history
        self.best_epoch_ = trained.best_epoch
        from kuairec.models.torch_train import fit_notes

        self.time_limit_fired_, self.fit_remark_ = fit_notes(trained, settings)

    def fold_in(self, train: TrainSet) -> AutoencoderRecommender:
        """From now on, score known users from their rows of ``train`` (normally the whole
        training log) instead of the fit part's rows; the network is not trained again.

        The fit part leaves out each validation user's held-out pairs, which on a
        temporal split are the user's latest; scoring from the whole history puts them
        back as input (measured in docs/models.md: +0.02 to +0.03 NDCG@10 on real
        logs). Raises ModelError when ``train`` has other dimensions.
        """
        self._check_fitted()
        if train.interactions.shape != self.x_.shape:
            raise ModelError(
                f"{self.name}: fold_in needs a training log of shape {self.x_.shape} "
                f"(the fitted one's), got {train.interactions.shape}"
            )
        self.x_ = self._input(train.interactions)
        return self

    def _build(self, n_items: int):
        c = self.config
        if c.architecture == "recvae":
            from kuairec.models.autoencoder_recvae import RecVAENet

            return RecVAENet(n_items, layers=c.encoder_layers, **{
                f: getattr(c, f) for f in _RECVAE_FIELDS
            })  # fmt: skip
        from kuairec.models.autoencoder_net import AutoencoderNet

        return AutoencoderNet(n_items, **{f: getattr(c, f) for f in _NET_FIELDS})

    def _input(self, inter) -> sp.csr_matrix:
        c = self.config
        weighting = "binary" if c.input == "binary" else "linear"
        return weighted_matrix(inter, weighting, c.clip, c.threshold)

    def _score(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        return self._scores_of(select_rows(self.x_, users), items)

    def _score_history(self, history: sp.csr_matrix, items: np.ndarray | None) -> np.ndarray:
        c = self.config
        weighting = "binary" if c.input == "binary" else "linear"
        return self._scores_of(weighted_rows(history, weighting, c.clip, c.threshold), items)

    def _scores_of(self, x: sp.csr_matrix, items: np.ndarray | None) -> np.ndarray:
        from kuairec.models.autoencoder_net import score_dense

        # torch's process-wide thread count is not touched here: scoring runs in the
        # server's thread pool and event loop at once; the server sets it once at load
        s = score_dense(self.net_, x.toarray().astype(np.float32, copy=False))
        return s if items is None else np.take(s, items, axis=1)

    def expected_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """The saved input matrix's shape that model.json implies (the network's layers are
        checked against the config by torch's strict load)."""
        return {"x_shape": (self.n_users_, self.n_items_)}

    def _get_state(self) -> dict[str, np.ndarray]:
        from kuairec.models.torch_train import state_arrays

        return {**state_arrays(self.net_), **csr_state("x", self.x_)}

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        from kuairec.models.torch_train import load_state_arrays

        self.x_ = csr_from_state("x", state)
        self.net_ = load_state_arrays(self._build(self.x_.shape[1]), state)


WIDE_CATALOGUE = 4096


def fit_threads(setting: int, n_items: int) -> int:
    """torch threads for a fit: ``setting``, or (0) 2 for a catalogue of
    :data:`WIDE_CATALOGUE` videos or more and 1 below, unless the machine's products
    split their sums over threads (:func:`~kuairec.models.torch_train.
    sums_split_over_threads`: then 1, so that no fit's numbers depend on when the run
    hands it a second core). Where the products split their output instead, the MLP's
    numbers are the same with 1 or 2 threads (a test checks it; RecVAE's are not, and
    the catalogue alone fixes its count); at KuaiRec's full size 2 threads fit an epoch
    1.45x faster on 2 idle cores (docs/benchmarks-run.md), and a small catalogue's
    products are too small to share."""
    if setting:
        return int(setting)
    if n_items < WIDE_CATALOGUE:
        return 1
    return 1 if _sums_split() else 2


def _sums_split() -> bool:
    from kuairec.models.torch_train import sums_split_over_threads

    return sums_split_over_threads()
