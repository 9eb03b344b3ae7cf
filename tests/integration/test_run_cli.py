"""`kuairec run` end to end on small generated data, and its bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kuairec.cli import main

FAST = ["--bootstrap", "50", "--no-eda", "-q"]


def _run(capsys: pytest.CaptureFixture, args: list[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def finished_run(small_synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    code = main(
        [
            "run",
            "--data",
            str(small_synthetic_dir),
            "--runs-dir",
            str(runs),
            "--models",
            "random,popularity,ease,oracle",
            "--bootstrap",
            "100",
            "-q",
            "--no-eda",
        ]
    )
    assert code == 0
    (folder,) = list(runs.iterdir())
    return folder


def test_run_folder_holds_every_artefact(finished_run: Path) -> None:
    names = {p.name for p in finished_run.iterdir()}
    assert {
        "report.md",
        "report.html",
        "metrics.json",
        "config.json",
        "manifest.json",
        "recommendations",
        "models",
    } <= names
    assert finished_run.name.endswith("-kuairec")
    assert not [p for p in finished_run.parent.iterdir() if p.name.startswith(".")]


def test_metrics_json_validates_against_its_schema(finished_run: Path) -> None:
    """Every written metrics.json validates against docs/metrics.schema.json, and the file
    in docs/ is the schema the code generates."""
    import jsonschema

    from kuairec.pipeline import metrics_file

    docs = Path(__file__).resolve().parents[2] / "docs" / "metrics.schema.json"
    published = json.loads(docs.read_text())
    assert published == metrics_file.schema(), (
        "docs/metrics.schema.json is stale: python -m kuairec.pipeline.metrics_file "
        "> docs/metrics.schema.json"
    )
    doc = json.loads((finished_run / "metrics.json").read_text())
    jsonschema.Draft202012Validator(published).validate(doc)
    assert doc["schema_version"] == 2
    broken = json.loads(json.dumps(doc))
    broken["models"]["ease"]["metrics"]["ndcg@10"] = True  # the schema refuses what we refuse
    assert not jsonschema.Draft202012Validator(published).is_valid(broken)
    metrics_file.read(finished_run / "metrics.json")  # and the typed reader reads it back


def test_metrics_json_has_the_stable_format(finished_run: Path, small_dataset) -> None:
    doc = json.loads((finished_run / "metrics.json").read_text())
    assert set(doc["models"]) == {"random", "popularity", "ease", "oracle"}
    assert doc["protocol"]["n_test_users"] == int((small_dataset.small.user_counts() > 0).sum())
    assert doc["protocol"]["n_candidates"] == int((small_dataset.small.item_counts() > 0).sum())
    for name, entry in doc["models"].items():
        m = entry["metrics"]
        for key in ("precision@10", "recall@10", "ndcg@10", "map@10", "hit@10"):
            assert 0.0 <= m[key] <= 1.0, (name, key)
        lo, hi = entry["ci"]["ndcg@10"]
        assert lo <= m["ndcg@10"] <= hi
        assert entry["cost"]["fit_seconds"] >= 0 and entry["cost"]["peak_rss_mb"] > 0
        assert set(entry["by_label"]) >= {"wr>2", "wr>=1", "duration", "graded"}
    assert "rmse" in doc["models"]["oracle"]["metrics"]  # the oracle predicts watch_ratio
    ndcg = {n: e["metrics"]["ndcg@10"] for n, e in doc["models"].items()}
    assert ndcg["oracle"] > ndcg["ease"] > ndcg["random"]
    assert ndcg["popularity"] > ndcg["random"]


def test_recommendations_are_raw_ids_top_k(finished_run: Path, small_dataset) -> None:
    frame = pl.read_parquet(finished_run / "recommendations" / "ease.parquet")
    assert frame.columns == ["user_id", "rank", "video_id", "score"]
    test_users = small_dataset.users.raw[small_dataset.small.user_counts() > 0]
    assert set(frame["user_id"].unique().to_list()) == set(test_users.tolist())
    first = frame.filter(pl.col("user_id") == int(test_users[0])).sort("rank")
    assert first["rank"].to_list() == list(range(1, 51))
    assert np.all(np.diff(first["score"].to_numpy()) <= 0)
    # never a video from the user's training rows, always a small-matrix video
    u = 0
    uid = int(test_users[u])
    ui = small_dataset.users.to_index([uid])[0]
    seen = small_dataset.items.raw[
        small_dataset.big.indices[small_dataset.big.indptr[ui] : small_dataset.big.indptr[ui + 1]]
    ]
    assert not set(first["video_id"].to_list()) & set(seen.tolist())


def test_evaluate_reproduces_the_run(finished_run: Path, capsys: pytest.CaptureFixture) -> None:
    doc = json.loads((finished_run / "metrics.json").read_text())
    code, out, err = _run(
        capsys, ["evaluate", "--model-dir", str(finished_run / "models" / "ease"), "--json", "-q"]
    )
    assert code == 0, err
    again = json.loads(out)
    assert again["metrics"]["ndcg@10"] == pytest.approx(doc["models"]["ease"]["metrics"]["ndcg@10"])


def test_recommend_prints_tags(finished_run: Path, small_dataset, capsys) -> None:
    uid = int(small_dataset.users.raw[0])
    code, out, err = _run(
        capsys,
        [
            "recommend",
            "--model-dir",
            str(finished_run / "models" / "popularity"),
            "--user",
            str(uid),
            "-k",
            "5",
            "--json",
        ],
    )
    assert code == 0, err
    rows = json.loads(out)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert all("tags" in r and "category" in r for r in rows)


def test_existing_run_is_never_overwritten(small_synthetic_dir, tmp_path, capsys) -> None:
    args = [
        "run",
        "--data",
        str(small_synthetic_dir),
        "--runs-dir",
        str(tmp_path),
        "--models",
        "popularity",
        "--no-tune",
        *FAST,
    ]
    assert main(args) == 0
    assert main(args) == 0
    assert len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--models", "nosuchmodel"], "nosuchmodel"),
        (["--models", ","], "model names"),
        (["-k", "0"], "K"),
        (["-k", "10,-1"], "K"),
        (["--label", "wr>nan"], "threshold"),
        (["--seed", "-1"], "'seed' must be an integer >= 0"),
        (["--name", "x/../../escaped"], "single folder name"),
        (["--validation", "weekly"], "validation"),
    ],
)
def test_bad_run_arguments_fail_cleanly(small_synthetic_dir, tmp_path, capsys, args, needle):
    code, _, err = _run(
        capsys,
        ["run", "--data", str(small_synthetic_dir), "--runs-dir", str(tmp_path), *FAST, *args],
    )
    assert code != 0
    _one_line_error(err)
    assert needle.lower() in err.lower()
    assert not list(tmp_path.iterdir())  # nothing written


def test_model_dir_missing_files(finished_run: Path, tmp_path: Path, capsys) -> None:
    import shutil

    # a copy inside a run-shaped folder, so the run's config.json still names the data
    broken_run = tmp_path / "run"
    shutil.copytree(finished_run, broken_run, ignore=shutil.ignore_patterns("*.parquet"))
    broken = broken_run / "models" / "ease"
    (broken / "weights.npz").unlink()
    code, _, err = _run(capsys, ["evaluate", "--model-dir", str(broken), "-q"])
    assert code != 0
    _one_line_error(err)
    assert "weights.npz" in err


def test_model_from_another_dataset(finished_run: Path, tmp_path: Path, capsys) -> None:
    from kuairec.data.synthetic import generate

    other = tmp_path / "other"
    generate(other, scale=0.03, seed=11, progress=False)
    code, _, err = _run(
        capsys,
        [
            "evaluate",
            "--model-dir",
            str(finished_run / "models" / "ease"),
            "--data",
            str(other),
            "-q",
        ],
    )
    assert code != 0
    _one_line_error(err)
    assert "another dataset" in err


def test_bad_model_parameter_fails_before_any_work(small_synthetic_dir, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("[params.ease]\nl2 = -3.0\n")
    runs = tmp_path / "runs"
    code, _, err = _run(
        capsys,
        [
            "run",
            "--data",
            str(small_synthetic_dir),
            "--runs-dir",
            str(runs),
            "--config",
            str(cfg),
            "--models",
            "ease",
            *FAST,
        ],
    )
    assert code != 0
    _one_line_error(err)
    assert "l2" in err
    assert not runs.exists()


def test_tune_writes_a_config_that_run_accepts(small_synthetic_dir, tmp_path, capsys) -> None:
    best = tmp_path / "best.toml"
    code, out, err = _run(
        capsys,
        [
            "tune",
            "--model",
            "itemknn",
            "--trials",
            "3",
            "--data",
            str(small_synthetic_dir),
            "--out",
            str(best),
            "-q",
        ],
    )
    assert code == 0, err
    assert "on the validation split" in out
    assert "defaults:" in out and ("tuned" in out or "kept the defaults" in out or "beat" in out)
    from kuairec.pipeline.config import load_run_config

    params = load_run_config(best, {}).model_params["itemknn"]
    assert set(params) == {"neighbours", "shrinkage", "weighting", "threshold"}
    missing = tmp_path / "no-such-data"  # refused before the data is even looked for
    code, _, err = _run(capsys, ["tune", "--model", "random", "--data", str(missing)])
    assert code != 0 and "no search space" in err


@pytest.mark.parametrize(
    "content, needle",
    [
        ("SECRET-FIRST-LINE {", "bad JSON at line 1"),
        ('["a list"]', "expected a JSON object"),
        ('{"seed": "abc"}', "'seed' must be an integer"),
    ],
)
def test_damaged_run_config_names_the_file(finished_run, tmp_path, capsys, content, needle):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run, ignore=shutil.ignore_patterns("*.parquet"))
    (run / "config.json").write_text(content)
    code, _, err = _run(capsys, ["evaluate", "--model-dir", str(run / "models" / "ease"), "-q"])
    assert code != 0
    _one_line_error(err)
    assert "config.json" in err and needle in err
    assert "SECRET" not in err  # the file's content is never echoed


@pytest.mark.parametrize(
    "line, needle",
    [
        ('seed = "abc"', "'seed' must be an integer"),
        ("n_bootstrap = 2.5", "'n_bootstrap' must be an integer"),
        ('labels = "wr>2"', "'labels' must be a list"),
        ('save_models = "no"', "'save_models' must be true or false"),
    ],
)
def test_bad_config_file_settings_fail_before_any_work(
    small_synthetic_dir, tmp_path, capsys, line, needle
) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(line + "\n")
    runs = tmp_path / "runs"
    code, _, err = _run(
        capsys,
        ["run", "--config", str(cfg), "--data", str(small_synthetic_dir), "--runs-dir", str(runs)],
    )
    assert code != 0
    _one_line_error(err)
    assert needle in err
    assert not runs.exists()


@pytest.mark.parametrize("protocol", ["temporal", "kuairec"])
def test_crafted_run_config_cannot_read_other_files(finished_run, tmp_path, capsys, protocol):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run, ignore=shutil.ignore_patterns("*.parquet"))
    secret = tmp_path / "secret.csv"
    secret.write_text("TOP-SECRET-LINE,x\n1,2\n")
    cfg = json.loads((run / "config.json").read_text())
    if protocol == "temporal":
        cfg.update(protocol="temporal", interactions=str(secret))
    else:
        cfg.update(data=str(tmp_path))  # a folder, but no KuaiRec files in it
    (run / "config.json").write_text(json.dumps(cfg))
    code, _, err = _run(capsys, ["evaluate", "--model-dir", str(run / "models" / "ease"), "-q"])
    assert code != 0
    _one_line_error(err)
    assert "config.json" in err and "TOP-SECRET" not in err


def test_tune_refuses_an_out_folder_before_the_study(tmp_path, capsys) -> None:
    """``--out <existing folder>`` ran the whole study, then failed with 'Is a directory'.
    The data folder here does not exist: the --out check must come first."""
    missing = tmp_path / "no-such-data"
    argv = ["tune", "--model", "itemknn", "--data", str(missing), "--out", str(tmp_path), "-q"]
    code, _, err = _run(capsys, argv)
    assert code == 2
    _one_line_error(err)
    assert "is a folder: expected a file name" in err and "no-such-data" not in err


@pytest.mark.parametrize("command", ["evaluate", "serve"])
def test_a_run_folder_without_config_json_says_so(finished_run, tmp_path, capsys, command):
    """Without config.json the synthetic default data was generated and the model then
    refused as 'trained on another dataset'."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run, ignore=shutil.ignore_patterns("*.parquet"))
    (run / "config.json").unlink()
    argv = ["evaluate", "--model-dir", str(run / "models" / "ease"), "-q"]
    if command == "serve":
        pytest.importorskip("fastapi")
        argv = ["serve", "--run", str(run), "--port", "0", "-q"]
    code, _, err = _run(capsys, argv)
    assert code == 2
    _one_line_error(err)
    assert f"{run / 'config.json'} is missing" in err and "another dataset" not in err


@pytest.mark.slow
def test_sigterm_during_a_torch_fit_exits_143_and_cleans_up(small_synthetic_dir, tmp_path) -> None:
    """Lightning catches the interruption and calls sys.exit(1); the run must still end
    with 143 (SIGTERM), one line, and no scratch or temporary folder left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    runs = tmp_path / "runs"
    argv = ["run", "--data", str(small_synthetic_dir), "--runs-dir", str(runs), "--no-eda",
            "--models", "autoencoder", "--no-tune", "--no-validity", "--no-cold-items"]  # fmt: skip
    params = tmp_path / "slow.toml"
    params.write_text("[params.autoencoder]\nmax_epochs = 10000\npatience = 10000\n")
    argv += ["--config", str(params)]
    code = f"import sys; from kuairec.cli import main; sys.exit(main({argv!r}))"
    child = subprocess.Popen(
        [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    seen = ""
    while "autoencoder: fit" not in seen:  # the plain stage line: it is fitting now
        assert child.poll() is None and time.monotonic() < deadline, seen
        seen += child.stderr.readline()
    time.sleep(3.0)  # some epochs in
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, seen + err
    assert "Terminated." in err and "Traceback" not in err
    assert not runs.exists() or list(runs.iterdir()) == []  # no run, no scratch folder
