"""The two-tower model's torch network, losses and scoring.

Imported only inside :mod:`kuairec.models.two_tower`'s functions (it imports torch).
Everything the trainer receives is a module-level class or function (picklable for
``ddp_spawn``).

- :class:`TwoTowerNet` (a plain ``nn.Module``): the item tower ``MLP([id embedding,
  item_x])``, the user tower ``MLP([mean of the history's embeddings, mean of the
  history's item_x, user_x])``, the cold tower (:func:`solve_cold`), the similarity (dot,
  or cosine over a learned temperature) and the watch_ratio head ``MLP([u, v, u * v])``.
  Features are standardised once; they live in the module as buffers, so
  ``state_dict()`` is the whole fitted state but the training history.
- the losses: :func:`logq_softmax_loss` (in-batch sampled softmax with the logQ
  correction), :func:`sampled_bce_loss`, :func:`rating_loss`; :func:`leave_one_out`.
- scoring: :class:`History`, :func:`user_vectors`, :func:`score_users`;
  :func:`last_items` (each user's last videos, for the attention encoder).

The batches are :mod:`kuairec.models.two_tower_batches`, the LightningModule
:mod:`kuairec.models.two_tower_task`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    recent: int = 0  # attention over each user's last `recent` videos (0: off)
    user_id: bool = False  # a user id embedding in the user tower (known users)


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
        parts = {"history": d, "history_x": n_ix, "x": n_ux, "recent": d if shape.recent else 0,
                 "user_id": d if shape.user_id else 0}  # fmt: skip
        self.user_tower = Tower(parts, shape.hidden, d)
        self.user_id = None
        if shape.user_id:  # a known user's own vector; new users go without (zeros)
            self.user_id = nn.Embedding(self.user_x.shape[0], d)
            nn.init.normal_(self.user_id.weight, std=0.05)
        self.attention_query = None
        if shape.recent:  # zero: the attention starts as the mean of the last videos
            self.attention_query = nn.Parameter(torch.zeros(d))
        self.cold_tower = Tower({"x": n_ix}, 0, d).requires_grad_(False)  # solved: solve_cold
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

    def warm_items(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """The item tower on the id embedding and ``item_x`` of ``items`` (all: None)."""
        t, ids, x = self.item_tower, self.item_id.weight, self.item_x
        if items is not None:
            ids, x = ids[items], x[items]
        return t.finish(t.part("id", ids) + t.part("x", x))

    def cold_items(self) -> torch.Tensor:
        """The cold tower on every video's ``item_x_cold``: tags, captions, duration (the
        daily statistics blanked as for a new video), trained to predict the item tower's
        output of the warm videos (:func:`cold_tower_loss`)."""
        return self.cold_tower.finish(self.cold_tower.part("x", self.item_x_cold))

    def history_table(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """The contribution of ``items`` (all: None) to the user tower's first layer
        (n, width) when they are in a history."""
        t, ids, x = self.user_tower, self.history_id.weight, self.item_x
        if items is not None:
            ids, x = ids[items], x[items]
        return t.part("history", ids) + t.part("history_x", x)

    def history_sums(self, table, items, weights, offsets) -> tuple[torch.Tensor, torch.Tensor]:
        """Per bag: the weighted sum of its ``table`` rows and the sum of its weights."""
        w = weights * self.warm[items]
        ones = torch.ones(table.shape[0], 1, device=w.device, dtype=w.dtype)
        total = F.embedding_bag(items, table, offsets, mode="sum", per_sample_weights=w)
        mass = F.embedding_bag(items, ones, offsets, mode="sum", per_sample_weights=w)
        return total, mass.squeeze(1)

    def recent_pool(self, items: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Attention over each row's last videos ``items`` (rows, N; -1 pads, videos
        without training pairs ignored): ``alpha = softmax(e_j . q / sqrt(d))`` with ``e_j``
        the videos' history embeddings and ``q`` the learned query; returns ``(alpha,
        sum_j alpha_j e_j, e)`` (a row without videos: zero weights and zero vector)."""
        valid = items >= 0
        safe = items.clamp_min(0)
        valid = valid & (self.warm[safe] > 0)
        e = self.history_id.weight[safe]  # (rows, N, d)
        logits = (e @ self.attention_query) / math.sqrt(e.shape[-1])
        alpha = torch.softmax(logits.masked_fill(~valid, float("-inf")), dim=1)
        alpha = torch.nan_to_num(alpha, nan=0.0)  # rows without a valid video
        return alpha, (alpha[..., None] * e).sum(dim=1), e

    def user_vectors(self, pooled: torch.Tensor, user_x: torch.Tensor) -> torch.Tensor:
        """User tower output from the pooled history part and the user features."""
        return self.user_tower.finish(pooled + self.user_tower.part("x", user_x))

    def similarity(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(n_u, n_v) ranking scores: ``u . v``, or ``cos(u, v) / temperature``."""
        if self.shape.similarity == "cosine":
            u, v = F.normalize(u, dim=1), F.normalize(v, dim=1)
            return u @ v.T / self.log_temperature.exp()
        return u @ v.T

    def score_parts(self, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, b)`` with ``similarity(u, v) == a @ b.T`` (for ``addmm``)."""
        if self.shape.similarity == "cosine":
            return F.normalize(u, dim=1) / self.log_temperature.exp(), F.normalize(v, dim=1)
        return u, v

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


def shared_softmax_loss(own: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
    """Sampled softmax over each query's own positive and shared candidates.

    ``own`` (P,): each query's logit of its own positive video; ``shared`` (P, C): its
    logits of the shared candidates (the batch's positives' videos and uniform negatives;
    accidental hits at ``-inf``). Logits are scores minus log of the candidate's expected
    count among the sampled candidates: the logQ correction of Yi et al., RecSys 2019.
    Loss = mean over queries of ``-log(exp(own) / (exp(own) + sum_c exp(shared_c)))``."""
    logits = torch.cat([own[:, None], shared], dim=1)  # fused log_softmax: fewer passes
    return F.cross_entropy(logits, torch.zeros_like(own, dtype=torch.int64))


def sampled_bce_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy: positives' logits (P,) against sampled negatives' (P, K),
    each query's negatives averaged so a query weighs 1 + 1."""
    loss_pos = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos), reduction="none")
    loss_neg = F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg), reduction="none")
    return (loss_pos + loss_neg.mean(dim=1)).mean()


@torch.no_grad()
def solve_cold(net: TwoTowerNet, ridge: float) -> None:
    """Set the cold tower to the ridge regression of the item tower's vectors of the warm
    videos on their upload-time features (``item_x_cold``), in closed form:

    ``min_W,b  sum_i |x_i W + b - v_i|^2 / sum_i |v_i|^2  +  ridge * |W|^2``

    (``W = (Xc' Xc + ridge * sum |v|^2 I)^-1 Xc' Vc`` on the centred features ``Xc`` and
    vectors ``Vc``, ``b`` the mean vector minus the mean features times ``W``; float64).
    The item tower is not changed. Done before every validation and after the fit: the
    exact optimum of the objective the first version descended by SGD at every step,
    at a fraction of the cost (no pass over every video per training step)."""
    tower, warm = net.cold_tower, net.warm > 0
    if not bool(warm.any()):
        return
    v = net.warm_items()[warm].double()
    v_mean = v.mean(dim=0)
    tower.bias.copy_(v_mean)
    if "x" not in tower.first:  # no item features: every cold video is the mean video
        return
    x = net.item_x_cold[warm].double()
    x_mean = x.mean(dim=0)
    xc = x - x_mean
    gram = xc.T @ xc
    lam = max(ridge * float((v**2).sum()), 1e-9 * float(gram.diagonal().sum()) + 1e-12)
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    w = torch.linalg.solve(gram + lam * eye, xc.T @ (v - v_mean))  # (F, d)
    tower.first["x"].weight.copy_(w.T)
    tower.bias.copy_(v_mean - x_mean @ w)


def rating_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """``"mse"`` or ``"huber"`` (delta 1) between predicted and clipped watch ratios."""
    if kind == "mse":
        return F.mse_loss(pred, target)
    return F.huber_loss(pred, target, delta=1.0)


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
    recent: np.ndarray | None = None  # (rows, N) each row's last videos, -1 pads

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
        from kuairec.models.two_tower_batches import rows_entries

        entry, indptr = rows_entries(self.indptr, users)
        recent = None if self.recent is None else self.recent[users]
        return History(indptr, self.items[entry], self.ratios[entry], self.weighting, self.clip,
                       recent)  # fmt: skip


@torch.no_grad()
def user_vectors(
    net: TwoTowerNet, history: History, user_x: torch.Tensor, users: np.ndarray | None = None
) -> torch.Tensor:
    """User tower output of every row of ``history`` with features ``user_x`` (rows);
    ``users``: the rows' known user indices (their id embeddings), None for new users."""
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
    if net.attention_query is not None:
        recent = torch.as_tensor(history.recent, dtype=torch.int64, device=device)
        pooled = pooled + net.user_tower.part("recent", net.recent_pool(recent)[1])
    if net.user_id is not None and users is not None:
        ids = net.user_id.weight[torch.as_tensor(users, dtype=torch.int64, device=device)]
        pooled = pooled + net.user_tower.part("user_id", ids)
    return net.user_vectors(pooled, user_x.to(device))


@torch.no_grad()
def all_item_vectors(net: TwoTowerNet, items: np.ndarray | None = None) -> torch.Tensor:
    v = net.all_items()
    return v if items is None else v[torch.as_tensor(items, device=v.device)]


@torch.no_grad()
def score_users(net: TwoTowerNet, history: History, user_x, items=None, users=None) -> np.ndarray:
    """float32 (rows, items) ranking scores of the users behind ``history`` (``users``:
    their indices when known, see :func:`user_vectors`).

    The scores of a subset of ``items`` are columns of the scores of every video, not a
    product of their own: a matrix product's last bits depend on its shape on some CPUs
    (MKL with AVX-512: a product over 3 videos differed from the same columns of one
    over 30 by one unit in the last place), and ``score(users, items)`` must equal
    ``score(users)[:, items]``. The product over every video costs rows x videos x
    ``dim``: small beside the towers."""
    u = user_vectors(net, history, user_x, users)
    scores = net.similarity(u, all_item_vectors(net))
    if items is not None:
        scores = scores[:, torch.as_tensor(np.asarray(items), device=scores.device)]
    return scores.float().cpu().numpy()


def last_items(indptr: np.ndarray, items: np.ndarray, n: int, order=None) -> np.ndarray:
    """(rows, n) int64: each CSR row's last ``n`` videos, oldest first, -1 padded at the
    end. ``order``: a per-entry sort key (e.g. the first timestamp; ties by position);
    None: the stored order (a posted history has no time: its last stored entries)."""
    indptr = np.asarray(indptr, np.int64)
    sizes = np.diff(indptr)
    rows = np.repeat(np.arange(sizes.size), sizes)
    key = np.arange(rows.size) if order is None else np.asarray(order, np.float64)
    key = np.where(np.isfinite(key), key, -np.inf)
    by_time = np.lexsort((np.arange(rows.size), key, rows))  # per row, oldest first
    rank = np.arange(rows.size) - indptr[rows]  # place in the row, by time
    keep = rank >= (sizes - n)[rows]
    out = np.full((sizes.size, n), -1, np.int64)
    slot = rank - np.maximum(sizes - n, 0)[rows]
    out[rows[keep], slot[keep]] = np.asarray(items, np.int64)[by_time][keep]
    return out
