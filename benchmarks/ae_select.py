"""Choose the autoencoder's defaults on synthetic shapes and real data: validation figures
for choosing, a second half of validation users for confirming, the test for reporting.

For every data set and every candidate setting (``CANDIDATES``): the candidate is fitted
on the fit part of the training log, early-stopping on the *selection* half of the
validation users; then NDCG@10 (label wr>2) is measured on the selection half, on the
*confirmation* half (users that chose nothing) and on the test, with the 95% bootstrap
interval and the paired difference to EASE (defaults, fitted on the whole training log, as
``kuairec run`` fits it). Two test figures: ``test`` scores users from the fit part's
rows (what ``kuairec run`` does today) and ``test+hist`` from their whole training
history (the validation pairs folded in as input, no retraining).

Data sets (``--data``):

- ``synthetic``: generated, scale 0.2 (``--seed``), default protocol (big -> the fully
  observed small matrix); validation = the pipeline's temporal split (last 7 days);
- ``synthetic-sparse``: the same with a random 15% of the training pairs
  (``bpr_shapes.sparse``);
- ``ml-100k``, ``ml-latest-small``, ``lastfm-2k``: ``/work/devdata/<name>/interactions.csv``
  (``benchmarks/realdata.py``), the temporal protocol (each user's last 20% of rows is the
  test); validation = each user's last 20% of training pairs by first timestamp (the
  pipeline's 7-day split holds out 11 users on ml-100k and nobody on ml-latest-small).

Validation users are split into two seeded halves (``--seed``). Results are appended to a
JSON-lines file (``--out``), one line per (data set, candidate); finished lines are not
recomputed, so an interrupted study resumes.

    python benchmarks/ae_select.py --data synthetic ml-100k --candidates default recvae
    python benchmarks/ae_select.py --table          # print the table of --out
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

DEVDATA = Path("/work/devdata")
REAL = ("ml-100k", "ml-latest-small", "lastfm-2k")
_RECVAE = {"architecture": "recvae", "variational": True, "hidden_dims": [600, 200]}
CANDIDATES: dict[str, dict[str, Any]] = {
    "default": {},
    "dae-binary": {"input": "binary"},
    "dae-600-200": {"hidden_dims": [600, 200]},
    "dae-lr1e-3-b128": {"lr": 1e-3, "batch_size": 128},
    "dae-wd": {"weight_decay": 1e-4},
    "vae": {"variational": True, "anneal_steps": 1000},
    "vae-600-200": {
        "variational": True,
        "hidden_dims": [600, 200],
        "lr": 1e-3,
        "batch_size": 128,
        "anneal_steps": 2000,
    },  # fmt: skip
    "recvae": {**_RECVAE, "lr": 5e-4, "batch_size": 128},
    "recvae-binary": {**_RECVAE, "lr": 5e-4, "batch_size": 128, "input": "binary"},
    "recvae-lr1e-3": {**_RECVAE, "lr": 1e-3, "batch_size": 64},
    "recvae-g0.001": {**_RECVAE, "lr": 5e-4, "batch_size": 128, "gamma": 0.001},
    "recvae-small": {**_RECVAE, "hidden_dims": [256, 64], "lr": 1e-3, "batch_size": 64},
    "seed_config": {"_preset": "autoencoder_seed_config"},
}


# ---------------------------------------------------------------- data and splits
def user_temporal_holdout(train: Any, fraction: float = 0.2) -> tuple[Any, Any]:
    """Each user's last ``max(1, floor(fraction * n))`` training pairs by first timestamp
    (users with 2+ pairs; ties by item index) are the validation pairs."""
    from kuairec.evaluation.validation import _split

    inter = train.interactions
    rows = inter.row_users().astype(np.int64)
    counts = np.bincount(rows, minlength=inter.n_users)
    n_held = np.where(counts >= 2, np.maximum(1, np.floor(fraction * counts)), 0)
    ts = np.where(np.isfinite(inter.first_timestamp), inter.first_timestamp, -np.inf)
    order = np.lexsort((inter.indices, ts, rows))
    rank = np.empty(rows.size, dtype=np.int64)
    rank[order] = np.arange(rows.size) - inter.indptr[rows[order]]
    held = rank >= (counts - n_held)[rows]
    return _split(train, inter, held, "user_temporal_holdout")


def halves(valid: Any, seed: int) -> tuple[Any, Any]:
    """The selection and confirmation halves of a validation TestSet (seeded)."""
    from kuairec.evaluation.protocols import TestSet

    perm = np.random.default_rng([seed, 18]).permutation(valid.users.size)
    out = []
    for part in (perm[: perm.size // 2], perm[perm.size // 2 :]):
        rows = np.sort(part)
        out.append(
            TestSet(valid.users[rows], valid.candidates, valid.relevance[rows], valid.exclude[rows])
        )
    return out[0], out[1]


def dataset(name: str, seed: int) -> dict[str, Any]:
    """train, test, fit part, validation halves of one data set."""
    if name in REAL:
        from kuairec.evaluation.protocols import temporal_experiment

        train, test = temporal_experiment(DEVDATA / name / "interactions.csv")
        fit, valid = user_temporal_holdout(train)
    else:
        import bpr_shapes

        from kuairec.data.default import ensure_synthetic
        from kuairec.data.load import load_dataset
        from kuairec.evaluation.protocols import default_protocol
        from kuairec.evaluation.validation import validation_split

        train, test = default_protocol(load_dataset(ensure_synthetic(0.2, seed), progress=False))
        if name == "synthetic-sparse":
            train, test = bpr_shapes.sparse(train, test, seed)
        fit, valid = validation_split(train, "temporal")
    select, confirm = halves(valid, seed)
    return {"train": train, "test": test, "fit": fit, "valid": valid, "select": select,
            "confirm": confirm}  # fmt: skip


# ---------------------------------------------------------------- measuring
def ndcg(items: np.ndarray, test: Any, train: Any, n_bootstrap: int) -> dict[str, Any]:
    from kuairec.evaluation.evaluate import evaluate

    r = evaluate(items, test, train, ks=(10,), labels=("wr>2",), n_bootstrap=n_bootstrap)
    ci = r.ci.get("ndcg@10", [float("nan")] * 2)
    return {"ndcg": r.metrics["ndcg@10"], "ci": list(ci), "per_user": r.per_user["ndcg@10"]}


def top(model: Any, test: Any, history: Any = None) -> np.ndarray:
    if history is not None:
        rows = history[test.users]
        return model.recommend(history=rows, k=10, candidates=test.candidates)[0]
    return model.recommend(test.users, 10, exclude=test.exclude, candidates=test.candidates)[0]


def measure(d: dict[str, Any], name: str, params: dict[str, Any], ease: dict) -> dict:
    """Fit one candidate on one data set and measure it (see the module docstring)."""
    from kuairec.evaluation.bootstrap import paired_bootstrap
    from kuairec.models import create_model

    params = dict(params)
    model_name = params.pop("_preset", "autoencoder")
    t0 = time.perf_counter()
    model = create_model(model_name, params).fit(d["fit"], d["select"])
    fit_s = time.perf_counter() - t0
    h = model.history_
    out: dict[str, Any] = {
        "fit_seconds": round(fit_s, 1),
        "best_epoch": model.best_epoch_,
        "epochs": len(h["epoch"]),
        "curve": [round(v, 4) for v in h["valid_ndcg@10"]],
    }
    for part in ("select", "confirm"):
        out[part] = ndcg(top(model, d[part]), d[part], d["fit"], 0)["ndcg"]
    full = d["train"].interactions.csr("watch_ratio_mean")
    for key, hist in (("test", None), ("test+hist", full)):
        r = ndcg(top(model, d["test"], hist), d["test"], d["train"], 1000)
        diff = paired_bootstrap(r.pop("per_user"), ease["per_user"], n_bootstrap=1000, seed=0)
        out[key] = {**r, "vs_ease": [diff["diff"], *diff["ci"]]}
    return out


def ease_reference(d: dict[str, Any]) -> dict[str, Any]:
    """EASE with its defaults: on the whole training log (test), on the fit part (valid)."""
    from kuairec.models import create_model

    full = create_model("ease").fit(d["train"])
    ref = ndcg(top(full, d["test"]), d["test"], d["train"], 1000)
    part = create_model("ease").fit(d["fit"])
    for key in ("select", "confirm"):
        ref[key] = ndcg(top(part, d[key]), d[key], d["fit"], 0)["ndcg"]
    return ref


def tune(d: dict[str, Any], trials: int, seed: int, ease: dict) -> dict[str, Any]:
    """In-run tuning as ``kuairec run`` does it (``pipeline.tuning.study``): ``trials``
    seeded trials, the defaults first, chosen on the selection half; the best trial
    replaces the defaults only if it beats them on the confirmation half (paired 95%
    interval above 0). The chosen model (fitted on the fit part) is then measured."""
    from kuairec.evaluation.bootstrap import paired_bootstrap
    from kuairec.pipeline.experiment import Validation
    from kuairec.pipeline.tuning import study

    select = np.isin(d["valid"].users, d["select"].users)
    validation = Validation(d["fit"], "temporal", "wr>2", seed=seed,
                            _parts=(d["fit"], d["valid"]), _select=select)  # fmt: skip
    record, chosen = study("autoencoder", validation, n_trials=trials, seed=seed)
    c = record.confirmation
    out: dict[str, Any] = {
        "trials": [{"params": t.params, "value": t.value} for t in record.trials],
        "decision": record.decision, "why": record.why, "params": record.best_params,
        "confirm_gain": None if c is None else [c.diff, *c.ci],
    }  # fmt: skip
    full = d["train"].interactions.csr("watch_ratio_mean")
    for key, hist in (("test", None), ("test+hist", full)):
        r = ndcg(top(chosen.model, d["test"], hist), d["test"], d["train"], 1000)
        diff = paired_bootstrap(r.pop("per_user"), ease["per_user"], n_bootstrap=1000, seed=0)
        out[key] = {**r, "vs_ease": [diff["diff"], *diff["ci"]]}
    return out


# ---------------------------------------------------------------- driver and table
def done(path: Path) -> set[tuple[str, str, int]]:
    if not path.exists():
        return set()
    return {(r["data"], r["candidate"], r["seed"]) for r in map(json.loads, path.open())}


def run(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    finished = done(args.out)
    for data in args.data:
        todo = [c for c in args.candidates if (data, c, args.seed) not in finished]
        if args.tune:
            todo = [] if (data, f"tuned-{args.tune}", args.seed) in finished else ["tune"]
        if not todo:
            continue
        d = dataset(data, args.seed)
        ease = ease_reference(d)
        if (data, "ease", args.seed) not in finished:
            row = {k: v for k, v in ease.items() if k != "per_user"}
            write(args.out, {"data": data, "candidate": "ease", "seed": args.seed, **row})
        if args.tune:
            res = tune(d, args.tune, args.seed, ease)
            write(args.out, {"data": data, "candidate": f"tuned-{args.tune}", "seed": args.seed,
                             **res})  # fmt: skip
            print(f"{data:16s} tuned-{args.tune:<12d} {cell(res)}", flush=True)
            continue
        for cand in todo:
            res = measure(d, cand, CANDIDATES[cand], ease)
            write(args.out, {"data": data, "candidate": cand, "seed": args.seed,
                             "params": CANDIDATES[cand], **res})  # fmt: skip
            print(f"{data:16s} {cand:18s} {cell(res)}", flush=True)


def write(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(row, default=float) + "\n")


def cell(r: dict[str, Any]) -> str:
    if "decision" in r:  # a tuning row
        t, h = r["test"], r["test+hist"]
        return (f"{r['decision']} ({r['why']}) test {t['ndcg']:.3f} vs EASE "
                f"{t['vs_ease'][0]:+.3f} +hist {h['ndcg']:.3f} ({h['vs_ease'][0]:+.3f}) "
                f"params {r['params']}")  # fmt: skip
    t = r.get("test")
    if not isinstance(t, dict):  # the EASE row
        return (f"sel {r['select']:.3f} conf {r['confirm']:.3f} test {r['ndcg']:.3f} "
                f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]")  # fmt: skip
    h = r["test+hist"]
    return (
        f"sel {r['select']:.3f} conf {r['confirm']:.3f} test {t['ndcg']:.3f} "
        f"[{t['ci'][0]:.3f}, {t['ci'][1]:.3f}] vs EASE {t['vs_ease'][0]:+.3f} "
        f"[{t['vs_ease'][1]:+.3f}, {t['vs_ease'][2]:+.3f}] | +hist {h['ndcg']:.3f} "
        f"({h['vs_ease'][0]:+.3f}) | ep {r['best_epoch']}/{r['epochs']} {r['fit_seconds']}s"
    )


def table(path: Path) -> None:
    for r in map(json.loads, path.open()):
        print(f"{r['data']:16s} s{r['seed']} {r['candidate']:18s} {cell(r)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["synthetic", *REAL],
                    choices=["synthetic", "synthetic-sparse", *REAL])  # fmt: skip
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=CANDIDATES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/ae/select.jsonl"))
    ap.add_argument("--table", action="store_true", help="print the results in --out")
    ap.add_argument("--tune", type=int, default=0, help="in-run tuning with N trials instead")
    args = ap.parse_args()
    table(args.out) if args.table else run(args)


if __name__ == "__main__":
    main()
