"""What the two-stage fit does between the cut and the search: retrievers, the training
rows (candidates, features, labels) and the typed account of it all.

Retrievers are registry models built from their names and parameters. A retriever that
the caller has already fitted on the same training log with the same parameters (the
run's own EASE, say) is reused for inference instead of being refitted
(:func:`fit_retrievers`); the retrievers fitted before T are always the model's own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.errors import ConfigError
from kuairec.models.two_stage.features import (
    FeatureContext,
    candidate_features,
    lookup_stored,
)
from kuairec.models.two_stage.ranker import RankData, prior_of
from kuairec.models.two_stage.retrieval import retrieve

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.data.dataset import TrainSet
    from kuairec.models.base import Recommender
    from kuairec.models.two_stage.features import LabelRule
    from kuairec.models.two_stage.split import CutoffSplit

USER_BLOCK = 1024  # users whose candidates and features are built at a time


def retriever_configs(names: list[str], params: Mapping[str, Mapping[str, Any]]) -> dict:
    """name -> checked config dict of every retriever (ConfigError for a bad name, a
    repeated one, the two-stage model itself or parameters of a model not listed)."""
    from kuairec.models.registry import check_params, config_to_dict, get_model_class

    if not names:
        raise ConfigError("two_stage: parameter 'retrievers' must name at least one model")
    if len(set(names)) != len(names):
        raise ConfigError(f"two_stage: parameter 'retrievers' repeats a model: {names}")
    unused = sorted(set(params) - set(names))
    if unused:
        raise ConfigError(f"two_stage: retriever_params given for models not retrieving: {unused}")
    out = {}
    for name in names:
        if getattr(get_model_class(name), "name", None) == "two_stage":
            raise ConfigError("two_stage: a two-stage model cannot be its own retriever")
        out[name] = config_to_dict(check_params(name, params.get(name, {})))
    return out


def fit_retrievers(
    configs: dict[str, dict[str, Any]],
    train: TrainSet,
    fitted: Mapping[str, Recommender] | None = None,
) -> tuple[dict[str, Recommender], list[str]]:
    """The retrievers fitted on ``train``; those in ``fitted`` that match (same name,
    same parameters, fitted on a log of the same shape and id maps) are reused.
    Returns ``(retrievers, names reused)``."""
    from kuairec.models.registry import create_model

    out, reused = {}, []
    for name, config in configs.items():
        given = (fitted or {}).get(name)
        if given is not None and _matches(given, name, config, train):
            out[name] = given
            reused.append(name)
            continue
        out[name] = create_model(name, config).fit(train)
    return out, reused


def _matches(model: Any, name: str, config: dict[str, Any], train: TrainSet) -> bool:
    from kuairec.models.registry import config_to_dict

    inter = train.interactions
    trained_on = f"{train.n_users} users x {train.n_items} items, {inter.nnz} user-item pairs"
    return bool(
        getattr(model, "is_fitted", False)
        and (getattr(model, "registered_as", None) or model.name) == name
        and config_to_dict(model.config) == config
        and model.fingerprint_ == train.fingerprint()
        and model.trained_on_ == trained_on
    )


def rank_data(
    retrievers: dict[str, Recommender],
    ctx: FeatureContext,
    split: CutoffSplit,
    rule: LabelRule,
    n_candidates: int,
    groups: tuple[str, ...],
    unexposed: str,
    drop: frozenset[str] = frozenset(),
    prior: bool = False,
) -> tuple[RankData, np.ndarray]:
    """The target users' candidate rows at T, with features and labels; and each row's
    retriever scores (for the held-out comparison with each retriever alone)."""
    users = split.target_users
    parts = [
        _block(retrievers, ctx, split, rule, users[s : s + USER_BLOCK], n_candidates, groups, drop)
        for s in range(0, users.size, USER_BLOCK)
    ]
    x = np.vstack([p[0] for p in parts])
    label = np.concatenate([p[3] for p in parts])
    shown = label >= 0  # before the unexposed rule relabels
    if unexposed == "negative":
        label = np.where(label < 0, 0, label).astype(np.int32)
    elif unexposed == "live":  # negatives: unexposed videos that someone watched after T
        live = np.bincount(split.targets.indices, minlength=split.targets.shape[1]) > 0
        item = np.concatenate([p[2] for p in parts])
        label = np.where((label < 0) & live[item], 0, label).astype(np.int32)
    targets = split.targets
    ideal = {
        int(u): rule.relevance(
            targets.data[targets.indptr[u] : targets.indptr[u + 1]],
            targets.indices[targets.indptr[u] : targets.indptr[u + 1]],
        )
        for u in users
    }
    data = RankData(
        x=x,
        names=parts[0][4],
        user=np.concatenate([p[1] for p in parts]),
        item=np.concatenate([p[2] for p in parts]),
        label=label,
        ideal=ideal,
        prior=prior_of(np.concatenate([p[6] for p in parts])) if prior else None,
        shown=shown,
    )
    return data, np.vstack([p[5] for p in parts])


def _block(retrievers, ctx, split, rule, users, n_candidates, groups, drop) -> tuple:  # noqa: ANN001
    scorers = [(n, _known_scorer(m, users)) for n, m in retrievers.items()]
    cand = retrieve(scorers, split.seen[users], n_candidates)
    feats = candidate_features(ctx, cand, ctx.history[users], users, groups, drop)
    user = users[cand.rows]
    targets = split.targets[users]
    label = np.full(cand.size, -1, dtype=np.int32)  # -1: not exposed after T
    stored, value = lookup_stored(targets, cand.rows, cand.items)
    label[stored] = rule.relevance(value[stored], cand.items[stored])
    return feats.values, user, cand.items, label, feats.names, cand.scores, cand.ranks[:, 0]


def _known_scorer(model: Recommender, users: np.ndarray) -> Any:
    return lambda rows: model.score(users[rows])


def summarize(cut, data, retr_scores, choice, early, reused, ctx, cfg, seconds) -> Any:  # noqa: ANN001
    """The :class:`~.summary.FitSummary` of a fit."""
    from kuairec.models.two_stage.ranker import ndcg_at_k, ranker_scores, shown_ndcg
    from kuairec.models.two_stage.summary import FitSummary, importance

    held: dict[str, float] = {}
    if choice.row_roles is not None:
        rows = np.flatnonzero(choice.row_roles == 1)
        if choice.booster is not None:
            ranked = ranker_scores(choice.booster, data, rows)
            held["two_stage"] = float(np.nanmean(ndcg_at_k(data, rows, ranked)))
            held["two_stage, shown only"] = _mean(shown_ndcg(data, rows, ranked))
        for j, name in enumerate(early):
            held[name] = float(np.nanmean(ndcg_at_k(data, rows, retr_scores[rows, j])))
        for j, name in enumerate(early):
            held[f"{name}, shown only"] = _mean(shown_ndcg(data, rows, retr_scores[rows, j]))
    return FitSummary(
        cutoff=float(cut.cutoff), split=cut.kind,
        history_pairs=int(cut.history.interactions.nnz), straddling_pairs=cut.n_straddling,
        target_pairs=int(cut.targets.nnz), target_users=int(cut.target_users.size),
        users_by_role=choice.users, train_rows=choice.train_rows, unexposed=cfg.unexposed,
        retrievers=list(early), reused=reused,
        trials=[dataclasses.asdict(t) for t in choice.trials], chosen_trial=choice.chosen,
        decision=choice.decision, why=choice.why, comparison=choice.comparison,
        held_out_ndcg=held, importance=importance(choice.booster, feature_groups(data.names)),
        notes=list(ctx.notes), seconds={k: round(v, 3) for k, v in seconds.items()},
    )  # fmt: skip


def _mean(values: np.ndarray) -> float:
    """The mean of the users with a value (NaN when none has one), without a warning."""
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def feature_groups(names: tuple[str, ...]) -> dict[str, str]:
    """Feature name -> its group (retrieval, item, match, user)."""
    out = {}
    for n in names:
        if n.endswith(("_score", "_rank")) and not n.startswith(("item_", "user_")):
            out[n] = "retrieval"
        elif n.startswith("item_"):
            out[n] = "item"
        elif n.startswith(("user_", "profile_")):
            out[n] = "user"
        else:
            out[n] = "match"
    return out
