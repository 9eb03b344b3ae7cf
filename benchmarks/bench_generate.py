"""Benchmark the synthetic generator: wall time, peak RSS and output size at a scale.

Each scale runs in a fresh child process, so its peak RSS (from ``/proc/<pid>/status``
VmHWM, read by the child itself just before it exits) is that run's alone. Output goes to
a temporary folder that is deleted afterwards unless ``--keep`` is given. Record the
printed figures in docs/synthetic.md with the machine.

    python benchmarks/bench_generate.py                  # scale 1.0 (12.5M big rows)
    python benchmarks/bench_generate.py --scale 0.2 1.0
    python benchmarks/bench_generate.py --scale 1.0 --keep /tmp/kuairec-syn
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from machine_info import machine  # benchmarks/ is on sys.path when run as a script

CHILD = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from kuairec.data.synthetic import generate
summary = generate(sys.argv[1], scale=float(sys.argv[2]), seed=int(sys.argv[3]), progress=False)
wall = time.perf_counter() - t0
peak = 0.0
for line in Path("/proc/self/status").read_text().splitlines():
    if line.startswith("VmHWM:"):
        peak = int(line.split()[1]) / 1024
print(json.dumps({"wall_s": wall, "peak_rss_mb": peak, "summary": summary}))
"""


def run_one(scale: float, seed: int, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(out), str(scale), str(seed)],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["bytes"] = sum(p.stat().st_size for p in out.iterdir())
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, nargs="+", default=[1.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="keep the output of the last scale")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    print(f"python {platform.python_version()}")
    for scale in args.scale:
        tmp = Path(tempfile.mkdtemp(prefix="kuairec-bench-gen-"))
        out = tmp / "data"
        try:
            r = run_one(scale, args.seed, out)
            s = r["summary"]
            print(
                f"scale {scale:g}: {r['wall_s']:.1f} s wall (generate() says {s['seconds']} s), "
                f"peak RSS {r['peak_rss_mb']:.0f} MB, {r['bytes'] / 2**20:.0f} MiB written; "
                f"{s['users']} users x {s['videos']} videos, big {s['big_rows']:,} rows "
                f"({s['big_duplicates_added']:,} duplicates), small {s['small_rows']:,} rows, "
                f"item_daily {s['item_daily_rows']:,} rows"
            )
            if args.keep is not None and scale == args.scale[-1]:
                shutil.rmtree(args.keep, ignore_errors=True)
                shutil.move(str(out), args.keep)
                print(f"kept in {args.keep}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
