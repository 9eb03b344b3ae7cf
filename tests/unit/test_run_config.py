import json
from pathlib import Path

import pytest

from kuairec.errors import ConfigError
from kuairec.pipeline.config import load_run_config
from kuairec.pipeline.tuning import format_toml


def test_defaults_then_file_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_text("seed = 7\nks = [20, 10]\n[params.ease]\nl2 = 250.0\n")
    cfg = load_run_config(f, {"seed": 3, "models": None})
    assert cfg.seed == 3  # the command line wins over the file
    assert cfg.ks == [10, 20]  # sorted
    assert cfg.model_params == {"ease": {"l2": 250.0}}
    assert cfg.label == "wr>2" and cfg.n_bootstrap == 1000


def test_json_config_and_run_table(tmp_path: Path) -> None:
    f = tmp_path / "run.json"
    f.write_text(json.dumps({"run": {"models": ["popularity"], "name": "x"}}))
    cfg = load_run_config(f, {})
    assert cfg.models == ["popularity"] and cfg.name == "x"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"ks": [10, 0]}, "ks"),
        ({"ks": [-5]}, "ks"),
        ({"protocol": "leave-one-out"}, "protocol"),
        ({"protocol": "temporal"}, "--interactions"),
        ({"scale": float("nan")}, "scale"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_settings_name_the_setting(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_run_config(None, overrides)


def test_bad_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("seed = = 3")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_run_config(f, {})
    with pytest.raises(ConfigError, match="not found"):
        load_run_config(tmp_path / "missing.toml", {})


def test_tuned_params_round_trip_through_toml(tmp_path: Path) -> None:
    f = tmp_path / "best.toml"
    f.write_text(format_toml("als", {"factors": 48, "alpha": 2.5, "confidence": "log"}))
    cfg = load_run_config(f, {})
    assert cfg.model_params == {"als": {"factors": 48, "alpha": 2.5, "confidence": "log"}}
