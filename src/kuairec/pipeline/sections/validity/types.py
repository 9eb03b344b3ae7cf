"""The validity section's typed value."""

from __future__ import annotations

from dataclasses import dataclass, field

from kuairec.result import Interval

TITLE = "Offline-evaluation validity"


@dataclass
class ProtocolModel:
    """One model under one protocol, against the fully observed test."""

    value: float | None
    reference: float | None  # the fully observed value it estimates
    abs_error: float | None
    rel_error: float | None
    rank: int
    reference_rank: int


@dataclass
class ProtocolResult:
    """How one protocol's model ordering agrees with the fully observed one."""

    tau: float | None
    rho: float | None
    tau_ci: Interval | None
    rho_ci: Interval | None
    models: dict[str, ProtocolModel]
    flipped: list[list[str]]  # [ahead under the reference, ahead under the protocol]


@dataclass
class Expected:
    """Synthetic data: NDCG@10 against the observed label and the expected watch ratio."""

    expected: float | None
    observed: float | None


@dataclass
class Value:
    models: list[str]
    left_out: dict[str, str]
    protocols: dict[str, ProtocolResult]
    expected_label: dict[str, Expected] = field(default_factory=dict)
    note: str | None = None
