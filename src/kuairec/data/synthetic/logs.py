"""Interaction logs: the biased feed of the big matrix and the fully observed small matrix.

Both are drawn one block of users at a time (vectorised over the block), so memory stays
bounded at any scale. A block's rows come back as a dict of numpy columns, sorted by
user then timestamp; :mod:`.csvout` formats and writes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from kuairec.data.synthetic.world import N_DAYS, World

BLOCK_USERS = 256
#: 2020-07-05 00:00:00 Beijing time (UTC+8) as unix milliseconds.
START_MS = 1_593_878_400_000
DAY_MS = 86_400_000
DUP_SHARE = 0.077  # exact duplicate rows / big rows
UNIQUE_SHARE = 0.893  # unique pairs / non-duplicate big rows (real: 10.32M / 11.56M)
DATE_QUIRK = 0.001  # rows whose `date` is a neighbouring day of `time`
SMALL_NO_TIME = 0.039
TARGET_MEDIAN = 0.723  # real big-matrix median watch_ratio
BLOCKED_AUTHOR = 0.0038  # chance a small user blocked a given author
#: Relative activity per Beijing hour 0..23 (night trough, lunch and evening peaks).
HOUR_WEIGHTS = np.array([5, 3, 2, 1.2, 1, 1.2, 2, 3.5, 4.5, 5, 5.5, 6, 7.5, 7.5, 6, 5.5, 5.5,
                         6, 7, 8, 9, 9.5, 9, 7.5])  # fmt: skip


def day_weights() -> np.ndarray:
    """Relative activity per day 0..62: weekly cycle (day 0 is a Sunday), slow growth."""
    days = np.arange(N_DAYS)
    weekend = np.isin(days % 7, (0, 6))
    return (1.0 + 0.15 * weekend) * (1.0 + 0.004 * days)


def guaranteed_users(world: World, rng: np.random.Generator) -> np.ndarray:
    """One big-matrix user per video who is always shown it, so every video is in big."""
    eligible = np.ones(world.n_users, dtype=bool)
    w = world.activity.astype(np.float64)
    out = rng.choice(world.n_users, size=world.n_videos, p=w / w.sum())
    small_v = np.zeros(world.n_videos, dtype=bool)
    small_v[world.small_videos] = True
    eligible[world.small_users] = False
    others = np.flatnonzero(eligible)
    if others.size:
        w_o = w[others]
        n_small = int(small_v.sum())
        out[small_v] = others[rng.choice(others.size, size=n_small, p=w_o / w_o.sum())]
    return out.astype(np.int64)


def big_block(
    world: World, users: np.ndarray, guarantee: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The big-matrix rows of a block of users (with repeats and exact duplicates)."""
    rows, vids, wr, first = _views(world, users, guarantee, rng)
    out = _assemble(world, users[rows], vids, wr, rng)
    out["first_view"] = first
    max_copies = max(2, round(2_223 * world.n_videos / 10_728))  # real: 2,224 rows of a pair
    out = _add_duplicates(out, rng, max_copies)
    return _sort(out)


def _views(
    world: World, users: np.ndarray, guarantee: np.ndarray | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """First views of the feed's pairs plus repeat views (new ratio), more of liked videos.

    Returns block rows, video ids, watch ratios and a first-view flag.
    """
    rows, vids, mu, base = _expose(world, users, guarantee, rng)
    k = np.bincount(rows, minlength=users.size)
    wr = world.draw_watch_ratio(mu, rng)
    n_rep = np.maximum(np.round(base).astype(np.int64) - k, 0)
    like = np.minimum(wr, 5.0) + 0.2
    like_sum = np.bincount(rows, weights=like, minlength=users.size)
    rep = rng.poisson(n_rep[rows] * like / like_sum[rows])
    r_idx = np.repeat(np.arange(rows.size), rep)
    first = np.concatenate([np.ones(rows.size, bool), np.zeros(r_idx.size, bool)])
    rows = np.concatenate([rows, rows[r_idx]])
    vids = np.concatenate([vids, vids[r_idx]])
    wr = np.concatenate([wr, world.draw_watch_ratio(mu[r_idx], rng)])
    return rows, vids, wr, first


def _expose(
    world: World, users: np.ndarray, guarantee: np.ndarray | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The feed: distinct (row, video) pairs shown to each user of the block, their log-mean
    watch ratio, and each user's target number of non-duplicate rows.

    Gumbel top-k = sampling without replacement with weights popularity x affinity.
    """
    p = world.params
    personal = world.personal(users)
    keys = world.exposure_logw[None, :] + (p.pop_affinity / p.personal_sd) * personal
    keys = keys + rng.gumbel(size=keys.shape)
    is_small = np.isin(users, world.small_users)
    keys[np.ix_(np.flatnonzero(is_small), world.small_videos)] = -np.inf
    n_forced = np.zeros(users.size, dtype=np.int64)
    if guarantee is not None:
        row_of = np.full(world.n_users, -1, dtype=np.int64)
        row_of[users] = np.arange(users.size)
        g_vid = np.flatnonzero(row_of[guarantee] >= 0)
        keys[row_of[guarantee[g_vid]], g_vid] = np.inf
        n_forced = np.bincount(row_of[guarantee[g_vid]], minlength=users.size)
    avail = world.n_videos - is_small * world.small_videos.size
    base = world.activity[users] * (1.0 - DUP_SHARE)
    k = np.minimum(np.round(base * UNIQUE_SHARE), np.floor(0.95 * avail)).astype(np.int64)
    k = np.maximum(np.maximum(k, n_forced), 1)
    order = np.argsort(-keys, axis=1)
    take = np.arange(world.n_videos)[None, :] < k[:, None]
    rows = np.repeat(np.arange(users.size), k)
    vids = order[take]
    mu = world.mu(users, personal)[rows, vids]
    return rows, vids, mu, base


def calibrate_base(world: World, rng: np.random.Generator, n_users: int = 768) -> float:
    """Shift ``base_log_wr`` so the big matrix's median watch_ratio is ``TARGET_MEDIAN``.

    The feed's bias moves the logged median by an amount that depends on the drawn world;
    a pilot feed for a sample of users measures it. Returns the shift applied.
    """
    users = np.sort(rng.choice(world.n_users, size=min(n_users, world.n_users), replace=False))
    log_wr = [
        np.log(_views(world, users[start : start + BLOCK_USERS], None, rng)[2])
        for start in range(0, users.size, BLOCK_USERS)
    ]
    shift = float(np.log(TARGET_MEDIAN) - np.median(np.concatenate(log_wr)))
    world.params = replace(world.params, base_log_wr=world.params.base_log_wr + shift)
    return shift


def small_block(
    world: World, users: np.ndarray, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Small-matrix rows of the block's small users, and their expected watch_ratio."""
    su = users[np.isin(users, world.small_users)]
    sv = world.small_videos
    if su.size == 0:
        empty = _assemble(world, su, su, np.zeros(0), rng)
        return empty, np.zeros(0)
    blocked = rng.random((su.size, world.n_authors)) < BLOCKED_AUTHOR
    keep = ~blocked[:, world.author[sv]]
    rows, cols = np.nonzero(keep)
    mu = world.mu(su, world.personal(su, sv), sv)[rows, cols]
    truth = world.expected_watch_ratio(mu)
    out = _assemble(world, su[rows], sv[cols], world.draw_watch_ratio(mu, rng), rng)
    out["no_time"] = rng.random(rows.size) < SMALL_NO_TIME
    order = np.lexsort((out["timestamp_ms"], out["user_id"]))
    out = {name: col[order] for name, col in out.items()}
    return out, truth[order]


def audience_views(
    world: World, rng: np.random.Generator, budget: int = 1 << 18
) -> Iterator[dict[str, np.ndarray]]:
    """The platform's wider audience of the small videos, for item_daily_features only.

    The small matrix's users watched every small video; their realised views must not
    reach a side file (they are the test outcomes). Instead each small video gets as many
    views as there are small users, from users drawn uniformly (with replacement) among
    the users outside the small matrix, each with a fresh draw of the same response model.
    Yields blocks of rows (at most ``budget`` views each) in the columns of :func:`_assemble`.
    """
    sv = world.small_videos
    pool = np.setdiff1d(np.arange(world.n_users), world.small_users)
    pool = pool if pool.size else np.arange(world.n_users)
    per_video = world.small_users.size
    step = max(1, budget // max(per_video, 1))
    for start in range(0, sv.size, step):
        videos = np.repeat(sv[start : start + step], per_video)
        users = pool[rng.integers(0, pool.size, videos.size)]
        wr = world.draw_watch_ratio(pair_mu(world, users, videos), rng)
        yield _assemble(world, users, videos, wr, rng)


def pair_mu(world: World, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """``world.mu`` of (users[k], videos[k]) pairs, without the users x videos matrix."""
    p = world.params
    personal = np.einsum("kd,kd->k", world.user_vec[users], world.video_vec[videos])
    personal += world.cluster_video[world.cluster[users], videos]
    effect = world.video_effect[videos]
    return personal + (p.base_log_wr + world.user_bias[users] + effect)


def _assemble(
    world: World, user: np.ndarray, video: np.ndarray, wr: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Durations, play time, timestamps and dates for drawn (user, video, ratio) rows."""
    dur = world.duration[video]
    play = np.round(wr * dur).astype(np.int64)
    day, ts = _draw_times(world.window[video], rng)
    date_day = day.copy()
    quirk = rng.random(day.size) < DATE_QUIRK
    date_day[quirk] = np.clip(day[quirk] + rng.choice((-1, 1), int(quirk.sum())), 0, N_DAYS - 1)
    return {
        "user_id": user.astype(np.int64), "video_id": video.astype(np.int64),
        "play_duration": play, "video_duration": dur, "timestamp_ms": ts, "day": day,
        "date_day": date_day, "watch_ratio": np.round(play / dur, 6),
    }  # fmt: skip


def _draw_times(window: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A day inside each video's window (weekly cycle) and a time of day (hourly cycle)."""
    cw = np.concatenate([[0.0], np.cumsum(day_weights())])
    lo, hi = cw[window[:, 0]], cw[window[:, 1] + 1]
    u = lo + rng.random(lo.size) * (hi - lo)
    day = np.clip(np.searchsorted(cw, u, side="right") - 1, window[:, 0], window[:, 1])
    hw = HOUR_WEIGHTS / HOUR_WEIGHTS.sum()
    hour = rng.choice(24, size=day.size, p=hw)
    offset = hour * 3_600_000 + rng.integers(0, 3_600_000, day.size)
    return day.astype(np.int64), START_MS + day * DAY_MS + offset


def _add_duplicates(
    out: dict[str, np.ndarray], rng: np.random.Generator, max_copies: int
) -> dict[str, np.ndarray]:
    """Exact copies of some rows (~7.7% of the result), a few repeated many times."""
    n = out["user_id"].size
    target = int(round(n * DUP_SHARE / (1.0 - DUP_SHARE)))
    out["duplicate"] = np.zeros(n, dtype=bool)
    if target == 0:
        return out
    mult = np.minimum(rng.zipf(2.1, size=target), max_copies)
    mult = mult[: int(np.searchsorted(np.cumsum(mult), target)) + 1]
    mult[-1] -= int(mult.sum()) - target
    src = (
        rng.choice(n, size=mult.size, replace=False)
        if mult.size <= n
        else rng.choice(n, size=mult.size)
    )
    idx = np.concatenate([np.arange(n), np.repeat(src, mult)])
    res = {name: col[idx] for name, col in out.items()}
    res["first_view"][n:] = False
    res["duplicate"][n:] = True
    return res


def _sort(out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    order = np.lexsort((out["timestamp_ms"], out["user_id"]))
    return {name: col[order] for name, col in out.items()}
