"""One short GPU check for the deep models: train each for a few epochs on CPU and, when
torch sees a GPU, on ``cuda``; print seconds per epoch and the speed-up.

Each model is fitted through its own ``fit`` (the Lightning path, ``accelerator`` from the
config) for a fixed number of epochs without a validation split, and then scores every
user (to check the GPU-trained weights come back to CPU for scoring). Add a model by
adding its name (and any settings) to ``MODELS``.

    python benchmarks/gpu_check.py                          # scale 1.0 (generated once)
    python benchmarks/gpu_check.py --scale 0.2 --epochs 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from machine_info import machine  # benchmarks/ is on sys.path when run as a script

# name -> settings for the check (fixed epochs; everything else the model's defaults)
MODELS: dict[str, dict] = {
    "autoencoder": {},
    "autoencoder_seed_config": {"max_seconds": None},
    # "two_tower": {},
}


def fit_seconds(name: str, settings: dict, train, accelerator: str, epochs: int):
    from kuairec.models import create_model

    params = {**settings, "max_epochs": epochs, "accelerator": accelerator, "num_threads": 0}
    model = create_model(name, params)  # None lifts a preset's cap (max_seconds)
    t0 = time.perf_counter()
    model.fit(train)
    seconds = (time.perf_counter() - t0) / epochs
    scores = model.score(np.arange(min(train.n_users, 512)))
    assert np.isfinite(scores).all(), f"{name} on {accelerator}: non-finite scores"
    return seconds, model.history_["train_loss"][-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    args = ap.parse_args()
    import torch

    from kuairec.data.default import ensure_synthetic
    from kuairec.data.load import load_dataset
    from kuairec.evaluation.protocols import default_protocol

    gpu = torch.cuda.is_available()
    print(machine(), "| GPU:", torch.cuda.get_device_name(0) if gpu else "none")
    train, _ = default_protocol(load_dataset(ensure_synthetic(args.scale, args.seed)))
    print(f"scale {args.scale}: {train.n_users} users x {train.n_items} items")
    for name in args.models:
        cpu, cpu_loss = fit_seconds(name, MODELS.get(name, {}), train, "cpu", args.epochs)
        line = f"{name:26s} cpu {cpu:7.2f} s/epoch (loss {cpu_loss:.4g})"
        if gpu:
            fit_seconds(name, MODELS.get(name, {}), train, "gpu", 1)  # warm-up (CUDA init)
            cuda, cuda_loss = fit_seconds(name, MODELS.get(name, {}), train, "gpu", args.epochs)
            line += f" | cuda {cuda:7.2f} s/epoch (loss {cuda_loss:.4g}) | x{cpu / cuda:.1f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
