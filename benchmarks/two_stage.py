"""The two-stage model against its retrievers and the other single models, with paired
intervals, its recall ceiling, where its fit time goes, feature importance and variants.

Synthetic data (the default protocol: big matrix -> fully observed small matrix) or a
user log (``--interactions``: the temporal protocol, each user's last 20% held out).
Every figure is NDCG@10 under the run's default label (wr>2) on the test users, with the
95% bootstrap interval (1,000 resamples); a paired difference is ``two_stage - other``
over the same users. ``held-out`` is the model's own NDCG@10 on its selection users
(the training log after T: validation, not test).

    python benchmarks/two_stage.py                                  # scale 0.2, seed 0
    python benchmarks/two_stage.py --seeds 1 7
    python benchmarks/two_stage.py --interactions /work/devdata/ml-100k/interactions.csv
    python benchmarks/two_stage.py --variants ablation              # or unexposed, n, retrievers
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from machine_info import machine  # benchmarks/ is on sys.path when run as a script

VARIANTS: dict[str, list[dict[str, Any]]] = {
    "default": [{}],
    "ablation": [
        {"feature_groups": ["retrieval"]},
        {"feature_groups": ["retrieval", "item"]},
        {"feature_groups": ["retrieval", "item", "match"]},
        {},
    ],
    "unexposed": [{"unexposed": "drop"}, {"unexposed": "live"}, {}],
    "prior": [{"prior": False}, {}],
    "exposure": [
        {"unexposed": "drop", "prior": False},
        {"unexposed": "drop"},
        {"unexposed": "live", "prior": False},
        {},
    ],
    "n": [{"n_candidates": n} for n in (50, 100, 200, 400)],
    "deep": [
        {"retrievers": ["autoencoder", "popularity"]},
        {"retrievers": ["autoencoder", "ease", "popularity"]},
        {"retrievers": ["autoencoder", "popularity"], "unexposed": "live", "prior": False},
    ],
    "retrievers": [
        {"retrievers": ["ease", "als", "popularity"]},
        {"retrievers": ["ease", "itemknn", "popularity"]},
        {},
    ],
}


def data(args: argparse.Namespace, seed: int) -> tuple[Any, Any, str]:
    import kuairec

    if args.interactions:
        from kuairec.evaluation.protocols import temporal_experiment

        train, test = temporal_experiment(args.interactions)
        return train, test, args.interactions.rsplit("/", 2)[-2]
    ds = kuairec.load_dataset(kuairec.synthetic_data(scale=args.scale, seed=seed), progress=False)
    train, test = kuairec.default_protocol(ds)
    return train, test, f"synthetic {args.scale} seed {seed}"


def evaluate(model: Any, train: Any, test: Any) -> Any:
    from kuairec.evaluation.fitted import evaluate_model

    return evaluate_model(model, test, train, n_bootstrap=1000, seed=0)


def fit(name: str, params: dict[str, Any], train: Any, fitted: Any = None) -> tuple[Any, str]:
    """The fitted model and its fit time: wall seconds and CPU seconds (all threads; on
    a shared machine the CPU seconds are the better guide to an idle machine's wall)."""
    from kuairec.models import create_model
    from kuairec.models.base import FitResources

    t0, c0 = time.perf_counter(), time.process_time()
    model = create_model(name, params).fit(train, resources=FitResources(fitted=fitted or {}))
    return model, f"{time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU"


def cell(result: Any) -> str:
    lo, hi = result.ci["ndcg@10"]
    return f"{result.metrics['ndcg@10']:.4f} [{lo:.4f}, {hi:.4f}]"


def paired(a: Any, b: Any) -> str:
    from kuairec.evaluation.bootstrap import paired_bootstrap

    d = paired_bootstrap(a.per_user["ndcg@10"], b.per_user["ndcg@10"], n_bootstrap=1000)
    return f"{d['diff']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]"


def one_dataset(args: argparse.Namespace, seed: int) -> None:
    from kuairec.models.two_stage.summary import recall_ceiling

    train, test, what = data(args, seed)
    print(f"\n## {what}: {train.n_users} users x {train.n_items} items, "
          f"{train.interactions.nnz} pairs, {test.users.size} test users", flush=True)  # fmt: skip
    baselines, fitted = {}, {}
    for name in args.baselines:
        model, seconds = fit(name, {}, train)
        fitted[name], baselines[name] = model, evaluate(model, train, test)
        print(f"| {name} | {cell(baselines[name])} | fit {seconds} |", flush=True)
    best = max(baselines, key=lambda n: baselines[n].metrics["ndcg@10"])
    for variant in args.variants:
        for params in VARIANTS[variant]:
            reuse = {n: m for n, m in fitted.items()} if args.reuse else {}
            model, seconds = fit("two_stage", {**args.params, **params}, train,
                                 fitted=reuse)  # fmt: skip
            result = evaluate(model, train, test)
            s = model.fit_summary_
            rc = recall_ceiling(model, test, "wr>2", train)
            by = ", ".join(f"{k} {v:.3f}" for k, v in rc.by_retriever.items())
            print(f"| two_stage {json.dumps(params)} | {cell(result)} | vs best ({best}) "
                  f"{paired(result, baselines[best])} | fit {seconds} |")  # fmt: skip
            for name in s.retrievers:
                if name in baselines and name != best:
                    print(f"|   vs {name} | {paired(result, baselines[name])} |")
            print(f"|   recall ceiling | {rc.mean:.3f} (each list: {by}); "
                  f"{rc.mean_candidates:.0f} candidates per user of {rc.catalogue} |")  # fmt: skip
            held = ", ".join(f"{k} {v:.3f}" for k, v in s.held_out_ndcg.items())
            chosen = s.trials[s.chosen_trial]["params"] if s.trials else "-"
            print(f"|   cut | {s.split}, {s.target_users} target users {s.users_by_role}, "
                  f"{s.train_rows} training rows; held-out NDCG@10: {held}; "
                  f"ranker: {s.decision} ({chosen}) |")  # fmt: skip
            print(f"|   seconds | {s.seconds} reused {s.reused} |")
            top = ", ".join(f"{g.name} {g.gain_share:.3f}" for g in s.top_features(args.top))
            print(f"|   top features (gain) | {top} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=0.2)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--interactions", help="a user log CSV (temporal protocol)")
    p.add_argument("--baselines", nargs="+", default=["ease", "als", "popularity"])
    p.add_argument("--variants", nargs="+", default=["default"], choices=list(VARIANTS))
    p.add_argument("--params", type=json.loads, default={}, help="two_stage params (JSON)")
    p.add_argument("--reuse", action="store_true", help="give it the fitted baselines")
    p.add_argument("--top", type=int, default=10)
    args = p.parse_args()
    print(f"# two_stage benchmark on {machine()}, load average {os.getloadavg()[0]:.1f}")
    for seed in [0] if args.interactions else args.seeds:
        one_dataset(args, seed)


if __name__ == "__main__":
    main()
