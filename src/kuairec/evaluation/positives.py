"""Before any training: does the test set hold a positive under the chosen label?

Without one, every ranking metric is undefined (NDCG and recall divide by the number of
positives), so a run would train every model and then have nothing to report. A click
log (every watch_ratio 1.0) has no positive under the default ``wr>2``; an all-zero log
has none under any label. :func:`require_positives` refuses such a test set with the
count each label would give and a label to use instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kuairec.errors import DataError, KuaiRecError
from kuairec.evaluation.labels import BUILTIN, label_values, parse_label

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.data.dataset import TrainSet
    from kuairec.evaluation.protocols import TestSet

#: The labels a refusal reports, most demanding first; the first with a positive is the
#: suggestion (``wr>0``: any watch at all; graded gains count their non-zero entries)
ALTERNATIVES = ("wr>2", "wr>=1", "duration", "wr>0.5", "wr>0", "graded")


def count_positives(test: TestSet, train: TrainSet, label: str) -> int:
    """Test pairs that are positive under ``label`` (graded: with a gain above 0)."""
    lab = parse_label(label)
    values = label_values(lab, test, train.interactions, train.video_duration)
    return int(np.count_nonzero(values > 0))


def require_positives(test: TestSet, train: TrainSet, label: str, source: str) -> None:
    """Raise :class:`DataError` (naming ``source``, the data the test set came from) when
    the test set holds no positive under ``label``; the message gives the count of every
    label in :data:`ALTERNATIVES` and suggests one."""
    if test.relevance.nnz and count_positives(test, train, label):
        return
    wr = np.asarray(test.relevance.data, dtype=np.float64)
    if wr.size == 0:
        raise DataError(f"{source}: the test set holds no observed pair: nothing to rank against")
    counts: dict[str, int | str] = {}
    for name in dict.fromkeys((parse_label(label).name, *ALTERNATIVES)):
        try:
            counts[name] = count_positives(test, train, name)
        except KuaiRecError as exc:  # e.g. the duration label without video durations
            counts[name] = f"n/a ({exc})"
    shown = "; ".join(
        f"{n}: {c:,}" if isinstance(c, int) else f"{n}: {c}" for n, c in counts.items()
    )
    usable = [n for n, c in counts.items() if isinstance(c, int) and c > 0 and n != "graded"]
    if usable:
        advice = f"choose a label that has some, e.g. --label {usable[0]!r}"
        if usable[0] not in BUILTIN:
            advice += " (a threshold rule)"
    else:
        advice = "no label gives a positive: the log holds no sign of preference"
    raise DataError(
        f"{source}: no positive test pair under label {label!r} ({wr.size:,} test pairs of "
        f"{test.users.size:,} users, watch_ratio from {wr.min():g} to {wr.max():g}); positives "
        f"per label: {shown}; {advice}"
    )
