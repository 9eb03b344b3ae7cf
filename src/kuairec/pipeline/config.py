"""The main job's typed configuration: defaults that just work, loadable from TOML or JSON.

Precedence: built-in defaults < ``--config FILE`` < command-line options. Checked by the
same typed machinery as the model configs (:mod:`kuairec.models.params`): a wrong type,
a value out of range or an unknown key names the setting, what it must be and what it
got, before any data is loaded.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

from kuairec import config as _paths
from kuairec.errors import ConfigError
from kuairec.evaluation.evaluate import DEFAULT_KS, DEFAULT_LABELS
from kuairec.models.params import config_from_dict, param

PROTOCOLS = ("kuairec", "temporal", "cold-items")
#: Lightning's accelerator names (``tpu9`` is refused before any data is loaded)
Accelerator = Literal["cpu", "gpu", "cuda", "mps", "tpu", "auto"]
MAX_BOOTSTRAP = 10_000  # the resample matrix is n_bootstrap x test users (int64)


@dataclass
class RunConfig:
    """Everything ``kuairec run`` needs; written as ``config.json`` into every run."""

    owner_name: ClassVar[str] = "run"  # errors read "run: parameter 'seed' must be ..."
    data: str | None = None  # data folder; None = $KUAIREC_DATA or the synthetic default
    scale: float = param(_paths.DEFAULT_SCALE, gt=0, doc="synthetic default only")
    seed: int = param(_paths.DEFAULT_SEED, ge=0)
    protocol: Literal["kuairec", "temporal", "cold-items"] = "kuairec"  # see docs/run.md
    interactions: str | None = None  # the log of the temporal protocol
    test_fraction: float = param(0.2, gt=0, lt=1, doc="temporal: last rows held out")
    models: list[str] | None = None  # None = every registered model
    ks: list[int] = param(list(DEFAULT_KS), doc="cut-offs K")
    label: str = "wr>2"
    labels: list[str] = param(list(DEFAULT_LABELS))
    n_bootstrap: int = param(
        1000, ge=0, le=MAX_BOOTSTRAP, doc="bootstrap resamples (0 = no intervals)"
    )
    tune: bool = True  # choose hyperparameters on a validation split of the training log
    validation: Literal["temporal", "random"] = "temporal"  # the split (docs/tuning.md)
    tune_trials: int | None = param(None, ge=0, doc="per model; None = each model's own count")
    time_limit: float | None = param(
        None, gt=0, doc="opt-in safety cap in seconds per model (tuning, deep fits); off"
    )
    baseline: str | None = None  # the paired comparisons' baseline; None = validation winner
    engine: Literal["local", "spark"] = "local"  # where the main job runs (docs/scale.md)
    spark_master: str = "local[*]"  # --engine spark: local[N], spark://host:7077, yarn...
    accelerator: Accelerator = "cpu"  # torch models: Lightning's accelerator
    devices: int = param(1, ge=1, doc="torch models: devices (processes) per fit")
    eda: bool = True  # write eda/report.html into the run folder
    validity: bool = True  # the offline-evaluation validity section (default protocol)
    cold_items: bool = True  # the cold-video section (default protocol)
    save_models: bool = True
    runs_dir: str = "runs"
    name: str = "kuairec"
    model_params: dict[str, dict[str, Any]] = param({})

    def check(self) -> None:
        """Cross-setting rules (called by ``config_from_dict`` after the field checks)."""
        if self.protocol == "temporal" and not self.interactions:
            raise ConfigError("protocol 'temporal' needs --interactions FILE.csv")
        if self.protocol == "temporal" and self.data:
            raise ConfigError(
                "run: --data is not read by the temporal protocol (it reads --interactions); "
                f"got data={self.data!r}: leave --data out"
            )
        if self.interactions and self.protocol != "temporal":
            raise ConfigError(
                f"run: --interactions is read only by the temporal protocol, got protocol "
                f"{self.protocol!r}: leave --protocol out (--interactions implies temporal)"
            )
        _check_labels(self.label, self.labels)
        if not self.ks or any(k <= 0 for k in self.ks):
            raise ConfigError(f"run: setting 'ks' (K) must be integers >= 1, got {self.ks}")
        if self.models is not None and not self.models:
            raise ConfigError("run: setting 'models' must name at least one model, got none")
        _check_name(self.name)
        if (
            self.baseline is not None
            and self.models is not None
            and (self.baseline not in self.models)
        ):
            raise ConfigError(
                f"run: setting 'baseline' must be one of the run's models {self.models}, "
                f"got {self.baseline!r}"
            )
        if self.engine == "spark" and self.protocol == "cold-items":
            raise ConfigError(
                "run: protocol 'cold-items' runs on the local engine only (it builds content "
                "features from the local dataset); use --engine local"
            )
        if self.label not in self.labels:
            self.labels = [self.label, *self.labels]
        self.ks = sorted(set(self.ks))

    def validate(self) -> RunConfig:
        """The same checks for a RunConfig built directly (returns a checked copy)."""
        return config_from_dict(RunConfig, self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_labels(label: str, labels: list[str]) -> None:
    """Every label parses (``wr>nan`` and ``bogus`` fail here, before any data is read)."""
    from kuairec.evaluation.labels import parse_label

    for name in [label, *labels]:
        try:
            parse_label(name)
        except ConfigError as exc:
            raise ConfigError(f"run: setting 'label': {exc}") from None


def _check_name(name: str) -> None:
    """A run name is one path component: no separator, no '..', not empty."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ConfigError(
            f"run: setting 'name' must be a single folder name (no '/', no '..'), got {name!r}"
        )


def load_run_config(path: Path | None, overrides: dict[str, Any]) -> RunConfig:
    """Defaults, then the file (TOML or JSON), then the non-None ``overrides``."""
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read_config_file(Path(path)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values.get("interactions") and "protocol" not in values:
        values["protocol"] = "temporal"  # a log to evaluate on is the temporal protocol
    known = {f.name for f in fields(RunConfig)}
    if "tune_seconds" in values:
        raise ConfigError(
            "run: setting 'tune_seconds' was removed: tuning runs a fixed number of trials "
            "(each model's own, or 'tune_trials'), so no clock decides a result; "
            "'time_limit' is an opt-in safety cap"
        )
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown run setting(s) {unknown}; known: {sorted(known)}")
    return config_from_dict(RunConfig, values)


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if text.startswith("\ufeff"):
        raise ConfigError(
            f"{path}: starts with a byte-order mark (BOM), which TOML and JSON do not allow: "
            "save it as UTF-8 without BOM"
        )
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of settings at the top level")
    # settings at the top level or in a [run] table; [params.<model>] tables hold each
    # model's hyperparameters
    run = data.get("run", {k: v for k, v in data.items() if k != "params"})
    if not isinstance(run, dict):
        raise ConfigError(f"{path}: [run] must be a table of settings")
    beside = sorted(set(data) - {"run", "params"}) if "run" in data else []
    if beside:
        raise ConfigError(
            f"{path}: {beside} outside the [run] table would be ignored: with a [run] table, "
            "every setting goes inside it (and model parameters in [params.<model>])"
        )
    run = dict(run)
    params = data.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise ConfigError(f"{path}: [params.<model>] must be tables of hyperparameters")
    if params:
        run["model_params"] = params
    return run
