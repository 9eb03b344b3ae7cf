"""One call from a fitted model to its full evaluation.

``evaluate_model(model, test, train)`` ranks every candidate for every test user
(training pairs excluded), then runs :func:`kuairec.evaluation.evaluate.evaluate` on the
lists, with the model's watch_ratio predictions when it makes them. Any object with the
Recommender contract's ``recommend`` (and, with ``predicts_ratings``, ``predict``)
works: evaluation never imports a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kuairec.evaluation.evaluate import DEFAULT_KS, DEFAULT_LABELS, EvalContext, EvalResult


def evaluate_model(
    model: Any,
    test: Any,
    train: Any,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    labels: Sequence[str] = DEFAULT_LABELS,
    default_label: str = "wr>2",
    n_bootstrap: int = 1000,
    seed: int = 0,
    context: EvalContext | None = None,
) -> EvalResult:
    """Metrics, intervals, segments and per-user values of a fitted model on ``test``.

    >>> result = evaluate_model(model, test, train)          # doctest: +SKIP
    >>> result.metrics["ndcg@10"], result.ci["ndcg@10"]     # doctest: +SKIP
    """
    return rank_and_evaluate(
        model, test, train, ks=ks, labels=labels, default_label=default_label,
        n_bootstrap=n_bootstrap, seed=seed, context=context,
    )[0]  # fmt: skip


def rank_and_evaluate(
    model: Any, test: Any, train: Any, **options: Any
) -> tuple[EvalResult, np.ndarray, np.ndarray]:
    """:func:`evaluate_model`'s result with the lists it evaluated: (result, items, scores)."""
    from kuairec.evaluation.evaluate import evaluate

    ks = tuple(options.pop("ks", DEFAULT_KS))
    items, scores = model.recommend(
        test.users, max(ks), exclude=test.exclude, candidates=test.candidates
    )
    predictions = None
    if getattr(model, "predicts_ratings", False):
        users, pair_items = test.pairs()
        predictions = model.predict(users, pair_items)
    result = evaluate(items, test, train, ks=ks, predictions=predictions, **options)
    return result, items, scores
