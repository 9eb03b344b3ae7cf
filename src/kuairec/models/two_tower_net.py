"""The two-tower model's torch parts: the towers, the losses, the batches, the training task.

Imported only inside :mod:`kuairec.models.two_tower`'s functions (it imports torch and
lightning at the top). Everything the trainer receives is a module-level class or
function (picklable for ``ddp_spawn``).

- :class:`TwoTowerNet` (a plain ``nn.Module``): the item tower ``MLP([id embedding *
  keep, item_x])``, the user tower ``MLP([mean of the history's embeddings, mean of the
  history's item_x, user_x])``,
  the similarity (dot, or cosine over a learned temperature) and the watch_ratio head
  ``MLP([u, v, u * v])``. Features are standardised once; they live in the module as
  buffers, so ``state_dict()`` is the whole fitted state but the training history.
- the losses: :func:`logq_softmax_loss` (in-batch sampled softmax with the logQ
  correction) and :func:`sampled_bce_loss`; :func:`rating_loss`.
- :class:`PairBatches`: seeded batches of training pairs with their users' histories
  (the model leaves each pair's own video out of its user's mean: :func:`leave_one_out`)
  and the sampled negatives.
- :class:`TwoTowerTask`: the LightningModule that adds the losses up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# ---------------------------------------------------------------- the network


@dataclass(frozen=True)
class NetShape:
    """Sizes and switches of a :class:`TwoTowerNet` (from the model config)."""

    n_items: int
    dim: int
    hidden: int
    similarity: str  # "dot" | "cosine"
    temperature: float
    learn_temperature: bool
    rating_head: bool


class Tower(nn.Module):
    """``Linear -> ReLU -> Linear`` (one ``Linear`` when ``hidden`` is 0) over named input
    parts side by side, its first layer split per part: ``part(name, x)`` projects one
    part, ``finish(sum of the parts)`` adds the bias and applies the rest. The same
    function as the MLP on the concatenated input, but each part can be projected where
    it is cheapest: once per video or user, not once per training pair."""

    def __init__(self, parts: dict[str, int], hidden: int, n_out: int) -> None:
        super().__init__()
        width = hidden or n_out
        self.width = width
        self.first = nn.ModuleDict(
            {k: nn.Linear(n, width, bias=False) for k, n in parts.items() if n > 0}
        )
        self.bias = nn.Parameter(torch.zeros(width))
        self.second = nn.Linear(hidden, n_out) if hidden else None

    def part(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name not in self.first:  # a part with no columns (no features)
            return x.new_zeros(x.shape[0], self.width)
        return self.first[name](x)

    def finish(self, pre: torch.Tensor) -> torch.Tensor:
        h = pre + self.bias
        return h if self.second is None else self.second(F.relu(h))


class TwoTowerNet(nn.Module):
    """Towers, similarity and head; the (standardised) features as buffers.

    Item tower: ``Tower(id embedding, item_x)``; cold tower (videos without training
    pairs): ``Tower(item_x_cold)``; user tower: ``Tower(mean of the history's
    history-embeddings, mean of the history's item_x, user_x)``; means are weighted
    (``history_weighting``) and a video without training pairs weighs 0.

    Buffers: ``user_x`` (n_users, Fu), ``new_user_x`` (1, Fu): how a user without
    features looks, ``item_x`` / ``item_x_cold`` (n_items, Fi): the second with the daily
    statistics blanked as for a new video, ``warm`` (n_items,): 1 for videos with
    training pairs (the others get no id embedding and are left out of histories).
    """

    def __init__(self, shape: NetShape, user_x, new_user_x, item_x, item_x_cold, warm) -> None:
        super().__init__()
        self.shape = shape
        d = shape.dim
        for name, value in (("user_x", user_x), ("new_user_x", new_user_x), ("item_x", item_x),
                            ("item_x_cold", item_x_cold), ("warm", warm)):  # fmt: skip
            self.register_buffer(name, torch.as_tensor(np.asarray(value, np.float32)))
        self.item_id = nn.Embedding(shape.n_items, d)
        self.history_id = nn.Embedding(shape.n_items, d)
        for emb in (self.item_id, self.history_id):
            nn.init.normal_(emb.weight, std=0.05)
        n_ix, n_ux = self.item_x.shape[1], self.user_x.shape[1]
        self.item_tower = Tower({"id": d, "x": n_ix}, shape.hidden, d)
        self.user_tower = Tower({"history": d, "history_x": n_ix, "x": n_ux}, shape.hidden, d)
        self.cold_tower = Tower({"x": n_ix}, 0, d)
        self.log_temperature = nn.Parameter(
            torch.tensor(math.log(shape.temperature)), requires_grad=shape.learn_temperature
        )
        self.head = None
        if shape.rating_head:
            self.head = Tower({"uv": 3 * d}, max(shape.hidden // 2, 16), 1)

    def all_items(self) -> torch.Tensor:
        """Item vectors of every video (n_items, d): the item tower for the videos with
        training pairs, the cold tower on the upload-time features for the others."""
        warm = self.warm[:, None] > 0
        return torch.where(warm, self.warm_items(), self.cold_items())

    def warm_items(self) -> torch.Tensor:
        """The item tower on every video's id embedding and ``item_x``."""
        t = self.item_tower
        return t.finish(t.part("id", self.item_id.weight) + t.part("x", self.item_x))

    def cold_items(self) -> torch.Tensor:
        """The cold tower on every video's ``item_x_cold``: tags, captions, duration (the
        daily statistics blanked as for a new video), trained to predict the item tower's
        output of the warm videos (:func:`cold_tower_loss`)."""
        return self.cold_tower.finish(self.cold_tower.part("x", self.item_x_cold))

    def history_table(self) -> torch.Tensor:
        """Every video's contribution to the user tower's first layer (n_items, width)."""
        t = self.user_tower
        return t.part("history", self.history_id.weight) + t.part("history_x", self.item_x)

    def history_sums(self, table, items, weights, offsets) -> tuple[torch.Tensor, torch.Tensor]:
        """Per bag: the weighted sum of its ``table`` rows and the sum of its weights."""
        w = weights * self.warm[items]
        ones = torch.ones(table.shape[0], 1, device=w.device, dtype=w.dtype)
        total = F.embedding_bag(items, table, offsets, mode="sum", per_sample_weights=w)
        mass = F.embedding_bag(items, ones, offsets, mode="sum", per_sample_weights=w)
        return total, mass.squeeze(1)

    def user_vectors(self, pooled: torch.Tensor, user_x: torch.Tensor) -> torch.Tensor:
        """User tower output from the pooled history part and the user features."""
        return self.user_tower.finish(pooled + self.user_tower.part("x", user_x))

    def similarity(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(n_u, n_v) ranking scores: ``u . v``, or ``cos(u, v) / temperature``."""
        if self.shape.similarity == "cosine":
            u, v = F.normalize(u, dim=1), F.normalize(v, dim=1)
            return u @ v.T / self.log_temperature.exp()
        return u @ v.T

    def similarity_rows(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(P, K) scores of each query ``u[p]`` against its own candidates ``v[p, :]``."""
        if self.shape.similarity == "cosine":
            u, v = F.normalize(u, dim=-1), F.normalize(v, dim=-1)
            return torch.einsum("pd,pkd->pk", u, v) / self.log_temperature.exp()
        return torch.einsum("pd,pkd->pk", u, v)

    def rating(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Predicted (clipped) watch_ratio of aligned (u, v) rows."""
        if self.head is None:
            raise RuntimeError("the watch_ratio head is off")
        return self.head.finish(self.head.part("uv", torch.cat([u, v, u * v], dim=1))).squeeze(1)


def leave_one_out(total, mass, own_row, own_weight) -> torch.Tensor:
    """The mean of a bag without one of its entries: ``(total - w * row) / (mass - w)``,
    0 when nothing else is left. ``total`` / ``mass`` are the bag's sums (already
    gathered per pair), ``own_row`` the left-out entry's table row, ``own_weight`` its
    weight."""
    rest = mass - own_weight
    alone = rest <= 1e-6 * mass.clamp_min(1e-12)
    out = (total - own_weight[:, None] * own_row) / rest.clamp_min(1e-12)[:, None]
    return out.masked_fill(alone[:, None], 0.0)


# ---------------------------------------------------------------- losses


def logq_softmax_loss(
    scores: torch.Tensor,
    log_q: torch.Tensor,
    target: torch.Tensor,
    same_item: torch.Tensor | None = None,
) -> torch.Tensor:
    """In-batch sampled softmax with the logQ correction (Yi et al., RecSys 2019).

    ``scores`` (P, C): query p against candidate c; ``log_q`` (C,): log of how often each
    candidate is expected among the sampled candidates; ``target`` (P,): the column of each
    query's positive. ``same_item`` (P, C) bool masks accidental hits (another column of
    the query's own video). Loss = mean over queries of
    ``-log softmax(scores - log_q)[p, target_p]``.
    """
    logits = scores - log_q[None, :]
    if same_item is not None:
        logits = logits.masked_fill(same_item, float("-inf"))
    return F.cross_entropy(logits, target)


def sampled_bce_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy: positives' logits (P,) against sampled negatives' (P, K),
    each query's negatives averaged so a query weighs 1 + 1."""
    loss_pos = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos), reduction="none")
    loss_neg = F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg), reduction="none")
    return (loss_pos + loss_neg.mean(dim=1)).mean()


def cold_tower_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Relative squared error of the cold tower's vectors against the item tower's (held
    fixed: no gradient reaches the item tower), ``sum |p - t|^2 / sum |t|^2``."""
    target = target.detach()
    return ((predicted - target) ** 2).sum() / (target**2).sum().clamp_min(1e-12)


def rating_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """``"mse"`` or ``"huber"`` (delta 1) between predicted and clipped watch ratios."""
    if kind == "mse":
        return F.mse_loss(pred, target)
    return F.huber_loss(pred, target, delta=1.0)


# ---------------------------------------------------------------- batches


@dataclass(frozen=True)
class BatchRules:
    """How :class:`PairBatches` builds a batch (from the model config)."""

    threshold: float  # positives: watch_ratio >= threshold
    clip: float
    history_weighting: str
    uniform_negatives: int  # softmax: extra uniform negatives per batch
    bce_negatives: int  # bce: negatives per positive
    loss: str  # "softmax" | "bce"
    seed: int


class PairBatches(torch.utils.data.Dataset):
    """Training pairs (the stored entries of a CSR history), served a batch at a time:
    ``dataset[positions]`` gives a dict of tensors for those entries.

    A batch holds the pairs (``user``, ``item``, clipped ``rating``, ``positive``, the
    pair's history ``weight`` and its user's total weight ``mass``), the batch's distinct
    users' weighted histories as dense rows (``history``; ``user_row``: each pair's row:
    at KuaiRec's density a dense product is much faster than a sparse one), from which
    the model subtracts the pair's own entry, and the ``negatives``. Randomness comes from
    one generator seeded with ``rules.seed``.
    """

    def __init__(self, indptr, items, ratios, n_items, warm_items, rules: BatchRules) -> None:
        from kuairec.models.matrices import weight_values

        self.indptr = np.asarray(indptr, np.int64)
        self.items = np.asarray(items, np.int64)
        self.ratios = np.asarray(ratios, np.float32)
        self.n_items = int(n_items)
        self.users = np.repeat(np.arange(self.indptr.size - 1), np.diff(self.indptr))
        self.weights = weight_values(self.ratios, rules.history_weighting, rules.clip)
        n_users = self.indptr.size - 1
        self.mass = np.bincount(self.users, self.weights, n_users).astype(np.float32)
        self.warm_items = np.asarray(warm_items, np.int64)
        self.rules = rules
        self.rng = np.random.default_rng(rules.seed)

    def __len__(self) -> int:
        return int(self.items.size)

    def __getitem__(self, positions: Any) -> dict[str, torch.Tensor]:
        pos = np.asarray(positions, np.int64)
        r = self.rules
        users, user_row = np.unique(self.users[pos], return_inverse=True)
        entry, indptr = rows_entries(self.indptr, users)
        dense = np.zeros((users.size, self.n_items), np.float32)
        dense[np.repeat(np.arange(users.size), np.diff(indptr)), self.items[entry]] = self.weights[
            entry
        ]
        out = {
            "user": self.users[pos],
            "item": self.items[pos],
            "weight": self.weights[pos],
            "mass": self.mass[self.users[pos]],
            "rating": np.minimum(self.ratios[pos], r.clip),
            "positive": self.ratios[pos] >= r.threshold,
            "user_row": user_row.ravel(),
            "history": dense,
        }
        n_neg = (r.uniform_negatives,) if r.loss == "softmax" else (pos.size, r.bce_negatives)
        out["negatives"] = self.warm_items[self.rng.integers(0, self.warm_items.size, n_neg)]
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}


def rows_entries(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored-entry positions of CSR ``rows`` (in that order) and their new indptr."""
    start, stop = indptr[rows], indptr[rows + 1]
    size = stop - start
    new_indptr = np.concatenate([[0], np.cumsum(size)]).astype(np.int64)
    entry = np.repeat(start - new_indptr[:-1], size) + np.arange(new_indptr[-1])
    return entry, new_indptr


def batch_loader(dataset: PairBatches, batch_size: int, seed: int) -> Any:
    """A DataLoader of shuffled batches (one ``dataset[positions]`` per batch)."""
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    g = torch.Generator().manual_seed(seed)
    sampler = BatchSampler(RandomSampler(dataset, generator=g), batch_size, drop_last=False)
    return DataLoader(dataset, sampler=sampler, batch_size=None)


# ---------------------------------------------------------------- scoring


@dataclass(frozen=True)
class History:
    """Users' histories as CSR arrays (``indptr``, ``items``, watch ``ratios``) and how
    they weigh in the pooled mean (``weighting``, ``clip``: ``matrices.weight_values``)."""

    indptr: np.ndarray
    items: np.ndarray
    ratios: np.ndarray
    weighting: str
    clip: float

    def sums(self, table: np.ndarray) -> np.ndarray:
        """Per row, the weighted sum of its videos' ``table`` rows (n_rows, n_columns)."""
        import scipy.sparse as sp

        from kuairec.models.matrices import weight_values

        w = weight_values(self.ratios, self.weighting, self.clip)
        n_rows = self.indptr.size - 1
        m = sp.csr_matrix((w, self.items, self.indptr), shape=(n_rows, table.shape[0]))
        return np.asarray(m @ table, dtype=np.float32)

    def rows(self, users: np.ndarray) -> History:
        """The histories of ``users`` (indices into the rows), in that order."""
        entry, indptr = rows_entries(self.indptr, users)
        return History(indptr, self.items[entry], self.ratios[entry], self.weighting, self.clip)


@torch.no_grad()
def user_vectors(net: TwoTowerNet, history: History, user_x: torch.Tensor) -> torch.Tensor:
    """User tower output of every row of ``history`` with features ``user_x`` (rows)."""
    from kuairec.models.matrices import weight_values

    device = net.warm.device
    w = weight_values(history.ratios, history.weighting, history.clip)
    total, mass = net.history_sums(
        net.history_table(),
        torch.as_tensor(history.items, dtype=torch.int64, device=device),
        torch.as_tensor(w, device=device),
        torch.as_tensor(history.indptr[:-1], dtype=torch.int64, device=device),
    )
    pooled = total / mass.clamp_min(1e-12)[:, None]
    return net.user_vectors(pooled, user_x.to(device))


@torch.no_grad()
def all_item_vectors(net: TwoTowerNet, items: np.ndarray | None = None) -> torch.Tensor:
    v = net.all_items()
    return v if items is None else v[torch.as_tensor(items, device=v.device)]


@torch.no_grad()
def score_users(net: TwoTowerNet, history: History, user_x, items=None) -> np.ndarray:
    """float32 (rows, items) ranking scores of the users behind ``history``."""
    u = user_vectors(net, history, user_x)
    return net.similarity(u, all_item_vectors(net, items)).float().cpu().numpy()


def validation_scores(task: TwoTowerTask, users: np.ndarray) -> np.ndarray:
    """Scores of known users (the task's training history) for :class:`ValidationNDCG`."""
    net = task.net
    return score_users(net, task.history.rows(users), net.user_x[torch.as_tensor(users)])


# ---------------------------------------------------------------- training task


@dataclass(frozen=True)
class TaskSettings:
    loss: str
    logq: bool
    rating_weight: float
    rating_loss: str
    learning_rate: float
    weight_decay: float
    cold_weight: float
    cold_ridge: float


class TwoTowerTask(L.LightningModule):
    """Training of a :class:`TwoTowerNet`: the retrieval loss on the batch's positive
    pairs plus ``rating_weight`` times the watch_ratio loss on all its pairs.

    The softmax's candidates are the batch's positive pairs' videos (each query's own
    video is its target; another copy of it is masked as an accidental hit) plus the
    uniform negatives. ``log_q`` (n_items,) is log of each video's share of the positive
    training pairs (the probability that a positive drawn into the batch is on it);
    ``history`` (a :class:`History`) is the training pairs', used
    to score users (validation)."""

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

    def pooled_without_own(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each pair's user's pooled history part (the user tower's first layer) without
        the pair's own video: the sums over the whole history minus the own entry."""
        net, t = self.net, self.net.user_tower
        id_sums = t.part("history", batch["history"] @ net.history_id.weight)
        x_sums = t.part("history_x", self.history_x_sums[batch["user"]])
        own = net.history_table()[batch["item"]]
        total = id_sums[batch["user_row"]] + x_sums
        return leave_one_out(total, batch["mass"], own, batch["weight"])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        net, s = self.net, self.settings
        pooled = self.pooled_without_own(batch)
        u = net.user_vectors(pooled, net.user_x[batch["user"]])
        items = net.all_items()
        v = items[batch["item"]]
        loss = self.retrieval_loss(u, v, items, batch)
        if s.cold_weight > 0:
            warm = net.warm > 0
            fit = cold_tower_loss(net.cold_items()[warm], items[warm])
            ridge = sum((p**2).sum() for p in net.cold_tower.first.parameters())
            loss = loss + s.cold_weight * (fit + s.cold_ridge * ridge)
        if net.head is not None and s.rating_weight > 0:
            pred = net.rating(u, v)
            loss = loss + s.rating_weight * rating_loss(pred, batch["rating"], s.rating_loss)
        return loss

    def retrieval_loss(self, u, v, items_v, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        positive = batch["positive"]
        if not bool(positive.any()):
            return u.sum() * 0.0
        net, items, neg = self.net, batch["item"], batch["negatives"]
        qu = u[positive]
        if self.settings.loss == "bce":
            pos = net.similarity_rows(qu, v[positive][:, None, :]).squeeze(1)
            neg = neg[positive]  # (P, K): the positives' own negatives
            neg_v = items_v[neg.reshape(-1)].view(*neg.shape, v.shape[1])
            return sampled_bce_loss(pos, net.similarity_rows(qu, neg_v))
        # candidates: the positives' videos (in-batch negatives), then the uniform ones
        pos_items = items[positive]
        n_pos = pos_items.numel()
        cand_items = torch.cat([pos_items, neg])
        cand = torch.cat([v[positive], items_v[neg]]) if neg.numel() else v[positive]
        scores = net.similarity(qu, cand)
        target = torch.arange(n_pos, device=items.device)
        same = (pos_items[:, None] == cand_items[None, :]) & (
            torch.arange(cand_items.numel(), device=items.device)[None, :] != target[:, None]
        )
        log_q = self.expected_log_q(cand_items, n_pos, neg.numel())
        return logq_softmax_loss(scores, log_q, target, same)

    def expected_log_q(self, items: torch.Tensor, n_batch: int, n_uniform: int) -> torch.Tensor:
        """log of each candidate's expected count among the candidates: ``n_batch * q_i +
        n_uniform / n_warm`` (0 when the correction is off)."""
        if not self.settings.logq:
            return torch.zeros(items.numel(), device=items.device)
        expected = n_batch * self.log_q[items].exp()
        if n_uniform:
            expected = expected + n_uniform / self.net.warm.sum()
        return expected.log()

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(
            (p for p in self.parameters() if p.requires_grad),
            lr=self.settings.learning_rate,
            weight_decay=self.settings.weight_decay,
        )
