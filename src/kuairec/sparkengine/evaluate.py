"""Evaluate top-K lists on Spark with the local engine's own per-user functions.

The model-independent part (:class:`SparkEvalContext`, built once per run) lives on the
driver only where it is per item or per label: popularity, durations, candidates, label
cut-offs (the duration label's quantiles come from Spark as the two order statistics
numpy interpolates between, so the cut-offs are numpy's to the bit). The test pairs
stay in Spark, grouped into one row per test user.

Per model, a ``mapInArrow`` kernel joins each test user's list with the user's test
pairs and calls :func:`kuairec.evaluation.evaluate.label_arrays`,
:func:`~kuairec.evaluation.evaluate.per_user_metrics` and
:func:`kuairec.evaluation.segments.item_segment_users` on the batch: the same functions
the local engine runs on all users at once. The per-user table (one row per test user:
O(users), never O(interactions)) comes back to the driver, which finishes exactly as
the local engine does (:func:`~kuairec.evaluation.evaluate.assemble`): means, the
per-label summaries, segments, and bootstrap intervals drawn by the local engine's index
draws over the users sorted by index, so the intervals do not depend on partitioning
and equal the local ones (docs/scale.md says why not Poisson weights).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.evaluation import metrics as M
from kuairec.evaluation import segments as S
from kuairec.evaluation.evaluate import (
    N_BUCKETS,
    EvalResult,
    assemble,
    beyond_accuracy,
    label_arrays,
    per_user_metrics,
)
from kuairec.evaluation.labels import (
    DurationCutoffs,
    Label,
    duration_bucket,
    duration_edges,
    interpolate,
    item_cutoffs,
    parse_label,
    quantile_positions,
)
from kuairec.sparkengine.topk import list_csr

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from pyspark.sql import DataFrame


@dataclass(eq=False)
class SparkEvalContext:
    """The model-independent part of the evaluation (the local ``EvalContext``'s)."""

    rel_lists: DataFrame  # user_idx, rel_items array<int>, rel_wr array<double>
    users: np.ndarray  # test users, sorted
    candidates: np.ndarray
    n_items: int
    labels: dict[str, Label]
    default_label: str
    ks: tuple[int, ...]  # capped at the candidates
    requested_ks: tuple[int, ...]
    cap: int
    popularity: np.ndarray
    activity: np.ndarray  # training pairs per test user (users order)
    item_cut: dict[str, np.ndarray]  # duration labels: the cut-off of every item
    item_groups: dict[str, tuple[np.ndarray, list[str]]]  # family -> (group of item, names)
    notes: list[str] = field(default_factory=list)


def prepare(
    train: DataFrame,
    test: DataFrame,
    users: np.ndarray,
    activity: np.ndarray,
    candidates: np.ndarray,
    popularity: np.ndarray,
    video_duration: np.ndarray | None,
    *,
    ks: tuple[int, ...],
    labels: tuple[str, ...],
    default_label: str,
) -> SparkEvalContext:
    """The context for ``test`` (user_idx, item_idx, watch_ratio_mean) given training
    pairs (for the duration label's cut-offs) and the per-item arrays."""
    default = parse_label(default_label)
    parsed = {default.name: default, **{lab.name: lab for lab in map(parse_label, labels)}}
    edges = None
    if video_duration is not None:
        warm = np.flatnonzero(popularity > 0)
        edges = duration_edges(video_duration, warm if warm.size else candidates, N_BUCKETS)
    item_cut, notes = _cutoffs(parsed, default.name, train, video_duration, popularity, edges)
    cap = max(int(candidates.size), 1)
    over = [k for k in ks if k > cap]
    if over:
        notes.append(
            f"K={', '.join(map(str, over))} is larger than the {cap} candidates: those lists "
            f"hold every candidate and their @K metrics equal the @{cap} ones"
        )
    groups: dict[str, tuple[np.ndarray, list[str]]] = {}
    if default.binary:
        if edges is not None:
            groups["duration_bucket"] = (
                duration_bucket(video_duration, edges),
                S.duration_names(edges),
            )
        groups["item_coldness"] = ((popularity > 0).astype(np.int64), ["cold", "warm"])
    return SparkEvalContext(
        rel_lists=grouped_test_pairs(test), users=users, candidates=candidates,
        n_items=popularity.size, labels=parsed, default_label=default.name,
        ks=tuple(sorted({min(k, cap) for k in ks})), requested_ks=tuple(ks), cap=cap,
        popularity=popularity, activity=activity, item_cut=item_cut, item_groups=groups,
        notes=notes,
    )  # fmt: skip


def _cutoffs(
    labels: dict[str, Label],
    default: str,
    train: DataFrame,
    video_duration: np.ndarray | None,
    popularity: np.ndarray,
    edges: np.ndarray | None,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every duration label's per-item cut-off (the local ``_label_data``'s rules);
    labels that cannot be computed are removed from ``labels`` with a note."""
    from kuairec.errors import ConfigError

    item_cut, notes = {}, []
    for name, lab in list(labels.items()):
        if lab.kind != "duration":
            continue
        if video_duration is None:
            if name == default:
                raise ConfigError(f"default_label {name!r} needs video durations; none are known")
            notes.append(f"label {name!r} skipped: the training set has no video durations")
            del labels[name]
            continue
        same = edges if lab.n_buckets == N_BUCKETS else None
        cut = spark_duration_cutoffs(lab, train, video_duration, popularity, same)
        item_cut[name] = item_cutoffs(cut, video_duration)
    return item_cut, notes


def grouped_test_pairs(test: DataFrame) -> DataFrame:
    """One row per test user: its test items (sorted) and their watch ratios."""
    from pyspark.sql import functions as F

    entries = F.sort_array(F.collect_list(F.struct("item_idx", "watch_ratio_mean")))
    return (
        test.groupBy("user_idx")
        .agg(entries.alias("_e"))
        .select(
            "user_idx",
            F.col("_e.item_idx").alias("rel_items"),
            F.col("_e.watch_ratio_mean").cast("array<double>").alias("rel_wr"),
        )
    )


def spark_duration_cutoffs(
    label: Label,
    train: DataFrame,
    video_duration: np.ndarray,
    popularity: np.ndarray,
    edges: np.ndarray | None,
) -> DurationCutoffs:
    """:func:`kuairec.evaluation.labels.duration_cutoffs` with the training pairs in
    Spark: per bucket, the two order statistics numpy's linear quantile reads."""
    from pyspark.sql import functions as F

    if edges is None:
        edges = duration_edges(video_duration, np.flatnonzero(popularity > 0), label.n_buckets)
    import pyarrow as pa

    bucket = duration_bucket(video_duration, edges)
    per_item = train.sparkSession.createDataFrame(
        pa.table({"item_idx": np.arange(bucket.size, dtype=np.int32), "b": bucket.astype(np.int32)})
    )
    wr = train.join(per_item, "item_idx").select("b", F.col("watch_ratio_mean").alias("v"))
    counts = np.zeros(label.n_buckets, np.int64)
    for r in wr.groupBy("b").count().collect():
        if r["b"] >= 0:
            counts[r["b"]] = r["count"]
    wanted = {
        int(b): quantile_positions(int(counts[b]), label.quantile) for b in np.flatnonzero(counts)
    }
    need_global = bool((counts == 0).any() or (bucket < 0).any())
    if need_global:
        wanted[-2] = quantile_positions(int(train.count()), label.quantile)
    values = order_statistics(wr, wanted)
    cutoffs = np.full(label.n_buckets, np.nan)
    for b, (lo, hi, t) in wanted.items():
        if b >= 0:
            cutoffs[b] = interpolate(values[(b, lo)], values[(b, hi)], t)
    global_cut = np.nan
    if need_global:
        lo, hi, t = wanted[-2]
        global_cut = interpolate(values[(-2, lo)], values[(-2, hi)], t)
        cutoffs[counts == 0] = global_cut
    return DurationCutoffs(edges, cutoffs, global_cut, counts)


def order_statistics(
    values: DataFrame, wanted: dict[int, tuple[int, int, float]]
) -> dict[tuple[int, int], float]:
    """``{(group, position): value}``: the 0-based order statistics ``wanted`` asks for
    per group of ``values`` (columns b, v), exact; group -2 means all rows. Counts per
    distinct value, a running sum per group (the windows hold distinct values only)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    tables = []
    if any(g >= 0 for g in wanted):
        tables.append(values.filter(F.col("b") >= 0))
    if -2 in wanted:
        tables.append(values.select(F.lit(-2).alias("b"), "v"))
    out: dict[tuple[int, int], float] = {}
    for table in tables:
        distinct = table.groupBy("b", "v").count()
        running = F.sum("count").over(
            Window.partitionBy("b").orderBy("v").rowsBetween(Window.unboundedPreceding, 0)
        )
        ranked = distinct.withColumn("_end", running).withColumn(
            "_start", F.col("_end") - F.col("count")
        )
        hits = []
        for g, (lo, hi, _) in wanted.items():
            for pos in {lo, hi}:
                hits.append((F.col("b") == g) & (F.col("_start") <= pos) & (F.col("_end") > pos))
        cond = hits[0]
        for h in hits[1:]:
            cond = cond | h
        for r in ranked.filter(cond).select("b", "v", "_start", "_end").collect():
            for g, (lo, hi, _) in wanted.items():
                for pos in (lo, hi):
                    if g == r["b"] and r["_start"] <= pos < r["_end"]:
                        out[(g, pos)] = float(r["v"])
    return out


@dataclass
class MetricsKernel:
    """``mapInArrow`` kernel: a test user's list and test pairs in, per-user metrics out."""

    labels: dict[str, Label]
    default_label: str
    ks: tuple[int, ...]
    n_items: int
    item_cut: dict[str, np.ndarray]
    item_groups: dict[str, tuple[np.ndarray, list[str]]]

    def columns(self) -> list[tuple[str, str | None, str]]:
        """(label or family, group, metric) of every output column after user_idx."""
        out: list[tuple[str, str | None, str]] = []
        for name, lab in self.labels.items():
            metrics = _metric_names(lab, self.ks)
            out += [(name, None, "n_pos")] + [(name, None, m) for m in metrics]
        k = S.headline_k(self.ks)
        for family, (_, names) in self.item_groups.items():
            out += [(family, g, f"{m}@{k}") for g in names for m in S.HEADLINE]
        return out

    def schema(self) -> str:
        return "user_idx int, " + ", ".join(f"m{i} double" for i in range(len(self.columns())))

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        for batch in batches:
            if batch.num_rows:
                values = self.batch_values(batch)
                arrays = [batch.column("user_idx"), *[pa.array(v, pa.float64()) for v in values]]
                names = ["user_idx", *[f"m{i}" for i in range(len(values))]]
                yield pa.RecordBatch.from_arrays(arrays, names=names)

    def batch_values(self, batch: pa.RecordBatch) -> list[np.ndarray]:
        rel = list_csr(batch, "rel_items", "rel_wr", self.n_items)
        rel.data = rel.data.astype(np.float64)
        top = M.pad_columns(list_csr_dense(batch, "items", -1), max(self.ks))
        max_k = max(self.ks)
        values, n_pos, ideal = {}, {}, {}
        for name, lab in self.labels.items():
            values[name], n_pos[name], best = label_arrays(
                lab, rel.data, rel.indices, rel.indptr, self.item_cut.get(name), max_k
            )
            if best is not None:
                ideal[name] = best
        per_label, pos = per_user_metrics(
            top, rel, M.entry_keys(rel), values, n_pos, ideal, self.labels, self.ks
        )
        out = []
        for name, lab in self.labels.items():
            out.append(n_pos[name].astype(np.float64))
            out += [per_label[name][m] for m in _metric_names(lab, self.ks)]
        if self.item_groups:
            out += self._segments(values[self.default_label], rel, top, pos)
        return out

    def _segments(self, values: np.ndarray, rel: Any, top: np.ndarray, pos: np.ndarray) -> list:
        k = S.headline_k(self.ks)
        hits = M.gather(values, pos)
        rows = np.repeat(np.arange(rel.shape[0]), np.diff(rel.indptr))
        out = []
        for group, names in self.item_groups.values():
            n_pos = S.group_positives(values, rows, rel.indices, group, len(names), rel.shape[0])
            per_group = S.item_segment_users(hits, top, n_pos, group, len(names), k)
            out += [per_group[g][f"{m}@{k}"] for g in range(len(names)) for m in S.HEADLINE]
        return out


def list_csr_dense(batch: pa.RecordBatch, column: str, fill: int) -> np.ndarray:
    """A list<int> column of equal-length lists as an (n, width) int64 array."""
    col = batch.column(column)
    n = batch.num_rows
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    if n == 0 or flat.size == 0:
        return np.full((n, 0), fill, np.int64)
    return flat.reshape(n, -1)


def _metric_names(label: Label, ks: tuple[int, ...]) -> list[str]:
    if not label.binary:
        return [f"ndcg@{k}" for k in ks]
    names = []
    for k in ks:
        names += [f"{m}@{k}" for m in M.RANKING]
    return [*names, "mrr"]


def evaluate_lists(
    ctx: SparkEvalContext, top: DataFrame, n_bootstrap: int, seed: int
) -> tuple[EvalResult, np.ndarray, np.ndarray]:
    """The EvalResult of a model's lists (``top``: user_idx, items, scores; one row per
    test user) and the lists as arrays (rows in ``ctx.users`` order)."""
    kernel = MetricsKernel(ctx.labels, ctx.default_label, ctx.ks, ctx.n_items, ctx.item_cut,
                           ctx.item_groups)  # fmt: skip
    joined = top.select("user_idx", "items").join(ctx.rel_lists, "user_idx")
    table = joined.mapInArrow(kernel, kernel.schema()).toArrow().sort_by("user_idx")
    lists = top.toArrow().sort_by("user_idx")
    users = table.column("user_idx").to_numpy()
    if not np.array_equal(users, ctx.users) or not np.array_equal(
        lists.column("user_idx").to_numpy(), ctx.users
    ):
        raise RuntimeError("the Spark evaluation lost or repeated test users")  # a bug
    width = min(max(ctx.requested_ks), max(ctx.candidates.size, 1))
    items = _dense(lists.column("items"), users.size, width, -1).astype(np.int64)
    scores = _dense(lists.column("scores"), users.size, width, -np.inf).astype(np.float32)
    result = _assemble(ctx, kernel, table, items, n_bootstrap, seed)
    return result, items, scores


def _dense(column: Any, n: int, width: int, fill: float) -> np.ndarray:
    flat = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    if flat.size != n * width:
        raise RuntimeError(f"top-K lists of unequal width ({flat.size} values, {n} users)")
    return flat.reshape(n, width) if width else np.full((n, 0), fill)


def _assemble(
    ctx: SparkEvalContext, kernel: MetricsKernel, table: Any, items: np.ndarray,
    n_bootstrap: int, seed: int,
) -> EvalResult:  # fmt: skip
    per_label: dict[str, dict[str, np.ndarray]] = {n: {} for n in ctx.labels}
    n_pos: dict[str, np.ndarray] = {}
    groups: dict[str, list[dict[str, np.ndarray]]] = {
        f: [{} for _ in names] for f, (_, names) in ctx.item_groups.items()
    }
    for i, (owner, group, metric) in enumerate(kernel.columns()):
        values = table.column(f"m{i}").to_numpy()
        if group is not None:
            names = ctx.item_groups[owner][1]
            groups[owner][names.index(group)][metric] = values
        elif metric == "n_pos":
            n_pos[owner] = values.astype(np.int64)
        else:
            per_label[owner][metric] = values
    top = M.pad_columns(items, max(ctx.ks))
    extra = beyond_accuracy(top, ctx.candidates, ctx.popularity, ctx.ks)
    segments: dict[str, Any] = {}
    if ctx.labels[ctx.default_label].binary:
        k = S.headline_k(ctx.ks)
        segments["user_activity"] = S.user_activity(per_label[ctx.default_label], ctx.activity, k)
        for family, (group, names) in ctx.item_groups.items():
            segments[family] = S.summarise_item_segments(
                groups[family], group, names, ctx.candidates, k
            )
    return assemble(
        per_label, n_pos, extra, segments, users=ctx.users, labels=ctx.labels,
        default_label=ctx.default_label, requested_ks=ctx.requested_ks, cap=ctx.cap,
        n_bootstrap=n_bootstrap, seed=seed, notes=ctx.notes,
    )  # fmt: skip
