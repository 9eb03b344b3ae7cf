"""The CLI's command modules: a missing one is an error that says so, never a command
that silently vanishes from --help."""

from __future__ import annotations

import pytest

import kuairec.cli as cli


def test_every_command_module_registers_its_commands(capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("data", "run", "evaluate", "recommend", "tune", "eda", "serve"):
        assert f"  {command}" in out


def test_a_missing_command_module_is_reported(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "no_such_module"))
    assert cli.main(["--help"]) == 1
    err = capsys.readouterr().err
    assert "error: kuairec is not installed completely" in err
    assert "kuairec.cli.no_such_module" in err


@pytest.mark.parametrize("args", [["run", "--help"], ["tune", "--help"]])
def test_help_texts_are_plain(args, capsys) -> None:
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "%%" not in out
    if args[0] == "tune":  # the tunable models come from the registry
        from kuairec.models.registry import tunable_models

        assert f"Model to tune: {', '.join(tunable_models())}." in " ".join(out.split())


def test_the_leaderboard_fits_the_longest_model_name(tmp_path, capsys) -> None:
    from kuairec.cli.run import _print_leaderboard
    from kuairec.pipeline import metrics_file
    from kuairec.result import CostInfo, ModelResult, ProtocolInfo, RunResult

    def model(ndcg: float) -> ModelResult:
        return ModelResult(
            model="m", reference=False, cost_class="cheap",
            metrics={"ndcg@10": ndcg, "recall@10": None}, ci={"ndcg@10": (ndcg - 0.1, ndcg)},
            by_label={}, cost=CostInfo(1.5, 0.1, 10.0), config={},
        )  # fmt: skip

    protocol = ProtocolInfo("kuairec-small", "big", "small", None, 10, 20, "wr>2", ["wr>2"],
                            [10], 100, 0, "temporal")  # fmt: skip
    result = RunResult(
        protocol, {"autoencoder_seed_config": model(0.0412), "ease": model(0.4577)},
        skipped={"a_model_with_a_long_name": "needs a package"},
    )  # fmt: skip
    metrics_file.write(result, tmp_path / "metrics.json")
    _print_leaderboard(tmp_path / "metrics.json")
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    header, ease, seed = lines[0], lines[1], lines[2]
    assert ease.startswith("ease ") and seed.startswith("autoencoder_seed_config ")
    column = header.index("ndcg@10")  # every value ends where the header's column ends
    assert ease[: column + 7].endswith("0.4577") and seed[: column + 7].endswith("0.0412")
    assert "n/a" in ease  # an undefined recall@10 is printed as such, not a crash
    assert lines[3].startswith("a_model_with_a_long_name  skipped: needs a package")
