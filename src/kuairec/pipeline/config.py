"""The main job's typed configuration: defaults that just work, loadable from TOML or JSON.

Precedence: built-in defaults < ``--config FILE`` < command-line options.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from kuairec import config as _paths
from kuairec.errors import ConfigError

DEFAULT_KS = (5, 10, 20, 50)
DEFAULT_LABELS = ("wr>2", "wr>=1", "duration", "graded")
PROTOCOLS = ("kuairec", "temporal")


@dataclass
class RunConfig:
    """Everything ``kuairec run`` needs; written as ``config.json`` into every run."""

    data: str | None = None  # data folder; None = $KUAIREC_DATA or the synthetic default
    scale: float = _paths.DEFAULT_SCALE  # synthetic default only
    seed: int = _paths.DEFAULT_SEED
    protocol: str = "kuairec"  # "kuairec" (big -> small) or "temporal" (one log)
    interactions: str | None = None  # the log of the temporal protocol
    test_fraction: float = 0.2  # temporal protocol: each user's last rows held out
    models: list[str] | None = None  # None = every registered model
    ks: list[int] = field(default_factory=lambda: list(DEFAULT_KS))
    label: str = "wr>2"
    labels: list[str] = field(default_factory=lambda: list(DEFAULT_LABELS))
    n_bootstrap: int = 1000
    tune: bool = True  # choose hyperparameters on a temporal holdout of the training log
    tune_trials: int = 10
    tune_seconds: float = 30.0  # per model; the defaults' trial always runs
    eda: bool = True  # write eda/report.html into the run folder
    save_models: bool = True
    runs_dir: str = "runs"
    name: str = "kuairec"
    model_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self) -> RunConfig:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.protocol == "temporal" and not self.interactions:
            raise ConfigError("protocol 'temporal' needs --interactions FILE.csv")
        if not self.ks or any((not isinstance(k, int)) or k <= 0 for k in self.ks):
            raise ConfigError(f"ks (K) must be positive integers, got {self.ks}")
        if self.n_bootstrap < 0:
            raise ConfigError(f"n_bootstrap must be >= 0, got {self.n_bootstrap}")
        if (
            not (isinstance(self.scale, int | float) and math.isfinite(self.scale))
            or self.scale <= 0
        ):
            raise ConfigError(f"scale must be a positive number, got {self.scale}")
        if self.tune_trials < 0 or not self.tune_seconds > 0:
            raise ConfigError(
                f"tune_trials must be >= 0 and tune_seconds > 0, got {self.tune_trials} "
                f"and {self.tune_seconds}"
            )
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.label not in self.labels:
            self.labels = [self.label, *self.labels]
        self.ks = sorted(set(self.ks))
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_run_config(path: Path | None, overrides: dict[str, Any]) -> RunConfig:
    """Defaults, then the file (TOML or JSON), then the non-None ``overrides``."""
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read_config_file(Path(path)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown run setting(s) {unknown}; known: {sorted(known)}")
    return RunConfig(**values).validate()


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
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
    run = dict(data.get("run", {k: v for k, v in data.items() if k != "params"}))
    params = data.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise ConfigError(f"{path}: [params.<model>] must be tables of hyperparameters")
    if params:
        run["model_params"] = params
    return run
