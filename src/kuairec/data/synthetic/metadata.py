"""Side files derived from the latent world: tags, captions, user features, friendships."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kuairec.data.schema import MISSING_CATEGORY_ID
from kuairec.data.synthetic import vocab
from kuairec.data.synthetic.world import World

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

UNKNOWN = "UNKNOWN"


def _list_text(values: np.ndarray, indptr: np.ndarray, sep: str = ", ") -> list[str]:
    """``[a, b]`` strings of a CSR-style list column."""
    v = values.tolist()
    return [
        "[" + sep.join(map(str, v[s:e])) + "]" for s, e in zip(indptr[:-1], indptr[1:], strict=True)
    ]


def item_categories(world: World) -> pl.DataFrame:
    import polars as pl

    feat = _list_text(world.tag_ids, world.tag_indptr)
    return pl.DataFrame({"video_id": np.arange(world.n_videos), "feat": feat})


def social_network(world: World, scale: float, rng: np.random.Generator) -> pl.DataFrame:
    """~472 users (x scale) with 1-5 friends each, picked among same-cluster look-alikes."""
    import polars as pl

    n = world.n_users
    n_soc = int(min(n, max(1, round(472 * scale))))
    if n < 2:
        return pl.DataFrame({"user_id": [], "friend_list": []}, schema=_social_schema())
    who = np.sort(rng.choice(n, size=n_soc, replace=False))
    k = np.minimum(1 + rng.choice(5, size=n_soc, p=[0.72, 0.17, 0.07, 0.03, 0.01]), n - 1)
    by_cluster = np.argsort(world.cluster, kind="stable")
    starts = np.searchsorted(world.cluster[by_cluster], np.arange(world.params.n_clusters + 1))
    c = world.cluster[who]
    size = starts[c + 1] - starts[c]
    n_cand = 48
    same = by_cluster[
        starts[c][:, None] + (rng.random((n_soc, n_cand)) * size[:, None]).astype(np.int64)
    ]
    anyone = rng.integers(0, n, (n_soc, n_cand // 4))
    cand = np.concatenate([same, anyone], axis=1)
    uv = world.user_vec
    norm = np.linalg.norm(uv, axis=1) + 1e-9
    sim = np.einsum("id,ijd->ij", uv[who], uv[cand]) / (norm[who][:, None] * norm[cand])
    sim[cand == who[:, None]] = -np.inf
    sim += 0.3 * rng.standard_normal(sim.shape)  # taste-alike, not always the closest
    order = np.argsort(-sim, axis=1)
    ranked = np.take_along_axis(cand, order, axis=1)
    lists = []
    for row, kk in zip(
        ranked.tolist(), k.tolist(), strict=True
    ):  # dedupe, keep rank order (472 rows)
        seen: list[int] = []
        for f in row:
            if f not in seen:
                seen.append(f)
            if len(seen) == kk:
                break
        lists.append("[" + ", ".join(map(str, seen)) + "]")
    return pl.DataFrame({"user_id": who, "friend_list": lists}, schema=_social_schema())


def _social_schema() -> dict[str, object]:
    import polars as pl

    return {"user_id": pl.Int64, "friend_list": pl.String}


def _bucket(
    values: np.ndarray, edges: tuple[int, ...], labels: tuple[str, ...], right_closed: bool
) -> np.ndarray:
    """Range labels: ``(a,b]`` buckets when ``right_closed``, else ``[a,b)`` buckets."""
    if right_closed:
        idx = np.searchsorted(np.asarray(edges), values, side="left")
    else:
        idx = np.searchsorted(np.asarray(edges), values, side="right") - 1
    return np.asarray(labels, dtype=object)[np.clip(idx, 0, len(labels) - 1)]


def user_features(world: World, rng: np.random.Generator) -> pl.DataFrame:
    """31 columns; degree from activity, onehot_feat1 = taste cluster, NaNs in feat12..17."""
    import polars as pl

    n = world.n_users
    act_rank = np.argsort(np.argsort(world.activity)) / max(n - 1, 1)
    degree = np.select([act_rank >= 0.70, act_rank >= 0.25, act_rank >= 0.0], [3, 2, 1], 1)
    degree[rng.random(n) < 0.01] = 0
    follow = np.where(rng.random(n) < 0.06, 0, np.round(np.exp(rng.normal(3.2, 1.3, n))))
    fans = np.where(rng.random(n) < 0.35, 0, np.round(np.exp(rng.normal(1.5, 1.6, n))))
    fans = np.minimum(fans, 99_999)
    friends = np.where(rng.random(n) < 0.3, 0, np.round(np.exp(rng.normal(1.8, 1.2, n))))
    register = np.round(8 + np.exp(rng.normal(5.8, 0.9, n))).astype(np.int64)
    cols: dict[str, object] = {
        "user_id": np.arange(n),
        "user_active_degree": np.asarray(vocab.ACTIVE_DEGREES, dtype=object)[degree],
        "is_lowactive_period": (rng.random(n) < 0.02 + 0.05 * (act_rank < 0.1)).astype(np.int64),
        "is_live_streamer": (rng.random(n) < 0.05).astype(np.int64),
        "is_video_author": (rng.random(n) < 0.3).astype(np.int64),
        "follow_user_num": follow.astype(np.int64),
        "follow_user_num_range": _bucket(follow, vocab.FOLLOW_EDGES, vocab.FOLLOW_LABELS, True),
        "fans_user_num": fans.astype(np.int64),
        "fans_user_num_range": _bucket(fans, vocab.FANS_EDGES, vocab.FANS_LABELS, False),
        "friend_user_num": friends.astype(np.int64),
        "friend_user_num_range": _bucket(friends, vocab.FRIEND_EDGES, vocab.FRIEND_LABELS,
                                         False),
        "register_days": register,
        "register_days_range": _bucket(register, vocab.REGISTER_EDGES, vocab.REGISTER_LABELS,
                                       False),
    }  # fmt: skip
    for i, card in enumerate(vocab.ONEHOT_CARDINALITY):
        if i == 1:
            values = world.cluster.astype(np.float64)
        else:
            probs = rng.dirichlet(np.full(card, 0.7))
            values = rng.choice(card, size=n, p=probs).astype(np.float64)
        if i >= 12:
            values[rng.random(n) < 0.01] = np.nan
            cols[f"onehot_feat{i}"] = pl.Series(values, dtype=pl.Float64, nan_to_null=True)
        else:
            cols[f"onehot_feat{i}"] = values.astype(np.int64)
    return pl.DataFrame(cols)


def caption_category(world: World, rng: np.random.Generator) -> pl.DataFrame:
    """Captions (commas, quotes, newlines, Chinese), topic tags and three category levels."""
    import polars as pl

    m = world.n_videos
    first_tag = world.tag_ids[world.tag_indptr[:-1]]
    f_ids = np.array([i for i, _ in vocab.FIRST_LEVEL])[first_tag]
    f_names = np.asarray([nm for _, nm in vocab.FIRST_LEVEL], dtype=object)[first_tag]
    j2 = rng.integers(0, len(vocab.SECOND_SUFFIXES), m)
    j3 = rng.integers(0, len(vocab.THIRD_SUFFIXES), m)
    s_ids = 100 + first_tag * 10 + j2
    t_ids = 1000 + first_tag * 100 + j2 * 10 + j3
    s_names = f_names + np.asarray(vocab.SECOND_SUFFIXES, dtype=object)[j2]
    t_names = s_names + np.asarray(vocab.THIRD_SUFFIXES, dtype=object)[j3]
    levels = []
    for ids, names, p_missing in ((f_ids, f_names, 0.03), (s_ids, s_names, 0.08),
                                  (t_ids, t_names, 0.55)):  # fmt: skip
        miss = rng.random(m) < p_missing
        levels.append((np.where(miss, MISSING_CATEGORY_ID, ids),
                       np.where(miss, UNKNOWN, names)))  # fmt: skip
    cover = np.where(rng.random(m) < 0.7, UNKNOWN, _pick(vocab.COVER_TEXTS, m, rng))
    return pl.DataFrame({
        "video_id": np.arange(m),
        "manual_cover_text": cover.astype(str),
        "caption": _captions(m, rng),
        "topic_tag": _topic_tags(m, rng),
        "first_level_category_id": levels[0][0], "first_level_category_name": levels[0][1],
        "second_level_category_id": levels[1][0], "second_level_category_name": levels[1][1],
        "third_level_category_id": levels[2][0], "third_level_category_name": levels[2][1],
    })  # fmt: skip


def _pick(words: tuple[str, ...], size: int, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(words, dtype=object)[rng.integers(0, len(words), size)]


def _captions(m: int, rng: np.random.Generator) -> list[str]:
    """Short captions from a small vocabulary; ~6% UNKNOWN, ~2% empty; some ASCII quirks."""
    n_words = rng.integers(2, 12, m)
    words = _pick(vocab.CAPTION_WORDS, int(n_words.sum()), rng).tolist()
    punct = _pick(vocab.CAPTION_PUNCT, int(n_words.sum()), rng).tolist()
    kind = rng.random((m, 5))
    out, pos = [], 0
    for i, k in enumerate(n_words.tolist()):  # string building, one pass over the videos
        parts = [w + (p if j % 3 == 2 else "") for j, (w, p) in
                 enumerate(zip(words[pos:pos + k], punct[pos:pos + k], strict=True))]  # fmt: skip
        pos += k
        text = "".join(parts)
        if kind[i, 0] < 0.25:
            text = text + "," + words[pos - 1]  # an ASCII comma inside the field
        if kind[i, 1] < 0.08:
            text = f'"{text}"说'  # quotes inside the field
        if kind[i, 2] < 0.05:
            text = text + "\n" + words[pos - 1]  # the odd newline
        if kind[i, 3] < 0.3:
            text = text + " #" + words[pos - 1] + "#"
        if kind[i, 4] < 0.06:
            text = UNKNOWN
        elif kind[i, 4] < 0.08:
            text = ""
        out.append(text)
    return out


def _topic_tags(m: int, rng: np.random.Generator) -> list[str]:
    """``[a,b,c]`` without quotes (neither JSON nor Python); about half are ``[]``."""
    k = np.where(rng.random(m) < 0.5, 0, rng.integers(1, 4, m))
    words = _pick(vocab.TOPIC_WORDS, int(k.sum()), rng).tolist()
    indptr = np.concatenate([[0], np.cumsum(k)])
    return ["[" + ",".join(words[s:e]) + "]" for s, e in zip(indptr[:-1], indptr[1:], strict=True)]
