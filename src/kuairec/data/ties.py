"""The tie-breaking hash both engines use: ``tie_hash(seed, user_idx, item_idx)``.

Where a split has to order rows that nothing else orders (two rows of a user at the same
instant, a "random" share of a user's pairs), both engines order them by this integer
hash, then by ``item_idx``. It depends only on its three integers: not on file order,
partitioning, the number of executors or a library's hash function (Spark's ``hash`` and
``xxhash64`` may change between versions, ``randomSplit`` depends on partitioning), so
the local engine (numpy, here) and the Spark engine
(:func:`kuairec.sparkengine.ties.with_tie_hash`) compute the same values.

Definition (all arithmetic on unsigned 32-bit values, ``mul(x, c) = (x * c) mod 2**32``)::

    fmix(x) = x ^= x >> 16; x = mul(x, 0x85EBCA6B); x ^= x >> 13;
              x = mul(x, 0xC2B2AE35); x ^= x >> 16          # MurmurHash3's finaliser
    tie_hash(seed, u, i) = fmix(fmix(fmix((seed mod 2**32) ^ 0x9E3779B9) ^ u) ^ i)

``u`` and ``i`` are the contiguous indices after id mapping (both engines build the same
maps, sorted by raw id), so they are below 2**31. The result lies in [0, 2**32). Spark
evaluates ``mul`` in two 16-bit halves so that no intermediate leaves a signed 64-bit
long (ANSI mode turns an overflow into an error); numpy wraps uint64 arithmetic. Both are
the same function, ``tests/spark/test_engine_equal.py`` checks it on 200,000 pairs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MASK32 = 0xFFFFFFFF
C1 = 0x85EBCA6B
C2 = 0xC2B2AE35
GOLDEN = 0x9E3779B9

__all__ = ["C1", "C2", "GOLDEN", "MASK32", "fmix32", "tie_hash"]


def fmix32(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser on uint64 values below 2**32 (vectorised)."""
    mask = np.uint64(MASK32)
    x = np.asarray(x, dtype=np.uint64) & mask
    x = x ^ (x >> np.uint64(16))
    x = (x * np.uint64(C1)) & mask
    x = x ^ (x >> np.uint64(13))
    x = (x * np.uint64(C2)) & mask
    return x ^ (x >> np.uint64(16))


def tie_hash(seed: int, users: Any, items: Any) -> np.ndarray:
    """The hash of every ``(seed, users[k], items[k])`` as int64 in [0, 2**32)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    u = np.asarray(users, dtype=np.int64).astype(np.uint64)
    i = np.asarray(items, dtype=np.int64).astype(np.uint64)
    base = fmix32(np.array([(int(seed) & MASK32) ^ GOLDEN], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        return fmix32(fmix32(base ^ u) ^ i).astype(np.int64)
