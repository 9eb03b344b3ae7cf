"""Choose the two-tower model's defaults on synthetic shapes and real data: validation
figures for choosing, a second half of validation users for confirming, the test for
reporting.

For every data set and every candidate setting (``CANDIDATES``, or ``--set k=v ...`` as a
candidate of its own): the candidate is fitted on the fit part of the training log,
early-stopping on the *selection* half of the validation users; then NDCG@10 (label
wr>2) on the selection half, on the *confirmation* half (users that chose nothing) and on
the test, with the 95% bootstrap interval and the paired differences to ``als`` and
``popularity_weighted`` (their defaults, fitted on the whole training log as ``kuairec
run`` fits them; the run also tunes ``als``). Two test figures: ``test`` after
``fold_in(train)`` (the pooled histories from the whole training log, no retraining: what
``kuairec run`` does), ``test-fitpart`` from the fit part's rows. On synthetic data also
the watch_ratio head's RMSE / MAE / R^2 on the fully observed test (after the fold-in, as
the run computes them), on the raw scale and on the log1p scale, and with ``--cold`` the
cold-video protocol's NDCG@10 (a second fit, as the run's cold section fits it).

Data sets (``--data``): ``synthetic`` (scale 0.2, ``--seed``, the default protocol),
``ml-100k``, ``ml-latest-small``, ``lastfm-2k`` (``/work/devdata/<name>/interactions.csv``,
the temporal protocol). The validation split is the pipeline's (``--validation
temporal``: the last 7 days on synthetic data, each user's last 20% of training pairs on
the real logs, where few users have pairs in the last week) and its halves are the
pipeline's (a seeded hash of the user). Results are appended to a JSON-lines file (``--out``),
one line per (data set, candidate, seed, fit seed); finished lines are not recomputed.

``--fit-seeds`` fits every candidate once per given value of the model's own ``seed``
(weights, batches, samples; the validation halves stay those of ``--seed``): one fit's
test NDCG@10 moves by 0.012-0.020 with it on the real logs (docs/models.md), as much as
the gaps between candidates. ``--table`` then shows each candidate's means over its fits,
and the paired interval of the fits' mean per-user test NDCG@10 against ALS.

    python benchmarks/tt_select.py --data synthetic ml-100k --candidates default dim64
    python benchmarks/tt_select.py --data synthetic --name t05 --set temperature=0.05
    python benchmarks/tt_select.py --data ml-100k --candidates default --fit-seeds 0 1 2
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


# The run's budget, counted in training pairs (not seconds): 5 epochs of the synthetic
# default's fit part (scale 0.2), many more on the small real logs.
BUDGET = {"max_epochs": 50, "patience": 3, "epoch_pairs": 1_800_000}
_COS = {"similarity": "cosine", "temperature": 0.05, **BUDGET}
_HEAD = {**_COS, "rating_target": "log1p", "rating_quantile": 0.99}
CANDIDATES: dict[str, dict[str, Any]] = {
    "old-default": {
        "similarity": "dot",
        "max_epochs": 3,
        "patience": 2,
        "epoch_pairs": 0,
        "rating_target": "clipped",
        "rating_quantile": 1.0,
    },
    "default": {},
    "dot": {**BUDGET, "similarity": "dot"},
    "cos05-clipped": _COS,
    "cos05": _HEAD,
    "t10": {**_HEAD, "temperature": 0.1},
    "t03": {**_HEAD, "temperature": 0.03},
    "dim64": {**_HEAD, "dim": 64},
    "dim16": {**_HEAD, "dim": 16},
    "nologq": {**_HEAD, "logq": False},
    "unif1024": {**_HEAD, "uniform_negatives": 1024},
    "hard8": {**_HEAD, "hard_negatives": 8},
    "attn50": {**_HEAD, "history_encoder": "attention", "history_length": 50},
    "uid": {**_HEAD, "user_embedding": True},
    "thr0": {**_HEAD, "threshold": 0.0},
    "2x-budget": {**_HEAD, "epoch_pairs": 3_600_000},
    "head-mse": {**_HEAD, "rating_loss": "mse"},
    "head-w1": {**_HEAD, "rating_weight": 1.0},
    **{f"no-{g}": {**_HEAD, "_ablate": [g]} for g in ABLATE},
}


# ---------------------------------------------------------------- data and splits
def halves(valid: Any, seed: int) -> tuple[Any, Any]:
    """The selection and confirmation halves of a validation TestSet, by the pipeline's
    own rule (:func:`kuairec.evaluation.validation.selection_half`)."""
    from kuairec.evaluation.validation import selection_half

    select = selection_half(valid.users, seed)
    return valid.restrict(select), valid.restrict(~select)


def dataset(name: str, seed: int) -> dict[str, Any]:
    """train, test, fit part, validation halves (and the raw dataset) of one data set,
    split as ``kuairec run`` splits it (the temporal validation split, label wr>2)."""
    from kuairec.evaluation.validation import validation_split

    ds = None
    if name in REAL:
        from kuairec.evaluation.protocols import temporal_experiment

        train, test = temporal_experiment(DEVDATA / name / "interactions.csv")
    else:
        from kuairec.data.default import ensure_synthetic
        from kuairec.data.load import load_dataset
        from kuairec.evaluation.protocols import default_protocol

        ds = load_dataset(ensure_synthetic(0.2, seed), progress=False)
        train, test = default_protocol(ds)
    fit, valid = validation_split(train, "temporal", seed=seed, label="wr>2")
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
    out["test-fitpart"] = test_figures(model, d, refs)
    model.fold_in(d["train"])  # what kuairec run does before the test
    out["test"] = test_figures(model, d, refs, per_user=True)
    if d["ds"] is not None and model.predicts_ratings:
        out["rating"] = rating_figures(model, d["test"])
    if refit:  # the whole training log, the epochs early stopping chose, no validation
        epochs = (model.best_epoch_ or 0) + 1
        again = create_model("two_tower", {**params, "max_epochs": epochs, "epoch_pairs": 0})
        out["test-refit"] = test_figures(again.fit(d["train"]), d, refs)
    if cold and d["ds"] is not None:
        out["cold"] = cold_ndcg(d["ds"], params, groups)
    return out


def test_figures(model: Any, d: dict[str, Any], refs: dict, per_user: bool = False) -> dict:
    """NDCG@10 on the test with its interval, the paired differences to ``REFS`` and, with
    ``per_user``, the per-user values (the run's test figure keeps them: the table's mean
    over fit seeds)."""
    r = ndcg(top(model, d["test"]), d["test"], d["train"], 1000)
    values = r.pop("per_user")
    if per_user:
        r["per_user"] = np.asarray(values, dtype=float).tolist()
    return {**r, **{f"vs_{n}": paired(values, refs[n]["per_user"]) for n in REFS}}


def cold_ndcg(ds: Any, params: dict[str, Any], groups: list[str], seed: int = 0) -> float:
    """NDCG@10 of the cold-video protocol (fraction 0.1), as the run's section fits it."""
    from kuairec.evaluation.cold import cold_items_protocol
    from kuairec.evaluation.fitted import evaluate_model
    from kuairec.evaluation.validation import validation_split
    from kuairec.models import create_model

    train, test = cold_items_protocol(ds, fraction=0.1, seed=seed)
    train = ablate(train, groups)
    fit, valid = validation_split(train, "temporal", seed=seed, label="wr>2")
    model = create_model("two_tower", params).fit(fit, halves(valid, seed)[0])
    model.fold_in(train)
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
def done(path: Path) -> set[tuple[str, str, int, int]]:
    if not path.exists():
        return set()
    return {(r["data"], r["candidate"], r["seed"], r.get("fit_seed", 0))
            for r in map(json.loads, path.open())}  # fmt: skip


def write(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def run(args: argparse.Namespace, candidates: dict[str, dict[str, Any]]) -> None:
    import torch

    torch.set_num_threads(1)
    finished = done(args.out)
    for data in args.data:
        todo = [(c, f) for c in candidates for f in args.fit_seeds
                if (data, c, args.seed, f) not in finished]  # fmt: skip
        if not todo:
            continue
        d = dataset(data, args.seed)
        refs = references(d)
        for name in REFS:
            if (data, name, args.seed, 0) not in finished:
                row = dict(refs[name])
                row["per_user"] = np.asarray(row["per_user"], dtype=float).tolist()
                write(args.out, {"data": data, "candidate": name, "seed": args.seed, **row})
        for cand, fit_seed in todo:
            params = {"seed": fit_seed, **candidates[cand]}  # a candidate's own seed wins
            res = measure(d, params, refs, args.cold, args.refit)
            write(args.out, {"data": data, "candidate": cand, "seed": args.seed,
                             "fit_seed": fit_seed, "params": params, **res})  # fmt: skip
            brief = {k: res[k] for k in ("fit_seconds", "best_epoch", "select", "confirm")}
            brief["test"] = res["test"]["ndcg"]
            print(data, cand, args.seed, fit_seed, json.dumps(brief), flush=True)


def table(path: Path) -> None:
    """One line per (data set, candidate, validation seed): a single fit as it is, several
    fit seeds as their means (``fits``: how many; the test's range over them), the
    differences to the references from the fits' mean per-user values."""
    rows = [json.loads(line) for line in path.open()]
    refs = {(r["data"], r["candidate"], r["seed"]): r for r in rows if r["candidate"] in REFS}
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["data"], r["candidate"], r["seed"]), []).append(r)
    print("| data | candidate | fits | select | confirm | test | vs als | vs pop_w | test, "
          "fit-part history | epochs (best) | fit s | R2 raw / log1p | cold |")  # fmt: skip
    print("|" + "---|" * 13)
    ci = lambda v: f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]"  # noqa: E731
    mean = lambda fits, f: float(np.mean([f(r) for r in fits]))  # noqa: E731
    for key, fits in groups.items():
        r = fits[0]
        if r["candidate"] in REFS:
            print(f"| {r['data']} | {r['candidate']} | | {r['select']:.4f} | "
                  f"{r['confirm']:.4f} | {r['ndcg']:.4f} | | | | | | | |")  # fmt: skip
            continue
        tests = [f["test"]["ndcg"] for f in fits]
        test = f"{np.mean(tests):.4f}" + (
            f" ({min(tests):.4f}-{max(tests):.4f})" if len(fits) > 1 else ""
        )
        versus = []
        for name in REFS:
            ref = refs.get((key[0], name, key[2]), {})
            if len(fits) == 1:
                versus.append(ci(r["test"][f"vs_{name}"]))
            elif "per_user" in ref and all("per_user" in f["test"] for f in fits):
                per_user = np.mean([np.asarray(f["test"]["per_user"], float) for f in fits], axis=0)
                versus.append(ci(paired(per_user, np.asarray(ref["per_user"], float))))
            else:  # rows written before the per-user values: the mean difference alone
                diffs = [f["test"][f"vs_{name}"][0] for f in fits]
                versus.append(f"{np.mean(diffs):+.3f}")
        rated = [f["rating"] for f in fits if "rating" in f]
        r2 = (f"{np.mean([x['raw']['r2'] for x in rated]):.3f} / "
              f"{np.mean([x['log1p']['r2'] for x in rated]):.3f}") if rated else ""  # fmt: skip
        cold = f"{mean(fits, lambda f: f['cold']):.3f}" if all("cold" in f for f in fits) else ""
        epochs = ", ".join(f"{f['epochs']} ({f['best_epoch']})" for f in fits)
        print(f"| {key[0]} | {key[1]} | {len(fits)} | {mean(fits, lambda f: f['select']):.4f} "
              f"| {mean(fits, lambda f: f['confirm']):.4f} | {test} | {versus[0]} | {versus[1]} "
              f"| {mean(fits, lambda f: f['test-fitpart']['ndcg']):.4f} | {epochs} "
              f"| {mean(fits, lambda f: f['fit_seconds']):.1f} | {r2} | {cold} |")  # fmt: skip


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
    ap.add_argument("--seed", type=int, default=0, help="draws the validation halves")
    ap.add_argument("--fit-seeds", type=int, nargs="+", default=[0],
                    help="the model's own seed: one fit per value")  # fmt: skip
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
