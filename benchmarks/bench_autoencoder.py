"""Epoch time of the autoencoder on CPU: the Lightning path against a plain PyTorch loop.

Both train the same network from the same seed on the same batches (the CSR rows of the
training matrix densified per batch, Adam), side by side in one process, alternating
(plain, Lightning, plain, Lightning...) so that a change in the machine's load hits both.
Measured for the seed configuration (10,728 -> 256 -> 128 -> 256 -> 10,728 at scale 1.0,
BCE on binary rows, batch 256) and for the tuned default. Without validation, so both
sides do the same work; the Lightning figure includes its per-fit setup. The goal is
Lightning within 1.2x of the plain loop. Not a timed test: record the figures in docs/
with the machine (and say whether the CPU was shared).

    python benchmarks/bench_autoencoder.py                 # scale 1.0 (generates it once)
    python benchmarks/bench_autoencoder.py --scale 0.2 --epochs 2 --repeats 1

``--converge`` trains the seed configuration (``autoencoder_seed_config``) to convergence
instead: early stopping on the validation split (``--patience`` epochs without a better
NDCG@10) under a generous epoch cap (``--max-epochs``), on a data set of
``benchmarks/ae_select.py`` (the synthetic default at scale 0.2, or a real log from
/work/devdata); it prints the learning curve, the best epoch, the test NDCG@10 (wr>2)
with its 95% interval beside EASE's, and writes the curve (JSON and PNG) to ``--out``.

    python benchmarks/bench_autoencoder.py --converge --data synthetic --max-epochs 3000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from machine_info import machine  # benchmarks/ is on sys.path when run as a script

CONFIGS = {"seed": "autoencoder_seed_config", "default": "autoencoder"}


def train_matrix(scale: float, seed: int):
    from kuairec.data.default import ensure_synthetic
    from kuairec.data.load import load_dataset
    from kuairec.evaluation.protocols import default_protocol

    train, _ = default_protocol(load_dataset(ensure_synthetic(scale, seed), progress=False))
    return train


def plain_loop(model, x, epochs: int) -> float:
    """Seconds per epoch of a hand-written loop over the same net, loader and optimiser."""
    import lightning as L
    import torch

    from kuairec.models import autoencoder_net as net

    c = model.config
    L.seed_everything(c.seed, verbose=False)
    module = model._build(x.shape[1])
    opt = module.configure_optimizers()
    loader = net.row_loader(x, c.batch_size, c.seed)
    module.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            loss = module.training_step(batch, 0)
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    return (time.perf_counter() - t0) / epochs


def lightning_path(model, x, epochs: int) -> float:
    """Seconds per epoch through kuairec.models.torch_train (setup included)."""
    from kuairec.models import autoencoder_net as net
    from kuairec.models.torch_train import TrainSettings, train_module

    c = model.config
    settings = TrainSettings("bench", max_epochs=epochs, seed=c.seed, num_threads=0)
    loader = net.row_loader(x, c.batch_size, c.seed)
    t0 = time.perf_counter()
    train_module(lambda: model._build(x.shape[1]), loader, settings)
    return (time.perf_counter() - t0) / epochs


def converge(args: argparse.Namespace) -> None:
    """The seed configuration trained to convergence (see the module docstring)."""
    import json

    import ae_select

    from kuairec.models import create_model

    d = ae_select.dataset(args.data, args.seed)
    params = {"max_epochs": args.max_epochs, "patience": args.patience, "num_threads": 1}
    t0 = time.perf_counter()
    model = create_model("autoencoder_seed_config", params).fit(d["fit"], d["valid"])
    fit_s = time.perf_counter() - t0
    h = model.history_
    curve = h["valid_ndcg@10"]
    step = max(1, len(curve) // 20)
    for e in range(0, len(curve), step):
        print(f"  epoch {e:5d}  loss {h['train_loss'][e]:.5f}  valid NDCG@10 {curve[e]:.4f}")
    test = ae_select.ndcg(ae_select.top(model, d["test"]), d["test"], d["train"], 1000)
    full = d["train"].interactions.csr("watch_ratio_mean")
    hist = ae_select.ndcg(ae_select.top(model, d["test"], full), d["test"], d["train"], 1000)
    ease = ae_select.ease_reference(d)
    out = {
        "data": args.data, "epochs": len(curve), "best_epoch": model.best_epoch_,
        "best_valid": max(curve), "fit_seconds": round(fit_s, 1),
        "seconds_per_epoch": round(fit_s / len(curve), 3), "max_epochs": args.max_epochs,
        "patience": args.patience, "test": test["ndcg"], "test_ci": test["ci"],
        "test_hist": hist["ndcg"], "ease": ease["ndcg"], "ease_ci": ease["ci"],
    }  # fmt: skip
    print(json.dumps(out))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"seed_config-{args.data}"
    stem.with_suffix(".json").write_text(json.dumps({**out, "history": h}))
    plot_curve(h, model.best_epoch_, f"autoencoder_seed_config on {args.data}", stem)


def plot_curve(h: dict, best: int | None, title: str, stem) -> None:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5), constrained_layout=True)
    left.plot(h["epoch"], h["train_loss"])
    left.set(xlabel="epoch", ylabel="train loss (BCE)", yscale="log")
    right.plot(h["epoch"], h["valid_ndcg@10"])
    if best is not None:
        right.axvline(best, ls=":", color="grey")
    right.set(xlabel="epoch", ylabel="validation NDCG@10 (dotted: best epoch)")
    fig.suptitle(title)
    fig.savefig(stem.with_suffix(".png"), dpi=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    ap.add_argument("--converge", action="store_true", help="the seed config to convergence")
    ap.add_argument("--data", default="synthetic", help="--converge: an ae_select data set")
    ap.add_argument("--max-epochs", type=int, default=3000)
    ap.add_argument("--patience", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("/tmp/ae/converge"))
    args = ap.parse_args()
    if args.converge:
        return converge(args)
    import torch

    from kuairec.models import create_model

    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine(), f"torch threads {torch.get_num_threads()}")
    train = train_matrix(args.scale, args.seed)
    print(f"scale {args.scale}: {train.n_users} users x {train.n_items} items")
    for label, name in CONFIGS.items():
        model = create_model(name, {"num_threads": 0})
        x = model._input(train.interactions)
        dims = [train.n_items, *model.config.hidden_dims]
        shape = " -> ".join(map(str, dims + dims[-2::-1]))
        plain, light = [], []
        for _ in range(args.repeats):
            plain.append(plain_loop(model, x, args.epochs))
            light.append(lightning_path(model, x, args.epochs))
        p, q = min(plain), min(light)
        print(
            f"{label:8s} {shape} batch {model.config.batch_size}: plain {p:.2f} s/epoch, "
            f"lightning {q:.2f} s/epoch, ratio {q / p:.2f} (best of {args.repeats})"
        )


if __name__ == "__main__":
    main()
