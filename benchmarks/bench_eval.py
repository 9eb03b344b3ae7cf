"""Benchmark the evaluation on KuaiRec's default protocol shape.

Builds, with numpy, a training set shaped like the deduplicated big matrix (7,176 users x
10,728 videos, about 10M pairs) and a test set shaped like the small matrix (1,411 users x
3,327 candidates, 99.6% observed: about 4.67M pairs), ranks the candidates with random
scores into top-50 lists, then times:

- ``evaluate`` from scratch (label cut-offs on the training pairs included), every metric,
  every label, segments and 1,000 bootstrap resamples;
- ``evaluate`` again with a prepared context (what each further model costs);
- a plain per-user Python loop computing the same numbers, which must agree to 1e-9.

    python benchmarks/bench_eval.py            # full size
    python benchmarks/bench_eval.py --quick    # a tenth of the users, for a smoke run

Record the printed figures in docs/benchmarks-eval.md with the machine description.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections import Counter

import numpy as np
from machine_info import machine  # benchmarks/ is on sys.path when run as a script

KS = (5, 10, 20, 50)
LABELS = ("wr>2", "wr>=1", "duration", "graded")
B = 1000


def build(n_users: int, n_items: int, n_test: int, n_cand: int, seed: int = 0):
    """(top_items, test, train): random data with KuaiRec's shapes and marginals."""
    import scipy.sparse as sp

    from kuairec.data.dataset import IdMap, Interactions, TrainSet
    from kuairec.evaluation.metrics import top_k_from_scores
    from kuairec.evaluation.protocols import TestSet

    rng = np.random.default_rng(seed)
    test_users = np.sort(rng.choice(n_users, n_test, replace=False))
    cand = np.sort(rng.choice(n_items, n_cand, replace=False))
    is_test, is_cand = np.zeros(n_users, bool), np.zeros(n_items, bool)
    is_test[test_users], is_cand[cand] = True, True
    density = np.clip(rng.lognormal(np.log(0.11), 0.8, n_users), 0.005, 0.6)  # 13% overall
    rows, cols = [], []
    for start in range(0, n_users, 512):  # Bernoulli pattern, a block of users at a time
        stop = min(n_users, start + 512)
        keep = rng.random((stop - start, n_items)) < density[start:stop, None]
        keep[is_test[start:stop]] &= ~is_cand  # small-matrix pairs never in training
        r, c = np.nonzero(keep)
        rows.append(r + start)
        cols.append(c)
    rows, cols = np.concatenate(rows), np.concatenate(cols).astype(np.int32)
    nnz = rows.size
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
    wr = rng.lognormal(np.log(0.72), 0.75, nnz).astype(np.float32)
    ts = 1.5939e9 + rng.uniform(0, 62 * 86400, nnz)
    inter = Interactions(indptr, cols, np.ones(nnz, np.int32), wr, wr, ts, ts, n_items)
    duration = np.clip(rng.lognormal(np.log(9600), 0.9, n_items), 140, 315_072)
    train = TrainSet(inter, IdMap(np.arange(n_users)), IdMap(np.arange(n_items)), duration)
    observed = rng.random((n_test, n_cand)) < 0.996
    r, c = np.nonzero(observed)
    rel = sp.csr_matrix(
        (rng.lognormal(np.log(0.77), 0.7, r.size), cand[c], np.r_[0, np.cumsum(observed.sum(1))]),
        shape=(n_test, n_items),
    )
    exclude = inter.csr("ones", bool)[test_users]
    test = TestSet(test_users, cand, rel, exclude)
    top = cand[top_k_from_scores(rng.random((n_test, n_cand)), 50)]
    return top, test, train


# ---------------------------------------------------------------- the plain loop


def _bucket_edges(duration, train_items, n):
    d = duration[train_items]
    d = d[np.isfinite(d) & (d > 0)]
    return np.logspace(math.log10(d.min()), math.log10(d.max()), n + 1)


def _bucket_of(d, edges):
    if not (math.isfinite(d) and d > 0):
        return -1
    n = len(edges) - 1
    b = 0
    while b < n - 1 and d >= edges[b + 1]:
        b += 1
    return b


def loop_setup(train):
    """The per-split part: duration buckets and cut-offs (numpy per bucket, as anyone would)."""
    inter, duration = train.interactions, train.video_duration
    train_items = np.flatnonzero(inter.item_counts() > 0)
    edges = _bucket_edges(duration, train_items, 10)
    bucket = [_bucket_of(float(d), edges) for d in duration]
    # duration cut-offs: per bucket, the 0.8 quantile of the training watch ratios
    pair_bucket = np.array(bucket)[inter.indices]
    wr_train = inter.watch_ratio_mean.astype(np.float64)
    global_cut = float(np.quantile(wr_train, 0.8))
    cut = [global_cut] * 10
    for b in range(10):
        sel = wr_train[pair_bucket == b]
        if sel.size:
            cut[b] = float(np.quantile(sel, 0.8))
    return edges, bucket, cut, global_cut


def loop_evaluate(top, test, train, setup):
    """Every number of ``evaluate`` (default label wr>2), one user at a time."""
    inter = train.interactions
    edges, bucket, cut, global_cut = setup
    popularity = Counter(inter.indices.tolist())
    user_counts = np.diff(inter.indptr)
    rules = {
        "wr>2": lambda w, i: float(w > 2.0),
        "wr>=1": lambda w, i: float(w >= 1.0),
        "duration": lambda w, i: float(w > (cut[bucket[i]] if bucket[i] >= 0 else global_cut)),
        "graded": lambda w, i: min(w, 5.0),
    }
    rel = test.relevance
    per = {lab: {} for lab in LABELS}
    seg_rows = []
    for u in range(test.users.size):
        lo, hi = rel.indptr[u], rel.indptr[u + 1]
        row = dict(zip(rel.indices[lo:hi].tolist(), rel.data[lo:hi].tolist(), strict=True))
        items = [int(i) for i in top[u]]
        for lab, rule in rules.items():
            gains = {i: rule(w, i) for i, w in row.items()}
            metrics = _user_graded(items, gains) if lab == "graded" else _user_binary(items, gains)
            for name, v in metrics.items():
                per[lab].setdefault(name, []).append(v)
        seg_rows.append(
            _user_segments(
                items, {i: rules["wr>2"](w, i) for i, w in row.items()}, bucket, popularity
            )
        )
    out = {"by_label": {lab: {n: _nanmean(v) for n, v in m.items()} for lab, m in per.items()}}
    m = dict(out["by_label"]["wr>2"])
    for k in KS:
        shown = [i for row in top for i in row[:k] if i >= 0]
        exposure = Counter(shown)
        m[f"coverage@{k}"] = len(exposure) / test.candidates.size
        m[f"mean_popularity@{k}"] = sum(popularity.get(i, 0) for i in shown) / len(shown)
        x = sorted(exposure.get(int(c), 0) for c in test.candidates)
        n, total = len(x), sum(x)
        m[f"gini@{k}"] = sum((2 * (j + 1) - n - 1) * v for j, v in enumerate(x)) / (n * total)
    out["metrics"] = m
    out["ci"] = _loop_ci(per["wr>2"])
    out["segments"] = _loop_segments(
        per["wr>2"], seg_rows, user_counts[test.users], edges, test, bucket, popularity
    )
    return out


def _nanmean(v):
    kept = [x for x in v if not math.isnan(x)]
    return sum(kept) / len(kept) if kept else math.nan


def _user_binary(items, gains):
    pos = sum(1 for g in gains.values() if g > 0)
    out = {}
    hits = [1.0 if gains.get(i, 0.0) > 0 else 0.0 for i in items]
    for k in KS:
        h = hits[:k]
        if pos == 0:
            for name in ("precision", "recall", "ndcg", "map", "hit"):
                out[f"{name}@{k}"] = math.nan
            continue
        dcg = sum(x / math.log2(j + 2) for j, x in enumerate(h))
        idcg = sum(1 / math.log2(j + 2) for j in range(min(k, pos)))
        ap = sum(sum(h[: j + 1]) / (j + 1) * x for j, x in enumerate(h))
        out[f"precision@{k}"] = sum(h) / k
        out[f"recall@{k}"] = sum(h) / pos
        out[f"ndcg@{k}"] = dcg / idcg
        out[f"map@{k}"] = ap / min(k, pos)
        out[f"hit@{k}"] = 1.0 if sum(h) > 0 else 0.0
    first = next((j for j, x in enumerate(hits) if x), None)
    out["mrr"] = math.nan if pos == 0 else (0.0 if first is None else 1 / (first + 1))
    return out


def _user_graded(items, gains):
    best = sorted(gains.values(), reverse=True)
    out = {}
    for k in KS:
        idcg = sum(g / math.log2(j + 2) for j, g in enumerate(best[:k]))
        dcg = sum(gains.get(i, 0.0) / math.log2(j + 2) for j, i in enumerate(items[:k]))
        out[f"ndcg@{k}"] = dcg / idcg if idcg > 0 else math.nan
    return out


def _user_segments(items, gains, bucket, popularity):
    """Per item group (duration bucket b, "cold"/"warm"): the user's headline metrics."""
    groups = {}
    for i, g in gains.items():
        if g > 0:
            for key in (("b", bucket[i]), ("c", popularity.get(i, 0) > 0)):
                groups.setdefault(key, set()).add(i)
    out = {}
    for key, pos in groups.items():
        if key[0] == "b" and key[1] < 0:
            continue
        in_group = [
            (
                i
                if i >= 0 and (bucket[i] if key[0] == "b" else popularity.get(i, 0) > 0) == key[1]
                else -1
            )
            for i in items[:10]
        ]
        out[key] = _user_binary(in_group, {i: 1.0 for i in pos})
    return out


def _loop_ci(per_user):
    from kuairec.evaluation.bootstrap import bootstrap_indices

    names = list(per_user)
    values = np.array([per_user[n] for n in names]).T
    idx = bootstrap_indices(values.shape[0], B, 0)
    means = np.empty((B, len(names)))
    for b in range(B):  # one resample at a time
        means[b] = np.nanmean(values[idx[b]], axis=0)
    lo, hi = np.percentile(means, [2.5, 97.5], axis=0)
    return {n: [float(a), float(c)] for n, a, c in zip(names, lo, hi, strict=True)}


def _loop_segments(per_user, seg_rows, activity, edges, test, bucket, popularity):
    head = ("ndcg", "recall", "precision", "hit")
    q1, q2 = np.quantile(activity.astype(float), [1 / 3, 2 / 3])
    act = {}
    for g, name in enumerate(("low", "medium", "high")):
        rows = [u for u, a in enumerate(activity) if (0 if a <= q1 else 1 if a <= q2 else 2) == g]
        if rows:
            act[name] = {"n_users": sum(not math.isnan(per_user["ndcg@10"][u]) for u in rows)}
            act[name] |= {f"{h}@10": _nanmean([per_user[f"{h}@10"][u] for u in rows]) for h in head}
            act[name] |= {
                "pairs_min": int(min(activity[rows])),
                "pairs_max": int(max(activity[rows])),
            }
    out = {"user_activity": act}
    s = edges / 1000
    names = [f"{s[i]:.3g}-{s[i + 1]:.3g}s" for i in range(10)]
    fams = {
        "duration_bucket": [
            (("b", b), names[b], [c for c in test.candidates if bucket[c] == b]) for b in range(10)
        ],
        "item_coldness": [
            (("c", w), n, [c for c in test.candidates if (popularity.get(c, 0) > 0) == w])
            for w, n in ((False, "cold"), (True, "warm"))
        ],
    }
    for fam, groups in fams.items():
        out[fam] = {}
        for key, name, items in groups:
            if not items:
                continue
            users = [row[key] for row in seg_rows if key in row]
            entry = {"n_users": len(users)}
            entry |= {f"{h}@10": _nanmean([m[f"{h}@10"] for m in users]) for h in head}
            entry["n_items"] = len(items)
            out[fam][name] = entry
    return out


# ---------------------------------------------------------------- comparison and main


def _leaves(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{prefix}/{k}")
    elif isinstance(obj, list):
        for j, v in enumerate(obj):
            yield from _leaves(v, f"{prefix}[{j}]")
    else:
        yield prefix, obj


def max_difference(fast: dict, slow: dict) -> tuple[float, int]:
    """Largest absolute difference over every number the loop computed (and the count)."""
    fast_leaves = dict(_leaves(fast))
    worst, n = 0.0, 0
    for key, v in _leaves(slow):
        f = fast_leaves[key]  # a KeyError means the loop computed something evaluate lacks
        f, v = (math.nan if f is None else float(f)), float(v)
        if math.isnan(f) and math.isnan(v):
            continue
        worst, n = max(worst, abs(f - v)), n + 1
    return worst, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the users")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from kuairec.evaluation.evaluate import evaluate, prepare

    scale = 0.1 if args.quick else 1.0
    t0 = time.perf_counter()
    top, test, train = build(int(7176 * scale), 10728, int(1411 * scale), 3327)
    print(f"machine: {machine()}")
    print(
        f"data: train {train.n_users} x {train.n_items}, {train.interactions.nnz:,} pairs; "
        f"test {test.users.size} users x {test.candidates.size} candidates, "
        f"{test.relevance.nnz:,} observed pairs; top-50 lists "
        f"(built in {time.perf_counter() - t0:.1f} s)"
    )
    kw = {"ks": KS, "labels": LABELS, "n_bootstrap": B, "seed": 0}
    cold, warm = [], []  # (wall, cpu) seconds
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        result = evaluate(top, test, train, **kw)
        cold.append((time.perf_counter() - t, time.process_time() - c))
    t, c = time.perf_counter(), time.process_time()
    ctx = prepare(test, train, ks=KS, labels=LABELS)
    prep = (time.perf_counter() - t, time.process_time() - c)
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        evaluate(top, test, train, context=ctx, **kw)
        warm.append((time.perf_counter() - t, time.process_time() - c))
    t, c = time.perf_counter(), time.process_time()
    setup = loop_setup(train)
    loop_prep = (time.perf_counter() - t, time.process_time() - c)
    slow = loop_evaluate(top, test, train, setup)
    loop = (time.perf_counter() - t, time.process_time() - c)
    fast = result.to_json()
    diff, n = max_difference(fast, slow)
    cold, warm = min(cold), min(warm)
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}  (seconds: wall / cpu)")
    print(f"evaluate, from scratch (best of {args.repeat}): {cold[0]:.3f} / {cold[1]:.3f}")
    print(f"  of which prepare (label cut-offs, positives, gains): {prep[0]:.3f} / {prep[1]:.3f}")
    print(f"evaluate, prepared context (best of {args.repeat}): {warm[0]:.3f} / {warm[1]:.3f}")
    print(f"plain per-user loop: {loop[0]:.2f} / {loop[1]:.2f}")
    print(f"  of which the same per-split setup: {loop_prep[0]:.3f} / {loop_prep[1]:.3f}")
    per_model = (loop[0] - loop_prep[0], loop[1] - loop_prep[1])
    print(
        f"speed-up, from scratch: {loop[0] / cold[0]:.0f}x wall, {loop[1] / cold[1]:.0f}x cpu; "
        f"per model (setup excluded on both sides): {per_model[0] / warm[0]:.0f}x wall, "
        f"{per_model[1] / warm[1]:.0f}x cpu"
    )
    verdict = "OK" if diff <= 1e-9 else "FAIL"
    print(f"agreement: max |difference| = {diff:.2e} over {n} numbers ({verdict})")
    print(f"ndcg@10 = {fast['metrics']['ndcg@10']:.5f}  CI {fast['ci']['ndcg@10']}")


if __name__ == "__main__":
    main()
