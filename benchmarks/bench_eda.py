"""Benchmark the dataset report: ``write_eda_report`` on data of a given scale.

Prints the seconds and peak RSS of loading and of the report itself (the report's peak is
measured after resetting the process's high-water mark, so loading does not count).
It is not a timed test; record its figures in docs/benchmarks-eda.md with the machine.

    python benchmarks/bench_eda.py                     # synthetic, scale 1.0 (12.5M rows)
    python benchmarks/bench_eda.py --scale 0.2
    python benchmarks/bench_eda.py --data "KuaiRec 2.0/data"
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from machine_info import machine  # benchmarks/ is on sys.path when run as a script


def rss_mb(field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of this process, in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    """Reset the high-water mark (Linux: write 5 to clear_refs); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=None, help="a KuaiRec data folder")
    ap.add_argument("--cache", type=Path, default=None, help="KUAIREC_CACHE (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="report folder (default: a temp dir)")
    args = ap.parse_args()
    os.environ["KUAIREC_CACHE"] = str(args.cache or tempfile.mkdtemp(prefix="kuairec-bench-"))

    from kuairec.data.default import ensure_synthetic
    from kuairec.data.load import load_dataset
    from kuairec.eda import write_eda_report

    t0 = time.perf_counter()
    folder = args.data or ensure_synthetic(args.scale, args.seed, progress=False)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = load_dataset(folder)
    ds.log("big"), ds.log("small")  # warm the cache: the report reads the logs from it
    t_load = time.perf_counter() - t0
    load_peak, base = rss_mb("VmHWM"), rss_mb("VmRSS")
    exact = reset_peak()
    out = args.out or Path(tempfile.mkdtemp(prefix="kuairec-eda-")) / "eda"
    t0, c0 = time.perf_counter(), time.process_time()
    path = write_eda_report(ds, out, progress=True)
    t_report, c_report = time.perf_counter() - t0, time.process_time() - c0
    peak = rss_mb("VmHWM")
    n_png = len(list(path.parent.glob("*.png")))
    print(f"machine: {machine()}")
    print(f"python {sys.version.split()[0]}; data: {folder}")
    print(
        f"rows: big {int(ds.big.views.sum()):,}, small {int(ds.small.views.sum()):,}; "
        f"{ds.n_users:,} users x {ds.n_items:,} videos"
    )
    print(
        f"generate (if absent): {t_gen:.1f} s; load + read logs: {t_load:.1f} s, "
        f"peak RSS {load_peak:,.0f} MB"
    )
    print(
        f"report: {t_report:.1f} s wall, {c_report:.1f} s CPU, {n_png} figures, peak RSS "
        f"{peak:,.0f} MB ({'since reset' if exact else 'whole process'}; "
        f"{base:,.0f} MB resident before)"
    )
    print(f"report: {path}")


if __name__ == "__main__":
    main()
