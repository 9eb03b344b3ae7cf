"""The two-tower model's LightningModule: the losses of one batch added up.

Imported only inside :mod:`kuairec.models.two_tower`'s functions (it imports torch and
lightning). A batch is :class:`kuairec.models.two_tower_batches.PairBatches`'s dict.

Per batch, every part of the towers that depends on one user or one video alone is
computed once per distinct user or video of the batch, not once per pair (the same
function, fewer rows): the users' history sums, projected through the user tower's first
layer, and their features; the distinct videos' item vectors and history rows. Only what
depends on the pair (the history without the pair's own video, the rest of the user
tower, the scores) is per pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.nn import functional as F

from kuairec.models.two_tower_net import (
    History,
    TwoTowerNet,
    leave_one_out,
    rating_loss,
    sampled_bce_loss,
    score_users,
    shared_softmax_loss,
    solve_cold,
)


@dataclass(frozen=True)
class TaskSettings:
    loss: str
    logq: bool
    rating_weight: float
    rating_loss: str
    learning_rate: float
    weight_decay: float
    cold_ridge: float
    hard_negatives: int = 0  # softmax: per query, drawn from its user's current top list
    hard_pool: int = 100  # ... of this many unseen videos, refreshed every epoch
    catalogue: bool = False  # softmax over every warm video (no sampling, no logQ)


class TwoTowerTask(L.LightningModule):
    """Training of a :class:`TwoTowerNet`: the retrieval loss on the batch's positive
    pairs plus ``rating_weight`` times the watch_ratio loss on all its pairs.

    Softmax: each positive pair (a query) scores its own video against shared candidates,
    the videos of up to ``batch_negatives`` of the batch's positives (``batch["shared"]``)
    and the batch's uniform negatives; the cells the batch lists as accidental hits
    (:func:`~kuairec.models.two_tower_batches.accidental_hits`) are masked. Every logit is
    the score minus log of the candidate's expected count among the sampled candidates,
    ``n_shared * q_i + n_uniform / n_warm`` (the logQ correction), with ``log_q``
    (n_items,) the log of each video's share of the positive training pairs. The (P, C)
    logits are one ``addmm`` onto a bias that holds ``-log q`` and the masks.

    ``history`` (a :class:`History`) is the training pairs', used to score users
    (validation). The cold tower is not trained by steps: it is solved
    (:func:`solve_cold`) before each validation and after the fit."""

    def __init__(self, net: TwoTowerNet, log_q, settings: TaskSettings, history=None) -> None:
        super().__init__()
        self.net = net
        self.settings = settings
        self.register_buffer("log_q", torch.as_tensor(np.asarray(log_q, np.float32)))
        self.history = history
        x_sums = np.zeros((net.user_x.shape[0], net.item_x.shape[1]), np.float32)
        if history is not None:
            x_sums = history.sums(net.item_x.cpu().numpy())
        self.register_buffer("history_x_sums", torch.as_tensor(x_sums), persistent=False)
        self._cold_step = -1  # the global step the cold tower was last solved at
        self.hard_table: torch.Tensor | None = None  # (n_users, hard_pool) video indices
        self._warm: torch.Tensor | None = None  # the warm videos (the catalogue softmax)

    def user_sums(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch's distinct users' whole-history sums through the user tower's first
        layer (users, width): the id embeddings' part and the item features' part."""
        net, t = self.net, self.net.user_tower
        if "history" in batch:  # dense rows: one matrix product
            ids = batch["history"] @ net.history_id.weight
        else:
            ids = F.embedding_bag(
                batch["hist_items"], net.history_id.weight, batch["hist_offsets"],
                mode="sum", per_sample_weights=batch["hist_weights"],
            )  # fmt: skip
        x_sums = self.history_x_sums.index_select(0, batch["users"])
        if "drop_items" in batch:  # history dropout: the left-out videos' features out
            x_sums = x_sums - F.embedding_bag(
                batch["drop_items"], net.item_x, batch["drop_offsets"],
                mode="sum", per_sample_weights=batch["drop_weights"],
            )  # fmt: skip
        return t.part("history", ids) + t.part("history_x", x_sums)

    def item_parts(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per video of ``items``: the item tower's first-layer sum (id embedding and
        features) and the video's row of the user tower's history table (its history
        embedding and features): ``net.warm_items`` before ``finish`` and
        ``net.history_table``, with one gather of the features for both."""
        net, it, ut = self.net, self.net.item_tower, self.net.user_tower
        item_pre = it.part("id", net.item_id.weight.index_select(0, items))
        hist_pre = ut.part("history", net.history_id.weight.index_select(0, items))
        if "x" in it.first:  # item features (then both towers have the part)
            w = torch.cat([it.first["x"].weight, ut.first["history_x"].weight])
            both = net.item_x.index_select(0, items) @ w.T
            item_pre = item_pre + both[:, : it.width]
            hist_pre = hist_pre + both[:, it.width :]
        return item_pre, hist_pre

    def pooled_without_own(self, batch: dict[str, torch.Tensor], own=None) -> torch.Tensor:
        """Each pair's user's pooled history part (the user tower's first layer) without
        the pair's own video: the sums over the whole history minus the own entry (``own``:
        each pair's history-table row, computed here when None)."""
        if own is None:
            own = self.item_parts(batch["items_u"])[1].index_select(0, batch["item_slot"])
        total = self.user_sums(batch).index_select(0, batch["user_row"])
        return leave_one_out(total, batch["mass"], own, batch["weight"])

    def recent_without_own(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each pair's attention pooling of its user's last videos without the pair's own
        video: the softmax renormalised without it, ``(sum - a_own e_own) / (1 - a_own)``
        (exact), zero when it was the only one."""
        alpha, pooled, e = self.net.recent_pool(batch["recent"])
        rows, pos = batch["user_row"], batch["recent_pos"]
        there = pos >= 0
        at = pos.clamp_min(0)
        a_own = alpha[rows, at] * there
        ones = torch.ones_like(a_own)
        return leave_one_out(pooled.index_select(0, rows), ones, e[rows, at], a_own)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        net, s, slot = self.net, self.settings, batch["item_slot"]
        item_pre, hist_rows = self.item_parts(batch["items_u"])  # per distinct video
        v_u = net.item_tower.finish(item_pre)
        v = v_u.index_select(0, slot)
        t, rows = net.user_tower, batch["user_row"]
        per_user = t.part("x", net.user_x.index_select(0, batch["users"]))
        if net.user_id is not None:
            per_user = per_user + t.part(
                "user_id", net.user_id.weight.index_select(0, batch["users"])
            )
        features = per_user.index_select(0, rows)
        pooled = self.pooled_without_own(batch, hist_rows.index_select(0, slot))
        if net.attention_query is not None:
            pooled = pooled + t.part("recent", self.recent_without_own(batch))
        u = t.finish(pooled + features)
        loss = self.retrieval_loss(u, v, v_u, batch)
        if net.head is not None and s.rating_weight > 0:
            pred = net.rating(u, v)
            loss = loss + s.rating_weight * rating_loss(pred, batch["rating"], s.rating_loss)
        return loss

    def retrieval_loss(self, u, v, v_u, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The softmax (or BCE) loss of the positive pairs; ``v_u`` are the vectors of the
        batch's distinct videos (``items_u``), ``v`` each pair's."""
        positive = batch["positive"]
        if not bool(positive.any()):
            return u.sum() * 0.0
        net, qu = self.net, u[positive]
        if self.settings.loss == "bce":
            pos = net.similarity_rows(qu, v[positive][:, None, :]).squeeze(1)
            neg_v = v_u[batch["neg_slot"][positive]]  # (P, K, d): the positives' own negatives
            return sampled_bce_loss(pos, net.similarity_rows(qu, neg_v))
        if self.settings.catalogue:
            return self.catalogue_loss(qu, batch)
        # each query's own video, then the shared candidates: the videos of the positives
        # at batch["shared"] (batch_negatives of them at most) and the uniform negatives
        neg, pos_items, shared_pos = batch["negatives"], batch["item"][positive], batch["shared"]
        n_pos, n_shared = pos_items.numel(), shared_pos.numel()
        shared_items = torch.cat([pos_items[shared_pos], neg])
        shared = torch.cat([v[positive][shared_pos], v_u[batch["neg_slot"]]])
        # logits = scores - log_q, accidental hits at -inf: one (P, C) bias, one addmm
        bias = -self.expected_log_q(shared_items, n_shared, neg.numel())
        bias = bias.expand(n_pos, -1).index_put(
            (batch["hit_query"], batch["hit_cand"]), bias.new_tensor(float("-inf"))
        )
        a, b = net.score_parts(qu, shared)
        own_a, own_b = net.score_parts(qu, v[positive])
        own = (own_a * own_b).sum(dim=1) - self.expected_log_q(pos_items, n_shared, neg.numel())
        logits = torch.addmm(bias, a, b.T)
        if self.hard_table is not None:
            users = batch["users"].index_select(0, batch["user_row"][positive])
            logits = torch.cat([logits, self.hard_logits(qu, users)], dim=1)
        return shared_softmax_loss(own, logits)

    def catalogue_loss(self, qu: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Full softmax: each query (positive pair) against every warm video, its own
        video the target; its user's other positive videos masked (known positives, not
        negatives). No sampling, so no logQ correction."""
        net = self.net
        if self._warm is None or self._warm.device != net.warm.device:
            self._warm = torch.nonzero(net.warm > 0).squeeze(1)
        a, b = net.score_parts(qu, net.item_tower.finish(self.item_parts(self._warm)[0]))
        target = batch["target"]
        mask = torch.zeros((batch["users"].numel(), b.shape[0]), dtype=torch.bool,
                           device=qu.device)  # fmt: skip
        mask[batch["pos_rows"], batch["pos_cols"]] = True
        mask = mask.index_select(0, batch["user_row"][batch["positive"]])
        mask[torch.arange(target.numel(), device=qu.device), target] = False
        return F.cross_entropy((a @ b.T).masked_fill(mask, float("-inf")), target)

    def hard_logits(self, qu: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """(P, hard_negatives) scores of each query against videos drawn uniformly (with
        replacement, torch's seeded generator) from its user's top list of unseen videos
        (:meth:`refresh_hard_table`); no logQ correction (not drawn from the marginal)."""
        table = self.hard_table
        pick = torch.randint(0, table.shape[1], (users.numel(), self.settings.hard_negatives),
                             device=users.device)  # fmt: skip
        items = table[users[:, None], pick]
        uniq, inv = torch.unique(items, return_inverse=True)
        v = self.net.item_tower.finish(self.item_parts(uniq)[0])
        return self.net.similarity_rows(qu, v[inv])

    def on_train_epoch_start(self) -> None:
        s = self.settings
        hard = s.hard_negatives and not s.catalogue  # the catalogue softmax has every video
        if hard and self.current_epoch > 0 and self.history is not None:
            self.hard_table = self.top_unseen(self.settings.hard_pool)

    @torch.no_grad()
    def top_unseen(self, k: int, block: int = 1024) -> torch.Tensor:
        """Every user's ``k`` best-scored warm videos outside the user's training history
        (the current weights; videos in user order), as a (n_users, k) int64 tensor."""
        net, history = self.net, self.history
        n_users = net.user_x.shape[0]
        cold = (net.warm <= 0).cpu().numpy()
        out = []
        for start in range(0, n_users, block):
            users = np.arange(start, min(start + block, n_users))
            rows = history.rows(users)
            scores = score_users(net, rows, net.user_x[torch.as_tensor(users)], users=users)
            scores[:, cold] = -np.inf
            scores[np.repeat(np.arange(users.size), np.diff(rows.indptr)), rows.items] = -np.inf
            out.append(torch.topk(torch.from_numpy(scores), min(k, scores.shape[1]), dim=1)[1])
        return torch.cat(out).to(net.warm.device)

    def expected_log_q(self, items: torch.Tensor, n_batch: int, n_uniform: int) -> torch.Tensor:
        """log of each candidate's expected count among the candidates: ``n_batch * q_i +
        n_uniform / n_warm`` (0 when the correction is off)."""
        if not self.settings.logq:
            return torch.zeros(items.numel(), device=items.device)
        expected = n_batch * self.log_q[items].exp()
        if n_uniform:
            expected = expected + n_uniform / self.net.warm.sum()
        return expected.log()

    def solve_cold(self) -> None:
        """:func:`solve_cold` once per training step reached (validation calls it)."""
        if self._cold_step != self.global_step:
            solve_cold(self.net, self.settings.cold_ridge)
            self._cold_step = self.global_step

    def configure_optimizers(self) -> Any:
        """AdamW, fused on CPU and CUDA (one kernel for all parameters: measured 4-10x
        faster than the per-tensor loop on CPU for this model's ~0.8M parameters)."""
        return torch.optim.AdamW(
            (p for p in self.parameters() if p.requires_grad),
            lr=self.settings.learning_rate,
            weight_decay=self.settings.weight_decay,
            fused=self.device.type in ("cpu", "cuda"),
        )


def validation_scores(task: TwoTowerTask, users: np.ndarray) -> np.ndarray:
    """Scores of known users (the task's training history) for ``ValidationNDCG``, the
    cold tower solved for the current weights first."""
    task.solve_cold()
    net = task.net
    history: History = task.history
    return score_users(net, history.rows(users), net.user_x[torch.as_tensor(users)], users=users)
