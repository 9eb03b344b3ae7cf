"""One short GPU check of the deep models: epoch time on CPU and on the GPU, and metrics.

For each model (``autoencoder``, ``two_tower``) and each device (CPU, then the GPU when
torch sees one): the model's own ``fit`` (the Lightning path) on the fit part of the
pipeline's temporal validation split, for a fixed number of epochs (``patience`` set to
the epoch count, so early stopping never cuts it short; the best epoch is still
restored), then NDCG@10 (label wr>2) on the default protocol's fully observed test, with
a 95% bootstrap interval. Printed per run: seconds per epoch (fit time over epochs,
validation included), the validation curve and the test NDCG@10; then the GPU's speed-up
and the GPU-minus-CPU test difference. The GPU metrics should equal the CPU ones within
the seeds' spread (docs/models.md has the spread over seeds).

Budget: at scale 1.0 on one H100 with 16 CPU cores the whole script is meant to finish in
well under 8 minutes (data generation about 30 s and loading about 30 s the first time;
the two-tower CPU epochs dominate). ``--cpu-threads 0`` lets torch use every core for the
CPU runs (the models' default is one thread, for the shared 2-core development machine).

    python benchmarks/gpu_check.py                                # scale 1.0, both models
    python benchmarks/gpu_check.py --scale 0.05 --cpu-only        # a quick dry run on CPU
    python benchmarks/gpu_check.py --models two_tower --epochs two_tower=3
"""

from __future__ import annotations

import argparse
import time

from machine_info import machine  # benchmarks/ is on sys.path when run as a script

MODELS = ("autoencoder", "two_tower")
EPOCHS = {"autoencoder": 5, "two_tower": 2}  # fixed epochs per model (--epochs overrides)


def load(scale: float, seed: int):
    from kuairec.data.default import ensure_synthetic
    from kuairec.data.load import load_dataset
    from kuairec.evaluation.protocols import default_protocol
    from kuairec.evaluation.validation import validation_split

    train, test = default_protocol(load_dataset(ensure_synthetic(scale, seed), progress=False))
    fit, valid = validation_split(train, "temporal")
    return train, test, fit, valid


def one_run(name: str, device: str, epochs: int, threads: int, data) -> dict:
    """Fit ``name`` on ``device`` ("cpu" or "gpu") for ``epochs`` and evaluate it."""
    from kuairec.evaluation.fitted import evaluate_model
    from kuairec.models import create_model

    train, test, fit, valid = data
    params = {"max_epochs": epochs, "patience": epochs, "accelerator": device}
    if device == "cpu":
        params["num_threads"] = threads
    model = create_model(name, params)
    t0 = time.perf_counter()
    model.fit(fit, valid)
    seconds = time.perf_counter() - t0
    result = evaluate_model(model, test, train, ks=(10,), labels=("wr>2",), n_bootstrap=200)
    return {
        "epoch_s": seconds / epochs,
        "curve": model.history_.get("valid_ndcg@10", []),
        "ndcg": result.metrics["ndcg@10"],
        "ci": result.ci["ndcg@10"],
        "per_user": result.per_user["ndcg@10"],
    }


def report(name: str, device: str, r: dict) -> None:
    curve = ", ".join(f"{v:.4f}" for v in r["curve"])
    lo, hi = r["ci"]
    print(
        f"{name:12s} {device:4s} {r['epoch_s']:8.2f} s/epoch | valid NDCG@10 [{curve}] | "
        f"test NDCG@10 {r['ndcg']:.4f} [{lo:.4f}, {hi:.4f}]",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--epochs", nargs="*", default=[], help="name=N, e.g. two_tower=3")
    ap.add_argument("--cpu-threads", type=int, default=0, help="0: every core (torch's)")
    ap.add_argument("--cpu-only", action="store_true", help="skip the GPU (a dry run)")
    args = ap.parse_args()
    import torch

    from kuairec.evaluation.bootstrap import paired_bootstrap

    epochs = {**EPOCHS, **{k: int(v) for k, v in (e.split("=", 1) for e in args.epochs)}}
    gpu = torch.cuda.is_available() and not args.cpu_only
    print(machine(), "| GPU:", torch.cuda.get_device_name(0) if gpu else "none", flush=True)
    t0 = time.perf_counter()
    data = load(args.scale, args.seed)
    fit = data[2]
    print(
        f"scale {args.scale}: fit part {fit.n_users} users x {fit.n_items} videos, "
        f"{fit.interactions.nnz:,} pairs; loaded in {time.perf_counter() - t0:.0f} s"
    )
    for name in args.models:
        cpu = one_run(name, "cpu", epochs[name], args.cpu_threads, data)
        report(name, "cpu", cpu)
        if not gpu:
            continue
        cuda = one_run(name, "gpu", epochs[name], args.cpu_threads, data)
        report(name, "gpu", cuda)
        d = paired_bootstrap(cuda["per_user"], cpu["per_user"], n_bootstrap=1000, seed=0)
        print(f"{name:12s} GPU x{cpu['epoch_s'] / cuda['epoch_s']:.1f} faster per epoch; "
              f"test NDCG@10 GPU - CPU {d['diff']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]",
              flush=True)  # fmt: skip
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
