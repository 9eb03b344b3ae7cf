"""Which validation split makes tuning help on the test? Defaults vs tuned on random/temporal.

For each dataset (generated synthetic data, optionally reshaped with a shape from
``bpr_shapes.py``) and each model: the test NDCG@10 (label wr>2, default protocol: big
matrix -> fully observed small matrix) of the model's defaults, and of the parameters
chosen by ``kuairec.pipeline.tuning.study`` on each validation split of the training log
(``random``: 20% of each test user's pairs; ``temporal``: the last 7 days), refitted on
the whole training set. ``study`` keeps the defaults unless the best trial beats them on
the validation split with a paired 95% interval above 0, so a tuned cell equal to the
defaults means "kept". Each tuned cell shows the paired test difference to the defaults
with its 95% interval, and ``*`` when the parameters changed.

    python benchmarks/validation_split.py                           # scale 0.2, seeds 0 1
    python benchmarks/validation_split.py --seeds 0 --shapes few_rows --models ease als
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bpr_shapes  # noqa: E402  (the shapes and the fit-and-evaluate helper)


def tuned(name: str, train, test, kind: str, trials: int, seed: int) -> dict:  # noqa: ANN001
    """Tune on the ``kind`` validation split, refit on all of ``train``, test."""
    from kuairec.pipeline.experiment import Validation
    from kuairec.pipeline.tuning import study

    t0 = time.perf_counter()
    split = Validation(train, kind, "wr>2", test.users, seed)
    record, _ = study(name, split, n_trials=trials, seed=seed)
    out = bpr_shapes.ndcg(name, record.best_params, train, test)
    out.update(decision=record.decision, params=record.best_params,
               valid_gain=(record.best_value or 0.0) - (record.default_value or 0.0),
               seconds=time.perf_counter() - t0)  # fmt: skip
    return out


def cell(r: dict, base: dict | None = None) -> str:
    text = f"{r['ndcg']:.3f}"
    if base is None:
        return f"{text} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
    from kuairec.evaluation.bootstrap import paired_bootstrap

    d = paired_bootstrap(r["per_user"], base["per_user"], n_bootstrap=1000, seed=0)
    mark = "*" if r["decision"] == "tuned" else ""
    return f"{text}{mark} ({d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}])"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--shapes", nargs="+", default=["default"],
                    choices=[s for s in bpr_shapes.SHAPES if s != "holdout"])  # fmt: skip
    ap.add_argument("--models", nargs="+", default=["ease", "itemknn", "als"])
    ap.add_argument("--trials", type=int, default=10)
    args = ap.parse_args()
    import datetime

    from machine_info import machine

    from kuairec.data.synthetic import generate

    print(f"{machine()}, {datetime.date.today()}")
    print(f"test NDCG@10 (wr>2), scale {args.scale:g}, {args.trials} trials per study; tuned "
          "cells: value (* = parameters changed) (paired diff to defaults [95%])")  # fmt: skip
    print("| seed | shape | model | defaults | tuned on random | tuned on temporal |")
    print("|---|---|---|---|---|---|")
    details = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="kuairec-valsplit-") as tmp:
            folder = Path(tmp) / "data"
            generate(folder, scale=args.scale, seed=seed, progress=False)
            base = bpr_shapes.load(folder)
            for shape in args.shapes:
                train, test = bpr_shapes.SHAPES[shape](*base, seed=seed)
                for name in args.models:
                    d = bpr_shapes.ndcg(name, {}, train, test)
                    runs = {k: tuned(name, train, test, k, args.trials, seed)
                            for k in ("random", "temporal")}  # fmt: skip
                    print(f"| {seed} | {shape} | {name} | {cell(d)} | "
                          f"{cell(runs['random'], d)} | {cell(runs['temporal'], d)} |",
                          flush=True)  # fmt: skip
                    for k, r in runs.items():
                        details.append(f"{seed} {shape} {name} {k}: {r['decision']}, "
                                       f"validation gain {r['valid_gain']:+.4f}, "
                                       f"{r['seconds']:.0f} s, {r['params']}")  # fmt: skip
    print("\nchosen parameters:")
    print("\n".join(details))


if __name__ == "__main__":
    main()
