"""Stage two: a LightGBM LambdaRank model over the candidates, chosen on held-out users.

The users with targets after T are split, seeded, into three roles: *train* (the
ranker learns on their candidates), *selection* (early stopping, and the best of a
small fixed-count search) and *confirmation* (the best trial replaces the defaults
only when the paired-bootstrap 95% interval of its per-user NDCG@10 gain over the
defaults there lies above 0: the project's keep-defaults rule). Groups are users;
a training group whose labelled rows are all positive or all negative carries no
ranking signal and is left out.

Trial scores are per-user NDCG@10 of the ranker's order of *all* a held-out user's
candidates against all their positives after T (those the retrievers missed count in
the ideal DCG), so the recall ceiling is part of the figure.

LightGBM runs with ``deterministic=True``, ``force_row_wise=True``, a fixed thread
count and the config's seed: the same data and config give the same model text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ROLES = ("train", "selection", "confirmation")
GRID = {
    "num_leaves": (15, 31, 63),
    "min_data_in_leaf": (20, 50, 100),
    "learning_rate": (0.03, 0.05, 0.1),
}
K = 10


@dataclass(eq=False)
class RankData:
    """Candidate rows of the target users, sorted by user then item."""

    x: np.ndarray  # float32 (n_rows, n_features)
    names: tuple[str, ...]
    user: np.ndarray  # int64 (n_rows,): the row's user
    item: np.ndarray  # int64 (n_rows,)
    label: np.ndarray  # int32 (n_rows,): relevance after T; -1 = never exposed after T
    ideal: dict[int, np.ndarray]  # user -> that user's target relevances (all of them)
    prior: np.ndarray | None = None  # float64 (n_rows,): the score boosting starts from
    shown: np.ndarray | None = None  # bool (n_rows,): the user was shown the video after T


@dataclass(frozen=True)
class Trial:
    """One ranker configuration and how it did on the selection users."""

    params: dict[str, Any]
    best_iteration: int
    selection_ndcg: float


@dataclass(eq=False)
class RankerChoice:
    """The chosen booster and how it was chosen."""

    booster: Any
    trials: list[Trial]
    chosen: int
    decision: str  # "defaults" or "tuned"
    why: str
    comparison: dict[str, Any] | None = None
    curve: dict[str, list[float]] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)  # role -> users
    train_rows: int = 0
    row_roles: np.ndarray | None = None  # int8 role of every RankData row


def lgb_params(p: dict[str, Any], seed: int, num_threads: int) -> dict[str, Any]:
    """LightGBM parameters of one trial: lambdarank on NDCG@10, deterministic."""
    return {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [K],
        **p,
        "feature_fraction": 0.9,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": num_threads,
        "verbosity": -1,
    }


def assign_roles(users: np.ndarray, holdout_share: float, seed: int) -> np.ndarray:
    """Role (0 train, 1 selection, 2 confirmation) of each user: a seeded
    ``holdout_share`` held out, split in two halves."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(users.size)
    n_held = int(round(holdout_share * users.size))
    roles = np.zeros(users.size, dtype=np.int8)
    roles[order[:n_held]] = 2
    roles[order[: n_held // 2 + n_held % 2]] = 1
    return roles


def groups_of(user: np.ndarray, label: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """The rows (of ``rows``) of the groups with a ranking signal, and the group sizes:
    ``label`` >= 0 rows only, users whose labels are not all equal."""
    rows = rows[label[rows] >= 0]
    u = user[rows]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if u.size else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, u.size])
    lab = label[rows]
    lo = np.minimum.reduceat(lab, starts) if u.size else lab
    hi = np.maximum.reduceat(lab, starts) if u.size else lab
    keep = lo != hi
    return rows[np.repeat(keep, sizes)], sizes[keep]


def search(data: RankData, cfg: Any) -> RankerChoice:
    """The fixed-count search and the keep-defaults rule (see the module docstring)."""
    import lightgbm as lgb

    users = np.unique(data.user)
    roles = assign_roles(users, cfg.holdout_share, cfg.seed)
    role_of_row = roles[np.searchsorted(users, data.user)]
    train_rows, train_sizes = groups_of(data.user, data.label, np.flatnonzero(role_of_row == 0))
    if train_sizes.size == 0:
        return RankerChoice(None, [], -1, "none", "no training user has both a positive and "
                            "a negative candidate after T: the first retriever's order is "
                            "kept", users=_role_counts(roles), row_roles=role_of_row)  # fmt: skip
    dparams = {"feature_pre_filter": False, "verbosity": -1}
    x, y = data.x[train_rows], data.label[train_rows]
    names = list(data.names)
    ds = lgb.Dataset(
        x,
        y,
        group=train_sizes,
        feature_name=names,
        free_raw_data=False,
        params=dparams,
        init_score=_prior(data, train_rows),
    )
    sel_rows, sel_sizes = groups_of(data.user, data.label, np.flatnonzero(role_of_row == 1))
    valid = None
    if sel_sizes.size:
        valid = lgb.Dataset(data.x[sel_rows], data.label[sel_rows], group=sel_sizes,
                            reference=ds, params=dparams,
                            init_score=_prior(data, sel_rows))  # fmt: skip
    trials, boosters, curves = [], [], []
    for p in trial_params(defaults(cfg), cfg.n_trials, cfg.seed):
        booster, curve = _train(lgb, p, ds, valid, cfg)
        ndcg = held_out_ndcg(booster, data, role_of_row == 1)
        trials.append(Trial(p, int(booster.current_iteration()), float(np.nanmean(ndcg))))
        boosters.append(booster)
        curves.append(curve)
    choice = _confirm(trials, boosters, data, role_of_row == 2, cfg)
    choice.curve = curves[choice.chosen]
    choice.users = _role_counts(roles)
    choice.train_rows = int(train_rows.size)
    choice.row_roles = role_of_row
    return choice


def defaults(cfg: Any) -> dict[str, Any]:
    """The config's own ranker parameters: the search's first trial."""
    return {k: getattr(cfg, k) for k in GRID}


def trial_params(first: dict[str, Any], n_trials: int, seed: int) -> list[dict[str, Any]]:
    """``first`` (the defaults), then ``n_trials - 1`` distinct seeded grid points."""
    import itertools

    grid = [dict(zip(GRID, combo, strict=True)) for combo in itertools.product(*GRID.values())]
    others = [g for g in grid if g != first]
    order = np.random.default_rng(seed).permutation(len(others))
    return [dict(first), *[others[i] for i in order[: max(n_trials - 1, 0)]]]


def _train(lgb: Any, p: dict[str, Any], ds: Any, valid: Any, cfg: Any) -> tuple[Any, dict]:
    params = lgb_params(p, cfg.seed, cfg.num_threads)
    evals: dict[str, Any] = {}
    callbacks = [lgb.record_evaluation(evals)]
    if valid is not None:
        callbacks.append(lgb.early_stopping(cfg.patience, first_metric_only=True, verbose=False))
    valid_sets = [valid] if valid is not None else []
    booster = lgb.train(
        params, ds, num_boost_round=cfg.max_rounds, valid_sets=valid_sets, callbacks=callbacks
    )
    booster = _truncate(lgb, booster, booster.best_iteration if valid is not None else None)
    series = next(iter(evals.values()), {}).get(f"ndcg@{K}", [])
    curve = {"epoch": list(range(1, len(series) + 1)), f"valid_ndcg@{K}": list(map(float, series))}
    return booster, curve


def _truncate(lgb: Any, booster: Any, best: int | None) -> Any:
    """The booster rebuilt from its own text, holding only its first ``best`` trees (the
    early-stopping point; None: all): what is saved is exactly what predicts."""
    text = booster.model_to_string(num_iteration=best if best else -1)
    return lgb.Booster(model_str=text)


def held_out_ndcg(booster: Any, data: RankData, row_mask: np.ndarray) -> np.ndarray:
    """Per-user NDCG@10 (users of ``row_mask``'s rows, ascending; NaN without a
    positive) of the booster's order (plus the prior) of all their candidates."""
    rows = np.flatnonzero(row_mask)
    return ndcg_at_k(data, rows, ranker_scores(booster, data, rows))


def ranker_scores(booster: Any, data: RankData, rows: np.ndarray) -> np.ndarray | None:
    """The booster's scores of ``rows`` plus the prior it boosted from (None: no booster,
    the first retriever's order)."""
    if booster is None:
        return None
    scores = booster.predict(data.x[rows], num_threads=1)
    return scores if data.prior is None else scores + data.prior[rows]


def _prior(data: RankData, rows: np.ndarray) -> np.ndarray | None:
    return None if data.prior is None else data.prior[rows]


def prior_of(first_rank: np.ndarray) -> np.ndarray:
    """The score boosting starts from: ``-log1p(rank)`` in the first retriever's list
    (``n_candidates`` for a candidate it did not propose). With no tree at all, the
    candidates keep the first retriever's order; the trees learn corrections to it."""
    rank = np.nan_to_num(np.asarray(first_rank, dtype=np.float64), nan=1e9)  # not scored
    return -np.log1p(rank)


def ndcg_at_k(data: RankData, rows: np.ndarray, scores: np.ndarray | None) -> np.ndarray:
    """NDCG@10 per user of ``rows`` ordered by ``scores`` (desc; ties: lower item; None:
    the first feature, the first retriever's score), against all its target labels."""
    uniq, dcg = _dcg(data, rows, scores, with_ideal=False)
    ideal = np.array([_idcg(data.ideal.get(int(u), np.zeros(0))) for u in uniq])
    return np.divide(dcg, ideal, out=np.full(uniq.size, np.nan), where=ideal > 0)


def shown_ndcg(data: RankData, rows: np.ndarray, scores: np.ndarray | None) -> np.ndarray:
    """NDCG@10 per user of ``rows`` among the candidates the user was *shown* after T only
    (``data.shown``), its ideal from those same rows: how well the order ranks what the
    user liked among what the user saw, the logged analogue of a fully observed test
    (where every test video was shown). Users (ascending) without a shown positive: NaN."""
    keep = data.shown[rows]
    uniq, dcg, ideal = _dcg(data, rows[keep], None if scores is None else scores[keep])
    return np.divide(dcg, ideal, out=np.full(uniq.size, np.nan), where=ideal > 0)


def _dcg(
    data: RankData, rows: np.ndarray, scores: np.ndarray | None, with_ideal: bool = True
) -> tuple[np.ndarray, ...]:
    """(users of ``rows`` ascending, each one's DCG@10 of ``rows`` ordered by ``scores``
    as :func:`ndcg_at_k` orders them, and with ``with_ideal`` each one's ideal DCG@10 of
    those same rows)."""
    s = data.x[rows, 0] if scores is None else scores
    user, item = data.user[rows], data.item[rows]
    gain = np.maximum(data.label[rows], 0).astype(np.float64)
    uniq, at = np.unique(user, return_inverse=True)
    out = []
    orders = [np.lexsort((item, -s, user))]
    if with_ideal:
        orders.append(np.lexsort((-gain, user)))
    for order in orders:  # ranked, then ideal
        u, g = at[order], gain[order]
        starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if u.size else u
        pos = np.arange(u.size) - np.repeat(starts, np.diff(np.r_[starts, u.size]))
        disc = np.where(pos < K, 1.0 / np.log2(pos + 2.0), 0.0)
        out.append(np.bincount(u, weights=g * disc, minlength=uniq.size))
    return (uniq, *out)


def _idcg(gains: np.ndarray) -> float:
    top = np.sort(np.asarray(gains, dtype=np.float64))[::-1][:K]
    return float(np.sum(top / np.log2(np.arange(top.size) + 2.0)))


def _confirm(trials: list[Trial], boosters: list[Any], data: RankData, mask: np.ndarray,
             cfg: Any) -> RankerChoice:  # fmt: skip
    """Keep the defaults (trial 0) unless the selection's best beats them on the
    confirmation users with a paired interval above 0."""
    from kuairec.evaluation.bootstrap import paired_bootstrap

    best = int(np.nanargmax([t.selection_ndcg for t in trials]))
    if best == 0:
        return RankerChoice(boosters[0], trials, 0, "defaults", "the defaults scored best "
                            "on the selection users")  # fmt: skip
    a, b = held_out_ndcg(boosters[best], data, mask), held_out_ndcg(boosters[0], data, mask)
    cmp = paired_bootstrap(a, b, n_bootstrap=1000, seed=cfg.seed)
    if cmp["n_users"] and cmp["ci"][0] > 0:
        why = "the best trial beat the defaults on the confirmation users (interval above 0)"
        return RankerChoice(boosters[best], trials, best, "tuned", why, cmp)
    why = "the best trial's gain over the defaults on the confirmation users was not above 0"
    return RankerChoice(boosters[0], trials, 0, "defaults", why, cmp)


def _role_counts(roles: np.ndarray) -> dict[str, int]:
    return {name: int((roles == i).sum()) for i, name in enumerate(ROLES)}
