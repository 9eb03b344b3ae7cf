"""Benchmark the data layer: raw polars parse vs cold and warm ``kuairec data describe``.

Every measurement is a separate child process; its wall time is measured around it and
its peak RSS and CPU time come from ``os.wait4`` (that child's own rusage). Per repeat, in
this order: a raw ``polars.read_csv`` (default options) of big_matrix.csv and
small_matrix.csv, a cold ``kuairec data describe`` (fresh ``KUAIREC_CACHE``), then a warm
one (same cache); with ``--before SRC`` also a cold describe of another source tree (e.g.
``git archive <commit> src | tar -x -C /tmp/before``), so before and after are timed side
by side. The ratios are of measurements taken in the same run, interleaved.

The page cache: ``--page-cache warm`` (default) reads every CSV file of the folder once
before each measurement, so every one starts with the files in memory (warm to warm);
``--page-cache drop`` empties it before each one (``/proc/sys/vm/drop_caches``, root
only), so every one reads the disk. The table is printed and written, with the machine,
its load average and the page-cache mode, to ``docs/benchmarks-data.md``.

    python benchmarks/bench_data.py                    # generate scale 1.0 (if needed)
    python benchmarks/bench_data.py --data "KuaiRec 2.0/data" --repeats 3
    python benchmarks/bench_data.py --scale 0.2 --out /tmp/bench-data.md
    python benchmarks/bench_data.py --data /tmp/s1 --before /tmp/before/src --page-cache drop

Targets (scale 1.0): cold <= 2x raw, cold peak RSS <= 2 GB, warm <= 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAW = (
    "import sys, polars as pl; d = sys.argv[1]; "
    "a = pl.read_csv(d + '/big_matrix.csv'); b = pl.read_csv(d + '/small_matrix.csv'); "
    "print(a.height, b.height)"
)


PAGE_CACHE = {
    "warm": "warm (every CSV read once before each measurement)",
    "drop": "dropped before each measurement (every one reads the disk)",
}


def machine() -> dict[str, str]:
    from machine_info import cpu_model, memory_gib

    cpu, mem = cpu_model("unknown"), memory_gib()
    import numpy
    import polars

    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{mem:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": f"polars {polars.__version__}, numpy {numpy.__version__}",
    }


def measure(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss / 1024,  # KiB on Linux
    }


def ensure_data(args: argparse.Namespace) -> Path:
    if args.data is not None:
        return Path(args.data)
    from kuairec import config

    target = config.cache_dir() / "bench" / f"scale{args.scale:g}-seed{args.seed}"
    if not (target / "big_matrix.csv").exists():
        from kuairec.data.synthetic import generate

        print(f"generating synthetic data at scale {args.scale:g} into {target} ...")
        tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=target.parent))
        try:
            generate(tmp, scale=args.scale, seed=args.seed, progress=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def prepare_page_cache(data: Path, mode: str) -> None:
    """Read every CSV file of ``data`` once (``warm``) or empty the page cache (``drop``)."""
    if mode == "drop":
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return
    for path in sorted(data.glob("*.csv")):
        with open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass


def run(
    data: Path, repeats: int, page_cache: str = "warm", before: Path | None = None
) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {"raw": [], "cold": [], "warm": []}
    if before is not None:
        results["before"] = []
    describe = ["-m", "kuairec", "data", "describe", "--data", str(data)]
    for k in range(repeats):
        cache = Path(tempfile.mkdtemp(prefix="kuairec-bench-cache-"))
        env = {**os.environ, "KUAIREC_CACHE": str(cache)}
        if before is not None:
            env_before = {**env, "PYTHONPATH": str(before)}
            prepare_page_cache(data, page_cache)
            results["before"].append(measure([sys.executable, *describe], env_before))
            shutil.rmtree(cache / "datasets", ignore_errors=True)
        try:
            prepare_page_cache(data, page_cache)
            results["raw"].append(measure([sys.executable, "-c", RAW, str(data)], env))
            prepare_page_cache(data, page_cache)
            results["cold"].append(measure([sys.executable, *describe], env))
            results["warm"].append(measure([sys.executable, *describe], env))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        row = ", ".join(
            f"{name} {r[-1]['wall']:.2f}s wall {r[-1]['cpu']:.2f}s cpu {r[-1]['rss']:.0f}MB"
            for name, r in results.items()
        )
        print(f"repeat {k + 1}/{repeats} (load {os.getloadavg()[0]:.2f}): {row}", flush=True)
    return results


def table(results: dict[str, list[dict[str, float]]]) -> list[str]:
    labels = {
        "raw": "raw polars.read_csv, big + small",
        "cold": "cold `kuairec data describe`",
        "warm": "warm `kuairec data describe`",
        "before": "cold `kuairec data describe`, --before tree",
    }
    lines = [
        "| run | wall min (s) | wall median (s) | CPU median (s) | peak RSS max (MB) |",
        "|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        walls = [r["wall"] for r in runs]
        cpus = [r["cpu"] for r in runs]
        rss = max(r["rss"] for r in runs)
        lines.append(
            f"| {labels[name]} | {min(walls):.2f} | {statistics.median(walls):.2f} | "
            f"{statistics.median(cpus):.2f} | {rss:,.0f} |"
        )
    return lines


def verdict(results: dict[str, list[dict[str, float]]]) -> list[str]:
    med = {n: statistics.median(r["wall"] for r in runs) for n, runs in results.items()}
    cpu = {n: statistics.median(r["cpu"] for r in runs) for n, runs in results.items()}
    rss = max(r["rss"] for r in results["cold"])

    def ok(flag: bool) -> str:
        return "met" if flag else "NOT met"

    return [
        f"- cold / raw wall (medians): {med['cold'] / med['raw']:.2f}x "
        f"(target <= 2x: {ok(med['cold'] <= 2 * med['raw'])}); "
        f"CPU: {cpu['cold'] / cpu['raw']:.2f}x",
        f"- cold peak RSS: {rss:,.0f} MB (target <= 2,000 MB: {ok(rss <= 2000)})",
        f"- warm describe: {med['warm']:.2f} s median (target <= 1.5 s: {ok(med['warm'] <= 1.5)})",
        *(
            [
                f"- --before tree, cold / raw wall (medians): {med['before'] / med['raw']:.2f}x; "
                f"after / before: {med['cold'] / med['before']:.2f}x wall, "
                f"{cpu['cold'] / cpu['before']:.2f}x CPU"
            ]
            if "before" in med
            else []
        ),
    ]


def report(
    data: Path, results: dict, load: tuple[float, float], info: dict, page_cache: str
) -> str:
    big = data / "big_matrix.csv"
    small = data / "small_matrix.csv"
    size = (big.stat().st_size + small.stat().st_size) / 2**30
    with open(big, "rb") as fh:
        big_rows = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b"")) - 1
    lines = [
        "# Data layer benchmark",
        "",
        "Produced by `python benchmarks/bench_data.py` (each run a separate process: wall",
        "time around it, peak RSS and CPU from its own rusage).",
        "",
        f"- data: `{data}` (big_matrix.csv {big_rows:,} rows; big + small {size:.2f} GiB)",
        f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, {info['os']}",
        f"- software: Python {info['python']}, {info['versions']}",
        f"- load average (1 min) before / after: {load[0]:.2f} / {load[1]:.2f} "
        "(other jobs shared the machine when above 0)",
        f"- repeats: {len(results['raw'])}, interleaved; page cache: {PAGE_CACHE[page_cache]}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        *table(results),
        "",
        *verdict(results),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="folder with the CSV files")
    parser.add_argument("--scale", type=float, default=1.0, help="synthetic scale if no --data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks-data.md")
    parser.add_argument("--page-cache", choices=sorted(PAGE_CACHE), default="warm")
    parser.add_argument(
        "--before", type=Path, default=None, help="another tree's src/ to time side by side"
    )
    args = parser.parse_args(argv)
    data = ensure_data(args)
    load_before = os.getloadavg()[0]
    results = run(data, args.repeats, args.page_cache, args.before)
    load_after = os.getloadavg()[0]
    text = report(data, results, (load_before, load_after), machine(), args.page_cache)
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, args.out)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
