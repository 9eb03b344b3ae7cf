"""``kuairec run --engine spark``: the same run folder and typed result as the local
engine, and the same numbers where both run the same model."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from kuairec.pipeline import metrics_file
from kuairec.pipeline.config import load_run_config
from kuairec.pipeline.run import execute

pytestmark = [pytest.mark.slow, pytest.mark.spark]


def _run(data: Path, runs: Path, engine: str):
    cfg = load_run_config(
        None,
        {
            "data": str(data), "runs_dir": str(runs), "engine": engine,
            "spark_master": "local[2]", "models": ["popularity", "itemknn"],
            "tune": False, "eda": False, "n_bootstrap": 50, "save_models": False,
        },
    )  # fmt: skip
    return execute(cfg)


def test_spark_engine_writes_the_local_engines_run_folder(small_synthetic_dir, tmp_path, java):
    spark = _run(small_synthetic_dir, tmp_path / "spark", "spark")
    local = _run(small_synthetic_dir, tmp_path / "local", "local")
    a, b = metrics_file.read(spark / "metrics.json"), metrics_file.read(local / "metrics.json")
    for name in ("popularity", "itemknn"):  # the same lists: the same metrics
        for key, value in b.models[name].metrics.items():
            assert a.models[name].metrics[key] == pytest.approx(value, abs=1e-9), (name, key)
        assert a.models[name].ci["ndcg@10"] == pytest.approx(b.models[name].ci["ndcg@10"])
        assert a.models[name].notes[-1] == "trained on spark"
    assert a.protocol.n_test_users == b.protocol.n_test_users
    assert a.paired.baseline == "popularity" and "--baseline" in a.paired.reason
    diff = a.paired.comparisons["itemknn"].diff  # popularity - itemknn on the same users
    on_local = b.paired.comparisons
    want = (
        on_local["itemknn"].diff
        if b.paired.baseline == "popularity"
        else -on_local["popularity"].diff
    )
    assert diff == pytest.approx(want, abs=1e-9)
    for section in ("cold_items", "validity"):  # said, never silently missing
        assert "Spark engine" in a.section_errors[section]
    assert "segments" in a.sections and "label_sensitivity" in a.sections
    import jsonschema

    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "docs" / "metrics.schema.json").read_text()
    )
    jsonschema.Draft202012Validator(schema).validate(
        json.loads((spark / "metrics.json").read_text())
    )
    got = pl.read_parquet(spark / "recommendations" / "itemknn.parquet")
    want = pl.read_parquet(local / "recommendations" / "itemknn.parquet")
    order = ["user_id", "rank"]
    assert (
        got.sort(order)
        .select("user_id", "rank", "video_id")
        .equals(want.sort(order).select("user_id", "rank", "video_id"))
    )
    assert "Not computed: on the Spark engine" in (spark / "report.md").read_text()
