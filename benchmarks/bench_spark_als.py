"""spark_als against implicit's als: agreement, the regularisation mapping, budget, speed.

Prints figures (not a timed test; record them in docs/spark.md with the machine, and say
whether anything else shared the CPU: never time on a shared machine if you can avoid it).

    python benchmarks/bench_spark_als.py agreement     # NDCG@10, seeds 0-2, scale 0.2
    python benchmarks/bench_spark_als.py regmap        # global regParam mappings compared
    python benchmarks/bench_spark_als.py budget        # fresh process: start-up + default fit
    python benchmarks/bench_spark_als.py speed         # scale 1.0, rank 64: per iteration
    python benchmarks/bench_spark_als.py all           # the four, in this order

``speed`` trains every engine on the whole training matrix (all rows: threshold 0) with
the same rank and regularisation, 1 and 10 iterations each, side by side in one process:
per iteration = (T(10) - T(1)) / 9, which takes out data loading, Spark's blocking and
the factor transfer; one untimed 1-iteration fit first warms each JVM (its JIT). Memory:
the peak RSS (VmHWM) of this process and of the JVM, read from /proc (``/usr/bin/time``
does not see the JVM). CPU seconds are reported beside the wall times: on a shared
machine they are the steadier figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from machine_info import machine  # benchmarks/ is on sys.path when run as a script

TICK = os.sysconf("SC_CLK_TCK")
JAVA_SERIALIZER = "org.apache.spark.serializer.JavaSerializer"


# ---------------------------------------------------------------------- measuring
def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process (all its threads) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mb(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def jvm_cpu() -> float:
    from kuairec.models.spark_session import jvm_pids

    return sum(cpu_seconds(p) for p in jvm_pids())


def jvm_peak_mb() -> float:
    from kuairec.models.spark_session import jvm_pids

    return sum(peak_rss_mb(p) for p in jvm_pids())


def timed(fn):  # noqa: ANN001, ANN201
    """(result, wall seconds, CPU seconds of this process and its JVMs)."""
    c0, w0 = cpu_seconds() + jvm_cpu(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - w0, cpu_seconds() + jvm_cpu() - c0


def load_avg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# ---------------------------------------------------------------------- data
def data(scale: float, seed: int):  # noqa: ANN201
    from kuairec.data.default import ensure_synthetic
    from kuairec.data.load import load_dataset
    from kuairec.evaluation.protocols import default_protocol

    return default_protocol(load_dataset(ensure_synthetic(scale, seed, progress=False)))


def ndcg(model, train, test) -> float:  # noqa: ANN001
    from kuairec.evaluation.evaluate import evaluate

    items, _ = model.recommend(test.users, 10, exclude=test.exclude, candidates=test.candidates)
    result = evaluate(items, test, train, ks=(10,), labels=("wr>2",), default_label="wr>2")
    return float(result.to_json()["metrics"]["ndcg@10"])


def fit(name: str, params: dict, train):  # noqa: ANN001, ANN201
    from kuairec.models import create_model

    return create_model(name, params).fit(train)


# ---------------------------------------------------------------------- sections
def agreement(scale: float, seeds: list[int]) -> None:
    """NDCG@10 of als (CG and exact) and spark_als with the mapped defaults, per seed."""
    from kuairec.models.registry import config_to_dict
    from kuairec.models.spark_als import from_als_params

    print(f"\n## Agreement: NDCG@10 (wr>2), scale {scale}, defaults mapped (load {load_avg()})")
    print("| seed | als (CG) | als (exact) | spark_als | spark - als | spark - exact |")
    print("|---|---|---|---|---|---|")
    rows = []
    for seed in seeds:
        train, test = data(scale, seed)
        als = fit("als", {"seed": seed}, train)
        exact = fit("als", {"seed": seed, "use_cg": False}, train)
        spark = fit("spark_als", from_als_params(config_to_dict(als.config)), train)
        r = (ndcg(als, train, test), ndcg(exact, train, test), ndcg(spark, train, test))
        rows.append(r)
        print(
            f"| {seed} | {r[0]:.4f} | {r[1]:.4f} | {r[2]:.4f} | {r[2] - r[0]:+.4f} | "
            f"{r[2] - r[1]:+.4f} |",
            flush=True,
        )
    mean = [sum(col) / len(rows) for col in zip(*rows, strict=True)]
    print(
        f"| mean | {mean[0]:.4f} | {mean[1]:.4f} | {mean[2]:.4f} | {mean[2] - mean[0]:+.4f} | "
        f"{mean[2] - mean[1]:+.4f} |"
    )


def regmap(scale: float, seed: int, regs: list[float]) -> None:
    """The global regParam mappings against implicit's exact solver at the same lambda."""
    import numpy as np

    from kuairec.models.matrices import weighted_matrix
    from kuairec.models.spark_als import SparkALSRecommender, spark_reg_param

    train, test = data(scale, seed)
    x = weighted_matrix(train.interactions, "linear", np.inf, 1.0)
    ways = ("geometric", "pooled", "user_mean", "item_mean", "user_median")
    print(f"\n## Regularisation mapping, scale {scale}, seed {seed} (load {load_avg()})")
    print("NDCG@10 and mean top-10 overlap with als (exact solver) at the same lambda;")
    print("regParam = lambda / count. `exact per-user reg` = share of users whose Spark")
    print("penalty n_u * regParam is within 2x of lambda.")
    n_u = np.diff(x.indptr)
    n_u = n_u[n_u > 0]
    for lam in regs:
        exact = fit("als", {"regularization": lam, "use_cg": False}, train)
        base_items = exact.recommend(test.users, 10, exclude=test.exclude)[0]
        print(f"\nlambda = {lam}: als exact NDCG@10 {ndcg(exact, train, test):.4f}")
        print("| mapping | count | regParam | users within 2x | NDCG@10 | top-10 overlap |")
        print("|---|---|---|---|---|---|")
        for how in ways:
            mu = spark_reg_param(lam, x, how)
            within = float(np.mean((n_u * mu >= lam / 2) & (n_u * mu <= lam * 2)))
            SparkALSRecommender.reg_how = how
            try:
                model = fit("spark_als", {"regularization": lam}, train)
            finally:
                SparkALSRecommender.reg_how = "geometric"
            items = model.recommend(test.users, 10, exclude=test.exclude)[0]
            pairs = zip(items, base_items, strict=True)
            overlap = np.mean([len(set(a) & set(b)) for a, b in pairs])
            print(
                f"| {how} | {lam / mu:.1f} | {mu:.3g} | {within:.0%} | "
                f"{ndcg(model, train, test):.4f} | {overlap:.2f} |",
                flush=True,
            )


BUDGET_VARIANTS = {
    "defaults": {},
    "C1 JIT only": {"spark_conf": {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}},
    "1x1 blocks": {"num_user_blocks": 1, "num_item_blocks": 1},
}


def budget(scale: float) -> None:
    """spark_als in a fresh process (session start-up included): what `kuairec run` pays."""
    print(f"\n## Budget: spark_als, scale {scale}, fresh process each (load {load_avg()})")
    print(
        "| settings | fit s (session incl.) | CPU s | session start s | Spark fit s | blocks | "
        "NDCG@10 | Python peak MB | JVM peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, params in BUDGET_VARIANTS.items():
        print(f"| {label} ", end="", flush=True)
        budget_run(scale, params)


def budget_run(scale: float, params: dict) -> None:
    code = (
        "import sys, time; sys.path.insert(0, 'benchmarks');"
        "import bench_spark_als as b;"
        f"train, test = b.data({scale}, 0);"
        f"(m, wall, cpu) = b.timed(lambda: b.fit('spark_als', {params!r}, train));"
        "print(f'| {wall:.1f} | {cpu:.1f} | {m.fit_info_[\"session_seconds\"]:.1f} | '"
        'f\'{m.fit_info_["spark_seconds"]:.1f} | {m.fit_info_["blocks"]} | \''
        "f'{b.ndcg(m, train, test):.4f} | {b.peak_rss_mb():.0f} | {b.jvm_peak_mb():.0f} |')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    print(out.stdout.strip() or out.stderr.strip()[-2000:], flush=True)


def speed(
    scale: float, rank: int, iters: int, blas: list[str], engines: list[str], driver_memory: str
) -> None:
    """Per-iteration time of every engine on all rows, same rank and regularisation."""
    from kuairec.models.spark_session import blas_implementation, get_session, stop_session

    train, _ = data(scale, 0)
    inter = train.interactions  # implicit's exact solver needs writable index arrays; at
    inter.indptr, inter.indices = inter.indptr.copy(), inter.indices.copy()  # threshold 0
    nnz = inter.nnz  # weighted_matrix passes the cache's read-only arrays straight through
    common = {"factors": rank, "regularization": 0.05, "threshold": 0.0}
    print(
        f"\n## Speed: scale {scale} ({nnz:,} rows), rank {rank}, T(1) and T({iters}) "
        f"(load {load_avg()})"
    )
    print(
        "| engine | T(1) s | T(n) s | per iteration s | CPU per iteration s | "
        "Python peak MB | JVM peak MB |"
    )
    print("|---|---|---|---|---|---|---|")
    per_iter = {}

    def run(label: str, name: str, params: dict) -> None:
        fit(name, {**common, **params, "iterations": 1}, train)  # warm-up: the JVM's JIT
        _, w1, c1 = timed(lambda: fit(name, {**common, **params, "iterations": 1}, train))
        _, wn, cn = timed(lambda: fit(name, {**common, **params, "iterations": iters}, train))
        per_iter[label] = ((wn - w1) / (iters - 1), (cn - c1) / (iters - 1))
        print(
            f"| {label} | {w1:.1f} | {wn:.1f} | {per_iter[label][0]:.2f} | "
            f"{per_iter[label][1]:.2f} | {peak_rss_mb():.0f} | {jvm_peak_mb():.0f} |",
            flush=True,
        )

    if "implicit" in engines:
        run("implicit exact (use_cg=False)", "als", {"use_cg": False})
        run("implicit CG", "als", {"use_cg": True})
    if "spark" in engines:
        from kuairec.models.spark_als import SparkALSRecommender

        for choice in blas:
            params = {"native_blas": choice, "driver_memory": driver_memory}
            session = get_session(SparkALSRecommender(params).session_settings())
            impl = blas_implementation(session)["blas"]
            run(f"spark_als, BLAS {choice} ({impl})", "spark_als", params)
            stop_session()
    exact = per_iter.get("implicit exact (use_cg=False)")
    cg = per_iter.get("implicit CG")
    for label, (wall, cpu) in per_iter.items():
        if label.startswith("spark") and exact and cg:
            print(
                f"- {label}: {wall / exact[0]:.2f}x implicit exact, {wall / cg[0]:.2f}x "
                f"implicit CG per iteration (CPU: {cpu / exact[1]:.2f}x, {cpu / cg[1]:.2f}x)"
            )


KNOBS = {  # one change each from the defaults; those needing a new session come last
    "defaults": {},
    "blocks 1x1": {"num_user_blocks": 1, "num_item_blocks": 1},
    "blocks 4x4": {"num_user_blocks": 4, "num_item_blocks": 4},
    "blocks 10x10 (Spark's default)": {"num_user_blocks": 10, "num_item_blocks": 10},
    "storage MEMORY_ONLY": {"storage_level": "MEMORY_ONLY"},
    "storage MEMORY_AND_DISK_SER": {"storage_level": "MEMORY_AND_DISK_SER"},
    "Java BLAS (VectorBLAS)": {"native_blas": "java"},
    "Java serialiser (no Kryo)": {"spark_conf": {"spark.serializer": JAVA_SERIALIZER}},
    "C1 JIT only": {"spark_conf": {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}},
}


def knobs(scale: float, rank: int, iters: int) -> None:
    """Where Spark's time goes: T(1) and T(n) with one setting changed at a time (a new
    session only when the change needs one). Checkpointing: ALS checkpoints at sweep
    ``checkpoint_interval`` (10), so n < 10 runs without it; ``speed`` runs 10."""
    from kuairec.models.spark_als import SparkALSRecommender
    from kuairec.models.spark_session import (
        blas_implementation,
        current_settings,
        get_session,
        session_is_running,
    )

    train, _ = data(scale, 0)
    common = {"factors": rank, "regularization": 0.05, "threshold": 0.0}
    print(
        f"\n## Knobs: scale {scale} ({train.interactions.nnz:,} rows), rank {rank}, "
        f"T(1) and T({iters}) (load {load_avg()})"
    )
    print("| setting | BLAS | T(1) s | per iteration s | CPU T(1) s | CPU per iteration s |")
    print("|---|---|---|---|---|---|")
    for label, params in KNOBS.items():
        settings = SparkALSRecommender({**common, **params}).session_settings()
        fresh = not session_is_running() or settings != current_settings()
        impl = blas_implementation(get_session(settings))["blas"]
        if fresh:  # warm a new JVM's JIT first
            fit("spark_als", {**common, **params, "iterations": 1}, train)
        _, w1, c1 = timed(
            lambda p=params: fit("spark_als", {**common, **p, "iterations": 1}, train)
        )
        _, wn, cn = timed(
            lambda p=params: fit("spark_als", {**common, **p, "iterations": iters}, train)
        )
        n = iters - 1
        print(
            f"| {label} | {impl} | {w1:.1f} | {(wn - w1) / n:.2f} | {c1:.1f} | "
            f"{(cn - c1) / n:.2f} |",
            flush=True,
        )


def session_start() -> None:
    from kuairec.models.spark_session import get_session, stop_session

    _, wall, cpu = timed(get_session)
    print(f"\nsession start-up: {wall:.1f} s wall, {cpu:.1f} s CPU (load {load_avg()})")
    stop_session()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("agreement", "regmap", "budget", "speed", "knobs", "all"))
    p.add_argument("--scale", type=float, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--regs", type=float, nargs="+", default=[0.05, 5.0])
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--blas", nargs="+", default=["auto", "java"])
    p.add_argument("--engines", nargs="+", default=["implicit", "spark"])
    p.add_argument("--driver-memory", default="4g", help="spark_als's default is 4g")
    a = p.parse_args()
    print(f"machine: {machine()}; load average at start {load_avg()}")
    if a.what in ("agreement", "all"):
        agreement(a.scale or 0.2, a.seeds)
    if a.what in ("regmap", "all"):
        regmap(a.scale or 0.2, a.seeds[0], a.regs)
    if a.what in ("budget", "all"):
        budget(a.scale or 0.2)
    if a.what in ("speed", "all"):
        session_start()
        speed(a.scale or 1.0, a.rank, a.iters, a.blas, a.engines, a.driver_memory)
    if a.what == "knobs":
        knobs(a.scale or 0.5, a.rank, a.iters)


if __name__ == "__main__":
    main()
