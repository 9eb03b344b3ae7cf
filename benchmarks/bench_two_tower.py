"""Two-tower training throughput: the input pipeline and the training step, before and after.

"Before" is the two-tower code at commit ``BEFORE`` (loaded from git into a throwaway
module: uniformly shuffled pairs, each batch's distinct users' histories densified per
batch, every tower run over every video at every step); "after" is the working tree
(user-chunked batches from index arrays, towers per distinct user and video, the cold
tower solved in closed form). Both build their batches from the same fit part (the
pipeline's temporal validation split of the default protocol's training log) with the
model's default settings, on one torch thread (the model's default), alternating
before / after so a change in the machine's load hits both. Printed per side:

- ``epoch start``: seconds from a fresh epoch to its first batch (the epoch's order);
- ``batches``: examples (training pairs) per second of building batches alone;
- ``steps``: examples per second of whole training steps (batch, forward, backward, AdamW)
  in a plain loop, and the mean loss (a sanity check, not comparable across sides);
- with ``--epoch``: one epoch of the model's real fit (Lightning, validation included) of
  the working tree, its seconds and validation NDCG@10.

``--softmax`` compares the working tree's sampled softmax with its softmax over the whole
catalogue (``softmax_over``) instead of before and after.

Not a timed test: record the figures in docs/models.md with the machine (and say whether
it was shared).

    python benchmarks/bench_two_tower.py --scale 0.2
    python benchmarks/bench_two_tower.py --data /tmp/s1 --steps 10 --epoch   # scale 1.0
    python benchmarks/bench_two_tower.py --data /tmp/s1 --softmax --steps 30 --repeats 1
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
from machine_info import machine  # benchmarks/ is on sys.path when run as a script

BEFORE = "8cdbaea"  # main before the issue-22 input pipeline
ROOT = Path(__file__).resolve().parents[1]


def before_module() -> types.ModuleType:
    """``models/two_tower_net.py`` at ``BEFORE`` as a module of its own."""
    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BEFORE}:src/kuairec/models/two_tower_net.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    mod = types.ModuleType("two_tower_net_before")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(src, f"{BEFORE}:two_tower_net.py", "exec"), mod.__dict__)
    return mod


def fit_part(args):
    from kuairec.data.default import ensure_synthetic
    from kuairec.data.load import load_dataset
    from kuairec.evaluation.protocols import default_protocol
    from kuairec.evaluation.validation import validation_split

    folder = args.data or ensure_synthetic(args.scale, args.seed)
    train, _ = default_protocol(load_dataset(folder, progress=False))
    return validation_split(train, "temporal")


def sides(fit, seed: int) -> dict:
    """name -> (loader factory, task) for the old and the new code, same data and config."""
    from kuairec.models import create_model
    from kuairec.models import two_tower_batches as bt
    from kuairec.models.two_tower import (
        batch_size,
        build_task,
        net_arrays,
        positive_log_share,
        rating_clip,
    )

    # the sampled softmax: the only one the old code has (the default's `auto` takes the
    # catalogue on small logs; ``--softmax`` compares the two)
    model = create_model("two_tower", {"seed": seed, "softmax_over": "sampled"})
    c, inter = model.config, fit.interactions
    model.rating_clip_ = rating_clip(inter.watch_ratio_mean, c.clip, c.rating_quantile)
    model.batch_size_ = batch_size(inter.nnz, c.batch_size)
    arrays = net_arrays(fit)
    log_q = positive_log_share(inter, c.threshold)
    history = model._history(inter.indptr, inter.indices, inter.watch_ratio_mean)
    warm = np.flatnonzero(arrays["warm"] > 0)
    pairs = (inter.indptr, inter.indices, inter.watch_ratio_mean, fit.n_items, warm)
    old = before_module()
    rules = model._rules()
    old_rules = old.BatchRules(**{k: getattr(rules, k) for k in old.BatchRules.__annotations__})
    old_settings = old.TaskSettings(
        loss=c.loss, logq=c.logq, rating_weight=c.rating_weight, rating_loss=c.rating_loss,
        learning_rate=c.learning_rate, weight_decay=c.weight_decay, cold_weight=1.0,
        cold_ridge=c.cold_ridge,
    )  # fmt: skip
    shape = vars(model.net_shape(fit.n_items))  # the old shape's fields (later ones are off)
    old_shape = old.NetShape(**{k: shape[k] for k in old.NetShape.__annotations__})
    old_net = old.TwoTowerNet(old_shape, **arrays)
    return {
        "before": (
            lambda: old.batch_loader(old.PairBatches(*pairs, old_rules), model.batch_size_, seed),
            old.TwoTowerTask(old_net, log_q, old_settings, history),
        ),
        "after": (
            lambda: bt.batch_loader(bt.PairBatches(*pairs, rules)),
            build_task(model.net_shape(fit.n_items), arrays, log_q, c, history),
        ),
    }


def softmax_sides(fit, seed: int) -> dict:
    """name -> (loader factory, task) of the working tree's model with the sampled and
    the catalogue softmax (``softmax_over``), from the parts its fit trains from."""
    from kuairec.models import create_model
    from kuairec.models import two_tower_batches as bt

    out = {}
    for over in ("sampled", "catalogue"):
        model = create_model("two_tower", {"seed": seed, "softmax_over": over})
        dataset, make_task, _, _ = model._training_parts(fit)
        out[over] = (lambda d=dataset: bt.batch_loader(d), make_task())
    return out


def examples_per_second(loader, n_batches: int, task=None) -> tuple[float, float, float]:
    """(seconds to the first batch of a fresh epoch: the epoch's order and one batch,
    examples/s over the next ``n_batches``, their mean loss)."""
    opt = task.configure_optimizers() if task is not None else None
    t0 = time.perf_counter()
    batches = iter(loader)
    next(batches)
    first = time.perf_counter() - t0
    n, losses, t0 = 0, [], time.perf_counter()
    for i, batch in zip(range(n_batches), batches, strict=False):
        n += int(batch["item"].numel())
        if task is not None:
            loss = task.training_step(batch, i)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    rate = n / (time.perf_counter() - t0)
    return first, rate, float(np.mean(losses)) if losses else float("nan")


def one_epoch(fit, valid, seed: int) -> None:
    from kuairec.models import create_model

    model = create_model("two_tower", {"seed": seed, "max_epochs": 1})
    t0 = time.perf_counter()
    model.fit(fit, valid)
    seconds = time.perf_counter() - t0
    n = fit.interactions.indices.size
    print(
        f"after: one epoch of fit (Lightning, validation, cold solve): {seconds:.1f} s, "
        f"{n / seconds:,.0f} examples/s; valid NDCG@10 {model.history_['valid_ndcg@10'][0]:.4f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--data", type=Path, default=None, help="a KuaiRec-shaped folder instead")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batches", type=int, default=40, help="batches per 'batches' figure")
    ap.add_argument("--steps", type=int, default=20, help="steps per 'steps' figure")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--epoch", action="store_true", help="also one real epoch (after)")
    ap.add_argument(
        "--softmax", action="store_true", help="sampled against catalogue softmax (no before)"
    )
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    print(machine(), f"| torch {torch.__version__}, 1 thread")
    fit, valid = fit_part(args)
    print(f"fit part: {fit.n_users} users x {fit.n_items} videos, "
          f"{fit.interactions.indices.size:,} pairs", flush=True)  # fmt: skip
    built = softmax_sides(fit, args.seed) if args.softmax else sides(fit, args.seed)
    for rep in range(args.repeats):
        for name, (loader, task) in built.items():
            first, batches, _ = examples_per_second(loader(), args.batches)
            _, steps, loss = examples_per_second(loader(), args.steps, task)
            print(
                f"[{rep}] {name:9s} epoch start {first:5.2f} s | batches {batches:10,.0f} "
                f"examples/s | steps {steps:8,.0f} examples/s (mean loss {loss:.3f})",
                flush=True,
            )
    if args.epoch:
        one_epoch(fit, valid, args.seed)


if __name__ == "__main__":
    main()
