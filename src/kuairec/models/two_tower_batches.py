"""The two-tower model's training batches, built from index arrays (no per-pair Python).

Imported only inside :mod:`kuairec.models.two_tower`'s functions (it imports torch).

**Which pairs share a batch.** Once per epoch :func:`epoch_order` draws one permutation of
all training pairs: each user's pairs are shuffled and cut into chunks of
``pairs_per_user``, and the chunks are shuffled; consecutive ``batch_size`` pairs of that
order form a batch. A batch of 4,096 pairs then holds about ``4096 / pairs_per_user``
users, and every user's whole history (the user tower pools it) is read once per chunk
instead of once per pair: at KuaiRec's density (a user has ~1,300 of 10,728 videos) a
batch of uniformly drawn pairs holds ~2,600 users, and pooling their histories was most of
an epoch's work. The same grouping is how YouTube's candidate generator limits heavy users
(a fixed number of training examples per user; Covington et al., RecSys 2016).
``pairs_per_user=1`` draws uniformly shuffled pairs.

**What a batch holds** (:meth:`PairBatches.__getitem__`, numpy, then tensors): the pairs
(``item``, the head's target ``rating``, ``positive``, the pair's history ``weight``, its
user's total weight ``mass``, ``user_row``: the row of its user among the batch's
distinct ``users``), the batch's distinct videos (``items_u``) with each pair's and each
negative's slot among them (``item_slot``, ``neg_slot``: the towers run once per distinct
video), the sampled ``negatives``, the softmax's shared positives (``shared``) and
accidental hits (``hit_query``, ``hit_cand``), with the attention encoder each distinct
user's last videos (``recent``) and the place of each pair's own video among them
(``recent_pos``, -1: not there), and the distinct users' weighted histories: a dense
(users, n_items) matrix ``history`` when the data are dense enough for a matrix product to
win (a measured crossover, :data:`DENSE_DENSITY`), else bags for ``embedding_bag``
(``hist_items``, ``hist_weights``, ``hist_offsets``); with ``history_dropout`` the
entries left out of those rows as bags (``drop_items``, ``drop_weights``,
``drop_offsets``; the attention encoder's last videos are not dropped). Randomness (the
order, the negatives, the dropped entries) comes from one generator seeded with
``rules.seed``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# Above this density (stored pairs / (users x videos)) a batch's histories are a dense
# matrix: 128 users x 10,728 videos at 12% density, forward + backward, took 5 ms as a
# dense product against 15 ms for embedding_bag; at 1% the bags took 3 ms against 7 ms
# (benchmarks/bench_two_tower.py's machine, one thread). Both give the same sums.
DENSE_DENSITY = 0.03
# From this many training pairs a worker process builds the batches (batch_loader).
WORKER_PAIRS = 100_000


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
    batch_size: int = 4096
    pairs_per_user: int = 32
    mask_user_positives: bool = True  # softmax: a user's other positives are no negatives
    batch_negatives: int = 1024  # softmax: this many positives' videos (at most) are shared
    rating_clip: float = 5.0  # the head's target: watch_ratio clipped here
    rating_log1p: bool = False  # ... then log1p
    catalogue: bool = False  # softmax over every warm video (no negatives drawn)
    history_dropout: float = 0.0  # each batch user's history entry left out with this chance


def epoch_order(indptr: np.ndarray, chunk: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of the stored entries of CSR rows ``indptr``: each row's entries in a
    random order, cut into consecutive chunks of ``chunk`` entries (the row's last chunk
    may be shorter), the chunks in a random order. ``chunk=1``: a uniform permutation.

    One sort (row + a uniform number in [0, 1): the rows stay in place, their entries
    shuffled), then each entry is placed at its chunk's start plus its place in the chunk:
    no per-row Python, no second sort."""
    indptr = np.asarray(indptr, np.int64)
    sizes = np.diff(indptr)
    rows = np.repeat(np.arange(sizes.size, dtype=np.float64), sizes)
    by_row = np.argsort(rows + rng.random(rows.size))  # within-row shuffle
    slot = np.arange(rows.size) - np.repeat(indptr[:-1], sizes)  # place in its row
    del rows
    n_chunks = -(-sizes // chunk)  # per row
    first = np.repeat(np.cumsum(n_chunks) - n_chunks, sizes)  # the row's first chunk id
    chunk_id = first + slot // chunk
    del first
    chunk_size = np.bincount(chunk_id, minlength=int(n_chunks.sum()))
    placed = rng.permutation(chunk_size.size)  # placed[k]: the chunk that goes k-th
    sizes_placed = chunk_size[placed]
    start = np.empty_like(chunk_size)
    start[placed] = np.cumsum(sizes_placed) - sizes_placed
    order = np.empty_like(by_row)
    order[start[chunk_id] + slot % chunk] = by_row
    return order


class EpochBatches(torch.utils.data.Sampler):
    """Yields the position arrays of one epoch's batches (:func:`epoch_order`, cut into
    ``batch_size`` pieces); a new order every epoch from one seeded generator."""

    def __init__(self, indptr: np.ndarray, rules: BatchRules) -> None:
        self.indptr = np.asarray(indptr, np.int64)
        self.batch_size, self.chunk = rules.batch_size, rules.pairs_per_user
        self.rng = np.random.default_rng([rules.seed, 1])

    def __len__(self) -> int:
        return -(-int(self.indptr[-1]) // self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        order = epoch_order(self.indptr, self.chunk, self.rng)
        for start in range(0, order.size, self.batch_size):
            yield order[start : start + self.batch_size]


class PairBatches(torch.utils.data.Dataset):
    """Training pairs (the stored entries of a CSR history), served a batch at a time:
    ``dataset[positions]`` gives a dict of tensors for those entries (module docstring)."""

    def __init__(
        self, indptr, items, ratios, n_items, warm_items, rules: BatchRules, recent=None
    ) -> None:
        from kuairec.models.matrices import weight_values

        self.indptr = np.asarray(indptr, np.int64)
        self.items = np.asarray(items, np.int64)
        self.ratios = np.asarray(ratios, np.float32)
        self.n_items = int(n_items)
        n_users = self.indptr.size - 1
        self.users = np.repeat(np.arange(n_users), np.diff(self.indptr))
        self.weights = weight_values(self.ratios, rules.history_weighting, rules.clip)
        self.warm_items = np.asarray(warm_items, np.int64)
        self.rules = rules
        self.dense = self.items.size > DENSE_DENSITY * max(n_users * self.n_items, 1)
        self.recent = None if recent is None else np.asarray(recent, np.int64)
        self.rng = np.random.default_rng(rules.seed)

    def __len__(self) -> int:
        return int(self.items.size)

    def __getitem__(self, positions: Any) -> dict[str, torch.Tensor]:
        pos = np.asarray(positions, np.int64)
        r = self.rules
        users, user_row = np.unique(self.users[pos], return_inverse=True)
        n_neg = (r.uniform_negatives,) if r.loss == "softmax" else (pos.size, r.bce_negatives)
        n_neg = (0,) if r.catalogue else n_neg  # the catalogue softmax draws nothing
        negatives = self.warm_items[self.rng.integers(0, self.warm_items.size, n_neg)]
        items = self.items[pos]
        items_u, slots = np.unique(np.concatenate([items, negatives.ravel()]), return_inverse=True)
        histories, mass, own_kept = self.histories(users, pos)
        out = {
            "users": users,
            "user_row": user_row.ravel(),
            "item": items,
            "items_u": items_u,
            "item_slot": slots[: pos.size],
            "neg_slot": slots[pos.size :].reshape(negatives.shape),
            "weight": self.weights[pos] * own_kept,
            "mass": mass[user_row.ravel()],
            "rating": self.rating_target(self.ratios[pos]),
            "positive": self.ratios[pos] >= r.threshold,
            "negatives": negatives,
            **histories,
        }
        if self.recent is not None:  # each user's last videos; where the pair's own is
            rows = self.recent[users]
            out["recent"] = rows
            hit = rows[out["user_row"]] == items[:, None]
            out["recent_pos"] = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
        if r.catalogue:
            out.update(self.catalogue_fields(users, items, out["positive"]))
        elif r.loss == "softmax":
            positive = out["positive"]
            n_pos = int(positive.sum())
            shared = np.arange(n_pos)
            if n_pos > r.batch_negatives:
                shared = np.sort(self.rng.choice(n_pos, r.batch_negatives, replace=False))
            out["shared"] = shared
            out["hit_query"], out["hit_cand"] = accidental_hits(
                items[positive], out["user_row"][positive], shared, negatives,
                r.mask_user_positives,
            )  # fmt: skip
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}

    def catalogue_fields(self, users, items, positive) -> dict[str, np.ndarray]:
        """The softmax over the warm catalogue: each query's (positive pair's) own video
        as a warm column (``target``) and the (distinct user row, warm column) cells of
        the batch's users' positive videos (``pos_rows``, ``pos_cols``; none without
        ``mask_user_positives``): masked in the user's queries but for each query's own
        (a known positive is no negative)."""
        entry, indptr = rows_entries(self.indptr, users)
        keep = self.ratios[entry] >= self.rules.threshold
        keep &= self.rules.mask_user_positives
        rows = np.repeat(np.arange(users.size), np.diff(indptr))[keep]
        cols = np.searchsorted(self.warm_items, self.items[entry[keep]])
        return {
            "target": np.searchsorted(self.warm_items, items[positive]),
            "pos_rows": rows,
            "pos_cols": cols,
        }

    def rating_target(self, ratios: np.ndarray) -> np.ndarray:
        """The watch_ratio head's target: clipped at ``rating_clip``, log1p'd or not."""
        clipped = np.minimum(ratios, np.float32(self.rules.rating_clip))
        return np.log1p(clipped) if self.rules.rating_log1p else clipped

    def histories(
        self, users: np.ndarray, pos: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """The weighted training rows of ``users`` (sorted, distinct): a dense matrix, or
        embedding bags; each user's weight in all (``mass``); whether each pair ``pos``'s
        own entry is in its user's row (1.0 or 0.0).

        With ``history_dropout`` p each entry of the batch's rows is left out with chance
        p (its weight 0; the mass is the kept entries'), as Mult-DAE drops its input
        (Liang et al., WWW 2018): the tower pools a random part of the history, so it
        cannot lean on any one video. The left-out entries come as bags too
        (``drop_items``, ``drop_weights``, ``drop_offsets``): the task takes their item
        features out of the precomputed whole-history sums."""
        entry, indptr = rows_entries(self.indptr, users)
        weights = self.weights[entry]
        rows = np.repeat(np.arange(users.size), np.diff(indptr))
        out: dict[str, np.ndarray] = {}
        own_kept = np.ones(pos.size, np.float32)
        if self.rules.history_dropout > 0:
            kept = self.rng.random(entry.size) >= self.rules.history_dropout
            dropped = np.flatnonzero(~kept)
            out["drop_items"] = self.items[entry[dropped]]
            out["drop_weights"] = weights[dropped]
            out["drop_offsets"] = np.searchsorted(dropped, indptr[:-1]).astype(np.int64)
            weights = weights * kept
            # entries ascend (users sorted, each row's entries contiguous): find each own
            own_kept = kept[np.searchsorted(entry, pos)].astype(np.float32)
        mass = np.bincount(rows, weights, users.size).astype(np.float32)
        if self.dense:
            dense = np.zeros((users.size, self.n_items), np.float32)
            dense[rows, self.items[entry]] = weights
            out["history"] = dense
        else:
            out.update(hist_items=self.items[entry], hist_weights=weights, hist_offsets=indptr[:-1])
        return out, mass, own_kept


def accidental_hits(
    items: np.ndarray,
    user_row: np.ndarray,
    shared: np.ndarray,
    negatives: np.ndarray,
    mask_user_positives: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The (query, shared candidate) cells of the softmax that are not negatives.

    Queries are the batch's positive pairs (``items``, ``user_row``: their videos and
    users, in order); the shared candidates are the videos of the queries at positions
    ``shared``, then the uniform ``negatives``. A cell is a hit when the candidate is the
    query's own video (a copy of the target, which has its own logit) or, with
    ``mask_user_positives``, a shared positive of the query's user (a known positive, not
    a negative). Two index arrays (rows, columns), a few per query, instead of dense
    (P, C) comparisons."""
    q, c = cross_pairs(items, np.concatenate([items[shared], negatives]))
    if mask_user_positives:
        uq, uc = cross_pairs(user_row, user_row[shared])
        q, c = np.concatenate([q, uq]), np.concatenate([c, uc])
    return q, c


def cross_pairs(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ``(i, j)`` with ``left[i] == right[j]`` (int64 index arrays)."""
    i, j = same_key_pairs(np.concatenate([left, right]))
    keep = (i < left.size) & (j >= left.size)
    return i[keep], j[keep] - left.size


def same_key_pairs(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair ``(i, j)``, ``i != j``, with ``key[i] == key[j]`` (int64 index
    arrays, grouped by key): all pairs within each group of equal keys, vectorised."""
    order = np.argsort(key, kind="stable")
    k = np.asarray(key)[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]]) if k.size else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, k.size])
    size_of = np.repeat(sizes, sizes)  # per sorted element: its group's size
    first = np.repeat(starts, sizes)  # per sorted element: its group's first position
    n = int(size_of.sum())
    i = np.repeat(np.arange(k.size), size_of)
    j = np.repeat(first, size_of) + (
        np.arange(n) - np.repeat(np.cumsum(size_of) - size_of, size_of)
    )
    keep = i != j
    return order[i[keep]].astype(np.int64), order[j[keep]].astype(np.int64)


def rows_entries(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored-entry positions of CSR ``rows`` (in that order) and their new indptr."""
    start, stop = indptr[rows], indptr[rows + 1]
    size = stop - start
    new_indptr = np.concatenate([[0], np.cumsum(size)]).astype(np.int64)
    entry = np.repeat(start - new_indptr[:-1], size) + np.arange(new_indptr[-1])
    return entry, new_indptr


def batch_loader(dataset: PairBatches) -> Any:
    """A DataLoader of one epoch's batches (one ``dataset[positions]`` per batch).

    With :data:`WORKER_PAIRS` pairs or more and two or more CPU cores, one persistent
    worker process builds the batches while the main process trains (the batches and
    their order are the same as without it: the sampler runs in the main process, the
    dataset's seeded generator advances in the one worker in batch order)."""
    import os

    from torch.utils.data import DataLoader

    worker = len(dataset) >= WORKER_PAIRS and (os.cpu_count() or 1) >= 2
    return DataLoader(
        dataset,
        sampler=EpochBatches(dataset.indptr, dataset.rules),
        batch_size=None,
        num_workers=1 if worker else 0,
        persistent_workers=worker,
    )
