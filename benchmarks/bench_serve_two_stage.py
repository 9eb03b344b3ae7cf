"""Serving ``two_stage``: where a request's time goes, and latency at a fixed rate.

1. In process: for ``--users`` known users one request at a time (k=10), the time of
   each stage of a two-stage list: retrieval (every retriever's top-N and their union),
   the candidates' features, LightGBM's prediction (and the rest: the fallback order,
   the top-k).
2. A real ``kuairec serve --run RUN --workers W`` on 127.0.0.1, then Debian's ``hey`` at a
   fixed rate of ``--rate`` requests/s (``-c 4 -q rate/4``) for ``--seconds``: GET of the
   median known user's list, and POST of a new user's 50-video history, with
   ``model=two_stage``; p50 / p99 and errors.

    python benchmarks/bench_serve_two_stage.py --run runs/<id-with-two_stage> \
        [--workers 2] [--rate 100] [--seconds 60]

The load generator shares the machine's cores with the server: run it on an otherwise
idle machine.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_serve  # noqa: E402  (the server, the workload, hey's output)

MODEL = "two_stage"


def stage_split(run: Path, n_users: int) -> dict[str, float]:
    """Mean milliseconds per one-user request in each stage (in this process)."""
    from kuairec.display.progress import Progress
    from kuairec.models.base import Recommender
    from kuairec.models.matrices import select_rows
    from kuairec.models.two_stage.features import GROUPS, candidate_features
    from kuairec.pipeline.experiment import prepare
    from kuairec.pipeline.saved import config_for_model_dir

    folder = run / "models" / MODEL
    cfg = config_for_model_dir(folder, {})
    train = prepare(cfg, Progress(enabled=False)).train
    model = Recommender.load(folder, expected_fingerprint=train.fingerprint())
    c = model.config
    groups = tuple(g for g in GROUPS if g in c.feature_groups)
    users = np.random.default_rng(0).choice(train.n_users, size=n_users, replace=False)
    spent = {"retrieval": 0.0, "features": 0.0, "ranking": 0.0, "whole recommend": 0.0}
    for u in users:
        rows = np.array([u])
        hist = select_rows(model.context_.history, rows)
        t0 = time.perf_counter()
        cand = model._retrieve(hist, rows)  # noqa: SLF001 - the stages, timed apart
        t1 = time.perf_counter()
        feats = candidate_features(model.context_, cand, hist, rows, groups,
                                   frozenset(c.drop_features))  # fmt: skip
        t2 = time.perf_counter()
        if model.booster_ is not None:
            model.booster_.predict(feats.values, num_threads=c.num_threads)
        t3 = time.perf_counter()
        model.recommend(rows, 10, exclude=train.interactions.csr("ones")[rows])
        t4 = time.perf_counter()
        for key, dt in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            spent[key] += dt
    return {k: 1000 * v / n_users for k, v in spent.items()}


def fixed_rate(url: str, rate: int, seconds: int, body: str | None = None) -> dict:
    """hey at ``rate`` requests/s over 4 connections."""
    cmd = ["hey", "-z", f"{seconds}s", "-c", "4", "-q", f"{rate / 4:g}", "-t", "10"]
    if body is not None:
        cmd += ["-m", "POST", "-T", "application/json", "-d", body]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": bench_serve._pct(out, 50),  # noqa: SLF001
        "p99_ms": bench_serve._pct(out, 99),  # noqa: SLF001
        "ok": int(codes.get("200", 0)),
        "errors": sum(int(n) for c, n in codes.items() if c != "200"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--users", type=int, default=200, help="requests timed in process")
    args = ap.parse_args()
    split = stage_split(args.run, args.users)
    print(f"in process, one known user's k=10 list, mean of {args.users} requests (ms):")
    print("| " + " | ".join(split) + " |\n|" + "---|" * len(split))
    print("| " + " | ".join(f"{v:.2f}" for v in split.values()) + " |")
    work = bench_serve.workload(args.run)
    with tempfile.TemporaryDirectory() as tmp:
        proc, port, started = bench_serve.start_server(
            args.run, args.workers, Path(tmp) / "server.log"
        )
        try:
            base = f"http://{bench_serve.HOST}:{port}"
            get = f"{base}/users/{work['median_user']}/recommendations?k=10&model={MODEL}"
            post = f"{base}/recommendations"
            body = json.dumps({**json.loads(work["bodies"][0]), "model": MODEL})
            rows = {
                "GET known user": fixed_rate(get, args.rate, args.seconds),
                "POST new user (50 videos)": fixed_rate(post, args.rate, args.seconds, body),
            }
        finally:
            bench_serve.stop_server(proc)
    print(f"\nkuairec serve, {args.workers} workers (ready in {started:.1f} s), hey at "
          f"{args.rate}/s for {args.seconds} s:")  # fmt: skip
    print("| request | req/s | p50 ms | p99 ms | ok | errors |\n|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['ok']} | {r['errors']} |")  # fmt: skip


if __name__ == "__main__":
    main()
