"""Training matrices shared by the models: watch_ratio weighting and the item Gram matrix.

``weighted_matrix`` turns the per-pair training interactions into a user x item CSR
matrix: entries with ``watch_ratio < threshold`` are dropped (threshold 0 keeps all),
watch_ratio is clipped at ``clip`` (KuaiRec's watch_ratio has a tail up to ~570), then
mapped by ``weighting``: ``binary`` -> 1, ``linear`` -> w, ``log`` -> log(1 + w).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import Interactions

Weighting = Literal["binary", "linear", "log"]


def weight_values(watch_ratio: np.ndarray, weighting: str, clip: float) -> np.ndarray:
    """float32 weights of watch_ratio values (see the module docstring)."""
    w = np.minimum(np.asarray(watch_ratio, dtype=np.float32), np.float32(clip))
    if weighting == "binary":
        return np.ones_like(w)
    if weighting == "linear":
        return w
    if weighting == "log":
        return np.log1p(w)
    raise ValueError(f"weighting must be 'binary', 'linear' or 'log', got {weighting!r}")


def weighted_matrix(
    inter: Interactions, weighting: str = "binary", clip: float = 5.0, threshold: float = 0.0
) -> sp.csr_matrix:
    """The (n_users, n_items) float32 CSR training matrix of ``inter``."""
    import scipy.sparse as sp

    data = weight_values(inter.watch_ratio_mean, weighting, clip)
    indices, indptr = inter.indices, inter.indptr
    if threshold > 0:  # drop entries below the threshold (vectorised row filter)
        keep = inter.watch_ratio_mean >= threshold
        counts = np.bincount(inter.row_users()[keep], minlength=inter.n_users)
        indptr = np.zeros(inter.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        data, indices = data[keep], indices[keep]
    return sp.csr_matrix((data, indices, indptr), shape=inter.shape)


def weighted_rows(
    history: sp.csr_matrix, weighting: str, clip: float, threshold: float
) -> sp.csr_matrix:
    """A history matrix (watch_ratio values) weighted as :func:`weighted_matrix` weights
    the training pairs: the rows a model multiplies with its item-item weights."""
    x = history.copy()
    keep = x.data >= threshold if threshold > 0 else None
    x.data = weight_values(x.data, weighting, clip)
    if keep is not None:
        x.data[~keep] = 0.0
        x.eliminate_zeros()
    return x


def item_gram(x: sp.csr_matrix, chunk_rows: int = 2048) -> np.ndarray:
    """``X^T X`` as a dense symmetric float32 (n_items, n_items) array.

    Computed with BLAS ``ssyrk`` over dense chunks of ``chunk_rows`` users, so memory stays
    at the Gram matrix plus one chunk. At KuaiRec's density (~13%) this is far faster than
    a sparse product.
    """
    from scipy.linalg.blas import ssyrk

    n = x.shape[1]
    gram = np.zeros((n, n), dtype=np.float32, order="F")
    for start in range(0, x.shape[0], chunk_rows):
        dense = x[start : start + chunk_rows].toarray().astype(np.float32, copy=False)
        # dense.T is (n, rows) and Fortran-ordered: ssyrk computes dense.T @ dense
        gram = ssyrk(1.0, dense.T, beta=1.0, c=gram, trans=0, lower=0, overwrite_c=1)
    symmetrize_upper(gram)
    return gram


class GramStore:
    """Gram matrices saved in a folder (the run's scratch folder) for the rest of a run:
    :func:`weighted_gram` inside ``shared_grams(store)`` reads a matrix back from there
    instead of computing it again, when the same interactions (the same object, held
    weakly) with the same weighting, clip and threshold computed one before, whichever
    study computed it. One run's tuning studies fit every trial on the validation
    split's one fit part, so EASE's and item-kNN's trials share their matrices (at full
    size ~4.3 s of ``ssyrk`` each, against ~0.7 s to write its 460 MB once and 0.1-1 s
    to read them back from the page cache). On disk, not in memory: the process's peak
    does not grow. At most one file per weighting, clip and threshold of each
    interactions object (9 of the fit part under the run's search spaces); the folder
    goes with the run's scratch folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._entries: list[tuple[tuple[str, float, float], weakref.ref, Path]] = []

    def get(self, key: tuple[str, float, float], inter: Interactions) -> np.ndarray | None:
        """The saved matrix (a fresh array, Fortran order as computed), or None (also
        when its file can no longer be read: the caller computes it again)."""
        for k, owner, path in self._entries:
            if k == key and owner() is inter:
                try:
                    return np.load(path, allow_pickle=False)
                except (OSError, ValueError):
                    self._forget(lambda e, path=path: e[2] == path)
                    return None
        return None

    def put(self, key: tuple[str, float, float], inter: Interactions, gram: np.ndarray) -> None:
        """Save ``gram`` (written, then renamed: a reader never sees half a file). A store
        only saves time: when the folder cannot take the file (a full disk), nothing is
        kept and the run goes on."""
        import uuid

        from kuairec import atomic

        self._forget(lambda e: e[1]() is None)  # interactions gone: never asked for again
        path = self.folder / f"gram-{uuid.uuid4().hex}.npy"
        try:
            with atomic.temp_path(path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, gram, allow_pickle=False)
        except OSError:  # temp_path has removed the part written
            return
        self._entries.append((key, weakref.ref(inter), path))

    def _forget(self, which: Callable[[Any], bool]) -> None:
        """Delete the entries (and their files) for which ``which(entry)`` is true."""
        keep = []
        for entry in self._entries:
            if which(entry):
                entry[2].unlink(missing_ok=True)
            else:
                keep.append(entry)
        self._entries = keep

    def clear(self) -> None:
        """Delete the saved matrices (the run's tuning is over)."""
        self._forget(lambda entry: True)


class _Shared(threading.local):
    """The Gram matrices kept by :func:`shared_grams`, per thread (a study in one thread
    never hands its matrix to a fit in another), and the store it reads and saves."""

    grams: list[tuple[tuple[str, float, float], Interactions, np.ndarray]] | None = None
    store: GramStore | None = None


_SHARED = _Shared()


@contextmanager
def shared_grams(store: GramStore | None = None) -> Iterator[None]:
    """Within this block, :func:`weighted_gram` keeps the last Gram matrix it computed
    and hands out copies of it to a fit on the same interactions with the same
    weighting, clip and threshold: a tuning study's trials that differ only in other
    parameters (EASE's l2, item-kNN's neighbours) compute it once. With a ``store``, a
    matrix not in memory is read from the store when it holds it, and one computed is
    saved there (for the next study of the run). The same array either way, so the
    same results; one more Gram matrix in memory meanwhile."""
    outer, outer_store = _SHARED.grams, _SHARED.store
    if outer is None:
        _SHARED.grams = []
    if store is not None:
        _SHARED.store = store
    try:
        yield
    finally:
        _SHARED.store = outer_store
        if outer is None:
            _SHARED.grams = None


def weighted_gram(
    inter: Interactions,
    x: sp.csr_matrix,
    weighting: str,
    clip: float,
    threshold: float,
    writable: bool = True,
) -> np.ndarray:
    """:func:`item_gram` of ``x``, which must be ``weighted_matrix(inter, weighting, clip,
    threshold)``: a fresh array the caller may overwrite, or (``writable=False``, for a
    caller that only reads it, as item-kNN) possibly the shared one, read-only (see
    :func:`shared_grams`): no 460 MB copy per trial at full size."""
    key = (str(weighting), float(clip), float(threshold))
    shared = _SHARED.grams
    if shared is not None:
        for k, owner, gram in shared:
            if k == key and owner is inter:
                return gram.copy(order="F") if writable else _read_only(gram)
    store = _SHARED.store
    gram = store.get(key, inter) if store is not None else None
    if gram is None:
        gram = item_gram(x)
        if store is not None:
            store.put(key, inter, gram)
    if shared is None:
        return gram
    shared[:] = [(key, inter, gram)]
    return gram.copy(order="F") if writable else _read_only(gram)


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def symmetrize_upper(a: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle of a square array onto its lower triangle, in place."""
    n = a.shape[0]
    for s in range(0, n, block):
        e = min(s + block, n)
        a[s:e, :s] = a[:s, s:e].T
        diag = a[s:e, s:e]
        diag[...] = np.triu(diag) + np.triu(diag, 1).T


def select_rows(x: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """``x[rows]`` for a CSR matrix and int indices (checked by the caller), without
    scipy's fancy-indexing machinery: a serving request takes one row, where that
    machinery costs several times the copy itself (~90 us against ~15 us)."""
    import scipy.sparse as sp

    rows = np.asarray(rows, dtype=np.int64)
    starts, stops = x.indptr[rows], x.indptr[rows + 1]
    lens = (stops - starts).astype(np.int64)
    total = int(lens.sum())
    # int32 offsets where they fit (scipy then skips its index-dtype scan), as x's own
    dtype = x.indptr.dtype if total <= np.iinfo(x.indptr.dtype).max else np.int64
    indptr = np.zeros(rows.size + 1, dtype=dtype)
    np.cumsum(lens, out=indptr[1:])
    if rows.size == 1:  # one slice, copied: the caller may not write into the model
        take = slice(int(starts[0]), int(stops[0]))
        data, indices = x.data[take].copy(), x.indices[take].copy()
    else:  # fancy indexing copies
        pos = np.repeat(starts - indptr[:-1], lens) + np.arange(total)
        data, indices = x.data[pos], x.indices[pos]
    return sp.csr_matrix((data, indices, indptr), shape=(rows.size, x.shape[1]))


def user_rows_dense(x: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
    """Dense float32 rows of ``x`` for ``users``."""
    return select_rows(x, users).toarray().astype(np.float32, copy=False)


def csr_state(prefix: str, x: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as named arrays for ``weights.npz``."""
    return {
        f"{prefix}_data": x.data,
        f"{prefix}_indices": x.indices,
        f"{prefix}_indptr": x.indptr,
        f"{prefix}_shape": np.asarray(x.shape, dtype=np.int64),
    }


def csr_from_state(prefix: str, state: Mapping[str, np.ndarray]) -> sp.csr_matrix:
    """The CSR matrix stored by :func:`csr_state`."""
    import scipy.sparse as sp

    shape = tuple(int(v) for v in state[f"{prefix}_shape"])
    return sp.csr_matrix(
        (state[f"{prefix}_data"], state[f"{prefix}_indices"], state[f"{prefix}_indptr"]),
        shape=shape,
    )


def row_is_empty(x: sp.csr_matrix) -> np.ndarray:
    """Boolean mask of rows with no stored entry (cold users)."""
    return np.diff(x.indptr) == 0
