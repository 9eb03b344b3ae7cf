"""Training matrices: watch_ratio weighting, thresholds and the item Gram matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec.data.dataset import Interactions
from kuairec.models.matrices import (
    csr_from_state,
    csr_state,
    item_gram,
    select_rows,
    symmetrize_upper,
    weight_values,
    weighted_matrix,
)


def test_weight_values_by_mode() -> None:
    wr = np.array([0.0, 1.0, 3.0, 9.0])
    assert weight_values(wr, "binary", 5.0).tolist() == [1, 1, 1, 1]
    assert weight_values(wr, "linear", 5.0).tolist() == [0, 1, 3, 5]  # clipped at 5
    np.testing.assert_allclose(weight_values(wr, "log", 5.0), np.log([1, 2, 4, 6]), rtol=1e-6)
    with pytest.raises(ValueError, match="weighting"):
        weight_values(wr, "square", 5.0)


def test_weighted_matrix_threshold_keeps_rows_aligned_with_cold_users() -> None:
    # users 1 and 3 end up with no entries (user 3 is a trailing cold user)
    inter = Interactions.from_log(
        [0, 0, 1, 2, 2], [0, 2, 1, 0, 1], [2.5, 0.4, 0.9, 1.0, 7.0], None, (4, 3)
    )
    x = weighted_matrix(inter, "linear", clip=5.0, threshold=1.0)
    assert x.shape == (4, 3) and x.dtype == np.float32
    assert x.toarray().tolist() == [[2.5, 0, 0], [0, 0, 0], [1.0, 5.0, 0], [0, 0, 0]]
    full = weighted_matrix(inter, "binary")
    assert full.nnz == 5 and full.sum() == 5


def test_item_gram_in_chunks_equals_dense_product() -> None:
    rng = np.random.default_rng(0)
    x = sp.random(9, 6, density=0.4, format="csr", dtype=np.float32, random_state=rng)
    g = item_gram(x, chunk_rows=2)
    want = (x.T @ x).toarray()
    np.testing.assert_allclose(g, want, rtol=1e-6)
    assert g.dtype == np.float32 and np.array_equal(g, g.T)


def test_symmetrize_upper_across_blocks() -> None:
    a = np.triu(np.arange(25, dtype=np.float32).reshape(5, 5))
    symmetrize_upper(a, block=2)
    full = np.arange(25, dtype=np.float32).reshape(5, 5)
    np.testing.assert_array_equal(a, np.triu(full) + np.triu(full, 1).T)


def test_csr_state_round_trip() -> None:
    x = sp.csr_matrix(np.array([[0, 1.5], [0, 0], [2, 0]], dtype=np.float32))
    y = csr_from_state("x", csr_state("x", x))
    assert y.shape == (3, 2) and (y != x).nnz == 0


@pytest.mark.parametrize("rows", [[2], [0, 3, 3, 1], [4], [], [1, 4]])
def test_select_rows_is_fancy_row_indexing(rows) -> None:
    rng = np.random.default_rng(3)
    dense = (rng.random((5, 7)) * (rng.random((5, 7)) < 0.4)).astype(np.float32)
    dense[4] = 0.0  # an empty row
    x = sp.csr_matrix(dense)
    got = select_rows(x, np.array(rows, dtype=np.int64))
    assert isinstance(got, sp.csr_matrix) and got.shape == (len(rows), 7)
    np.testing.assert_array_equal(got.toarray(), dense[rows])
    assert got.dtype == x.dtype


def test_select_rows_copies_so_the_model_matrix_cannot_be_changed() -> None:
    x = sp.csr_matrix(np.array([[0, 1, 2], [3, 0, 0]], np.float32))
    for rows in ([0], [0, 1]):
        got = select_rows(x, np.array(rows))
        got.data[:] = -1
        got.indices[:] = 0
    np.testing.assert_array_equal(x.toarray(), [[0, 1, 2], [3, 0, 0]])
