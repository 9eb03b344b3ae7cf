"""The torch models' fits with one torch thread against two, side by side.

For ``autoencoder``, ``autoencoder_seed_config`` and ``two_tower``: one fit of a fixed
number of epochs (``--epochs``, no validation, so both sides do the same work) on the
fit part of the default protocol's training log (the pipeline's temporal validation
split), with ``num_threads`` 1 and then 2, alternating, ``--repeats`` times. Prints the
seconds of each fit, the ratio, and whether two fits with the same thread count gave
byte-identical scores (they must: a fixed thread count is a deterministic setting)
and how far the 1-thread and 2-thread scores are apart (the reduction order differs).

    python benchmarks/bench_torch_threads.py --data <scale-1.0 folder> --epochs 1

``--pair A B`` measures another way to fill two cores: the fits of A and B at once in
two processes (forked once the data is loaded) with one torch thread each, then one
after the other with two threads each; it prints both wall times and their ratio.

    python benchmarks/bench_torch_threads.py --data <scale-1.0 folder> --epochs 3 \
        --pair autoencoder_seed_config autoencoder_seed_config

Not a timed test: record the figures in docs/ with the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from bench_two_tower import fit_part  # the same fit part (benchmarks/ is on sys.path)
from machine_info import machine

MODELS = {
    "autoencoder": {},
    "autoencoder_seed_config": {},
    "two_tower": {"epoch_pairs": 0},
}


def one_fit(name: str, fit, threads: int, epochs: int) -> tuple[float, np.ndarray]:
    from kuairec.models import create_model

    settings = {**MODELS[name], "num_threads": threads, "max_epochs": epochs}
    model = create_model(name, settings)
    t0 = time.perf_counter()
    model.fit(fit)
    seconds = time.perf_counter() - t0
    users = np.arange(min(500, fit.n_users))
    return seconds, model.score(users)


def _child(name: str, fit, epochs: int, queue) -> None:  # noqa: ANN001
    seconds, _ = one_fit(name, fit, 1, epochs)
    queue.put((name, seconds))


def pair(names: list[str], fit, epochs: int) -> None:  # noqa: ANN001
    """Two fits at once (1 thread each, two processes), then one after the other (2
    threads each)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")  # the children share the loaded fit part
    queue = ctx.Queue()
    t0 = time.perf_counter()
    procs = [ctx.Process(target=_child, args=(n, fit, epochs, queue)) for n in names]
    for proc in procs:
        proc.start()
    each = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    together = time.perf_counter() - t0
    # after the processes: they are forked before this process has run torch's threads
    t0 = time.perf_counter()
    alone = [one_fit(name, fit, 2, epochs)[0] for name in names]
    sequential = time.perf_counter() - t0
    print("| fits | one after the other, 2 threads: s (each) | at once, 1 thread each, "
          "2 processes: s (each) | ratio |")  # fmt: skip
    print("|---|---|---|---|")
    print(f"| {' + '.join(names)} | {sequential:.1f} ({', '.join(f'{a:.1f}' for a in alone)})"
          f" | {together:.1f} ({', '.join(f'{s:.1f}' for _, s in each)}) | "
          f"{sequential / together:.2f}x |", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--pair", nargs=2, default=None, metavar="MODEL")
    args = ap.parse_args()
    print(machine(), f"load average before: {os.getloadavg()[0]:.2f}")
    fit, _ = fit_part(args)
    print(f"fit part: {fit.n_users:,} users, {fit.n_items:,} videos, "
          f"{fit.interactions.nnz:,} pairs; {args.epochs} epoch(s)")  # fmt: skip
    if args.pair:
        pair(args.pair, fit, args.epochs)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return
    print("| model | 1 thread: s | 2 threads: s | ratio | same scores, same threads | "
          "max abs diff 1 vs 2 threads |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name in args.models:
        times: dict[int, list[float]] = {1: [], 2: []}
        scores: dict[int, list[np.ndarray]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for threads in (1, 2):
                s, sc = one_fit(name, fit, threads, args.epochs)
                times[threads].append(s)
                scores[threads].append(sc)
        same = all(np.array_equal(scores[t][0], x) for t in (1, 2) for x in scores[t][1:])
        diff = float(np.max(np.abs(scores[1][0] - scores[2][0])))
        t1, t2 = min(times[1]), min(times[2])
        print(f"| {name} | {t1:.1f} | {t2:.1f} | {t1 / t2:.2f}x | {same} | {diff:.2e} |",
              flush=True)  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
