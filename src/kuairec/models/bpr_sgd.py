"""BPR's stochastic gradient descent: a seeded sampler and one sequential SGD kernel (numba).

The learning rule is implicit's (``implicit/cpu/bpr.pyx``, Rendle et al. 2009): a sample
is a training positive ``(u, i)`` drawn uniformly from the stored positives and a negative
item ``j``; a negative the user has among her positives is skipped (with
``verify_negatives``), otherwise with ``z = 1 / (1 + exp(x_u . (y_i - y_j)))``::

    x_u[k] += lr * (z * (y_i[k] - y_j[k]) - reg * x_u[k])      k < factors
    y_i[k] += lr * (z * x_u[k] - reg * y_i[k])                  (x_u before its update)
    y_j[k] += lr * (-z * x_u[k] - reg * y_j[k])
    y_i[f] += lr * (z - reg * y_i[f]);  y_j[f] += lr * (-z - reg * y_j[f])   item bias

where the last column ``f`` of the item factors is the item bias and the users' last column
is a constant 1. An epoch draws as many samples as there are positives.

What differs from implicit, and why:

- the negative is drawn uniformly over the items with probability ``uniform_share``, and
  otherwise as the item of a random positive (implicit's own rule: in proportion to the
  item's positives). kuairec used to get the uniform share from implicit by appending
  rows holding every item (``uniform_negatives``); those rows drew ``1 / (1 - share)``
  samples an epoch for one useful update each (10x the work at 0.9). The mixture is the
  same; the wasted draws are gone;
- the samples are processed one after the other, on one thread, in the order the
  generator draws them: implicit's multi-threaded (Hogwild) updates race, so its result
  changed with the machine's load (NDCG@10 0.3999 vs 0.4012 for one seed). Here the same
  seed gives the same factors on any machine, whatever its load or core count;
- the random numbers are SplitMix64 (Steele et al. 2014), written out below, so the draws
  do not depend on a library's generator: a draw in ``[0, n)`` is
  ``floor(n * (bits >> 11) / 2**53)``. The initial factors are numpy's ``default_rng``
  (seed) uniform in ``[-0.5, 0.5) / factors`` as in implicit; users without positives
  start at 0 and every user's last column is 1.

The factors are float32; the score's exponential is taken in float64 (as implicit's C
``exp``). numba compiles the kernel on first use and caches it on disk (``cache=True``);
this module imports numba, so only BPR's fit imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numba
import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S11, _S27, _S30, _S31 = np.uint64(11), np.uint64(27), np.uint64(30), np.uint64(31)
_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@numba.njit(cache=True, nogil=True)
def _next_unit(state: np.ndarray) -> float:
    """SplitMix64: advance ``state[0]`` and return a float in [0, 1) of 53 random bits."""
    state[0] += _GOLDEN
    z = state[0]
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return float(z >> _S11) * _UNIT


@numba.njit(cache=True, nogil=True)
def _has_item(indptr: np.ndarray, indices: np.ndarray, user: int, item: int) -> bool:
    """Whether ``item`` is among ``user``'s positives (binary search in her sorted row)."""
    lo, hi = indptr[user], indptr[user + 1]
    end = hi
    while lo < hi:
        mid = (lo + hi) // 2
        if indices[mid] < item:
            lo = mid + 1
        else:
            hi = mid
    return lo < end and indices[lo] == item


@numba.njit(cache=True, nogil=True)
def _liked(bits: np.ndarray, indptr: np.ndarray, indices: np.ndarray, user: int, item: int) -> bool:
    """Whether ``item`` is among ``user``'s positives: one bit of the users x items bitmap
    (one memory access), or a binary search where there is no bitmap."""
    if bits.shape[0] > 0:
        return (bits[user, item >> 3] >> (item & 7)) & 1 == 1
    return _has_item(indptr, indices, user, item)


@numba.njit(cache=True, nogil=True)
def _bitmap(pairs: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    """The users x items bitmap of the positives (bit ``i & 7`` of byte ``[u, i >> 3]``)."""
    bits = np.zeros((n_users, (n_items + 7) // 8), dtype=np.uint8)
    for k in range(pairs.shape[0]):
        u, i = pairs[k, 0], pairs[k, 1]
        bits[u, i >> 3] |= np.uint8(1 << (i & 7))
    return bits


@numba.njit(cache=True, nogil=True)
def _draw(
    pairs: np.ndarray, n_items: int, uniform_share: float, state: np.ndarray
) -> tuple[int, int, int]:
    """One sample (user, positive, negative): a positive uniformly over ``pairs``, a
    coin for the uniform share, then the negative (uniform item, or a random positive's
    item)."""
    nnz = pairs.shape[0]
    pos = int(_next_unit(state) * nnz)
    u, i = pairs[pos, 0], pairs[pos, 1]
    if _next_unit(state) < uniform_share:
        j = int(_next_unit(state) * n_items)
    else:
        j = pairs[int(_next_unit(state) * nnz), 1]
    return u, i, j


@numba.njit(cache=True, nogil=True)
def _epoch(
    pairs: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    bits: np.ndarray,
    user_f: np.ndarray,
    item_f: np.ndarray,
    lr: np.float32,
    reg: np.float32,
    uniform_share: float,
    verify: bool,
    state: np.ndarray,
) -> tuple[int, int]:
    """One epoch: one sample per positive, in the order drawn; (correct, skipped).

    ``pairs`` holds each positive's (user, item) side by side (one memory access). Each
    sample is drawn, and its negative looked up, while the one before is being applied:
    the draws keep their order, and the memory loads overlap the arithmetic."""
    nnz, n_items = pairs.shape[0], item_f.shape[0]
    factors = item_f.shape[1] - 1
    correct, skipped = 0, 0
    u, i, j = _draw(pairs, n_items, uniform_share, state)
    liked = verify and _liked(bits, indptr, indices, u, j)
    for t in range(nnz):
        cu, ci, cj, skip = u, i, j, liked
        if t + 1 < nnz:
            u, i, j = _draw(pairs, n_items, uniform_share, state)
            liked = verify and _liked(bits, indptr, indices, u, j)
        if skip:
            skipped += 1
            continue
        x, yi, yj = user_f[cu], item_f[ci], item_f[cj]
        score = np.float32(0.0)
        for k in range(factors + 1):
            score += x[k] * (yi[k] - yj[k])
        z = np.float32(1.0 / (1.0 + math.exp(np.float64(score))))
        if z < 0.5:
            correct += 1
        for k in range(factors):
            temp = x[k]
            x[k] += lr * (z * (yi[k] - yj[k]) - reg * x[k])
            yi[k] += lr * (z * temp - reg * yi[k])
            yj[k] += lr * (-z * temp - reg * yj[k])
        yi[factors] += lr * (z - reg * yi[factors])
        yj[factors] += lr * (-z - reg * yj[factors])
    return correct, skipped


BITMAP_MAX_BYTES = 1 << 26  # above this (64 MB), a user's positives are binary-searched


def fit_bpr(
    x: sp.csr_matrix,
    *,
    factors: int,
    learning_rate: float,
    regularization: float,
    epochs: int,
    uniform_share: float,
    verify_negatives: bool,
    seed: int,
    on_epoch: Callable[[int, int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """User and item factors (float32, ``factors + 1`` columns; the item's last is its
    bias, the user's last is 1) learned by BPR on the positives of ``x`` (its pattern).

    ``on_epoch(epoch, correct, skipped)`` is called after each epoch (progress)."""
    n_users, n_items = x.shape
    indptr = np.ascontiguousarray(x.indptr, dtype=np.int64)
    indices = np.ascontiguousarray(x.indices, dtype=np.int32)
    if not _rows_sorted(indptr, indices):
        x = x.copy()
        x.sort_indices()
        indices = np.ascontiguousarray(x.indices, dtype=np.int32)
    counts = np.diff(indptr)
    pairs = np.empty((indices.size, 2), dtype=np.int32)
    pairs[:, 0] = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    pairs[:, 1] = indices
    small = n_users * ((n_items + 7) // 8) <= BITMAP_MAX_BYTES
    bits = _bitmap(pairs, n_users, n_items) if small else np.zeros((0, 0), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    item_f = (rng.random((n_items, factors + 1), dtype=np.float32) - np.float32(0.5)) / factors
    user_f = (rng.random((n_users, factors + 1), dtype=np.float32) - np.float32(0.5)) / factors
    user_f[counts == 0] = 0.0
    user_f[:, factors] = 1.0
    state = np.array([rng.integers(0, 2**63)], dtype=np.uint64)
    for e in range(epochs):
        correct, skipped = _epoch(
            pairs,
            indptr,
            indices,
            bits,
            user_f,
            item_f,
            np.float32(learning_rate),
            np.float32(regularization),
            float(uniform_share),
            bool(verify_negatives),
            state,
        )
        if on_epoch is not None:
            on_epoch(e, int(correct), int(skipped))
    return user_f, item_f


def _rows_sorted(indptr: np.ndarray, indices: np.ndarray) -> bool:
    """Whether every row's column indices are strictly increasing (binary search needs it)."""
    if indices.size < 2:
        return True
    rising = indices[1:] > indices[:-1]
    row_start = np.zeros(indices.size, dtype=bool)
    row_start[indptr[1:-1][indptr[1:-1] < indices.size]] = True
    return bool(np.all(rising | row_start[1:]))
