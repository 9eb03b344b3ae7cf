"""Stage one: the union of the retrievers' top-N lists, with every retriever's opinion.

Each retriever scores the whole catalogue for a block of rows (known users or new
users' histories); the rows' seen videos are set aside; each keeps its top
``n_candidates``; the candidate set of a row is the union of those lists. Every
candidate then carries, for *every* retriever (not only those that proposed it), its
score and its position in that retriever's list (``n_candidates`` when the retriever did
not propose it). The candidate set does not depend on which items a caller asks about:
``score(users, items)`` is the full score's columns ``items``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kuairec.models.base import top_k

#: rows retrieved at a time: bounds the dense (rows x items) score blocks in memory
BLOCK_ROWS = 256


@dataclass(eq=False)
class Candidates:
    """The union of the top-N lists of a block of rows: one entry per (row, item),
    sorted by row then item."""

    rows: np.ndarray  # int64: row of the block (0 .. n_rows - 1)
    items: np.ndarray  # int64
    scores: np.ndarray  # float32 (n, n_retrievers): every retriever's score of the pair
    ranks: np.ndarray  # float32 (n, n_retrievers): position in its list, n_candidates if absent
    names: tuple[str, ...]
    n_rows: int
    n_candidates: int
    first_scores: np.ndarray | None = None  # float32 (n_rows, n_items): the first retriever's

    @property
    def size(self) -> int:
        return int(self.items.size)

    def counts(self) -> np.ndarray:
        """Candidates per row."""
        return np.bincount(self.rows, minlength=self.n_rows)

    def proposed_by(self, name: str) -> np.ndarray:
        """Mask of the candidates in ``name``'s own top-N list."""
        return self.ranks[:, self.names.index(name)] < self.n_candidates


ScoreFn = Callable[[np.ndarray], np.ndarray]  # row positions -> float32 (rows, n_items)


def retrieve(
    scorers: Sequence[tuple[str, ScoreFn | None]],
    seen: object,
    n_candidates: int,
    keep_first: bool = False,
) -> Candidates:
    """Candidates for the rows of ``seen`` (a CSR (n_rows, n_items): videos never
    proposed). ``scorers`` are ``(name, fn)``; a ``None`` fn proposes nothing and its
    feature columns are NaN (a retriever that cannot score new users' histories)."""
    n_rows, n_items = seen.shape  # type: ignore[attr-defined]
    blocks = []
    for start in range(0, n_rows, BLOCK_ROWS):
        rows = np.arange(start, min(start + BLOCK_ROWS, n_rows))
        blocks.append(_retrieve_block(scorers, seen[rows], rows, n_candidates, keep_first))
    names = tuple(name for name, _ in scorers)
    if not blocks:
        empty = np.zeros((0, len(names)), np.float32)
        return Candidates(np.zeros(0, np.int64), np.zeros(0, np.int64), empty, empty.copy(),
                          names, 0, n_candidates)  # fmt: skip
    first = np.vstack([b[4] for b in blocks]) if keep_first else None
    return Candidates(
        rows=np.concatenate([b[0] for b in blocks]),
        items=np.concatenate([b[1] for b in blocks]),
        scores=np.vstack([b[2] for b in blocks]),
        ranks=np.vstack([b[3] for b in blocks]),
        names=names,
        n_rows=n_rows,
        n_candidates=n_candidates,
        first_scores=first,
    )


def _retrieve_block(
    scorers: Sequence[tuple[str, ScoreFn | None]],
    seen: object,
    rows: np.ndarray,
    n_candidates: int,
    keep_first: bool,
) -> tuple:
    n_items = seen.shape[1]  # type: ignore[attr-defined]
    seen_rows = np.repeat(np.arange(rows.size), np.diff(seen.indptr))  # type: ignore[attr-defined]
    seen_cols = seen.indices  # type: ignore[attr-defined]
    chosen = np.zeros((rows.size, n_items), dtype=bool)
    full: list[np.ndarray | None] = []
    lists: list[np.ndarray | None] = []
    kk = min(n_candidates, n_items)
    for _, fn in scorers:
        if fn is None:
            full.append(None)
            lists.append(None)
            continue
        s = np.array(fn(rows), dtype=np.float32)
        s[np.isnan(s)] = -np.inf
        masked = s.copy()
        masked[seen_rows, seen_cols] = -np.inf
        top, vals = top_k(masked, kk)
        top[np.isneginf(vals)] = -1
        r_idx, c_idx = np.nonzero(top >= 0)
        chosen[r_idx, top[r_idx, c_idx]] = True
        full.append(s)
        lists.append(top)
    r, items = np.nonzero(chosen)
    scores = np.full((r.size, len(scorers)), np.nan, dtype=np.float32)
    ranks = np.full((r.size, len(scorers)), np.nan, dtype=np.float32)
    position = np.full((rows.size, n_items), n_candidates, dtype=np.float32)
    for j, (s, top) in enumerate(zip(full, lists, strict=True)):
        if s is None:
            continue
        scores[:, j] = s[r, items]
        position.fill(n_candidates)
        r_idx, c_idx = np.nonzero(top >= 0)
        position[r_idx, top[r_idx, c_idx]] = c_idx
        ranks[:, j] = position[r, items]
    first = next((s for s in full if s is not None), None) if keep_first else None
    return r.astype(np.int64) + rows[0], items.astype(np.int64), scores, ranks, first
