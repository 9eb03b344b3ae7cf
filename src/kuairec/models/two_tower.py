"""A two-tower retrieval model with a watch_ratio head (torch, trained by Lightning).

- **Item tower**: ``MLP([video id embedding, item_x])``: tags, caption categories,
  duration and the aggregated daily statistics (docs/features.md), standardised. A video
  without training pairs gets no id embedding, so it is scored from its features alone
  by a **cold tower** on its upload-time features (``scores_cold_items``): tags, caption
  categories and duration, its daily statistics blanked as
  :func:`kuairec.evaluation.cold.blank_daily` does, trained jointly (weight
  ``cold_weight``) to predict the item tower's vectors of the warm videos.
- **User tower**: ``MLP([mean of the history videos' embeddings, user_x])``. A training
  pair's own video is left out of the history it is scored against.
- **Similarity**: dot product, or cosine over a learned temperature.
- **Loss**: a softmax for each pair with ``watch_ratio >= threshold``, its own video
  against every warm video (``softmax_over="catalogue"``, the user's other positives
  masked), or against the batch's videos (plus optional uniform negatives) with the logQ
  correction of Yi et al. 2019 (each candidate's logit minus the log of its expected
  count among the candidates; ``"sampled"``); ``"auto"`` (the default) takes the
  catalogue while an epoch's logits (positive pairs x warm videos) stay within
  ``catalogue_cells``. Or (``loss="bce"``) binary cross-entropy against uniform
  negatives. Plus, with ``rating_head``, ``rating_weight`` times a Huber (or MSE) loss
  of a watch_ratio head on every pair's clipped watch_ratio: ``predict`` gives it.
- Early stopping on the validation split's NDCG@10 (:mod:`kuairec.models.torch_train`).

Defaults (docs/models.md, chosen with ``benchmarks/tt_select.py`` on the synthetic default
and on real public logs): the catalogue softmax where it is affordable (real logs and the
synthetic default; sampled at KuaiRec's full size), cosine similarity at temperature
0.05, the head on log1p of the watch_ratio clipped at its 99th percentile, and an epoch
budget counted in training pairs (``epoch_pairs``: 1.8M pairs, at most 50 epochs,
patience 3), never in seconds.

New users (``score(history=...)``): the posted history is pooled as a known user's;
their user features are unknown: the row of a user without a row in user_features.csv
(zeros, ``user_missing`` = 1 when that column exists). Videos without training pairs in
a history are left out of the mean.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from kuairec.errors import ModelError
from kuairec.models.base import Recommender
from kuairec.models.params import Param, param

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import FeatureMatrix, TrainSet
    from kuairec.evaluation.protocols import TestSet

_HISTORY_KEYS = ("hist_indptr", "hist_items", "hist_ratios")


@dataclass(frozen=True)
class TwoTowerConfig:
    dim: int = param(32, ge=1, doc="embedding and tower output size")
    hidden: int = param(64, ge=0, doc="hidden units of each tower (0 = linear towers)")
    similarity: Literal["dot", "cosine"] = param("cosine", doc="ranking score of (user, video)")
    temperature: float = param(0.05, gt=0, doc="cosine: initial temperature")
    learn_temperature: bool = param(True, doc="cosine: learn the temperature")
    loss: Literal["softmax", "bce"] = param("softmax", doc="in-batch softmax or sampled BCE")
    logq: bool = param(True, doc="softmax: subtract log of the sampling probability")
    uniform_negatives: int = param(0, ge=0, doc="softmax: extra uniform negatives per batch")
    batch_negatives: int = param(1024, ge=1, doc="softmax: in-batch positives' videos shared")
    softmax_over: Literal["auto", "sampled", "catalogue"] = param(
        "auto",
        doc="softmax candidates: every warm video (catalogue), the batch's and uniform ones "
        "with logQ (sampled: uniform_/hard_negatives apply), or auto: catalogue within "
        "catalogue_cells and without uniform_ or hard_negatives",
    )
    catalogue_cells: int = param(
        2_000_000_000, ge=0, doc="auto: catalogue when positive pairs x warm videos <= this"
    )
    hard_negatives: int = param(0, ge=0, doc="softmax: per query, from its user's top list")
    hard_pool: int = param(100, ge=1, doc="hard negatives: top unseen videos, each epoch")
    bce_negatives: int = param(4, ge=1, doc="bce: uniform negatives per positive")
    threshold: float = param(1.0, ge=0, doc="positives: pairs with watch_ratio >= this")
    history_encoder: Literal["mean", "attention"] = param(
        "mean", doc="user tower: the history's mean, or also attention over its last videos"
    )
    history_length: int = param(50, ge=1, doc="attention: each user's last this many videos")
    user_embedding: bool = param(False, doc="user tower: also a user id embedding (known users)")
    history_weighting: Literal["binary", "linear", "log"] = param(
        "binary", doc="weight of a history video in the mean (of its clipped watch_ratio)"
    )
    history_dropout: float = param(
        0.0, ge=0, lt=1, doc="training: each history video left out of the mean with this chance"
    )
    cold_ridge: float = param(0.1, ge=0, doc="L2 penalty on the cold tower's weights")
    rating_head: bool = param(True, doc="train a watch_ratio head (predict)")
    rating_weight: float = param(0.5, ge=0, doc="weight of the watch_ratio loss")
    rating_loss: Literal["huber", "mse"] = param("huber", doc="loss of the watch_ratio head")
    rating_target: Literal["clipped", "log1p"] = param(
        "log1p", doc="the head learns min(wr, c) or log1p(min(wr, c)); predict inverts it"
    )
    rating_quantile: float = param(
        0.99, gt=0, le=1, doc="c = min(clip, this quantile of the training watch_ratio)"
    )
    clip: float = param(5.0, gt=0, doc="watch_ratio is clipped here (head target, weights)")
    batch_size: int = param(
        0, ge=0, doc="training pairs per batch (0: a 64th of the pairs, within 512..4096)"
    )
    pairs_per_user: int = param(32, ge=1, doc="a batch takes a user's pairs in chunks of this")
    mask_user_positives: bool = param(
        True, doc="softmax: a user's other positives aren't negatives"
    )
    learning_rate: float = param(5e-3, gt=0, doc="AdamW learning rate")
    lr_decay: float = param(
        1.0, gt=0, le=1, doc="learning rate times this after each epoch without a better NDCG@10"
    )
    weight_average: float = param(
        0.0, ge=0, doc="half-life in epochs of a moving average of the weights (0: off)"
    )
    weight_decay: float = param(1e-5, ge=0, doc="AdamW weight decay")
    max_epochs: int = param(50, ge=1, doc="epochs at most (see also epoch_pairs)")
    epoch_pairs: int = param(
        1_800_000, ge=0, doc="training pairs in all: epochs at most this / the log's pairs (0: off)"
    )
    max_seconds: float | None = param(None, gt=0, doc="stop after the epoch that ends past it")
    patience: int = param(3, ge=1, doc="epochs without a better validation NDCG@10")
    seed: int = param(0, ge=0, doc="seeds the weights, batches and samples")
    accelerator: str = param("cpu", doc="Lightning accelerator (cpu, gpu, auto ...)")
    devices: int = param(1, ge=1, doc="number of devices")
    num_threads: int = param(1, ge=0, doc="torch CPU threads while fitting (0 = torch's)")


class TwoTowerRecommender(Recommender):
    """Two towers (history + user features, video id + features), catalogue or logQ softmax.

    A watch_ratio head predicts ratings; it scores new users and cold videos."""

    name = "two_tower"
    cost = "moderate"
    Config = TwoTowerConfig
    predicts_ratings = True  # the default; an instance with rating_head=False says False
    supports_history = True
    scores_cold_items = True
    requires = ("torch", "lightning")
    extra = "deep"
    uses_validation = True
    uses_accelerator = True
    tune_in_run = False
    catalogue_ = False  # set by fit: whether its softmax ran over the whole catalogue
    search_space = {
        "dim": Param("choice", choices=(16, 32, 64)),
        "threshold": Param("choice", choices=(0.5, 1.0, 2.0)),
        "learning_rate": Param("float", 1e-3, 1e-2, log=True),
        "rating_weight": Param("float", 0.1, 2.0, log=True),
    }
    test_settings = {
        "dim": 8,
        "hidden": 16,
        "batch_size": 64,
        "max_epochs": 30,
        "patience": 30,
        "learning_rate": 0.05,  # the cosine default at T=0.05 learns the tiny case at 0.05
    }

    @classmethod
    def fit_cores(cls, config: Any) -> int | None:
        # torch's own threads (its batches are built by one more process when it has one)
        return 1 if config.num_threads == 1 else None

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        if not self.config.rating_head:  # this instance has no watch_ratio head
            self.predicts_ratings = False

    # ------------------------------------------------------------------ fitting
    def _fit(self, train: TrainSet, valid: TestSet | None, progress: bool) -> None:
        from kuairec.models import torch_train as tt
        from kuairec.models import two_tower_batches as bt
        from kuairec.models import two_tower_net as nn_
        from kuairec.models import two_tower_task as task_

        c = self.config
        inter = train.interactions
        dataset, make_task, history, remark = self._training_parts(train)
        validate = None
        if valid is not None:
            validate = tt.ValidationNDCG(valid, train, task_.validation_scores)
        settings = tt.TrainSettings(
            name=self.name, max_epochs=epoch_cap(inter.nnz, c.max_epochs, c.epoch_pairs),
            patience=c.patience, seed=c.seed, accelerator=c.accelerator, devices=c.devices,
            max_seconds=c.max_seconds, num_threads=c.num_threads, lr_decay=c.lr_decay,
            average_epochs=c.weight_average,
        )  # fmt: skip
        trained = tt.train_module(
            make_task,
            bt.batch_loader(dataset),
            settings,
            validate=validate,
            scratch_dir=self.scratch_dir,
            progress=progress,
        )
        self.net_ = trained.module.net.cpu().eval()
        nn_.solve_cold(self.net_, c.cold_ridge)  # for the restored (best epoch's) weights
        self.history_arrays_ = history
        self.history_ = trained.history
        self.best_epoch_ = trained.best_epoch
        self.time_limit_fired_, self.fit_remark_ = tt.fit_notes(trained, settings)
        if remark:
            self.fit_remark_ = f"{self.fit_remark_}; {remark}" if self.fit_remark_ else remark

    def _training_parts(self, train: TrainSet) -> tuple[Any, Any, Any, str | None]:
        """What a fit trains from: the training pairs' batches (a ``PairBatches``), the
        task's factory (picklable), the pairs' :class:`History` and a remark on the
        softmax (or None). Sets ``rating_clip_``, ``batch_size_`` and ``catalogue_``;
        ``benchmarks/bench_two_tower.py`` times steps from the same parts."""
        from kuairec.models import two_tower_batches as bt

        c, inter = self.config, train.interactions
        self.rating_clip_ = rating_clip(inter.watch_ratio_mean, c.clip, c.rating_quantile)
        self.batch_size_ = batch_size(inter.nnz, c.batch_size)
        arrays = net_arrays(train)
        history = self._history(
            inter.indptr, inter.indices, inter.watch_ratio_mean, inter.first_timestamp
        )
        warm = arrays["warm"] > 0
        log_q = positive_log_share(inter, c.threshold)
        self.catalogue_, remark = softmax_over(
            c, int(np.count_nonzero(inter.watch_ratio_mean >= c.threshold)), int(warm.sum())
        )
        dataset = bt.PairBatches(
            inter.indptr, inter.indices, inter.watch_ratio_mean, train.n_items,
            np.flatnonzero(warm), self._rules(), history.recent,
        )  # fmt: skip
        shape = self.net_shape(train.n_items)
        make_task = functools.partial(build_task, shape, arrays, log_q, c, history, self.catalogue_)
        return dataset, make_task, history, remark

    def fold_in(self, train: TrainSet) -> TwoTowerRecommender:
        """From now on, pool known users' histories from ``train`` (normally the whole
        training log) instead of the fit part; the towers are not trained again.

        The fit part leaves out each validation user's held-out pairs, on a temporal split
        the user's latest; pooling the whole history puts them back (docs/models.md).
        Videos without training pairs in the fit stay out of the pooled mean. Replaces
        ``history_arrays_`` (never edits it). Raises ModelError on other dimensions."""
        self._check_fitted()
        inter = train.interactions
        if inter.shape != (self.n_users_, self.n_items_):
            raise ModelError(
                f"{self.name}: fold_in needs a training log of shape "
                f"{(self.n_users_, self.n_items_)} (the fitted one's), got {inter.shape}"
            )
        self.history_arrays_ = self._history(
            inter.indptr, inter.indices, inter.watch_ratio_mean, inter.first_timestamp
        )
        return self

    def _history(self, indptr, items, ratios, order=None, recent=None) -> Any:
        """A :class:`History`; with the attention encoder also each row's last videos
        (``recent``, or by ``order``: per-entry times; None: the stored order)."""
        from kuairec.models.two_tower_net import History, last_items

        c = self.config
        if c.history_encoder == "attention" and recent is None:
            recent = last_items(indptr, items, c.history_length, order)
        return History(
            np.asarray(indptr, np.int64), np.asarray(items, np.int64),
            np.asarray(ratios, np.float32), c.history_weighting, c.clip, recent,
        )  # fmt: skip

    def _rules(self) -> Any:
        from kuairec.models.two_tower_batches import BatchRules

        c = self.config
        return BatchRules(
            threshold=c.threshold, clip=c.clip, history_weighting=c.history_weighting,
            rating_clip=self.rating_clip_, rating_log1p=c.rating_target == "log1p",
            uniform_negatives=c.uniform_negatives, bce_negatives=c.bce_negatives,
            loss=c.loss, seed=c.seed, batch_size=self.batch_size_, pairs_per_user=c.pairs_per_user,
            mask_user_positives=c.mask_user_positives, batch_negatives=c.batch_negatives,
            catalogue=self.catalogue_, history_dropout=c.history_dropout,
        )  # fmt: skip

    def net_shape(self, n_items: int) -> Any:
        from kuairec.models.two_tower_net import NetShape

        c = self.config
        return NetShape(
            n_items=n_items, dim=c.dim, hidden=c.hidden, similarity=c.similarity,
            temperature=c.temperature, learn_temperature=c.learn_temperature,
            rating_head=c.rating_head,
            recent=c.history_length if c.history_encoder == "attention" else 0,
            user_id=c.user_embedding,
        )  # fmt: skip

    # ------------------------------------------------------------------ scoring
    def _score(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        from kuairec.models.two_tower_net import score_users

        user_x = self.net_.user_x[users]
        return score_users(self.net_, self.history_arrays_.rows(users), user_x, items, users)

    def _score_history(self, history: sp.csr_matrix, items: np.ndarray | None) -> np.ndarray:
        from kuairec.models.two_tower_net import score_users

        rows = self._history(history.indptr, history.indices, history.data)
        user_x = self.net_.new_user_x.expand(history.shape[0], -1)
        return score_users(self.net_, rows, user_x, items)

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        import torch

        from kuairec.models.two_tower_net import all_item_vectors, user_vectors

        if self.net_.head is None:
            raise ModelError(f"{self.name} was fitted without its watch_ratio head")
        out = np.empty(users.size, np.float32)
        for start in range(0, users.size, 65536):
            u, i = users[start : start + 65536], items[start : start + 65536]
            uniq, inv = np.unique(u, return_inverse=True)
            rows = self.history_arrays_.rows(uniq)
            uv = user_vectors(self.net_, rows, self.net_.user_x[uniq], uniq)
            with torch.no_grad():
                pred = self.net_.rating(uv[inv], all_item_vectors(self.net_, i))
            out[start : start + u.size] = self._from_target(pred).numpy()
        return out

    def _from_target(self, pred: Any) -> Any:
        """The head's output back on the watch_ratio scale, within [0, rating clip]."""
        c = float(self.rating_clip_)
        if self.config.rating_target == "log1p":
            return pred.clamp(0, float(np.log1p(c))).expm1()
        return pred.clamp(0, c)

    # ------------------------------------------------------------------ state
    def expected_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """Saved shapes that model.json implies (the layers' widths are checked against the
        config by torch's strict load)."""
        n, m, d = self.n_users_, self.n_items_, self.config.dim
        return {"w:user_x": (n, None), "w:item_x": (m, None), "w:item_id.weight": (m, d),
                "hist_indptr": (n + 1,)}  # fmt: skip

    def _get_state(self) -> dict[str, np.ndarray]:
        from kuairec.models.torch_train import state_arrays

        h = self.history_arrays_
        history = dict(zip(_HISTORY_KEYS, (h.indptr, h.items, h.ratios), strict=True))
        clip = np.array([self.rating_clip_], np.float64)
        if h.recent is not None:
            history["hist_recent"] = h.recent
        return {**state_arrays(self.net_), **history, "rating_clip": clip}

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        from kuairec.models.torch_train import load_state_arrays
        from kuairec.models.two_tower_net import TwoTowerNet

        names = ("user_x", "new_user_x", "item_x", "item_x_cold", "warm")
        arrays = {k: np.asarray(state[f"w:{k}"]) for k in names}
        net = TwoTowerNet(self.net_shape(arrays["warm"].size), **arrays)
        self.net_ = load_state_arrays(net, state)
        recent = state["hist_recent"] if "hist_recent" in state else None
        self.history_arrays_ = self._history(*(state[k] for k in _HISTORY_KEYS), recent=recent)
        clip = state["rating_clip"] if "rating_clip" in state else [self.config.clip]
        self.rating_clip_ = float(np.asarray(clip).ravel()[0])


def softmax_over(c: Any, n_positive: int, n_warm: int) -> tuple[bool, str | None]:
    """(whether the softmax runs over the whole warm catalogue, a remark or None).

    ``auto`` takes the catalogue when an epoch's logits, positive pairs x warm videos,
    are at most ``catalogue_cells``: a cost counted in cells, never in seconds (the same
    choice on any machine). Real logs and the synthetic default fall well inside (0.1-0.5
    billion cells), KuaiRec's full size (30 billion) outside: there an epoch over the
    catalogue was measured at 8x the sampled one's time (docs/models.md)."""
    if c.loss != "softmax" or c.softmax_over == "sampled":
        return False, None
    if c.softmax_over == "catalogue":
        return True, None
    if c.uniform_negatives or c.hard_negatives:  # options of the sampled softmax
        return False, None
    cells = n_positive * n_warm
    if cells <= c.catalogue_cells:
        return True, None
    return False, (
        f"softmax over sampled candidates: the whole catalogue would be {cells:,} logits "
        f"an epoch ({n_positive:,} positive pairs x {n_warm:,} videos), above "
        f"catalogue_cells={c.catalogue_cells:,}"
    )


def epoch_cap(n_pairs: int, max_epochs: int, epoch_pairs: int) -> int:
    """Epochs at most: ``max_epochs``, and (``epoch_pairs`` > 0) no more whole epochs
    than ``epoch_pairs`` training pairs make, at least one. A budget counted in pairs,
    not seconds: a small log gets many epochs, a large one few, the same on any machine."""
    if not epoch_pairs:
        return int(max_epochs)
    return int(max(1, min(max_epochs, epoch_pairs // max(int(n_pairs), 1))))


def batch_size(n_pairs: int, setting: int) -> int:
    """The batch size: ``setting``, or (0) a 64th of the training pairs within 512..4096,
    so that a small log still gets 64 optimiser steps an epoch and a large one 4,096-pair
    batches (whose in-batch softmax has ~1,000 negatives)."""
    if setting:
        return int(setting)
    return int(min(4096, max(512, n_pairs // 64)))


def rating_clip(watch_ratio: np.ndarray, clip: float, quantile: float) -> float:
    """Where the head's target is clipped: ``clip``, or the ``quantile`` of the training
    watch ratios when lower (1.0: ``clip``)."""
    if quantile >= 1.0 or watch_ratio.size == 0:
        return float(clip)
    return float(min(clip, np.quantile(watch_ratio, quantile)))


def positive_log_share(inter: Any, threshold: float) -> np.ndarray:
    """log of each video's share of the positive pairs (watch_ratio >= threshold): the
    probability that a positive pair drawn uniformly is on it (log 1e-12 for none)."""
    pos = inter.watch_ratio_mean >= threshold
    counts = np.bincount(inter.indices[pos], minlength=inter.n_items)
    return np.log(np.maximum(counts / max(int(pos.sum()), 1), 1e-12))


def build_task(
    shape: Any,
    arrays: dict[str, np.ndarray],
    log_q: np.ndarray,
    c: Any,
    history: Any,
    catalogue: bool = False,
) -> Any:
    """The LightningModule (picklable through ``functools.partial``)."""
    from kuairec.models.two_tower_net import TwoTowerNet
    from kuairec.models.two_tower_task import TaskSettings, TwoTowerTask

    settings = TaskSettings(
        loss=c.loss, logq=c.logq, rating_weight=c.rating_weight, rating_loss=c.rating_loss,
        learning_rate=c.learning_rate, weight_decay=c.weight_decay, cold_ridge=c.cold_ridge,
        hard_negatives=c.hard_negatives, hard_pool=c.hard_pool, catalogue=catalogue,
    )  # fmt: skip
    return TwoTowerTask(TwoTowerNet(shape, **arrays), log_q, settings, history)


# ---------------------------------------------------------------------- features
def net_arrays(train: TrainSet) -> dict[str, np.ndarray]:
    """The network's feature buffers: standardised ``user_x``, the unknown user's row,
    ``item_x`` and its cold version (daily statistics blanked), the warm mask."""
    from kuairec.evaluation.cold import blank_daily

    user_x, item_x = _features(train.user_x, train.n_users), _features(train.item_x, train.n_items)
    new_user = np.zeros((1, user_x.n_features), np.float32)
    if "user_missing" in user_x.columns:
        new_user[0, user_x.columns.index("user_missing")] = 1.0
    cold_x = blank_daily(item_x, np.arange(train.n_items)).values
    u_mean, u_std = _moments(user_x.values)
    i_mean, i_std = _moments(item_x.values)
    warm = (train.interactions.item_counts() > 0).astype(np.float32)
    return {
        "user_x": (user_x.values - u_mean) / u_std,
        "new_user_x": (new_user - u_mean) / u_std,
        "item_x": (item_x.values - i_mean) / i_std,
        "item_x_cold": (cold_x - i_mean) / i_std,
        "warm": warm,
    }


def _features(x: FeatureMatrix | None, n_rows: int) -> FeatureMatrix:
    from kuairec.data.dataset import FeatureMatrix

    if x is None:
        return FeatureMatrix.empty(n_rows)
    if x.n_rows != n_rows:
        raise ModelError(f"two_tower: a feature matrix has {x.n_rows} rows, expected {n_rows}")
    return x


def _moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations (1 where a column is constant)."""
    mean = values.mean(axis=0, keepdims=True) if values.shape[0] else 0.0
    std = values.std(axis=0, keepdims=True) if values.shape[0] else 1.0
    return mean, np.where(std > 1e-6, std, 1.0)
