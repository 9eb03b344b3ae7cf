"""Does averaging several two-tower fits beat one? The fits' seeds as an ensemble.

On ``benchmarks/tt_select.py``'s data sets and splits (the fit part, early stopping on
the selection half, the fold-in of the whole training log, the test): the two-tower
model with the given settings is fitted once per ``--fit-seeds`` value; each fit's test
NDCG@10 (wr>2) is measured, then the ensembles of the first 2, 3, ... fits, whose score
is the mean of the fits' scores (each a cosine over its own learned temperature: the
mean of logits, a product of the fits' softmax distributions), with the paired 95%
bootstrap interval against ALS (its defaults, fitted on the whole training log). Each
fit is one torch thread; the figures do not depend on what else runs.

    python benchmarks/tt_ensemble.py --data ml-100k lastfm-2k --fit-seeds 0 1 2
    python benchmarks/tt_ensemble.py --data synthetic --set weight_average=1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def one(data: str, seeds: list[int], params: dict) -> dict:
    import torch
    import tt_select as T

    from kuairec.models import create_model
    from kuairec.models.base import top_candidates

    torch.set_num_threads(1)
    d = T.dataset(data, 0)
    refs = T.references(d)
    test = d["test"]
    exclude = test.exclude[:, test.candidates].tocsr()

    def per_user(score) -> np.ndarray:  # noqa: ANN001
        items = top_candidates(score, test.users, exclude, test.candidates, k=10)
        return np.asarray(T.ndcg(items, test, d["train"], 0)["per_user"], dtype=float)

    models = []
    for s in seeds:
        m = create_model("two_tower", {**params, "seed": s}).fit(d["fit"], d["select"])
        models.append(m.fold_in(d["train"]))
    als = np.asarray(refs["als"]["per_user"], dtype=float)
    out: dict = {"data": data, "params": params, "als": refs["als"]["ndcg"]}
    singles = [float(np.nanmean(per_user(m.score))) for m in models]
    out["fits"] = dict(zip(map(str, seeds), singles, strict=True))
    out["mean of the fits"] = float(np.mean(singles))
    for k in range(2, len(models) + 1):
        values = per_user(lambda u, k=k: np.mean([m.score(u) for m in models[:k]], axis=0))
        out[f"ensemble of {k}"] = float(np.nanmean(values))
        out[f"ensemble of {k} vs als"] = T.paired(values, als)
    return out


def main() -> None:
    import tt_select as T

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["synthetic", *T.REAL])
    ap.add_argument("--fit-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", nargs="*", default=[], help="key=value two-tower settings (JSON)")
    args = ap.parse_args()
    params = dict(kv.split("=", 1) for kv in args.set)
    params = {k: T.parse_value(v) for k, v in params.items()}
    for data in args.data:
        print(json.dumps(one(data, args.fit_seeds, params)), flush=True)


if __name__ == "__main__":
    main()
