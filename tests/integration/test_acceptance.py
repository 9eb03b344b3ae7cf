"""The order the generator's structure implies, on the default scale with other seeds."""

from __future__ import annotations

import json

import pytest

from kuairec.cli import main


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 7])
def test_default_scale_shows_oracle_learned_popularity_random(seed, tmp_path) -> None:
    code = main(
        [
            "run",
            "--scale",
            "0.2",
            "--seed",
            str(seed),
            "--runs-dir",
            str(tmp_path),
            "--models",
            "random,popularity,als,ease,itemknn,oracle",
            "--bootstrap",
            "300",
            "--no-eda",
            "-q",
        ]
    )
    assert code == 0
    (run,) = list(tmp_path.iterdir())
    models = json.loads((run / "metrics.json").read_text())["models"]
    ndcg = {name: m["metrics"]["ndcg@10"] for name, m in models.items()}
    best = max(("als", "ease", "itemknn"), key=ndcg.__getitem__)
    assert ndcg["oracle"] > ndcg[best] > ndcg["popularity"] > ndcg["random"], ndcg
    best_lo = models[best]["ci"]["ndcg@10"][0]
    pop_hi = models["popularity"]["ci"]["ndcg@10"][1]
    assert best_lo > pop_hi, (best, models[best]["ci"], models["popularity"]["ci"])
