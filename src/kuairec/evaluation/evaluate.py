"""One entry point: ``evaluate(top_items, test, train) -> EvalResult``.

Array-based: a model's ``recommend`` output (item_idx, padded with -1) goes in; metrics
under every label, bootstrap intervals, segments and per-user values come out. To
evaluate several models on one test set, compute the model-independent part (label
cut-offs, positives, ideal gains) once with :func:`prepare` and pass it as ``context=``;
without ``context=``, each call prepares its own (nothing is remembered between calls).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kuairec.data.dataset import TrainSet
from kuairec.errors import ConfigError, DataError, ModelError
from kuairec.evaluation import metrics as M
from kuairec.evaluation import segments as S
from kuairec.evaluation.bootstrap import bootstrap_ci, paired_bootstrap
from kuairec.evaluation.labels import (
    Label,
    duration_bucket,
    duration_cutoffs,
    duration_edges,
    item_cutoffs,
    parse_label,
    values_of,
)
from kuairec.evaluation.protocols import TestSet

DEFAULT_KS = (5, 10, 20, 50)
DEFAULT_LABELS = ("wr>2", "wr>=1", "duration", "graded")
N_BUCKETS = 10  # duration buckets of the segments (and of the duration label)


@dataclass(eq=False)
class EvalContext:
    """What does not depend on the model: label values, positives, ideal gains, keys."""

    test: TestSet
    ks: tuple[int, ...]
    labels: dict[str, Label]
    default_label: str
    values: dict[str, np.ndarray]  # label -> value of every relevance entry
    n_pos: dict[str, np.ndarray]  # label -> positives (gain > 0) per test user
    ideal: dict[str, np.ndarray]  # graded label -> best gains per user (n, max K)
    rel_keys: np.ndarray
    excl_keys: np.ndarray
    popularity: np.ndarray  # distinct training users per item
    activity: np.ndarray  # training pairs per test user
    item_groups: dict[str, tuple[np.ndarray, list[str], np.ndarray]]  # item-side segments:
    # family -> (group of every item, group names, positives per user and group)
    notes: list[str] = field(default_factory=list)
    requested_ks: tuple[int, ...] = ()  # ks as asked; ``ks`` holds them capped at ``cap``
    cap: int = 0  # the candidate count: no list is longer


@dataclass(eq=False)
class EvalResult:
    """Metrics of one model on one test set.

    ``metrics`` are under the default label, averaged over users with >= 1 positive;
    ``per_user`` holds the same metrics per test user (NaN = excluded), for paired
    bootstraps between models; ``per_user_by_label`` does so for every label.
    """

    metrics: dict[str, float]
    ci: dict[str, list[float]]
    by_label: dict[str, dict[str, float]]
    segments: dict[str, dict[str, dict[str, float]]]
    per_user: dict[str, np.ndarray]
    per_user_by_label: dict[str, dict[str, np.ndarray]]
    users: np.ndarray
    default_label: str
    labels: dict[str, dict[str, Any]]
    ks: tuple[int, ...]
    n_bootstrap: int
    seed: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (NaN -> None); per-user arrays are left out."""
        return _plain(
            {
                "metrics": self.metrics,
                "ci": self.ci,
                "by_label": self.by_label,
                "segments": self.segments,
                "default_label": self.default_label,
                "labels": self.labels,
                "ks": list(self.ks),
                "n_bootstrap": self.n_bootstrap,
                "seed": self.seed,
                "notes": self.notes,
            }
        )


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _check_ks(ks: Any) -> tuple[int, ...]:
    try:
        values = [k for k in ks]
    except TypeError:
        raise ConfigError(f"ks must be a list of positive integers, got {ks!r}") from None
    if not values or any(
        isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1 for k in values
    ):
        raise ConfigError(f"ks must be a non-empty list of positive integers, got {ks!r}")
    return tuple(sorted({int(k) for k in values}))


def prepare(
    test: TestSet,
    train: TrainSet,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    labels: Sequence[str | Label] = DEFAULT_LABELS,
    default_label: str | Label = "wr>2",
) -> EvalContext:
    """The model-independent part of :func:`evaluate` (label cut-offs from training data).

    Raises DataError when the test set has no observed pair or does not fit ``train``.
    """
    ks = _check_ks(ks)
    if test.relevance.nnz == 0:
        raise DataError(
            f"test set: no observed (user, item) pair to evaluate on (test.relevance is "
            f"empty: {test.users.size} test users, {test.candidates.size} candidate items); "
            "expected at least one test pair, e.g. small_matrix rows of the test users"
        )
    inter = train.interactions
    if test.n_items != inter.n_items or (test.users.size and test.users[-1] >= inter.n_users):
        raise DataError(
            f"test set ({test.users.size} users up to user_idx {test.users.max(initial=-1)}, "
            f"{test.n_items} items) does not fit the training set's shape {inter.shape}"
        )
    default = parse_label(default_label)
    parsed = {lab.name: lab for lab in map(parse_label, labels)}
    parsed = {default.name: default, **parsed}
    popularity = inter.item_counts()
    edges = None
    if train.video_duration is not None:
        items = np.flatnonzero(popularity > 0)
        edges = duration_edges(
            train.video_duration, items if items.size else test.candidates, N_BUCKETS
        )
    requested = ks
    cap = max(int(test.candidates.size), 1)
    ks = tuple(sorted({min(k, cap) for k in requested}))  # no K beyond the candidates
    values, n_pos, ideal, notes = _label_data(test, train, parsed, default.name, edges, max(ks))
    over = [k for k in requested if k > cap]
    if over:
        notes.append(
            f"K={', '.join(map(str, over))} is larger than the {cap} candidates: those lists "
            f"hold every candidate and their @K metrics equal the @{cap} ones"
        )
    groups = {}
    if default.binary:
        if edges is not None:
            bucket = duration_bucket(train.video_duration, edges)
            groups["duration_bucket"] = (bucket, S.duration_names(edges))
        groups["item_coldness"] = ((popularity > 0).astype(np.int64), ["cold", "warm"])
    item_groups = {
        family: (g, names, S.group_positives(
            values[default.name], test.entry_rows, test.relevance.indices, g, len(names),
            test.users.size,
        ))
        for family, (g, names) in groups.items()
    }  # fmt: skip
    return EvalContext(
        test=test,
        ks=ks,
        labels={n: parsed[n] for n in values},
        default_label=default.name,
        values=values,
        n_pos=n_pos,
        ideal=ideal,
        rel_keys=M.entry_keys(test.relevance),
        excl_keys=M.entry_keys(test.exclude),
        popularity=popularity,
        activity=inter.user_counts()[test.users],
        item_groups=item_groups,
        notes=notes,
        requested_ks=requested,
        cap=cap,
    )


def _alias_capped(table: dict[str, Any], requested_ks: tuple[int, ...], cap: int) -> None:
    """Add ``<metric>@K`` for each requested K above the cap: the ``@cap`` value (a list
    cannot hold more than every candidate). In place."""
    over = [k for k in requested_ks if k > cap]
    if not over:
        return
    suffix = f"@{cap}"
    for key in [k for k in table if k.endswith(suffix)]:
        for k in over:
            table[f"{key[: -len(suffix)]}@{k}"] = table[key]


def _label_data(
    test: TestSet,
    train: TrainSet,
    labels: dict[str, Label],
    default: str,
    edges: np.ndarray | None,
    max_k: int,
) -> tuple[dict, dict, dict, list[str]]:
    """Per label: values of the relevance entries, positives per user, ideal gains (graded
    labels); and notes on labels skipped for want of video durations."""
    inter, duration = train.interactions, train.video_duration
    values, n_pos, ideal, notes = {}, {}, {}, []
    for name, lab in labels.items():
        if lab.kind == "duration" and duration is None:
            if name == default:
                raise ConfigError(f"default_label {name!r} needs video durations; none are known")
            notes.append(f"label {name!r} skipped: the training set has no video durations")
            continue
        item_cut = None
        if lab.kind == "duration":
            same = edges if lab.n_buckets == N_BUCKETS else None
            item_cut = item_cutoffs(duration_cutoffs(lab, inter, duration, edges=same), duration)
        rel = test.relevance
        values[name], n_pos[name], best = label_arrays(
            lab, rel.data, rel.indices, rel.indptr, item_cut, max_k
        )
        if best is not None:
            ideal[name] = best
    return values, n_pos, ideal, notes


def label_arrays(
    label: Label,
    watch_ratio: np.ndarray,
    items: np.ndarray,
    indptr: np.ndarray,
    item_cut: np.ndarray | None,
    max_k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One label over CSR rows of observed pairs (one row per user): every pair's value,
    the positives per row and, for graded labels, each row's ``max_k`` best gains (None
    for binary labels). Both engines call it: the Spark engine on batches of users."""
    values = values_of(label, watch_ratio, items, item_cut)
    n_pos = M.row_counts(values, indptr)
    ideal = None if label.binary else M.ideal_gains(values, indptr, max_k)
    return values, n_pos, ideal


def per_user_metrics(
    top: np.ndarray,
    relevance: Any,
    rel_keys: np.ndarray,
    values: Mapping[str, np.ndarray],
    n_pos: Mapping[str, np.ndarray],
    ideal: Mapping[str, np.ndarray],
    labels: Mapping[str, Label],
    ks: tuple[int, ...],
) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Every label's per-user metrics of the lists ``top`` (padded to max(ks)) against
    ``relevance`` (canonical CSR, one row per list), and the position in
    ``relevance.data`` of every listed item (-1: not an observed pair).

    The one per-user formula of both engines: :func:`evaluate` calls it on all test
    users, the Spark engine on Arrow batches of them (kuairec.sparkengine.evaluate)."""
    pos = M.lookup(relevance, top, rel_keys)
    per_label: dict[str, dict[str, np.ndarray]] = {}
    for name, lab in labels.items():
        gains = M.gather(values[name], pos)
        if lab.binary:
            per_label[name] = M.ranking_metrics(gains, n_pos[name], ks)
        else:
            per_label[name] = M.graded_ndcg(gains, ideal[name], ks)
    return per_label, pos


def check_top_items(
    top_items: Any, test: TestSet, excl_keys: np.ndarray | None = None
) -> np.ndarray:
    """Validate a model's top-k lists against the test set; returns them as int64.

    Raises ModelError for a wrong shape or dtype, an item_idx out of range, an item that
    is not a candidate, an item twice in one list, or an excluded (training) pair.
    """
    top = np.asarray(top_items)
    n = test.users.size
    if top.ndim != 2 or top.shape[0] != n or not np.issubdtype(top.dtype, np.integer):
        raise ModelError(
            f"top_items must be an integer array of shape ({n}, k), one row per test user; "
            f"got {top.dtype} {top.shape}"
        )
    top = top.astype(np.int64)
    if top.size and (top.min() < -1 or top.max() >= test.n_items):
        bad = int(top.min()) if top.min() < -1 else int(top.max())
        raise ModelError(
            f"top_items holds {bad}, out of range: expected item_idx in [0, {test.n_items}) "
            "or -1 (padding)"
        )
    valid = top >= 0
    off = valid & ~test.candidate_mask[np.maximum(top, 0)]
    s = np.sort(top, axis=1)
    dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
    excluded = M.lookup(test.exclude, top, excl_keys) >= 0
    for bad, what in (
        (off, "a non-candidate item"),
        (dup, "an item twice"),
        (excluded, "a training (excluded) pair"),
    ):
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            raise ModelError(
                f"top_items row {row} (user_idx {int(test.users[row])}) holds {what}: "
                f"{int(bad.sum())} such entries in all"
            )
    return top


def with_positives(
    test: TestSet, train: TrainSet, label: str
) -> tuple[TestSet, np.ndarray, EvalContext]:
    """``test`` cut to the users with at least one positive under ``label``, the boolean
    mask of those users over ``test.users``, and the cut set's NDCG@10 context.

    Only those users have an NDCG (the others' per-user values are NaN and every mean
    skips them), so a validation loop that scores only them gets the same values for
    less work. When every user has a positive, or none has (nothing would be left to
    evaluate), ``test`` comes back whole with an all-True mask."""
    args = {"ks": (10,), "labels": (label,), "default_label": label}
    context = prepare(test, train, **args)
    keep = np.asarray(context.n_pos[context.default_label]) > 0
    if keep.all() or not keep.any():
        return test, np.ones(test.users.size, dtype=bool), context
    cut = test.restrict(keep)
    return cut, keep, prepare(cut, train, **args)


def evaluate(
    top_items: np.ndarray,
    test: TestSet,
    train: TrainSet,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    labels: Sequence[str | Label] = DEFAULT_LABELS,
    default_label: str | Label = "wr>2",
    n_bootstrap: int = 1000,
    seed: int = 0,
    predictions: np.ndarray | None = None,
    context: EvalContext | None = None,
) -> EvalResult:
    """Evaluate one model's top-k lists (``(len(test.users), k)`` item_idx, -1 padded).

    ``predictions`` (models that predict watch_ratio) are aligned with
    ``test.relevance.data``: entry e is the pair ``test.pairs()[0][e], test.pairs()[1][e]``.
    ``n_bootstrap=0`` skips the intervals. ``context`` is :func:`prepare`'s result for the
    same test set, training data, ks, labels and default label (computed here when None).
    """
    ctx = context
    if ctx is None:
        ctx = prepare(test, train, ks=ks, labels=labels, default_label=default_label)
    if ctx.test is not test or ctx.requested_ks != _check_ks(ks):
        raise ConfigError("context was prepared for another test set or other ks")
    if ctx.default_label != parse_label(default_label).name:
        raise ConfigError(f"context was prepared for default_label {ctx.default_label!r}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 0:
        raise ConfigError(f"n_bootstrap must be an integer >= 0, got {n_bootstrap!r}")
    top = M.pad_columns(check_top_items(top_items, test, ctx.excl_keys), max(ctx.ks))
    per_label, pos = per_user_metrics(
        top, test.relevance, ctx.rel_keys, ctx.values, ctx.n_pos, ctx.ideal, ctx.labels, ctx.ks
    )
    extra = beyond_accuracy(top, test.candidates, ctx.popularity, ctx.ks)
    if predictions is not None:
        extra.update(M.rating_errors(test.relevance.data, _check_predictions(predictions, test)))
    segments = _segments(top, pos, per_label[ctx.default_label], ctx)
    return assemble(
        per_label, ctx.n_pos, extra, segments, users=test.users, labels=ctx.labels,
        default_label=ctx.default_label, requested_ks=ctx.requested_ks, cap=ctx.cap,
        n_bootstrap=n_bootstrap, seed=seed, notes=ctx.notes,
    )  # fmt: skip


def assemble(
    per_label: dict[str, dict[str, np.ndarray]],
    n_pos: Mapping[str, np.ndarray],
    extra: Mapping[str, float],
    segments: dict[str, Any],
    *,
    users: np.ndarray,
    labels: Mapping[str, Label],
    default_label: str,
    requested_ks: tuple[int, ...],
    cap: int,
    n_bootstrap: int,
    seed: int,
    notes: Sequence[str] = (),
) -> EvalResult:
    """An :class:`EvalResult` from per-user metrics (users in ``users`` order): means,
    bootstrap intervals (:func:`bootstrap_ci` over the default label's per-user table),
    per-label summaries and the aliases of capped K. ``extra`` holds the metrics that are
    not user means (coverage, popularity, gini, rating errors). Both engines end here."""
    per_user = per_label[default_label]
    result_metrics = _summaries(per_user, n_pos[default_label])
    result_metrics.update(extra)
    ci = {}
    if n_bootstrap > 0 and per_user:
        names = list(per_user)
        lo, hi = bootstrap_ci(np.column_stack([per_user[m] for m in names]), n_bootstrap, seed)
        ci = {m: [float(a), float(b)] for m, a, b in zip(names, lo, hi, strict=True)}
    by_label = {n: _summaries(pu, n_pos[n]) for n, pu in per_label.items()}
    for table in (result_metrics, ci, per_user, *by_label.values(), *per_label.values()):
        _alias_capped(table, requested_ks, cap)
    return EvalResult(
        metrics=result_metrics,
        ci=ci,
        by_label=by_label,
        segments=segments,
        per_user=per_user,
        per_user_by_label=per_label,
        users=users,
        default_label=default_label,
        labels={n: lab.describe() for n, lab in labels.items()},
        ks=requested_ks,
        n_bootstrap=n_bootstrap,
        seed=seed,
        notes=list(notes),
    )


def _summaries(per_user: dict[str, np.ndarray], n_pos: np.ndarray) -> dict[str, float]:
    out = {name: S._mean(v) for name, v in per_user.items()}
    evaluated = int(np.sum(n_pos > 0))
    out.update(
        n_users=int(n_pos.size),
        n_users_evaluated=evaluated,
        n_users_no_positive=int(n_pos.size) - evaluated,
    )
    return out


def beyond_accuracy(
    top: np.ndarray, candidates: np.ndarray, popularity: np.ndarray, ks: Sequence[int]
) -> dict[str, float]:
    """Coverage, mean popularity and Gini of exposure of the lists ``top`` at every K."""
    out = {}
    for k in ks:
        out[f"coverage@{k}"] = M.coverage(top, k, candidates.size)
        out[f"mean_popularity@{k}"] = M.mean_popularity(top, k, popularity)
        out[f"gini@{k}"] = M.gini(top, k, candidates)
    return out


def _check_predictions(predictions: Any, test: TestSet) -> np.ndarray:
    p = np.asarray(predictions, dtype=np.float64)
    if p.shape != (test.relevance.nnz,):
        raise ModelError(
            f"predictions must have one value per observed test pair ({test.relevance.nnz}, "
            f"in test.relevance.data order), got shape {p.shape}"
        )
    if not np.all(np.isfinite(p)):
        raise ModelError(f"predictions hold {int(np.sum(~np.isfinite(p)))} non-finite values")
    return p


def _segments(top: np.ndarray, pos: np.ndarray, per_user: dict, ctx: EvalContext) -> dict:
    if not ctx.labels[ctx.default_label].binary:
        return {}
    k = S.headline_k(ctx.ks)
    hits = M.gather(ctx.values[ctx.default_label], pos)
    out: dict[str, Any] = {"user_activity": S.user_activity(per_user, ctx.activity, k)}
    for family, (group, names, n_pos) in ctx.item_groups.items():
        out[family] = S.item_segments(hits, top, n_pos, group, names, ctx.test.candidates, k)
    return out


# ---------------------------------------------------------------- comparing models


def _view(result: EvalResult | Mapping[str, Any]) -> tuple[dict, str]:
    if isinstance(result, EvalResult):
        return result.by_label, result.default_label
    if isinstance(result, Mapping) and "by_label" in result and "default_label" in result:
        return dict(result["by_label"]), str(result["default_label"])
    raise ConfigError("flips: expected EvalResult objects or their to_json() dicts")


def flips(
    results_by_model: Mapping[str, EvalResult | Mapping[str, Any]], metric: str = "ndcg@10"
) -> list[dict[str, Any]]:
    """Pairs of models whose order under ``metric`` differs between labels.

    For each pair (a, b) in the given order: the labels under which the order of a and b is
    the opposite of their order under the default label (ties never count as a flip).
    Returns ``[{"models": [a, b], "metric": metric, "labels": [...], "order": {label:
    "a > b" | "a < b" | "a = b"}}]``, only pairs with at least one flip.
    """
    views = {name: _view(r) for name, r in results_by_model.items()}
    out = []
    for a, b in itertools.combinations(views, 2):
        (by_a, default), (by_b, _) = views[a], views[b]
        signs = {}
        for lab in by_a:
            va, vb = by_a.get(lab, {}).get(metric), by_b.get(lab, {}).get(metric)
            if va is not None and vb is not None and math.isfinite(va) and math.isfinite(vb):
                signs[lab] = int(np.sign(va - vb))
        ref = signs.get(default, 0)
        flipped = [lab for lab, s in signs.items() if s != 0 and ref != 0 and s != ref]
        if flipped:
            sym = {1: ">", -1: "<", 0: "="}
            order = {lab: f"{a} {sym[s]} {b}" for lab, s in signs.items()}
            out.append({"models": [a, b], "metric": metric, "labels": flipped, "order": order})
    return out


def compare(
    a: EvalResult, b: EvalResult, metric: str = "ndcg@10", n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Paired bootstrap of ``a - b`` on ``metric`` (same users, same resamples)."""
    if a.users.shape != b.users.shape or not np.array_equal(a.users, b.users):
        raise ConfigError("compare: the two results were evaluated on different test users")
    if metric not in a.per_user or metric not in b.per_user:
        raise ConfigError(f"compare: unknown metric {metric!r}; known: {sorted(a.per_user)}")
    out = paired_bootstrap(
        a.per_user[metric], b.per_user[metric], n_bootstrap=n_bootstrap, seed=seed
    )
    return {"metric": metric, **out}
