"""The base Recommender: top-k selection, recommend's masking/padding, config checks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec.data.dataset import IdMap, Interactions, TrainSet
from kuairec.errors import ConfigError, ModelError
from kuairec.models import available_models, create_model, get_model_class
from kuairec.models.base import Recommender, _top_k_partition, top_k
from kuairec.models.params import config_from_dict, config_to_dict, param


def test_top_k_breaks_ties_by_lower_index() -> None:
    s = np.array([[1, 3, 3, 2, 3], [5, 5, 5, 5, 5], [0, -np.inf, 2, -np.inf, 1]], np.float32)
    cols, vals = top_k(s, 2)
    assert cols.tolist() == [[1, 2], [0, 1], [2, 4]]
    assert vals.tolist() == [[3, 3], [5, 5], [2, 1]]
    cols, _ = top_k(s, 4)
    assert cols.tolist() == [[1, 2, 4, 3], [0, 1, 2, 3], [2, 4, 0, 1]]
    cols, vals = top_k(s, 5)  # k == n: a full stable sort
    assert cols[2].tolist() == [2, 4, 0, 1, 3] and np.isneginf(vals[2, 3:]).all()


def test_top_k_matches_a_full_stable_sort_on_random_ties() -> None:
    rng = np.random.default_rng(0)
    s = rng.integers(0, 4, size=(50, 30)).astype(np.float32)  # many ties
    for k in (1, 5, 29):
        cols, vals = top_k(s, k)
        want = np.argsort(-s, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(cols, want)
        np.testing.assert_array_equal(vals, np.take_along_axis(s, want, 1))


@pytest.mark.parametrize("seed", range(6))
def test_top_k_bound_path_matches_a_full_stable_sort(seed) -> None:
    """Wide rows take the chunk-maxima bound (200 k <= n): heavy ties, -inf, rows with
    fewer than k finite entries, and rows of one value (the exact fallback)."""
    rng = np.random.default_rng(seed)
    n_rows, n = int(rng.integers(1, 40)), int(rng.integers(2000, 6000))
    s = rng.integers(0, int(rng.integers(2, 60)), size=(n_rows, n)).astype(np.float32)
    s[rng.random(s.shape) < 0.3] = -np.inf
    s[0, 3:] = -np.inf  # 3 finite entries, then -inf ties
    if n_rows > 1:
        s[1] = 7.0  # one value everywhere: every entry ties
    for k in (1, 3, 10, n // 200, n // 16):
        cols, vals = top_k(s, k)
        want = np.argsort(-s, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(cols, want)
        np.testing.assert_array_equal(vals, np.take_along_axis(s, want, 1))
        for got, exact in zip((cols, vals), _top_k_partition(s, k), strict=True):
            np.testing.assert_array_equal(got, exact)


@dataclass(frozen=True)
class _FixedConfig:
    width: int = param(3, ge=1)


class _Fixed(Recommender):
    """Scores given by a fixed matrix (NaN allowed), for testing the base class."""

    name = "fixed"
    Config = _FixedConfig
    table = np.array(
        [[0.1, 0.9, np.nan, 0.5, 0.9], [1.0, 2.0, 3.0, 4.0, 5.0], [0, 0, 0, 0, 0]], np.float32
    )

    def _fit(self, train, valid, progress):
        pass

    def _score(self, users, items):
        s = self.table[users]
        return s if items is None else s[:, items]

    def _get_state(self):
        return {}

    def _set_state(self, state: Mapping[str, np.ndarray]) -> None:
        pass


def _train(n_users: int = 3, n_items: int = 5) -> TrainSet:
    inter = Interactions.from_log([0], [0], [1.0], None, (n_users, n_items))
    return TrainSet(inter, IdMap(np.arange(n_users)), IdMap(np.arange(n_items)))


def test_recommend_masks_pads_and_treats_nan_as_missing() -> None:
    m = _Fixed().fit(_train())
    excl = sp.csr_matrix(([1, 1], ([0, 1], [1, 4])), shape=(2, 5))
    items, scores = m.recommend(np.array([0, 1]), 5, exclude=excl)
    # user 0: item 1 excluded, item 2 NaN -> never returned; ties 0.9 not present now
    assert items[0].tolist() == [4, 3, 0, -1, -1]
    assert scores[0, :3].tolist() == pytest.approx([0.9, 0.5, 0.1])
    assert np.isneginf(scores[0, 3:]).all()
    assert items[1].tolist() == [3, 2, 1, 0, -1]


def test_recommend_with_candidates_maps_back_to_item_idx() -> None:
    m = _Fixed().fit(_train())
    excl = sp.csr_matrix(([1], ([0], [3])), shape=(2, 5))
    items, scores = m.recommend(np.array([1, 0]), 3, exclude=excl, candidates=np.array([4, 3, 0]))
    assert items.tolist() == [[4, 0, -1], [4, 3, 0]]  # row 0 is user 1, its item 3 excluded
    assert scores[1].tolist() == pytest.approx([0.9, 0.5, 0.1])


def test_recommend_checks_its_arguments() -> None:
    m = _Fixed().fit(_train())
    with pytest.raises(ConfigError, match="'k' must be an integer >= 1, got 0"):
        m.recommend(np.array([0]), 0)
    with pytest.raises(ConfigError, match="'k'"):
        m.recommend(np.array([0]), 2.5)
    with pytest.raises(ConfigError, match=r"shape \(1, 5\), got \(3, 5\)"):
        m.recommend(np.array([0]), 2, exclude=sp.csr_matrix((3, 5)))
    with pytest.raises(ModelError, match=r"users index \[7\] out of range \[0, 3\)"):
        m.recommend(np.array([0, 7]), 2)
    with pytest.raises(ModelError, match="candidates"):
        m.recommend(np.array([0]), 2, candidates=np.array([5]))
    with pytest.raises(ConfigError, match="batch_size"):
        m.recommend(np.array([0]), 2, batch_size=0)


def test_unfitted_model_and_predict_refuse() -> None:
    m = _Fixed()
    with pytest.raises(ModelError, match="not fitted"):
        m.recommend(np.array([0]), 1)
    with pytest.raises(ModelError, match="not fitted"):
        m.save("/nonexistent/should-not-be-created")
    with pytest.raises(ModelError, match="does not predict watch_ratio"):
        m.fit(_train()).predict(np.array([0]), np.array([1]))


def test_fit_refuses_interactions_of_another_shape() -> None:
    t = _train()
    bad = TrainSet(t.interactions, IdMap(np.arange(4)), t.items)
    with pytest.raises(ModelError, match=r"shape \(3, 5\), expected .* \(4, 5\)"):
        _Fixed().fit(bad)


@dataclass(frozen=True)
class _Cfg:
    n: int = param(4, ge=1)
    rate: float = param(0.5, gt=0, le=1)
    mode: Literal["a", "b"] = "a"
    flag: bool = True
    sizes: tuple[int, ...] = (8, 4)
    cap: float | None = None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"n": 0}, "parameter 'n' must be an integer >= 1, got 0"),
        ({"n": 2.5}, "parameter 'n' must be an integer, got 2.5"),
        ({"n": True}, "parameter 'n' must be an integer, got True"),
        ({"rate": 1.5}, "parameter 'rate' must be a number <= 1, got 1.5"),
        ({"rate": 0}, "parameter 'rate' must be a number > 0, got 0.0"),
        ({"rate": "fast"}, "parameter 'rate' must be a number, got 'fast'"),
        ({"mode": "c"}, "parameter 'mode' must be one of 'a', 'b', got 'c'"),
        ({"flag": 1}, "parameter 'flag' must be true or false, got 1"),
        ({"sizes": [8, "x"]}, r"parameter 'sizes\[1\]' must be an integer"),
        (
            {"bogus": 1, "zz": 2},
            "unknown parameter\\(s\\) 'bogus', 'zz'; known parameters: n, rate",
        ),
    ],
)
def test_config_errors_name_parameter_expectation_and_value(values, message) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_Cfg, values)


def test_config_coerces_and_round_trips_without_none() -> None:
    cfg = config_from_dict(_Cfg, {"rate": 1, "sizes": [16, 8, 4]})
    assert cfg.rate == 1.0 and isinstance(cfg.rate, float) and cfg.sizes == (16, 8, 4)
    d = config_to_dict(cfg)
    assert d == {"n": 4, "rate": 1.0, "mode": "a", "flag": True, "sizes": [16, 8, 4]}
    assert config_from_dict(_Cfg, d) == cfg
    assert config_to_dict(config_from_dict(_Cfg, {"cap": 2}))["cap"] == 2.0


def test_model_init_merges_config_and_overrides() -> None:
    m = _Fixed(_FixedConfig(width=5))
    assert m.config.width == 5
    assert _Fixed({"width": 2}, width=7).config.width == 7
    with pytest.raises(ConfigError, match="'width' must be an integer >= 1"):
        _Fixed(width=0)
    with pytest.raises(ConfigError, match="config must be a _FixedConfig or a dict"):
        _Fixed(42)


def test_registry_order_and_lookup() -> None:
    from kuairec.models.registry import default_models

    names = available_models()
    assert names[:3] == ["random", "popularity", "popularity_weighted"] and names[-1] == "oracle"
    for earlier, later in (("als", "bpr"), ("bpr", "ease"), ("ease", "itemknn")):
        assert names.index(earlier) < names.index(later)
    variants = set(names) - set(default_models())  # alternatives run only with --models
    assert default_models() == [n for n in names if n not in variants]
    assert "autoencoder_vae" in variants and "autoencoder" not in variants
    assert get_model_class("ease").name == "ease"
    with pytest.raises(ConfigError, match="unknown model 'nope'; known models: random, popularity"):
        create_model("nope")
    with pytest.raises(ConfigError, match="als: unknown parameter\\(s\\) 'factor'"):
        create_model("als", {"factor": 8})
    assert create_model("als", {"factors": 8}).config.factors == 8


def test_importing_models_does_not_import_backends() -> None:
    code = (
        "import sys, kuairec.models as m; m.get_model_class('popularity'); "
        "print(sorted({'implicit', 'torch'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_models_doc_table_matches_the_declarations() -> None:
    from pathlib import Path

    from kuairec.models.catalogue import BEGIN, END, docs_block

    doc = (Path(__file__).resolve().parents[2] / "docs" / "models.md").read_text()
    start, stop = doc.index(BEGIN), doc.index(END) + len(END)
    assert doc[start:stop] == docs_block(), "regenerate: python -m kuairec.models.catalogue"
