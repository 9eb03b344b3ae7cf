"""Evaluation: protocols, labels, vectorised metrics, bootstrap intervals, segments.

The entry point is :func:`evaluate`; everything is array-based (item_idx lists in,
metrics out), so it does not depend on any model. See docs/metrics.md.
"""

from kuairec.evaluation.bootstrap import bootstrap_ci, paired_bootstrap
from kuairec.evaluation.evaluate import EvalResult, compare, evaluate, flips, prepare
from kuairec.evaluation.labels import Label, label_relevance, parse_label
from kuairec.evaluation.protocols import (
    TestSet,
    default_protocol,
    load_interactions_csv,
    make_train_set,
    temporal_experiment,
    temporal_protocol,
)
from kuairec.evaluation.validation import random_holdout, temporal_holdout, validation_split

__all__ = [
    "EvalResult",
    "Label",
    "TestSet",
    "bootstrap_ci",
    "compare",
    "default_protocol",
    "evaluate",
    "flips",
    "label_relevance",
    "load_interactions_csv",
    "make_train_set",
    "paired_bootstrap",
    "parse_label",
    "prepare",
    "random_holdout",
    "temporal_experiment",
    "temporal_holdout",
    "temporal_protocol",
    "validation_split",
]
