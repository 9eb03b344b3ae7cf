"""The ranker's features of (user, candidate) pairs, fixed at one cut-off time.

A :class:`FeatureContext` holds everything features are read from at a cut-off: the
known users' histories before it, the label rule, the item block
(:mod:`.item_features`), the videos' categories, tags and durations, the users'
profiles and the social graph. Built twice by the model: at T for the training rows,
at the end of the training log for inference (and saved with the model). Four groups
(the ablation's steps; docs/features.md lists every column and its time window):

- ``retrieval``: every retriever's score and rank of the candidate;
- ``item``: the candidate's own statistics (:func:`.item_features.item_block`);
- ``match``: the candidate against the user's history: category and tag shares,
  duration gap, friends who watched it;
- ``user``: the user's activity, positive rate, mean watch ratio, and profile (user_x).

A user's features come from a history *row* (watch ratios), so a new user's history
and a known user with the same history get the same values; only the profile and the
friends need a known user (NaN profile, no friends for a new one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.models.matrices import csr_from_state, csr_state
from kuairec.models.two_stage.item_features import WR_CLIP, Block, item_block, log_duration

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from kuairec.data.dataset import Interactions, TrainSet
    from kuairec.models.two_stage.retrieval import Candidates

GROUPS = ("retrieval", "item", "match", "user")


@dataclass(eq=False)
class LabelRule:
    """The run's label per video: a watch ratio above ``cut[item]`` (at or above, when
    ``inclusive``) is positive; ``graded`` labels give integer levels ``min(wr, clip)``."""

    cut: np.ndarray  # float64 (n_items,)
    inclusive: bool = False
    graded: bool = False
    clip: float = WR_CLIP

    def positive(self, wr: np.ndarray, items: np.ndarray) -> np.ndarray:
        cut = self.cut[items]
        return wr >= cut if self.inclusive else wr > cut

    def relevance(self, wr: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The ranker's integer labels: 0/1, or graded levels 0 .. clip."""
        if self.graded:
            return np.floor(np.minimum(wr, self.clip)).astype(np.int32)
        return self.positive(wr, items).astype(np.int32)


def label_rule(label: str, history: Interactions, video_duration: np.ndarray | None) -> LabelRule:
    """The rule of a label name; a ``duration`` label's cut-offs come from ``history``
    (the pairs before the cut), as the evaluation takes them from the training pairs.
    For a graded label, positives (in the features) are ``wr > 2``."""
    from kuairec.evaluation.labels import duration_bucket, duration_cutoffs, parse_label

    lab = parse_label(label)
    n = history.n_items
    if lab.kind == "threshold":
        return LabelRule(np.full(n, lab.threshold), inclusive=lab.inclusive)
    if lab.kind == "graded":
        return LabelRule(np.full(n, 2.0), graded=True, clip=lab.clip)
    cuts = duration_cutoffs(lab, history, video_duration)
    bucket = duration_bucket(video_duration, cuts.edges)
    cut = np.where(bucket >= 0, cuts.cutoffs[np.maximum(bucket, 0)], cuts.global_cutoff)
    return LabelRule(np.nan_to_num(cut, nan=np.inf))


@dataclass(eq=False)
class FeatureContext:
    """What features are read from, at one cut-off (see the module docstring)."""

    cutoff: float
    history: sp.csr_matrix  # float32 watch ratios of the known users before the cut-off
    positives: sp.csr_matrix  # float32 0/1 pattern of the history's positives
    rule: LabelRule
    items: Block  # (n_items, ...) the item group
    category: np.ndarray | None  # int32 (n_items,) first-level category code, -1 unknown
    tags: np.ndarray | None  # float32 (n_items, n_tags) 0/1
    log_dur: np.ndarray | None  # float64 (n_items,) log1p seconds, NaN unknown
    profile: Block  # (n_users, ...) user_x columns (zero columns without user_features)
    social: sp.csr_matrix | None  # (n_users, n_users)
    notes: list[str] = field(default_factory=list)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays for weights.npz (prefix ``ctx_``). NaN and infinities (a missing rate,
        no cut-off) are saved as finite values plus a code array (:func:`pack`): the
        loader refuses any non-finite float as damage."""
        out = {
            **pack("ctx_cutoff", np.asarray([self.cutoff])),
            "ctx_rule": np.asarray([self.rule.inclusive, self.rule.graded, self.rule.clip]),
            **pack("ctx_cut", self.rule.cut),
            **pack("ctx_items", self.items.values),
            "ctx_item_names": np.asarray(self.items.names, dtype=str),
            **pack("ctx_profile", self.profile.values),
            "ctx_profile_names": np.asarray(self.profile.names, dtype=str),
            **csr_state("ctx_history", self.history),
        }
        for name in ("category", "tags", "log_dur"):
            if getattr(self, name) is not None:
                out |= pack(f"ctx_{name}", getattr(self, name))
        if self.social is not None:
            out |= csr_state("ctx_social", self.social)
        return out

    @classmethod
    def from_state(cls, state: Any) -> FeatureContext:
        inclusive, graded, clip = (float(v) for v in state["ctx_rule"])
        cut = unpack("ctx_cut", state).astype(np.float64)
        rule = LabelRule(cut, bool(inclusive), bool(graded), clip)
        history = csr_from_state("ctx_history", state)
        names = set(state)

        def optional(name: str) -> np.ndarray | None:
            return unpack(name, state) if name in names else None

        return cls(
            cutoff=float(unpack("ctx_cutoff", state)[0]),
            history=history,
            positives=positive_pattern(history, rule),
            rule=rule,
            items=Block(unpack("ctx_items", state), tuple(state["ctx_item_names"].tolist())),
            category=optional("ctx_category"),
            tags=optional("ctx_tags"),
            log_dur=optional("ctx_log_dur"),
            profile=Block(unpack("ctx_profile", state), tuple(state["ctx_profile_names"].tolist())),
            social=csr_from_state("ctx_social", state) if "ctx_social_shape" in names else None,
        )


_CODES = (np.nan, np.inf, -np.inf)  # code 1, 2, 3 in a ``<name>_nonfinite`` array


def pack(name: str, arr: np.ndarray) -> dict[str, np.ndarray]:
    """``arr`` with its non-finite values set to 0, and where it had any, an int8
    ``<name>_nonfinite`` array saying which (1 NaN, 2 +inf, 3 -inf; 0 finite)."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fc" or np.isfinite(arr).all():
        return {name: arr}
    codes = np.zeros(arr.shape, np.int8)
    codes[np.isnan(arr)] = 1
    codes[np.isposinf(arr)] = 2
    codes[np.isneginf(arr)] = 3
    return {name: np.where(codes == 0, arr, 0).astype(arr.dtype), f"{name}_nonfinite": codes}


def unpack(name: str, state: Any) -> np.ndarray:
    """The array :func:`pack` saved under ``name``."""
    arr = np.array(state[name])
    if f"{name}_nonfinite" in state:
        codes = np.asarray(state[f"{name}_nonfinite"])
        for code, value in enumerate(_CODES, start=1):
            arr[codes == code] = value
    return arr


def build_context(train: TrainSet, cutoff: float, rule: LabelRule) -> FeatureContext:
    """The context of the log ``train`` (already cut: every pair before ``cutoff``)."""
    inter = train.interactions
    history = inter.csr("watch_ratio_mean", dtype=np.float32)
    positive = rule.positive(inter.watch_ratio_mean.astype(np.float64), inter.indices)
    items = item_block(train.daily, inter, positive, train.video_duration, cutoff)
    notes = list(items.notes)
    category = _categories(train.captions, train.n_items)
    tags = None
    if train.item_tags is not None:
        tags = (np.asarray(train.item_tags.todense()) > 0).astype(np.float32)
    log_dur = None if train.video_duration is None else log_duration(train.video_duration)
    for what, value, file in (
        ("cat_*", category, "kuairec_caption_category.csv"),
        ("tag_*", tags, "item_categories.csv"),
        ("friends_*", train.social, "social_network.csv"),
    ):
        if value is None:
            notes.append(f"no {file}: no {what} columns")
    return FeatureContext(
        cutoff=cutoff, history=history, positives=positive_pattern(history, rule), rule=rule,
        items=items, category=category, tags=tags, log_dur=log_dur,
        profile=_profile(train), social=train.social, notes=notes,
    )  # fmt: skip


def positive_pattern(history: sp.csr_matrix, rule: LabelRule) -> sp.csr_matrix:
    """The 0/1 float32 pattern of a history's positive entries (same shape)."""
    out = history.copy().astype(np.float32)
    out.data = rule.positive(history.data.astype(np.float64), history.indices).astype(np.float32)
    out.eliminate_zeros()
    return out


def _categories(captions: Any, n_items: int) -> np.ndarray | None:
    """First-level category code per item (contiguous codes; -1: none or unknown)."""
    if captions is None or "first_level_category_id" not in captions.columns:
        return None
    frame = captions.select("item_idx", "first_level_category_id").drop_nulls()
    raw = np.full(n_items, -1, dtype=np.int64)
    raw[frame["item_idx"].to_numpy()] = frame["first_level_category_id"].to_numpy()
    known = raw >= 0
    codes = np.full(n_items, -1, dtype=np.int32)
    codes[known] = np.unique(raw[known], return_inverse=True)[1].ravel()
    return codes


def _profile(train: TrainSet) -> Block:
    """user_x's flags, log counts and activity degree (not the anonymous one-hot codes,
    nor the range columns that repeat the counts): ``profile_<column>``."""
    ux = train.user_x
    if ux is None or ux.n_features == 0:
        return Block.of({}, train.n_users, ["no user_features.csv: no profile_* columns"])
    keep = [
        j
        for j, c in enumerate(ux.columns)
        if not c.startswith("onehot_feat") and "_range=" not in c
    ]
    names = tuple(f"profile_{ux.columns[j]}" for j in keep)
    return Block(ux.values[:, keep].astype(np.float32), names)


# ---------------------------------------------------------------- per candidate


def candidate_features(
    ctx: FeatureContext,
    cand: Candidates,
    hist: sp.csr_matrix,
    users: np.ndarray | None,
    groups: tuple[str, ...] = GROUPS,
    drop: frozenset[str] = frozenset(),
) -> Block:
    """The feature rows of ``cand`` (one per candidate, in its order), without the
    columns named in ``drop``. ``hist`` holds the rows' histories (watch ratios);
    ``users`` the rows' known user indices, or None for new users' histories."""
    parts = []
    if "retrieval" in groups:
        cols = {}
        for j, name in enumerate(cand.names):
            cols[f"{name}_score"] = cand.scores[:, j]
            cols[f"{name}_rank"] = cand.ranks[:, j]
        parts.append(Block.of(cols, cand.size))
    if "item" in groups:
        parts.append(Block(ctx.items.values[cand.items], ctx.items.names))
    if "match" in groups:
        parts.append(_match(ctx, cand, hist, users))
    if "user" in groups:
        parts.append(_user(ctx, cand, hist, users))
    block = Block.hstack(parts)
    if not drop:
        return block
    keep = [j for j, n in enumerate(block.names) if n not in drop]
    return Block(block.values[:, keep], tuple(block.names[j] for j in keep), block.notes)


def _user(ctx: FeatureContext, cand: Candidates, hist: sp.csr_matrix, users: Any) -> Block:
    n_hist = np.diff(hist.indptr).astype(np.float64)
    pos = positive_pattern(hist, ctx.rule)
    n_pos = np.asarray(pos.sum(axis=1)).ravel().astype(np.float64)
    wr = hist.copy()
    wr.data = np.minimum(wr.data, WR_CLIP)
    wr_sum = np.asarray(wr.sum(axis=1)).ravel().astype(np.float64)
    rows = cand.rows
    cols = {
        "user_items_log1p": np.log1p(n_hist)[rows],
        "user_pos_rate": _rate(n_pos, n_hist)[rows],
        "user_mean_wr": _rate(wr_sum, n_hist)[rows],
    }
    block = Block.of(cols, cand.size)
    width = ctx.profile.values.shape[1]
    if users is None:
        profile = np.full((cand.size, width), np.nan, dtype=np.float32)
    else:
        profile = ctx.profile.values[users[rows]]
    return Block.hstack([block, Block(profile, ctx.profile.names)])


def _match(ctx: FeatureContext, cand: Candidates, hist: sp.csr_matrix, users: Any) -> Block:
    pattern = hist.copy().astype(np.float32)
    pattern.data[:] = 1.0
    pos = positive_pattern(hist, ctx.rule)
    n_hist = np.diff(pattern.indptr).astype(np.float64)
    n_pos = np.asarray(pos.sum(axis=1)).ravel().astype(np.float64)
    rows, items = cand.rows, cand.items
    cols: dict[str, np.ndarray] = {}
    if ctx.category is not None:
        cols |= _category_shares(ctx.category, pattern, pos, n_hist, n_pos, rows, items)
    if ctx.tags is not None:
        cols |= _tag_shares(ctx.tags, pattern, pos, n_hist, n_pos, rows, items)
    if ctx.log_dur is not None:
        dur = np.nan_to_num(ctx.log_dur, nan=0.0)
        known = np.isfinite(ctx.log_dur).astype(np.float64)
        mean = _rate(pos @ dur, pos @ known)  # the user's positives' mean log duration
        cols["duration_gap"] = np.abs(ctx.log_dur[items] - mean[rows])
    if ctx.social is not None:
        cols |= _friends(ctx, users, rows, items)
    return Block.of(cols, cand.size)


def _category_shares(category, pattern, pos, n_hist, n_pos, rows, items) -> dict:  # noqa: ANN001
    """Shares of the user's history (and positives) in the candidate's category, and
    the user's positive rate inside it."""
    import scipy.sparse as sp

    known = category >= 0
    n_cat = int(category.max()) + 1 if known.any() else 1
    onehot = sp.csr_matrix(
        (np.ones(int(known.sum()), np.float32), (np.flatnonzero(known), category[known])),
        shape=(category.size, n_cat),
    )
    seen_in = np.asarray((pattern @ onehot).todense())  # (rows, categories)
    pos_in = np.asarray((pos @ onehot).todense())
    cat = np.maximum(category[items], 0)
    unknown = category[items] < 0
    seen_c, pos_c = seen_in[rows, cat], pos_in[rows, cat]
    out = {
        "cat_share": _rate(seen_c, n_hist[rows]),
        "cat_pos_share": _rate(pos_c, n_pos[rows]),
        "cat_pos_rate": _rate(pos_c, seen_c),
    }
    for v in out.values():
        v[unknown] = np.nan
    return out


def _tag_shares(tags, pattern, pos, n_hist, n_pos, rows, items) -> dict:  # noqa: ANN001
    """Mean over the candidate's tags of the share of the user's history (positives)
    carrying the tag; NaN for a video without tags."""
    seen_t = np.asarray(pattern @ tags)  # (rows, tags): history items with each tag
    pos_t = np.asarray(pos @ tags)
    cand_tags = tags[items]
    n_tags = cand_tags.sum(axis=1).astype(np.float64)
    seen_sum = np.einsum("ij,ij->i", cand_tags, seen_t[rows]).astype(np.float64)
    pos_sum = np.einsum("ij,ij->i", cand_tags, pos_t[rows]).astype(np.float64)
    return {
        "tag_share": _rate(seen_sum, n_tags * n_hist[rows]),
        "tag_pos_share": _rate(pos_sum, n_tags * n_pos[rows]),
    }


def _friends(ctx: FeatureContext, users: Any, rows: np.ndarray, items: np.ndarray) -> dict:
    """log1p of the user's friends who watched the candidate before the cut-off (and of
    those for whom it was a positive); 0 for a new user (no known friends)."""
    if users is None:
        zero = np.zeros(rows.size)
        return {"friends_viewed_log1p": zero, "friends_pos_log1p": zero.copy()}
    friends = ctx.social[users]
    viewed = (friends @ ctx.history.astype(bool).astype(np.float32)).tocsr()
    liked = (friends @ ctx.positives).tocsr()
    return {
        "friends_viewed_log1p": np.log1p(lookup_stored(viewed, rows, items)[1]),
        "friends_pos_log1p": np.log1p(lookup_stored(liked, rows, items)[1]),
    }


def lookup_stored(m: Any, rows: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each (rows[k], items[k]): whether the CSR ``m`` stores the entry, and its value
    (0 where not; explicit zeros count as stored: a view with watch ratio 0 is still an
    exposure). Duplicate entries are summed first."""
    m = m.tocsr()
    m.sum_duplicates()
    key = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) * m.shape[1]
    key += m.indices
    want = rows.astype(np.int64) * m.shape[1] + items
    if key.size == 0:
        return np.zeros(want.size, bool), np.zeros(want.size)
    pos = np.minimum(np.searchsorted(key, want), key.size - 1)
    hit = key[pos] == want
    return hit, np.where(hit, m.data[pos], 0.0).astype(np.float64)


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=np.asarray(den) > 0)
    return out
