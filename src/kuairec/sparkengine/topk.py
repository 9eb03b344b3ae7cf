"""Top-K for the test users, on Arrow batches, by the local engine's own ``recommend``.

Each Arrow batch of test users (``mapInArrow``) becomes a small fitted model whose users
are the batch's rows: the item side (popularity counts, item factors and offsets, the
item-kNN neighbour matrix) travels with the kernel, the user side (a user's factors, or
the user's training row) comes in the batch, and ``Recommender.recommend`` ranks the
candidates with the user's training items excluded, ties by the lower item index, -1
padding: the lists the local engine gives for the same model state, by the same code.

Memory per Python worker: the item side (items x factors floats, or items x neighbours
entries) plus one batch's scores (``batch_rows`` x candidates floats).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.errors import ModelError
from kuairec.models.factors import FactorModel

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    import scipy.sparse as sp
    from pyspark.sql import DataFrame

    from kuairec.models.base import Recommender

TOP_SCHEMA = "user_idx int, items array<int>, scores array<float>"


def list_csr(batch: pa.RecordBatch, items: str, values: str | None, n_cols: int) -> sp.csr_matrix:
    """The list columns ``items`` (and ``values``, else ones) of a batch as a CSR matrix
    with one row per batch row; a null list is an empty row."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import scipy.sparse as sp

    col = batch.column(items)
    col = pc.fill_null(col, pa.scalar([], col.type))
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False).astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.int32)
    if values is None:
        data = np.ones(indices.size, np.float32)
    else:
        vcol = pc.fill_null(batch.column(values), pa.scalar([], batch.column(values).type))
        data = pc.list_flatten(vcol).to_numpy(zero_copy_only=False)
    return sp.csr_matrix((data, indices, indptr), shape=(len(lengths), n_cols))


@dataclass
class TopKKernel:
    """``mapInArrow`` kernel: ``user_idx, excl, ...`` rows in, ``TOP_SCHEMA`` rows out.

    ``kind`` picks how a batch becomes a model: ``"item"`` (a score per item:
    ``state["item_scores"]``), ``"factors"`` (``state["item_factors"]``,
    ``state["item_offset"]``, the batch's ``factors`` column) or ``"similarity"``
    (``state["sim"]``, the batch's training row ``excl`` / ``excl_wr`` weighted as
    :func:`kuairec.models.matrices.weighted_matrix` weights the training pairs).
    """

    kind: str
    n_items: int
    k: int
    candidates: np.ndarray
    state: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        for batch in batches:
            n = batch.num_rows
            if n == 0:
                continue
            exclude = list_csr(batch, "excl", None, self.n_items)
            model = self.batch_model(batch, n)
            items, scores = model.recommend(
                np.arange(n), self.k, exclude=exclude, candidates=self.candidates
            )
            width = items.shape[1]
            yield pa.RecordBatch.from_arrays(
                [
                    batch.column("user_idx"),
                    pa.ListArray.from_arrays(
                        np.arange(0, n * width + 1, width, dtype=np.int32),
                        pa.array(items.ravel().astype(np.int32)),
                    ),
                    pa.ListArray.from_arrays(
                        np.arange(0, n * width + 1, width, dtype=np.int32),
                        pa.array(scores.ravel().astype(np.float32)),
                    ),
                ],
                names=["user_idx", "items", "scores"],
            )

    def batch_model(self, batch: pa.RecordBatch, n: int) -> Recommender:
        """A fitted model whose users are the batch's rows."""
        if self.kind == "item":
            from kuairec.models.baselines import PopularityRecommender

            model: Any = PopularityRecommender()
            model.popularity_ = self.state["item_scores"]
        elif self.kind == "factors":
            model = BatchFactors()
            flat = batch.column("factors").flatten().to_numpy(zero_copy_only=False)
            model.user_factors_ = flat.astype(np.float32).reshape(n, -1)
            model.item_factors_ = self.state["item_factors"]
            model.item_offset_ = self.state["item_offset"]
        elif self.kind == "similarity":
            from kuairec.models.itemknn import ItemKNNRecommender
            from kuairec.models.matrices import weight_values

            c = self.config
            model = ItemKNNRecommender(c)
            wr = list_csr(batch, "excl", "excl_wr", self.n_items)
            x = wr.copy()
            x.data = weight_values(wr.data, c["weighting"], c["clip"])
            if c["threshold"] > 0:  # weighted_matrix's rule: pairs below it are dropped
                x.data[wr.data < c["threshold"]] = 0.0
                x.eliminate_zeros()
            model.x_, model.sim_ = x, self.state["sim"]
        else:  # pragma: no cover - the engine builds the kernels
            raise ValueError(f"unknown kernel kind {self.kind!r}")
        model.n_users_, model.n_items_ = n, self.n_items
        return model


@dataclass(frozen=True)
class _NoConfig:
    pass


class BatchFactors(FactorModel):
    """Factors set directly by the kernel; scoring and ranking are FactorModel's."""

    name = "factors"
    Config = _NoConfig

    def _fit(self, train: Any, valid: Any, progress: bool) -> None:
        raise ModelError("BatchFactors holds factors trained elsewhere; it does not fit")


def top_k(df: DataFrame, kernel: TopKKernel) -> DataFrame:
    """The kernel over ``df`` (one row per test user)."""
    return df.mapInArrow(kernel, TOP_SCHEMA)
