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


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        # with a [run] table, a top-level setting was dropped: seed = 7 ran as seed 0
        ("seed = 7\n[run]\nname = 'x'\n", ["['seed'] outside the [run] table"]),
        ("[run]\nseed = 7\n[tuning]\ntrials = 3\n", ["['tuning'] outside the [run] table"]),
        ("[run]\nlabel = 'wr>nan'\n", ["setting 'label'", "threshold must be a finite number"]),
        ("label = 'bogus'\n", ["setting 'label'", "unknown label 'bogus'"]),
        ("labels = ['wr>2', 'wr>=x']\n", ["setting 'label'", "'wr>=x'"]),
        ("n_bootstrap = 1_000_000_000\n", ["'n_bootstrap'", "<= 10000", "1000000000"]),
        ("accelerator = 'tpu9'\n", ["'accelerator'", "'cpu'", "'tpu9'"]),
        ("\ufeffseed = 7\n", ["byte-order mark (BOM)", "without BOM"]),
    ],
    ids=["top_level_beside_run", "unknown_section", "label_nan", "label_bogus", "labels_bad",
         "huge_bootstrap", "unknown_accelerator", "bom"],
)  # fmt: skip
def test_config_files_are_checked_before_any_data(
    tmp_path: Path, capsys, text: str, parts: list[str]
) -> None:
    """Each used to be dropped silently, or to fail only after data was loaded (an
    unknown accelerator lost a run after popularity had trained)."""
    from kuairec.cli import main

    f = tmp_path / "run.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_run_config(f, {})
    for part in parts:
        assert part in str(info.value), (part, str(info.value))
    # from the CLI: one line, exit 2, and the missing data folder is never reached
    missing = tmp_path / "no-such-data"
    assert main(["run", "--config", str(f), "--data", str(missing), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-data" not in err


def test_a_run_table_alone_and_params_beside_it_are_fine(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_text("[run]\nseed = 7\naccelerator = 'auto'\n[params.ease]\nl2 = 250.0\n")
    cfg = load_run_config(f, {})
    assert cfg.seed == 7 and cfg.accelerator == "auto"
    assert cfg.model_params == {"ease": {"l2": 250.0}}
