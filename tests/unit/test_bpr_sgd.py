"""BPR's SGD kernel (models/bpr_sgd.py) against a plain-Python reference of the documented
rule: the same draws (SplitMix64), the same skips, the same float32 updates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec.models import bpr_sgd

MASK = (1 << 64) - 1


class SplitMix64:
    """The generator the module documents, in Python integers."""

    def __init__(self, state: int) -> None:
        self.state = state

    def unit(self) -> float:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        return (z >> 11) / 2.0**53


def reference_fit(x: sp.csr_matrix, factors: int, lr: float, reg: float, epochs: int,
                  share: float, verify: bool, seed: int) -> tuple:  # fmt: skip
    """The rule of the module docstring, one sample at a time in Python."""
    f32 = np.float32
    n_users, n_items = x.shape
    rows = np.repeat(np.arange(n_users), np.diff(x.indptr))
    rng = np.random.default_rng(seed)
    item_f = (rng.random((n_items, factors + 1), dtype=f32) - f32(0.5)) / factors
    user_f = (rng.random((n_users, factors + 1), dtype=f32) - f32(0.5)) / factors
    user_f[np.diff(x.indptr) == 0] = 0.0
    user_f[:, factors] = 1.0
    gen = SplitMix64(int(rng.integers(0, 2**63)))
    liked = {(int(u), int(i)) for u, i in zip(rows, x.indices, strict=True)}
    lr, reg = f32(lr), f32(reg)
    skipped = 0
    for _ in range(epochs):
        for _ in range(x.nnz):
            pos = int(gen.unit() * x.nnz)
            u, i = int(rows[pos]), int(x.indices[pos])
            if gen.unit() < share:
                j = int(gen.unit() * n_items)
            else:
                j = int(x.indices[int(gen.unit() * x.nnz)])
            if verify and (u, j) in liked:
                skipped += 1
                continue
            xu, yi, yj = user_f[u], item_f[i], item_f[j]
            score = f32(0.0)
            for k in range(factors + 1):
                score += xu[k] * (yi[k] - yj[k])
            z = f32(1.0 / (1.0 + math.exp(score)))
            for k in range(factors):
                temp = xu[k]
                xu[k] += lr * (z * (yi[k] - yj[k]) - reg * xu[k])
                yi[k] += lr * (z * temp - reg * yi[k])
                yj[k] += lr * (-z * temp - reg * yj[k])
            yi[factors] += lr * (z - reg * yi[factors])
            yj[factors] += lr * (-z - reg * yj[factors])
    return user_f, item_f, skipped


def _positives(seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = rng.random((9, 7)) < 0.45
    dense[4] = False  # a user without positives
    dense[:, 0] |= rng.random(9) < 0.8  # a popular item
    dense[4] = False
    return sp.csr_matrix(dense.astype(np.float32))


@pytest.mark.parametrize(
    ("share", "verify", "bitmap"),
    [(0.9, True, True), (0.9, True, False), (0.0, True, True), (0.5, False, True)],
)
def test_kernel_equals_the_python_reference(
    share: float, verify: bool, bitmap: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not bitmap:  # the binary search in the user's row, used for large catalogues
        monkeypatch.setattr(bpr_sgd, "BITMAP_MAX_BYTES", 0)
    x = _positives()
    skips: list[int] = []
    got = bpr_sgd.fit_bpr(
        x, factors=3, learning_rate=0.1, regularization=0.02, epochs=3,
        uniform_share=share, verify_negatives=verify, seed=5,
        on_epoch=lambda epoch, correct, skipped: skips.append(skipped),
    )  # fmt: skip
    want_user, want_item, want_skipped = reference_fit(x, 3, 0.1, 0.02, 3, share, verify, 5)
    np.testing.assert_array_equal(got[0], want_user)
    np.testing.assert_array_equal(got[1], want_item)
    assert sum(skips) == want_skipped
    assert (want_skipped > 0) == verify  # a third of the cells are positives: some skips
    assert got[0][4, :3].tolist() == [0, 0, 0] and (got[0][:, 3] == 1).all()


def test_unsorted_rows_are_sorted_before_the_binary_search() -> None:
    x = _positives()
    shuffled = x.copy()
    for u in range(x.shape[0]):  # reverse each row's column order (same matrix)
        lo, hi = x.indptr[u], x.indptr[u + 1]
        shuffled.indices[lo:hi] = x.indices[lo:hi][::-1]
    shuffled.has_sorted_indices = False
    assert not bpr_sgd._rows_sorted(shuffled.indptr, shuffled.indices)
    assert bpr_sgd._rows_sorted(x.indptr, x.indices)
    kwargs = dict(factors=2, learning_rate=0.05, regularization=0.01, epochs=2,
                  uniform_share=0.9, verify_negatives=True, seed=1)  # fmt: skip
    a = bpr_sgd.fit_bpr(x, **kwargs)
    b = bpr_sgd.fit_bpr(shuffled, **kwargs)
    np.testing.assert_array_equal(a[1], b[1])


def test_uniform_share_sets_how_often_a_popular_item_is_the_negative() -> None:
    # one item holds most positives: with popularity negatives it is drawn (and skipped,
    # being the user's own positive) far more often than with uniform ones
    rng = np.random.default_rng(0)
    dense = rng.random((200, 50)) < 0.005
    dense[:, 0] = True
    x = sp.csr_matrix(dense.astype(np.float32))
    rates = {}
    for share in (0.0, 1.0):
        skips: list[int] = []
        bpr_sgd.fit_bpr(
            x, factors=2, learning_rate=0.05, regularization=0.01, epochs=4,
            uniform_share=share, verify_negatives=True, seed=0,
            on_epoch=lambda epoch, correct, skipped, skips=skips: skips.append(skipped),
        )  # fmt: skip
        rates[share] = sum(skips) / (4 * x.nnz)
    # popularity: item 0 holds ~80% of the positives, so ~80% of the draws are skipped;
    # uniform: item 0 is 1 of 50 items (2%), plus the few other positives (0.5%)
    assert rates[0.0] > 0.7 and rates[1.0] < 0.1
