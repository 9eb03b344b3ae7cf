"""``kuairec run | evaluate | recommend | tune``: the main job and saved models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from kuairec import config as _paths
from kuairec.cli.app import app
from kuairec.cli.data import DATA_OPTION, RAW_ID


def _k_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        ks = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not ks or min(ks) <= 0:
        raise click.BadParameter(f"every K must be a positive integer, got {value!r}")
    return ks


def _names(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter(f"expected comma-separated model names, got {value!r}")
    return names


def _label(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from kuairec.evaluation.labels import parse_label

    parse_label(value)  # a NaN threshold or an unknown name fails here, before any work
    return value


SEED = click.option(
    "--seed", type=int, default=None, help=f"Random seed [default: {_paths.DEFAULT_SEED}]."
)
SCALE = click.option(
    "--scale", type=float, default=None, help="Scale of the synthetic default data [default: 0.2]."
)
LABEL = click.option(
    "--label",
    default=None,
    callback=_label,
    help="Positive label: 'wr>2' (default), 'wr>=1', 'duration', 'graded', "
    "or a threshold such as 'wr>1.5'.",
)
QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
VALIDATION = click.option(
    "--validation",
    type=click.Choice(["random", "temporal"]),
    default=None,
    help="Validation split of the training log for tuning and early stopping: the last 7 "
    "days (default) or a random 20% of each test user's pairs (docs/tuning.md).",
)


def _progress(quiet: bool) -> Any:
    from kuairec.display.progress import Progress

    return Progress(enabled=not quiet)


@app.command("run")
@DATA_OPTION
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="TOML or JSON file of run settings ([params.<model>] for hyperparameters).",
)
@SCALE
@SEED
@click.option(
    "--models",
    callback=_names,
    default=None,
    help="Comma-separated model names [default: every registered model].",
)
@click.option(
    "-k", "--ks", callback=_k_list, default=None, help="Cut-offs K [default: 5,10,20,50]."
)
@LABEL
@click.option(
    "--protocol",
    type=click.Choice(["kuairec", "temporal", "cold-items"]),
    default=None,
    help="kuairec: train on big, test on small (default); temporal: per-user "
    "temporal holdout of --interactions; cold-items: 10% of the small matrix's videos "
    "held out of training, ranked from content.",
)
@click.option(
    "--interactions",
    type=click.Path(path_type=Path),
    default=None,
    help="CSV with user_id,video_id,timestamp,watch_ratio (temporal protocol).",
)
@click.option(
    "--bootstrap",
    "n_bootstrap",
    type=click.IntRange(min=0),
    default=None,
    help="Bootstrap resamples for the confidence intervals [default: 1000].",
)
@click.option(
    "--no-tune",
    is_flag=True,
    default=None,
    help="Keep default hyperparameters (no tuning on the validation split).",
)
@VALIDATION
@click.option("--no-eda", is_flag=True, default=None, help="Skip the dataset report.")
@click.option(
    "--no-cold-items",
    is_flag=True,
    default=None,
    help="Skip the cold-video section (10% of the small matrix's videos held out of "
    "training, ranked from their content features).",
)
@click.option(
    "--no-validity",
    is_flag=True,
    default=None,
    help="Skip the offline-evaluation validity section (logged-data protocols vs the "
    "fully observed truth).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "spark"]),
    default=None,
    help="Where the main job runs: local (one process, the default) or spark (every stage "
    "that grows with the log as Spark DataFrame work; docs/scale.md).",
)
@click.option(
    "--spark-master",
    default=None,
    help="--engine spark: local[*] (default), local[N], spark://host:7077, yarn, k8s://...; "
    "the data must be at a path every executor reads (docs/scale.md).",
)
@click.option(
    "--tune-trials",
    type=click.IntRange(min=0),
    default=None,
    help="Trials of every tuned model's in-run tuning [default: each model's own count].",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Opt-in safety cap, in seconds per model, on tuning and on the deep models' "
    "training; a row it stops is marked 'not reproducible' [default: off].",
)
@click.option(
    "--baseline",
    default=None,
    help="The model every other is compared with in the paired differences [default: the "
    "best learned model on the validation split's confirmation half].",
)
@click.option(
    "--accelerator",
    default=None,
    help="Where the torch models train: cpu (default), gpu, auto (Lightning's names).",
)
@click.option(
    "--devices",
    type=click.IntRange(min=1),
    default=None,
    help="Devices (or CPU processes, with DDP) per torch-model fit [default: 1].",
)
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to create the run folder [default: ./runs].",
)
@click.option("--name", default=None, help="Suffix of the run folder name [default: kuairec].")
@QUIET
def run_cmd(
    config_file: Path | None,
    quiet: bool,
    no_tune: bool | None,
    no_eda: bool | None,
    no_validity: bool | None,
    no_cold_items: bool | None,
    **options: Any,
) -> None:
    """Train every model, evaluate on the fully observed small matrix, write a report.

    Creates runs/<timestamp>-<name>/ with report.md, report.html, metrics.json,
    recommendations/, models/, config.json, manifest.json and eda/report.html.
    """
    from kuairec.pipeline.config import load_run_config
    from kuairec.pipeline.run import execute

    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}
    options["tune"] = False if no_tune else None
    options["eda"] = False if no_eda else None
    options["validity"] = False if no_validity else None
    options["cold_items"] = False if no_cold_items else None
    cfg = load_run_config(config_file, options)
    with _progress(quiet) as progress:
        folder = execute(cfg, progress)
    _print_leaderboard(folder / "metrics.json")
    click.echo(f"\nrun written to {folder}\n  report: {folder / 'report.html'}")


def _print_leaderboard(metrics_path: Path) -> None:
    """The run's leaderboard on stdout, read back through the typed result."""
    from kuairec.pipeline import metrics_file

    result = metrics_file.read(metrics_path)
    names = result.ranked()
    width = max([len("model"), *map(len, names), *map(len, result.skipped)]) + 2
    click.echo(f"\n{'model':<{width}}{'ndcg@10':>9}  {'95% CI':<17}{'recall@10':>10}{'fit s':>8}")
    for name in names:
        m = result.models[name]
        lo, hi = m.ci.get("ndcg@10") or (None, None)
        ci = f"[{_num(lo)}, {_num(hi)}]"
        click.echo(
            f"{name:<{width}}{_num(m.value('ndcg@10')):>9}  {ci:<17}"
            f"{_num(m.value('recall@10')):>10}{m.cost.fit_seconds:>8.1f}"
        )
    for name, why in result.skipped.items():
        click.echo(f"{name:<{width}}skipped: {why}")
    if result.paired is not None:
        click.echo(f"baseline of the paired comparisons: {result.paired.baseline}")
    for note in result.notes:
        click.echo(f"note: {note}")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


MODEL_DIR = click.option(
    "--model-dir",
    type=click.Path(path_type=Path),
    required=True,
    help="A saved model folder, e.g. runs/<run>/models/ease.",
)


@app.command("evaluate")
@MODEL_DIR
@DATA_OPTION
@SEED
@LABEL
@click.option("-k", "--ks", callback=_k_list, default=None, help="Cut-offs K.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@QUIET
def evaluate_cmd(
    model_dir: Path,
    data: Path | None,
    seed: int | None,
    label: str | None,
    ks: list[int] | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Re-evaluate a saved model on the data it was trained on (or --data)."""
    from kuairec.pipeline.saved import config_for_model_dir, evaluate_saved

    cfg = config_for_model_dir(
        model_dir, {"data": str(data) if data else None, "seed": seed, "label": label, "ks": ks}
    )
    with _progress(quiet) as progress:
        result = evaluate_saved(model_dir, cfg, progress)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"model: {result['model']}")
    for key, value in result["metrics"].items():
        ci = result.get("ci", {}).get(key)
        extra = f"  [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
        click.echo(
            f"  {key:<22}{value:.4f}{extra}" if isinstance(value, float) else f"  {key:<22}{value}"
        )


@app.command("recommend")
@MODEL_DIR
@click.option("--user", "user_id", type=RAW_ID, required=True, help="Raw KuaiRec user_id.")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@DATA_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def recommend_cmd(model_dir: Path, user_id: int, k: int, data: Path | None, as_json: bool) -> None:
    """Print a saved model's top-k videos for one user, with tags and caption category."""
    from kuairec.pipeline.saved import config_for_model_dir, recommend_for_user

    cfg = config_for_model_dir(model_dir, {"data": str(data) if data else None})
    rows = recommend_for_user(model_dir, user_id, k, cfg, _progress(True))
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    click.echo(f"{'rank':>4}  {'video_id':>8}  {'score':>9}  {'tags':<14}category")
    for r in rows:
        tags = ",".join(map(str, r.get("tags", []))) or "-"
        click.echo(
            f"{r['rank']:>4}  {r['video_id']:>8}  {r['score']:>9.4f}  {tags:<14}"
            f"{r.get('category', '-')}"
        )


class _TunableModel(click.Option):
    """``--model``, whose help lists the registry's tunable models when it is shown."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from kuairec.models.registry import tunable_models

        self.help = f"Model to tune: {', '.join(tunable_models())}."
        return super().get_help_record(ctx)


@app.command("tune")
@click.option("--model", "model_name", required=True, cls=_TunableModel)
@click.option("--trials", type=click.IntRange(min=1), default=20, show_default=True)
@DATA_OPTION
@SCALE
@SEED
@LABEL
@VALIDATION
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the best parameters as a TOML file usable with `kuairec run --config`.",
)
@QUIET
def tune_cmd(
    model_name: str,
    trials: int,
    data: Path | None,
    scale: float | None,
    seed: int | None,
    label: str | None,
    validation: str | None,
    out: Path | None,
    quiet: bool,
) -> None:
    """Search hyperparameters with Optuna on a validation split of the training log.

    By default the last 7 days of the training log; the small matrix is never looked at.
    The selection half of the validation users chooses the best trial; the defaults are
    kept unless it beats them on the confirmation half with a paired 95% interval above 0.
    """
    from kuairec.pipeline.config import load_run_config
    from kuairec.pipeline.experiment import prepare
    from kuairec.pipeline.tuning import format_toml, study, tunable

    tunable(model_name)  # an unknown or untunable model is refused before any work
    if out is not None:  # checked before the study: it used to fail after it, on writing
        _check_out_file(out)
    cfg = load_run_config(
        None,
        {
            "data": str(data) if data else None,
            "scale": scale,
            "seed": seed,
            "label": label,
            "validation": validation,
        },
    )
    with _progress(quiet) as progress:
        exp = prepare(cfg, progress)
        with progress.stage(f"{model_name}: {trials} trials"):
            record, _ = study(
                model_name,
                exp.validation(cfg),
                n_trials=trials,
                seed=cfg.seed,
                n_bootstrap=cfg.n_bootstrap,
            )
    click.echo(f"objective: {record.objective} ({cfg.label})")
    click.echo(f"best trial {_num(record.best_value)}, defaults {_num(record.default_value)}")
    click.echo(f"{record.decision}: {record.why}")
    for key, value in record.best_params.items():
        click.echo(f"  {key} = {value}")
    if out is not None:
        from kuairec import atomic

        atomic.write_text(out, format_toml(model_name, record.best_params))
        click.echo(f"wrote {out} (use: kuairec run --config {out})")


def _check_out_file(out: Path) -> None:
    """``--out`` must name a file that can be written: not a folder, in a folder that
    exists and is writable."""
    import os

    if out.is_dir():
        raise click.BadParameter(
            f"{out} is a folder: expected a file name, e.g. {out / 'best.toml'}", param_hint="--out"
        )
    parent = out.parent.resolve()
    if not parent.is_dir():
        raise click.BadParameter(f"{out.parent}: folder does not exist", param_hint="--out")
    if not os.access(parent, os.W_OK):
        raise click.BadParameter(f"{out.parent}: folder is not writable", param_hint="--out")
