"""Relevance labels: which observed (user, video) test pairs count as positives.

KuaiRec has no "like": a label is a rule on watch_ratio. Built-ins (their names are the
keys of ``metrics.json``):

- ``"wr>2"`` (the default): positive iff watch_ratio > 2.0, the dataset authors' choice.
- ``"wr>=1"``: positive iff watch_ratio >= 1.0 (watched to the end at least once).
- ``"duration"``: positive iff watch_ratio is in the top 20% of its video-duration bucket
  (10 log-spaced buckets). Bucket edges and cut-offs come from the TRAINING pairs only.
- ``"graded"``: gain = min(watch_ratio, 5), for graded NDCG.

Any threshold is configurable: ``parse_label("wr>1.5")``, ``parse_label("wr>=0.8")`` or
``parse_label("duration", quantile=0.9, n_buckets=5)``.

A label's values are aligned with ``test.relevance.data``: the labelled matrix keeps the
sparsity structure of ``test.relevance`` (explicit zeros included).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from kuairec.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import Interactions
    from kuairec.evaluation.protocols import TestSet

Kind = Literal["threshold", "duration", "graded"]
DEFAULT_LABEL = "wr>2"
_THRESHOLD = re.compile(r"^wr\s*(>=|>)\s*(\S+)$")


def _finite(value: Any, what: str) -> None:
    try:
        ok = math.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{what} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class Label:
    """A rule that turns a watch_ratio into a positive (or a gain).

    - ``threshold``: positive iff ``wr > threshold`` (``wr >= threshold`` when inclusive).
    - ``duration``: positive iff ``wr > q`` where ``q`` is the ``quantile`` of the training
      watch ratios of the video's duration bucket (``n_buckets`` log-spaced buckets).
    - ``graded``: gain ``min(wr, clip)`` (linear gains, not ``2**g - 1``).
    """

    name: str
    kind: Kind
    threshold: float = 2.0
    inclusive: bool = False
    quantile: float = 0.8
    n_buckets: int = 10
    clip: float = 5.0

    def __post_init__(self) -> None:
        where = f"label {self.name!r}"
        if self.kind not in ("threshold", "duration", "graded"):
            raise ConfigError(
                f"{where}: kind must be 'threshold', 'duration' or 'graded', got {self.kind!r}"
            )
        _finite(self.threshold, f"{where}: threshold")
        _finite(self.clip, f"{where}: clip")
        if self.clip <= 0:
            raise ConfigError(f"{where}: clip must be > 0, got {self.clip}")
        _finite(self.quantile, f"{where}: quantile")
        if not 0.0 < self.quantile < 1.0:
            raise ConfigError(f"{where}: quantile must be in (0, 1), got {self.quantile}")
        if isinstance(self.n_buckets, bool) or not isinstance(self.n_buckets, int | np.integer):
            raise ConfigError(f"{where}: n_buckets must be an integer, got {self.n_buckets!r}")
        if self.n_buckets < 1:
            raise ConfigError(f"{where}: n_buckets must be >= 1, got {self.n_buckets}")

    @property
    def binary(self) -> bool:
        """True for positive/negative labels, False for graded gains."""
        return self.kind != "graded"

    def describe(self) -> dict[str, Any]:
        """The label's definition as plain JSON values (written into metrics.json)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "threshold":
            out["rule"] = f"watch_ratio {'>=' if self.inclusive else '>'} {self.threshold:g}"
        elif self.kind == "duration":
            out["rule"] = (
                f"watch_ratio > the {self.quantile:g} quantile of training watch ratios in its "
                f"video-duration bucket ({self.n_buckets} log-spaced buckets)"
            )
        else:
            out["rule"] = f"gain = min(watch_ratio, {self.clip:g})"
        return out


BUILTIN: dict[str, Label] = {
    "wr>2": Label("wr>2", "threshold", threshold=2.0),
    "wr>=1": Label("wr>=1", "threshold", threshold=1.0, inclusive=True),
    "duration": Label("duration", "duration"),
    "graded": Label("graded", "graded"),
}


def parse_label(spec: str | Label, **overrides: Any) -> Label:
    """A :class:`Label` from a name (``"wr>2"``, ``"wr>=1"``, ``"duration"``, ``"graded"``,
    or any ``"wr>T"`` / ``"wr>=T"``), with optional field overrides.

    Raises ConfigError naming the label for an unknown name, a NaN threshold or a bad
    override.
    """
    if isinstance(spec, Label):
        label = spec
    elif not isinstance(spec, str):
        raise ConfigError(f"label must be a name or a Label, got {type(spec).__name__}")
    elif spec.strip() in BUILTIN:
        label = BUILTIN[spec.strip()]
    elif m := _THRESHOLD.match(spec.strip()):
        _finite(m.group(2), f"label {spec!r}: threshold")
        label = Label(spec.strip(), "threshold", float(m.group(2)), inclusive=m.group(1) == ">=")
    else:
        raise ConfigError(
            f"unknown label {spec!r}: expected one of {', '.join(BUILTIN)} "
            "or a threshold rule such as 'wr>1.5' / 'wr>=0.8'"
        )
    if not overrides:
        return label
    fields = {f.name for f in dataclasses.fields(Label)} - {"kind"}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ConfigError(
            f"label {label.name!r}: unknown parameter(s) {bad}; known: {sorted(fields)}"
        )
    return dataclasses.replace(label, **overrides)


# ---------------------------------------------------------------- duration buckets


@dataclass(frozen=True)
class DurationCutoffs:
    """Bucket edges (ms, log-spaced) and the watch-ratio cut-off of each bucket."""

    edges: np.ndarray  # (n_buckets + 1,) float64, ascending
    cutoffs: np.ndarray  # (n_buckets,) float64; buckets without training pairs: global
    global_cutoff: float  # over all training pairs, for videos without a duration (NaN if
    # no bucket is empty and every video has a duration: then it is never used)
    counts: np.ndarray  # (n_buckets,) training pairs per bucket


def duration_edges(video_duration: np.ndarray, items: np.ndarray, n_buckets: int) -> np.ndarray:
    """``n_buckets + 1`` log-spaced edges spanning the positive durations of ``items``."""
    d = np.asarray(video_duration, dtype=np.float64)[np.asarray(items, dtype=np.int64)]
    d = d[np.isfinite(d) & (d > 0)]
    if d.size == 0:
        raise DataError("no training video has a positive video_duration: cannot bucket by it")
    return np.logspace(np.log10(d.min()), np.log10(d.max()), n_buckets + 1)


def duration_bucket(video_duration: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket (0 .. len(edges) - 2) of every item; out-of-range durations go to the end
    buckets, missing or non-positive durations get -1."""
    d = np.asarray(video_duration, dtype=np.float64)
    n_buckets = edges.size - 1
    bucket = np.searchsorted(edges[1:-1], d, side="right").astype(np.int64)
    bucket = np.minimum(bucket, n_buckets - 1)
    bucket[~(np.isfinite(d) & (d > 0))] = -1
    return bucket


def linear_quantile(x: np.ndarray, q: float) -> float:
    """``np.quantile(x.astype(float64), q)`` (method "linear"), without the float64 copy:
    partitions ``x`` (a scratch array) in place and interpolates in float64 the way numpy
    does."""
    n = x.size
    if n == 0:
        return float("nan")
    virtual = (n - 1) * q  # numpy's virtual index for "linear"
    if virtual >= n - 1:
        x.partition(n - 1)
        return float(x[n - 1])
    lo = max(int(math.floor(virtual)), 0)
    x.partition([lo, lo + 1])
    return interpolate(float(x[lo]), float(x[lo + 1]), virtual - lo)


def quantile_positions(n: int, q: float) -> tuple[int, int, float]:
    """Which order statistics (0-based) numpy's "linear" quantile of n values reads, and
    the weight between them: ``(lo, hi, t)``. The Spark engine fetches just those two
    values per group and finishes with :func:`interpolate`, as :func:`linear_quantile`."""
    virtual = (n - 1) * q
    if virtual >= n - 1:
        return n - 1, n - 1, 0.0
    lo = max(int(math.floor(virtual)), 0)
    return lo, lo + 1, virtual - lo


def interpolate(a: float, b: float, t: float) -> float:
    """numpy's linear interpolation between consecutive order statistics ``a <= b``."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def duration_cutoffs(
    label: Label,
    train: Interactions,
    video_duration: np.ndarray,
    edges: np.ndarray | None = None,
) -> DurationCutoffs:
    """Per-bucket cut-offs of a ``duration`` label, from the training pairs only.

    ``edges`` (optional) are the bucket edges when already computed with
    :func:`duration_edges` over the training items and ``label.n_buckets``.
    """
    if video_duration is None:
        raise ConfigError(f"label {label.name!r} needs video_duration (the training set has none)")
    video_duration = np.asarray(video_duration, dtype=np.float64)
    if video_duration.shape != (train.n_items,):
        raise DataError(
            f"video_duration has shape {video_duration.shape}, expected ({train.n_items},)"
        )
    if train.nnz == 0:
        raise DataError(f"label {label.name!r}: the training set has no interactions")
    if edges is None:
        items = np.flatnonzero(train.item_counts() > 0)
        edges = duration_edges(video_duration, items, label.n_buckets)
    item_bucket = duration_bucket(video_duration, edges)
    pair_bucket = item_bucket.astype(np.int16)[train.indices]
    counts = np.bincount(pair_bucket + 1, minlength=label.n_buckets + 1)[1:]
    wr = train.watch_ratio_mean
    cutoffs = np.full(label.n_buckets, np.nan)
    for b in np.flatnonzero(counts):  # one masked pass per bucket (faster than a sort)
        cutoffs[b] = linear_quantile(wr[pair_bucket == b], label.quantile)
    global_cut = np.nan  # only needed for empty buckets and videos without a duration
    if (counts == 0).any() or (item_bucket < 0).any():
        global_cut = linear_quantile(np.array(wr), label.quantile)
        cutoffs[counts == 0] = global_cut
    return DurationCutoffs(edges, cutoffs, global_cut, counts)


# ---------------------------------------------------------------- label values


def label_values(
    label: str | Label,
    test: TestSet,
    train: Interactions | None = None,
    video_duration: np.ndarray | None = None,
    cutoffs: DurationCutoffs | None = None,
) -> np.ndarray:
    """The label of every stored test pair, aligned with ``test.relevance.data``:
    1.0 / 0.0 for binary labels, the gain for graded ones (float64)."""
    label = parse_label(label)
    if label.kind == "duration" and cutoffs is None:
        if train is None:
            raise ConfigError(f"label {label.name!r} needs the training interactions")
        cutoffs = duration_cutoffs(label, train, video_duration)
    item_cut = None if cutoffs is None else item_cutoffs(cutoffs, video_duration)
    return values_of(label, test.relevance.data, test.relevance.indices, item_cut)


def item_cutoffs(cutoffs: DurationCutoffs, video_duration: np.ndarray) -> np.ndarray:
    """The watch-ratio cut-off of a duration label for every item (float64, n_items):
    its bucket's, or the global one for an item without a duration."""
    bucket = duration_bucket(video_duration, cutoffs.edges)
    return np.where(bucket >= 0, cutoffs.cutoffs[np.maximum(bucket, 0)], cutoffs.global_cutoff)


def values_of(
    label: Label, watch_ratio: np.ndarray, items: np.ndarray, item_cut: np.ndarray | None
) -> np.ndarray:
    """The label of observed pairs from their watch ratios and item_idx (float64): 1.0 /
    0.0 for binary labels, the gain for graded ones. ``item_cut`` (duration labels only)
    is :func:`item_cutoffs`. Both engines label test pairs with this function."""
    wr = np.asarray(watch_ratio, dtype=np.float64)
    if label.kind == "threshold":
        pos = wr >= label.threshold if label.inclusive else wr > label.threshold
        return pos.astype(np.float64)
    if label.kind == "graded":
        return np.minimum(wr, label.clip)
    if item_cut is None:
        raise ConfigError(f"label {label.name!r} needs the duration cut-offs")
    return (wr > np.asarray(item_cut)[np.asarray(items, dtype=np.int64)]).astype(np.float64)


def label_relevance(
    label: str | Label,
    test: TestSet,
    train: Interactions | None = None,
    video_duration: np.ndarray | None = None,
) -> sp.csr_matrix:
    """``test.relevance`` relabelled: binary (1/0) or graded gains, same sparsity
    structure (explicit zeros kept, so its ``data`` aligns with ``test.relevance.data``)."""
    import scipy.sparse as sp

    values = label_values(label, test, train, video_duration)
    rel = test.relevance
    return sp.csr_matrix((values, rel.indices, rel.indptr), shape=rel.shape)
