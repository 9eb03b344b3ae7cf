"""What every part of the report reads from a :class:`~kuairec.result.RunResult`: the K
shown, the primary metric, the models in leaderboard order and a stable colour each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kuairec.display.figure import pyplot
from kuairec.result import ModelResult, RunResult


def colours(names: Sequence[str]) -> dict[str, Any]:
    """A stable colour per model: tab10 up to 10 models, tab20 beyond."""
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


class RunView:
    """A run's result as the report reads it."""

    def __init__(self, result: RunResult) -> None:
        self.result = result
        self.protocol = result.protocol
        self.models: dict[str, ModelResult] = result.models
        self.ks = self._ks()
        self.k = 10 if not self.ks or 10 in self.ks else min(self.ks, key=lambda k: abs(k - 10))
        self.key = f"ndcg@{self.k}"
        self.order = result.ranked(self.key)
        self.colour = colours(self.order) if self.order else {}

    def _ks(self) -> list[int]:
        """The cut-offs with a metric in the results (a K beyond the candidates is capped
        at the candidate count by the evaluation)."""
        found = {
            int(k)
            for m in self.models.values()
            for key in m.metrics
            for metric, _, k in [key.partition("@")]
            if metric == "ndcg" and k.isdigit()
        }
        return sorted(found) or sorted(set(self.protocol.ks))

    def value(self, name: str, key: str) -> float | None:
        return self.models[name].value(key)

    def ci(self, name: str, key: str) -> tuple[float, float] | None:
        pair = self.models[name].ci.get(key)
        if pair is None or pair[0] is None or pair[1] is None:
            return None
        return float(pair[0]), float(pair[1])

    def contenders(self, names: list[str]) -> list[str]:
        """``names`` without the reference rows (all of them when only those remain)."""
        real = [n for n in names if not self.models[n].reference]
        return real or list(names)

    def display(self, name: str) -> str:
        """The model's name with its marks: a reference row, a capped or unrepeatable fit."""
        m = self.models[name]
        marks = []
        if m.reference:
            marks.append("reference")
        if m.time_limited:
            marks.append("time limit")
        if not m.deterministic:
            marks.append("not deterministic")
        if m.remark:
            marks.append("see note")
        return f"{name} ({', '.join(marks)})" if marks else name
