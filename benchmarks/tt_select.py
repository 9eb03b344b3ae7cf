"""Choose the two-tower model's defaults on synthetic shapes and real data: validation
figures for choosing, a second half of validation users for confirming, the test for
reporting.

For every data set and every candidate setting (``CANDIDATES``, or ``--set k=v ...`` as a
candidate of its own): the candidate is fitted on the fit part of the training log,
early-stopping on the *selection* half of the validation users; then NDCG@10 (label
wr>2) on the selection half, on the *confirmation* half (users that chose nothing) and on
the test, with the 95% bootstrap interval and the paired differences to ``als`` and
``popularity_weighted`` (their defaults, fitted on the whole training log as ``kuairec
run`` fits them; the run also tunes ``als``). Two test figures: ``test`` scores the test
users from their fit-part rows (what ``kuairec run`` does today), ``test+hist`` from their
whole training rows (the validation pairs folded into the pooled history, no retraining).
On synthetic data also the watch_ratio head's RMSE / MAE / R^2 on the fully observed test,
on the raw scale (clipped at ``clip`` as ``predict`` clips) and on the log1p scale, and
with ``--cold`` the cold-video protocol's NDCG@10 (a second fit).

Data sets (``--data``): ``synthetic`` (scale 0.2, ``--seed``, the default protocol; the
validation split is the pipeline's temporal one, the last 7 days), ``ml-100k``,
``ml-latest-small``, ``lastfm-2k`` (``/work/devdata/<name>/interactions.csv``, the
temporal protocol; validation = each user's last 20% of training pairs by first
timestamp, the pipeline's 7-day split holding out almost nobody there). Validation users
are split into two seeded halves. Results are appended to a JSON-lines file (``--out``),
one line per (data set, candidate, seed); finished lines are not recomputed.

    python benchmarks/tt_select.py --data synthetic ml-100k --candidates default dim64
    python benchmarks/tt_select.py --data synthetic --name t05 --set temperature=0.05
    python benchmarks/tt_select.py --table
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
REFS = ("als", "popularity_weighted")
ABLATE = {  # feature groups a candidate can leave out: "_ablate": [names]
    "user": ("user_x", ""),
    "item": ("item_x", ""),
    "tags": ("item_x", "tag"),
    "captions": ("item_x", "caption_"),
    "duration": ("item_x", "duration_"),
    "daily": ("item_x", "daily_"),
}


_COS = {"similarity": "cosine", "temperature": 0.05, "max_epochs": 30, "patience": 3}
CANDIDATES: dict[str, dict[str, Any]] = {
    "default": {},
    "dot-3ep": {"similarity": "dot", "max_epochs": 3, "patience": 2, "batch_size": 4096},
    "cos05": _COS,
    "cos05-b4096": {**_COS, "batch_size": 4096},
    "cos05-log1p": {**_COS, "rating_target": "log1p"},
    "cos05-q99": {**_COS, "rating_quantile": 0.99},
    "cos05-log1p-q99": {**_COS, "rating_target": "log1p", "rating_quantile": 0.99},
}
_HEAD = {**_COS, "rating_target": "log1p", "rating_quantile": 0.99}
CANDIDATES |= {
    "attn50": {**_HEAD, "history_encoder": "attention", "history_length": 50},
    "t10": {**_HEAD, "temperature": 0.1},
    "t03": {**_HEAD, "temperature": 0.03},
    "dim64": {**_HEAD, "dim": 64},
    "unif1024": {**_HEAD, "uniform_negatives": 1024},
    "hard8": {**_HEAD, "hard_negatives": 8},
    "ppu8": {**_HEAD, "pairs_per_user": 8},
    "bn512": {**_HEAD, "batch_negatives": 512},
    "wd01": {**_HEAD, "weight_decay": 0.1},
    "uid": {**_HEAD, "user_embedding": True},
    "thr0": {**_HEAD, "threshold": 0.0},
    "lr1e-3": {**_HEAD, "learning_rate": 1e-3},
    **{f"no-{g}": {**_HEAD, "_ablate": [g]} for g in ABLATE},
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
    """train, test, fit part, validation halves (and the raw dataset) of one data set."""
    ds = None
    if name in REAL:
        from kuairec.evaluation.protocols import temporal_experiment

        train, test = temporal_experiment(DEVDATA / name / "interactions.csv")
        fit, valid = user_temporal_holdout(train)
    else:
        from kuairec.data.default import ensure_synthetic
        from kuairec.data.load import load_dataset
        from kuairec.evaluation.protocols import default_protocol
        from kuairec.evaluation.validation import validation_split

        ds = load_dataset(ensure_synthetic(0.2, seed), progress=False)
        train, test = default_protocol(ds)
        fit, valid = validation_split(train, "temporal")
    select, confirm = halves(valid, seed)
    return {"ds": ds, "train": train, "test": test, "fit": fit, "select": select,
            "confirm": confirm}  # fmt: skip


# ---------------------------------------------------------------- measuring
def ndcg(items: np.ndarray, test: Any, train: Any, n_bootstrap: int) -> dict[str, Any]:
    from kuairec.evaluation.evaluate import evaluate

    r = evaluate(items, test, train, ks=(10,), labels=("wr>2",), n_bootstrap=n_bootstrap)
    ci = r.ci.get("ndcg@10", [float("nan")] * 2)
    return {"ndcg": r.metrics["ndcg@10"], "ci": list(ci), "per_user": r.per_user["ndcg@10"]}


def top(model: Any, test: Any) -> np.ndarray:
    return model.recommend(test.users, 10, exclude=test.exclude, candidates=test.candidates)[0]


def with_history(model: Any, train: Any) -> Any:
    """The fitted two-tower model scoring from ``train``'s rows (no retraining)."""
    inter = train.interactions
    model.history_arrays_ = model._history(
        inter.indptr, inter.indices, inter.watch_ratio_mean, inter.first_timestamp
    )
    return model


def rating_figures(model: Any, test: Any) -> dict[str, float]:
    """RMSE / MAE / R^2 of ``predict`` on every test pair against the observed watch_ratio
    (as the run computes them), on the raw and the log1p scale."""
    users, items = test.pairs()
    pred = model.predict(users, items).astype(np.float64)
    truth = test.relevance.data.astype(np.float64)  # row-major, as test.pairs()
    out = {}
    for scale, f in (("raw", lambda x: x), ("log1p", np.log1p)):
        p, t = f(pred), f(truth)
        err = p - t
        r2 = 1 - float(np.mean(err**2)) / float(np.var(t))
        out[scale] = {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))),
                      "r2": r2}  # fmt: skip
    return out


def paired(a: np.ndarray, b: np.ndarray) -> list[float]:
    from kuairec.evaluation.bootstrap import paired_bootstrap

    d = paired_bootstrap(a, b, n_bootstrap=1000, seed=0)
    return [d["diff"], *d["ci"]]


def ablate(train: Any, groups: list[str]) -> Any:
    """``train`` without the feature columns of ``groups`` (``ABLATE``)."""
    import dataclasses

    from kuairec.data.dataset import FeatureMatrix

    for g in groups:
        field, prefix = ABLATE[g]
        x = getattr(train, field)
        if x is None:
            continue
        keep = [i for i, c in enumerate(x.columns) if prefix and not c.startswith(prefix)]
        cols = tuple(x.columns[i] for i in keep)
        train = dataclasses.replace(train, **{field: FeatureMatrix(x.values[:, keep], cols)})
    return train


def measure(d: dict[str, Any], params: dict[str, Any], refs: dict, cold: bool, refit: bool) -> dict:
    """Fit one candidate on one data set and measure it (see the module docstring)."""
    from kuairec.models import create_model

    params = dict(params)
    groups = params.pop("_ablate", [])
    if groups:
        d = {**d, "fit": ablate(d["fit"], groups), "train": ablate(d["train"], groups)}
    t0 = time.perf_counter()
    model = create_model("two_tower", params).fit(d["fit"], d["select"])
    h = model.history_
    out: dict[str, Any] = {
        "fit_seconds": round(time.perf_counter() - t0, 1),
        "best_epoch": model.best_epoch_,
        "epochs": len(h["epoch"]),
        "curve": [round(v, 4) for v in h["valid_ndcg@10"]],
    }
    for part in ("select", "confirm"):
        out[part] = ndcg(top(model, d[part]), d[part], d["fit"], 0)["ndcg"]
    if d["ds"] is not None and model.predicts_ratings:
        out["rating"] = rating_figures(model, d["test"])
    for key in ("test", "test+hist"):
        if key == "test+hist":
            with_history(model, d["train"])
        r = ndcg(top(model, d["test"]), d["test"], d["train"], 1000)
        per_user = r.pop("per_user")
        out[key] = {**r, **{f"vs_{n}": paired(per_user, refs[n]["per_user"]) for n in REFS}}
    if refit:  # the whole training log, the epochs early stopping chose, no validation
        epochs = (model.best_epoch_ or 0) + 1
        again = create_model("two_tower", {**params, "max_epochs": epochs}).fit(d["train"])
        r = ndcg(top(again, d["test"]), d["test"], d["train"], 1000)
        per_user = r.pop("per_user")
        out["test-refit"] = {
            **r,
            **{f"vs_{n}": paired(per_user, refs[n]["per_user"]) for n in REFS},
        }
    if cold and d["ds"] is not None:
        out["cold"] = cold_ndcg(d["ds"], params, groups)
    return out


def cold_ndcg(ds: Any, params: dict[str, Any], groups: list[str], seed: int = 0) -> float:
    """NDCG@10 of the cold-video protocol (fraction 0.1), as the run's section fits it."""
    from kuairec.evaluation.cold import cold_items_protocol
    from kuairec.evaluation.fitted import evaluate_model
    from kuairec.evaluation.validation import validation_split
    from kuairec.models import create_model

    train, test = cold_items_protocol(ds, fraction=0.1, seed=seed)
    train = ablate(train, groups)
    fit, valid = validation_split(train, "temporal")
    model = create_model("two_tower", params).fit(fit, valid)
    r = evaluate_model(model, test, train, ks=(10,), labels=("wr>2",), n_bootstrap=0)
    return float(r.metrics["ndcg@10"])


def references(d: dict[str, Any]) -> dict[str, Any]:
    """ALS and weighted popularity with their defaults: test (whole log), valid (fit part)."""
    from kuairec.models import create_model

    refs = {}
    for name in REFS:
        refs[name] = ndcg(top(create_model(name).fit(d["train"]), d["test"]), d["test"],
                          d["train"], 1000)  # fmt: skip
        part = create_model(name).fit(d["fit"])
        for key in ("select", "confirm"):
            refs[name][key] = ndcg(top(part, d[key]), d[key], d["fit"], 0)["ndcg"]
    return refs


# ---------------------------------------------------------------- driver and table
def done(path: Path) -> set[tuple[str, str, int]]:
    if not path.exists():
        return set()
    return {(r["data"], r["candidate"], r["seed"]) for r in map(json.loads, path.open())}


def write(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def run(args: argparse.Namespace, candidates: dict[str, dict[str, Any]]) -> None:
    import torch

    torch.set_num_threads(1)
    finished = done(args.out)
    for data in args.data:
        todo = [c for c in candidates if (data, c, args.seed) not in finished]
        if not todo:
            continue
        d = dataset(data, args.seed)
        refs = references(d)
        for name in REFS:
            if (data, name, args.seed) not in finished:
                row = {k: v for k, v in refs[name].items() if k != "per_user"}
                write(args.out, {"data": data, "candidate": name, "seed": args.seed, **row})
        for cand in todo:
            res = measure(d, candidates[cand], refs, args.cold, args.refit)
            write(args.out, {"data": data, "candidate": cand, "seed": args.seed,
                             "params": candidates[cand], **res})  # fmt: skip
            print(data, cand, args.seed, json.dumps(res)[:400], flush=True)


def table(path: Path) -> None:
    rows = [json.loads(line) for line in path.open()]
    print("| data | candidate | seed | select | confirm | test | test+hist | test refit "
          "| vs als (test / refit) | epochs (best) | fit s | R2 raw / log1p | cold |")  # fmt: skip
    print("|" + "---|" * 14)
    for r in rows:
        if r["candidate"] in REFS:
            print(f"| {r['data']} | {r['candidate']} | {r['seed']} | {r['select']:.4f} | "
                  f"{r['confirm']:.4f} | {r['ndcg']:.4f} | | | | | | | | |")  # fmt: skip
            continue
        t, th = r["test"], r["test+hist"]
        vs = t["vs_als"]
        rf = r.get("test-refit")
        refit = f"{rf['ndcg']:.4f}" if rf else ""
        vs_txt = f"{vs[0]:+.3f} [{vs[1]:+.3f}, {vs[2]:+.3f}]"
        if rf:
            v2 = rf["vs_als"]
            vs_txt += f" / {v2[0]:+.3f} [{v2[1]:+.3f}, {v2[2]:+.3f}]"
        rating = r.get("rating")
        r2 = f"{rating['raw']['r2']:.3f} / {rating['log1p']['r2']:.3f}" if rating else ""
        cold = f"{r['cold']:.3f}" if "cold" in r else ""
        print(f"| {r['data']} | {r['candidate']} | {r['seed']} | {r['select']:.4f} | "
              f"{r['confirm']:.4f} | {t['ndcg']:.4f} | {th['ndcg']:.4f} | {refit} | "
              f"{vs_txt} | {r['epochs']} ({r['best_epoch']}) "
              f"| {r['fit_seconds']} | {r2} | {cold} |")  # fmt: skip


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="*", default=["synthetic", *REAL])
    ap.add_argument("--candidates", nargs="*", default=list(CANDIDATES))
    ap.add_argument("--name", help="a candidate of its own, with --set")
    ap.add_argument("--set", nargs="*", default=[], help="key=value settings (JSON values)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cold", action="store_true", help="also the cold-video protocol")
    ap.add_argument("--refit", action="store_true", help="also refit on the whole log")
    ap.add_argument("--out", type=Path, default=Path("tt_select.jsonl"))
    ap.add_argument("--table", action="store_true")
    args = ap.parse_args()
    if args.table:
        table(args.out)
        return
    candidates = {c: CANDIDATES[c] for c in args.candidates}
    if args.name:
        settings = dict(kv.split("=", 1) for kv in args.set)
        candidates = {args.name: {k: parse_value(v) for k, v in settings.items()}}
    run(args, candidates)


if __name__ == "__main__":
    main()
