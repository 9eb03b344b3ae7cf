"""The Spark engine's pieces that need no Spark: its config, the tie hash, and how a row
that does not parse is explained."""

from __future__ import annotations

import numpy as np
import pytest

from kuairec.data import schema
from kuairec.data.ties import tie_hash
from kuairec.errors import ConfigError
from kuairec.sparkengine.config import SparkRunConfig, SparkSettings
from kuairec.sparkengine.read import explain_corrupt, spark_schema


def test_config_checks_settings_before_any_work() -> None:
    cfg = SparkRunConfig.from_dict({"data": "/d", "spark": {"master": "local[2]"}})
    assert cfg.spark == SparkSettings(master="local[2]") and cfg.models
    with pytest.raises(ConfigError, match="needs data"):
        SparkRunConfig.from_dict({})
    with pytest.raises(ConfigError, match="needs interactions"):
        SparkRunConfig.from_dict({"protocol": "temporal"})
    with pytest.raises(ConfigError, match="not run"):
        SparkRunConfig.from_dict({"data": "/d", "model_params": {"ease": {}}})
    with pytest.raises(ConfigError, match="shuffle_partitions"):
        SparkRunConfig.from_dict({"data": "/d", "spark": {"shuffle_partitions": 0}})
    with pytest.raises(ConfigError, match="unknown parameter"):
        SparkRunConfig.from_dict({"data": "/d", "spark": {"mastr": "x"}})


def test_tie_hash_is_a_fixed_uniform_function_of_its_integers() -> None:
    u = np.repeat(np.arange(50), 2000)
    i = np.tile(np.arange(2000), 50)
    h = tie_hash(0, u, i)
    assert h.dtype == np.int64 and h.min() >= 0 and h.max() < 2**32
    # the definition, written out for one value
    assert tie_hash(0, [1], [2])[0] == tie_hash(0, np.array([1]), np.array([2]))[0]
    assert tie_hash(0, [4, 4], [7, 8]).tolist() == [1683150187, 1250518372]
    assert not np.array_equal(h, tie_hash(1, u, i))
    counts = np.histogram(h, bins=16, range=(0, 2**32))[0]
    assert counts.min() > 0.9 * h.size / 16  # near-uniform: usable as a random order
    with pytest.raises(ValueError, match="seed"):
        tie_hash(-1, u, i)


@pytest.mark.parametrize(
    ("line", "column", "words"),
    [
        ("1,2,3,4,2020-07-05 00:00:00,20200705,1593878400.0,x", "watch_ratio", "a number"),
        ("1,b,3,4,2020-07-05 00:00:00,20200705,1593878400.0,1.0", "video_id", "an integer"),
        ("1,2,3,4,2020-07-05 00:00:00,20200705,inf,1.0", "timestamp", "finite"),
        ("1,2,3", None, "truncated row: expected 8 fields, found 3"),
        ("1,2,3,4,5,6,7,8,9", None, "too many fields"),
    ],
)
def test_a_row_that_does_not_parse_is_explained(line: str, column: str | None, words: str) -> None:
    got_column, what = explain_corrupt(schema.BIG, line)
    assert got_column == column and words in what


def test_the_spark_schema_is_the_file_schema() -> None:
    ddl = spark_schema(schema.SMALL, corrupt=True)
    assert ddl.startswith("`user_id` long, `video_id` long")
    assert "`date` double" in ddl and "`_corrupt` string" in ddl
