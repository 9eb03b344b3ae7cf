"""Shared by the fuzz tests: settings (seeded, sized for CI), outcome counting."""

from __future__ import annotations

import atexit
import json
import os
from collections import Counter, defaultdict

from hypothesis import HealthCheck, settings

#: ``KUAIREC_FUZZ_EXAMPLES=N``: every campaign tries N cases (a longer local run); unset,
#: each uses its CI size (the whole fuzz suite in about a minute on 2 cores).
_OVERRIDE = os.environ.get("KUAIREC_FUZZ_EXAMPLES")
OUTCOMES: dict[str, Counter] = defaultdict(Counter)


def fuzz_settings(ci_examples: int) -> settings:
    n = int(_OVERRIDE) if _OVERRIDE else ci_examples
    return settings(
        max_examples=n,
        derandomize=True,  # the same cases on every run: a failure reproduces
        deadline=None,
        database=None,  # nothing written into the working tree
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def count(campaign: str, outcome: str) -> None:
    OUTCOMES[campaign][outcome] += 1


def _report() -> None:
    """``KUAIREC_FUZZ_REPORT=path``: the outcome counts of this session, as JSON."""
    path = os.environ.get("KUAIREC_FUZZ_REPORT")
    if path and OUTCOMES:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({k: dict(v) for k, v in sorted(OUTCOMES.items())}, fh, indent=1)


atexit.register(_report)
