"""Item-item cosine neighbours, checked by hand."""

from __future__ import annotations

import numpy as np

from kuairec.data.dataset import IdMap, Interactions, TrainSet
from kuairec.models import create_model

R2 = np.sqrt(2.0)


def _train() -> TrainSet:
    # u0: i0 i1; u1: i0 i1 i2; u2: i2 i3; item 4 cold
    inter = Interactions.from_log(
        [0, 0, 1, 1, 1, 2, 2], [0, 1, 0, 1, 2, 2, 3], [1.0] * 7, None, (3, 5)
    )
    return TrainSet(inter, IdMap(np.arange(3)), IdMap(np.arange(5)))


def test_cosine_neighbours_by_hand() -> None:
    # cos(0,1) = 1, cos(0,2) = cos(1,2) = 1/2, cos(2,3) = 1/sqrt(2), others 0
    m = create_model("itemknn", {"neighbours": 2}).fit(_train())
    want = np.array(
        [
            [0, 1, 0.5, 0, 0],
            [1, 0, 0.5, 0, 0],
            [0.5, 0, 0, 1 / R2, 0],  # items 0 and 1 tie at 0.5: the lower index is kept
            [0, 0, 1 / R2, 0, 0],  # only one positive neighbour
            [0, 0, 0, 0, 0],
        ]
    )
    np.testing.assert_allclose(m.sim_.toarray(), want, rtol=1e-6)
    # u2 = items 2 and 3: row 2 + row 3
    np.testing.assert_allclose(m.score(np.array([2]))[0], [0.5, 0, 1 / R2, 1 / R2, 0], rtol=1e-6)


def test_one_neighbour_and_shrinkage() -> None:
    m = create_model("itemknn", {"neighbours": 1, "shrinkage": 1.0}).fit(_train())
    # shrunk: cos(0,1) = 2/3, cos(0,2) = 1/3, cos(2,3) = 1/(sqrt(2)+1)
    s = m.sim_.toarray()
    np.testing.assert_allclose(s[0], [0, 2 / 3, 0, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(s[2], [0, 0, 0, 1 / (R2 + 1), 0], rtol=1e-6)
    assert m.sim_.nnz == 4  # one neighbour for each of items 0-3, none for cold item 4


def test_blocks_in_threads_give_the_matrix_of_one_pass() -> None:
    """The rows are computed in blocks, several at a time: any block size and thread
    count must give the same matrix as one block on one thread (rows in place, no block
    lost or repeated), on a matrix with ties and empty items."""
    import scipy.sparse as sp

    from kuairec.models.itemknn import cosine_neighbours

    rng = np.random.default_rng(3)
    x = sp.random(60, 37, density=0.2, format="csr", random_state=4, dtype=np.float32)
    x.data = rng.integers(1, 3, x.nnz).astype(np.float32)  # small integers: ties
    x[:, 5] = 0  # an item nobody has
    x.eliminate_zeros()
    one = cosine_neighbours(x, 6, 0.5, block=64, threads=1)
    assert one.nnz > 0
    for block, threads in ((1, 3), (5, 2), (8, 4), (36, 2)):
        got = cosine_neighbours(x, 6, 0.5, block=block, threads=threads)
        assert got.nnz == one.nnz
        np.testing.assert_array_equal(got.toarray(), one.toarray())
