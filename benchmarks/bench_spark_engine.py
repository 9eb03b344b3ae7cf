"""Both engines at several sizes: per-stage wall time and peak memory; the one-machine
ceiling; a cost model projected to 1B and 10B interactions. Prints figures (docs/scale.md).

    python benchmarks/bench_spark_engine.py ceiling --scales 0.2 0.5 1.0
    python benchmarks/bench_spark_engine.py engines --scales 0.05 0.1 0.2
    python benchmarks/bench_spark_engine.py engines --scales 1 2 4 --engines spark \\
        --format parquet --driver-memory 14g          # on a quiet machine with the disk
    python benchmarks/bench_spark_engine.py project   # the cost model of engines' results

Every measured run is a child process; this process samples the resident memory of the
child's whole process tree from /proc every 0.2 s (``/usr/bin/time`` does not see the JVM
or Spark's Python workers), split into the driver (the child itself), the JVMs (the
driver's JVM; in local-cluster mode the executor JVMs too) and Spark's Python workers,
and attributes the peak to the stage running at that moment (the child prints each
stage's start and end). Results are appended as JSON lines to ``--out``
(benchmarks/results/spark_engine.jsonl), which ``project`` reads.

``ceiling`` measures the local engine's ``kuairec run --models popularity,als,ease
--no-validity --no-cold-items`` (the whole job, tuning included) and fits peak memory =
a + b * rows, the model kuairec.data.footprint uses to refuse a log before loading it.
Never time anything while other jobs share the cores; say so in docs when they did.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from machine_info import machine  # benchmarks/ is on sys.path when run as a script

OUT = Path(__file__).parent / "results" / "spark_engine.jsonl"
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------- measuring
def _children(pid: int) -> list[int]:
    """Child processes of every thread of ``pid`` (a JVM forks from its own threads)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def tree_rss(root: int) -> dict[str, float]:
    """Resident MB of ``root``'s tree by kind: driver, jvm, workers (Python below a JVM)."""
    out = {"driver": 0.0, "jvm": 0.0, "workers": 0.0}
    todo = [(root, False)]
    while todo:
        pid, under_jvm = todo.pop()
        try:
            rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
            exe = Path(f"/proc/{pid}/exe").resolve().name
        except OSError:
            continue
        is_java = exe == "java"
        kind = (
            "driver" if pid == root else "jvm" if is_java else "workers" if under_jvm else "driver"
        )
        out[kind] += rss
        todo += [(c, under_jvm or is_java) for c in _children(pid)]
    return out


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``cmd``; its stages (``STAGE name t0 t1`` lines), result (``RESULT {...}``),
    wall time and per-stage peak memory by kind."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    samples: list[tuple[float, dict[str, float]]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            samples.append((time.time(), tree_rss(proc.pid)))

    thread = threading.Thread(target=sample, daemon=True)
    t0 = time.time()
    thread.start()
    out, _ = proc.communicate()
    stop.set()
    thread.join()
    stages, result = [], {}
    for line in out.splitlines():
        if line.startswith("STAGE "):
            name, a, b = line[6:].rsplit(" ", 2)
            stages.append(
                {"stage": name, "seconds": float(b) - float(a), "t0": float(a), "t1": float(b)}
            )
        elif line.startswith("RESULT "):
            result = json.loads(line[7:])
    for s in stages:
        inside = [m for t, m in samples if s["t0"] <= t <= s["t1"]]
        if not inside and samples:  # a stage shorter than the sampling step: the nearest
            inside = [min(samples, key=lambda x: abs(x[0] - s["t0"]))[1]]
        inside = inside or [{}]
        for kind in ("driver", "jvm", "workers"):
            s[f"{kind}_mb"] = round(max(m.get(kind, 0.0) for m in inside), 1)
        s["total_mb"] = round(max(sum(m.values()) for m in inside), 1) if inside[0] else 0.0
    peak = max((sum(m.values()) for _, m in samples), default=0.0)
    return {"rc": proc.returncode, "wall_s": round(time.time() - t0, 2), "stages": stages,
            "peak_total_mb": round(peak, 1), "result": result}  # fmt: skip


# ---------------------------------------------------------------------- children
def _stage_printer():  # noqa: ANN202
    from kuairec.display.progress import Progress

    class Printer(Progress):
        def stage(self, name: str):  # noqa: ANN202
            from contextlib import contextmanager

            @contextmanager
            def timed():
                t0 = time.time()
                yield
                print(f"STAGE {name} {t0:.3f} {time.time():.3f}", flush=True)

            return timed()

    return Printer(enabled=False)


def child_local(args: argparse.Namespace) -> None:
    """The local engine's stages for ``--models`` (als stands in for spark_als)."""
    from kuairec.data.load import load_dataset
    from kuairec.evaluation.evaluate import evaluate
    from kuairec.evaluation.protocols import default_protocol
    from kuairec.models import create_model

    show = _stage_printer()
    with show.stage("read, check and clean"), tempfile.TemporaryDirectory() as cache:
        ds = load_dataset(args.data, cache_dir=Path(cache), progress=False)
    with show.stage("split"):
        train, test = default_protocol(ds)
    rows = {
        "pairs": int(ds.big.nnz + ds.small.nnz),
        "rows": sum(ds.report.rows_read.get(k, 0) for k in ("big", "small")),
    }
    ndcg = {}
    for name in args.models:
        name = "als" if name == "spark_als" else name
        model = create_model(name, {})
        with show.stage(f"{name}: fit"):
            model.fit(train)
        with show.stage(f"{name}: recommend"):
            items, _ = model.recommend(
                test.users, 50, exclude=test.exclude, candidates=test.candidates
            )
        with show.stage(f"{name}: evaluate"):
            res = evaluate(items, test, train, n_bootstrap=args.n_bootstrap)
        ndcg[name] = res.metrics["ndcg@10"]
    print("RESULT " + json.dumps({**rows, "ndcg@10": ndcg}), flush=True)


def child_spark(args: argparse.Namespace) -> None:
    from kuairec.models.spark_session import stop_session
    from kuairec.sparkengine import SparkRunConfig, run_spark

    settings = {"master": args.master, "driver_memory": args.driver_memory}
    if args.shuffle_partitions:
        settings["shuffle_partitions"] = args.shuffle_partitions
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        cfg = SparkRunConfig.from_dict(
            {
                "data": str(args.data),
                "models": args.models,
                "n_bootstrap": args.n_bootstrap,
                "work_dir": work,
                "spark": settings,
            }  # fmt: skip
        )
        res = run_spark(cfg, progress=_stage_printer())
        stop_session()
    rows = res.cleaning.get("rows_read", {})
    print("RESULT " + json.dumps({
        "rows": int(rows.get("big", 0) + rows.get("small", 0)),
        "ndcg@10": {n: m.result.metrics["ndcg@10"] for n, m in res.models.items()},
        "skipped": res.skipped, "spark": res.spark,
    }), flush=True)  # fmt: skip


# ---------------------------------------------------------------------- data
def data_folder(scale: float, seed: int, fmt: str) -> Path:
    """The cached synthetic data at ``scale`` (generated once), as CSV or Parquet."""
    from kuairec.data.default import ensure_synthetic

    folder = ensure_synthetic(scale, seed, progress=False)
    if fmt == "csv":
        return folder
    target = folder.with_name(folder.name + "-parquet")
    if not (target / "_DONE").exists():
        to_parquet(folder, target)
    return target


def to_parquet(folder: Path, target: Path) -> None:
    """Every CSV of ``folder`` as ``<stem>.parquet`` (Spark's reader, the schema's types)."""
    from kuairec.models.spark_session import stop_session
    from kuairec.sparkengine.config import SparkSettings
    from kuairec.sparkengine.read import locate, read_raw
    from kuairec.sparkengine.session import start

    spark = start(SparkSettings(master="local[*]", driver_memory="4g"))
    for source in locate(spark, str(folder)).values():
        if source is not None:
            stem = Path(source.location).stem
            read_raw(spark, source).drop("_corrupt").write.mode("overwrite").parquet(
                str(target / f"{stem}.parquet")
            )
    (target / "_DONE").write_text("")
    stop_session()


# ---------------------------------------------------------------------- commands
def _record(entry: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    entry = {**entry, "tree": entry.get("tree") or source_tree()}
    with out.open("a") as fh:
        fh.write(json.dumps(entry) + "\n")


def source_tree() -> str:
    """The commit of the kuairec source this run imports (the children import the same),
    ``+dirty`` when its ``src`` differs from it; "unknown" outside a git checkout. So a
    results line says which code it measured (before / after a change)."""
    import subprocess

    import kuairec

    src = Path(kuairec.__file__).resolve().parents[1]
    git = ["git", "-C", str(src)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def _load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cmd_engines(args: argparse.Namespace) -> None:
    env = dict(os.environ)
    for scale in args.scales:
        folder = data_folder(scale, args.seed, args.format)
        for engine in args.engines:
            cmd = [sys.executable, __file__, f"child-{engine}", "--data", str(folder),
                   "--models", *args.models, "--n-bootstrap", str(args.n_bootstrap),
                   "--master", args.master, "--driver-memory", args.driver_memory,
                   "--work", args.work]  # fmt: skip
            if args.shuffle_partitions:
                cmd += ["--shuffle-partitions", str(args.shuffle_partitions)]
            load = _load_average()
            got = run_measured(cmd, env)
            entry = {"kind": "engines", "engine": engine, "scale": scale, "format": args.format,
                     "load_before": load, "load_after": _load_average(), "machine": machine(),
                     **got}  # fmt: skip
            _record(entry, args.out)
            _print_engine(entry)


def _print_engine(e: dict) -> None:
    r = e["result"]
    load = f"{e['load_before']:.1f}->{e['load_after']:.1f}"
    print(f"\n{e['engine']} scale {e['scale']} ({e['format']}): rows {r.get('rows')}, "
          f"wall {e['wall_s']} s, peak {e['peak_total_mb']} MB, rc {e['rc']}, "
          f"load {load}, ndcg@10 {r.get('ndcg@10')}")  # fmt: skip
    print("| stage | s | driver MB | JVM MB | workers MB |\n|---|---|---|---|---|")
    for s in e["stages"]:
        print(f"| {s['stage']} | {s['seconds']:.1f} | {s['driver_mb']:.0f} | {s['jvm_mb']:.0f} "
              f"| {s['workers_mb']:.0f} |")  # fmt: skip


def cmd_ceiling(args: argparse.Namespace) -> None:
    points = []
    for scale in args.scales:
        folder = data_folder(scale, args.seed, "csv")
        with tempfile.TemporaryDirectory() as runs, tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, KUAIREC_DATA=str(folder), KUAIREC_CACHE=cache)
            cmd = [str(Path(sys.executable).with_name("kuairec")), "run", "--models",
                   "popularity,als,ease", "--no-validity", "--no-cold-items",
                   "--runs-dir", runs]  # fmt: skip
            got = run_measured(cmd, env)
        from kuairec.data.footprint import count_rows

        rows = count_rows(folder)
        entry = {"kind": "ceiling", "scale": scale, "rows": rows, "machine": machine(),
                 "load": _load_average(), **got}  # fmt: skip
        _record(entry, args.out)
        points.append((rows, got["peak_total_mb"]))
        print(
            f"scale {scale}: {rows} rows, peak {got['peak_total_mb']:.0f} MB, "
            f"{got['peak_total_mb'] * 2**20 / rows:.0f} B/row, wall {got['wall_s']} s, "
            f"rc {got['rc']}"
        )
    if len(points) >= 2:
        x, y = np.array(points, dtype=float).T
        b, a = np.polyfit(x, y, 1)
        print(
            f"fit: peak MB = {a:.0f} + {b * 1e6:.1f} per million rows "
            f"({b * 2**20:.0f} bytes per row); 24 GiB at {(24 * 1024 - a) / b / 1e6:.0f}M rows"
        )


def cmd_project(args: argparse.Namespace) -> None:
    """Fit each Spark stage's seconds = a + b * rows, project to 1B and 10B rows on N
    executors of C cores (the per-row part divided by N * C / local cores)."""
    entries = [json.loads(x) for x in args.out.read_text().splitlines() if x.strip()]
    spark = [
        e for e in entries if e.get("kind") == "engines" and e["engine"] == "spark" and e["rc"] == 0
    ]
    if len({e["scale"] for e in spark}) < 3:
        sys.exit("project needs Spark results at 3 or more sizes (run `engines` first)")
    local_cores = os.cpu_count() or 2
    stages = sorted({s["stage"] for e in spark for s in e["stages"]})
    print(f"| stage | a (s) | b (us/row, {local_cores} cores) | 1B rows, 10x8 cores (min) "
          "| 10B rows, 50x8 cores (min) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for stage in stages:
        pts = [
            (e["result"]["rows"], s["seconds"])
            for e in spark
            for s in e["stages"]
            if s["stage"] == stage
        ]
        if len(pts) < 3:
            continue
        x, y = np.array(pts, dtype=float).T
        b, a = np.polyfit(x, y, 1)
        b = max(b, 0.0)
        p1 = (a + b * 1e9 * local_cores / (10 * 8)) / 60
        p10 = (a + b * 1e10 * local_cores / (50 * 8)) / 60
        print(f"| {stage} | {a:.1f} | {b * 1e6:.3f} | {p1:.0f} | {p10:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "command", choices=["engines", "ceiling", "project", "child-local", "child-spark"]
    )
    parser.add_argument("--scales", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument(
        "--engines", nargs="+", default=["local", "spark"], choices=["local", "spark"]
    )
    parser.add_argument("--models", nargs="+", default=["popularity", "itemknn", "spark_als"])
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-bootstrap", type=int, default=200)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--shuffle-partitions", type=int, default=0)
    parser.add_argument("--work", default=tempfile.gettempdir(), help="Spark's tables go here")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    {"engines": cmd_engines, "ceiling": cmd_ceiling, "project": cmd_project,
     "child-local": child_local, "child-spark": child_spark}[args.command](args)  # fmt: skip


if __name__ == "__main__":
    main()
