"""item_daily_features: per video per day aggregates of the generated views, platform-sized.

The views summed here are the big matrix's rows and the small videos' simulated wider
audience (:func:`.logs.audience_views`), never the small matrix's rows: those are the
test outcomes. The views are a sample of the platform, so the counts are scaled up
(times ``~40 / scale``) with noise; rates (play, complete, like ...) come from the views
where a video-day has any, else from the video's overall rates. A row exists for every day
of a video's feed window (about 32 of the 63 days on average).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np

from kuairec.data.schema import COLLECT_COLUMNS, ITEM_DAILY_FEATURES
from kuairec.data.synthetic import vocab
from kuairec.data.synthetic.csvout import FIRST_DAY, day_dates
from kuairec.data.synthetic.world import N_DAYS, World

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

COLLECT_FROM_DAY = 16  # collect_* columns are NaN before 2020-07-21
_PLAY_KINDS = (("complete", "complete_play"), ("valid", "valid_play"),
               ("long", "long_time_play"), ("short", "short_time_play"))  # fmt: skip
_SUMS = ("views", "first", "complete", "valid", "long", "short", "play_ms", "progress")


class DailyStats:
    """Running per (video, day) sums of views, added block by block."""

    def __init__(self, n_videos: int) -> None:
        self.n_videos = n_videos
        self.sums = {name: np.zeros(n_videos * N_DAYS) for name in _SUMS}

    def add(self, cols: dict[str, np.ndarray]) -> None:
        key = cols["video_id"] * N_DAYS + cols["day"]
        size = self.n_videos * N_DAYS
        play = cols["play_duration"]
        wr = cols["watch_ratio"]
        first = cols.get("first_view", np.ones(key.size, bool))
        parts = {
            "views": None, "first": first, "complete": wr >= 1.0, "valid": play >= 3_000,
            "long": play >= 18_000, "short": play < 3_000, "play_ms": play,
            "progress": np.minimum(wr, 1.0),
        }  # fmt: skip
        for name, w in parts.items():
            w = None if w is None else np.asarray(w, dtype=np.float64)
            self.sums[name] += np.bincount(key, weights=w, minlength=size)


def daily_frame(
    world: World, stats: DailyStats, scale: float, rng: np.random.Generator
) -> pl.DataFrame:
    """All 58 columns, one row per video and day of its feed window, sorted by both."""
    import polars as pl

    m = world.n_videos
    days = np.arange(N_DAYS)
    in_window = (days[None, :] >= world.window[:, :1]) & (days[None, :] <= world.window[:, 1:])
    vid, day = np.nonzero(in_window)
    s = {k: v.reshape(m, N_DAYS) for k, v in stats.sums.items()}
    views = s["views"][vid, day]
    tot = {k: v.sum(axis=1) for k, v in s.items()}
    base = tot["views"] / np.maximum(in_window.sum(axis=1), 1)

    def rate(name: str) -> np.ndarray:  # the day's rate shrunk towards the video's rate
        overall = (tot[name] + 0.5) / (tot["views"] + 1.0)
        return (s[name][vid, day] + 3.0 * overall[vid]) / (views + 3.0)

    factor = 40.0 / scale * np.exp(0.3 * rng.standard_normal(vid.size))
    show = rng.poisson((views + 0.5 * base[vid] + 0.05) * factor).astype(np.int64)
    play_rate = np.clip(0.75 + 0.1 * world.appeal[vid] / world.params.appeal_sd, 0.3, 0.97)
    play = rng.binomial(show, play_rate)
    c: dict[str, object] = _video_columns(world, vid, day, rng)
    c |= {"show_cnt": show, "show_user_num": rng.binomial(show, 0.93), "play_cnt": play,
          "play_user_num": rng.binomial(play, 0.9)}  # fmt: skip
    mean_play = np.where(
        views > 0,
        s["play_ms"][vid, day] / np.maximum(views, 1),
        (tot["play_ms"] / np.maximum(tot["views"], 1))[vid],
    )
    c["play_duration"] = np.round(play * mean_play).astype(np.int64)
    for name, column in _PLAY_KINDS:
        cnt = rng.binomial(play, np.clip(rate(name), 0.0, 1.0))
        c[f"{column}_cnt"] = cnt
        c[f"{column}_user_num"] = rng.binomial(cnt, 0.92)
    c["play_progress"] = np.round(np.clip(rate("progress"), 0.0, 1.0), 6)
    c |= _engagement(world, vid, day, play, rng)
    frame = pl.DataFrame(c).with_columns(pl.col(COLLECT_COLUMNS).fill_nan(None))
    return frame.select(ITEM_DAILY_FEATURES.header)


def _video_columns(
    world: World, vid: np.ndarray, day: np.ndarray, rng: np.random.Generator
) -> dict[str, object]:
    """Per-video constants repeated on each of its rows."""
    m = world.n_videos
    uploaded = _upload_dates(world, rng)
    video_type = np.where(rng.random(m) < 0.02, "AD", "NORMAL")
    upload_type = np.asarray(vocab.UPLOAD_TYPES)[
        rng.choice(len(vocab.UPLOAD_TYPES), size=m, p=vocab.UPLOAD_TYPE_WEIGHTS)
    ]
    visible = np.where(rng.random(m) < 0.99, "public", "private")
    shape = rng.choice(4, size=m, p=[0.62, 0.2, 0.1, 0.08])
    width = np.array([720, 1080, 540, 1280])[shape]
    height = np.array([1280, 1920, 960, 720])[shape]
    music = np.where(
        rng.random(m) < 0.3, rng.integers(1, 3_000, m), rng.integers(3_000, 9_000_000, m)
    )
    tag = world.tag_ids[world.tag_indptr[:-1]]
    no_tag = rng.random(m) < 0.01
    tag_id = np.where(no_tag, -124, tag)
    tag_name = np.where(no_tag, "UNKNOWN", np.asarray(vocab.TAG_NAMES)[tag])
    return {
        "video_id": vid, "date": day_dates()[day], "author_id": world.author[vid],
        "video_type": video_type[vid], "upload_dt": uploaded[vid],
        "upload_type": upload_type[vid], "visible_status": visible[vid],
        "video_duration": world.duration[vid].astype(np.float64), "video_width": width[vid],
        "video_height": height[vid], "music_id": music[vid], "video_tag_id": tag_id[vid],
        "video_tag_name": tag_name[vid],
    }  # fmt: skip


def _upload_dates(world: World, rng: np.random.Generator) -> np.ndarray:
    """The first feed day for videos that start inside the period, else an earlier date."""
    m = world.n_videos
    days_before = np.round(np.exp(rng.normal(4.5, 1.2, m))).astype(np.int64) + 1
    offset = np.where(world.window[:, 0] > 0, world.window[:, 0], -np.minimum(days_before, 900))
    strings = [(FIRST_DAY + dt.timedelta(days=int(o))).isoformat() for o in np.unique(offset)]
    return np.asarray(strings)[np.searchsorted(np.unique(offset), offset)]


def _engagement(
    world: World, vid: np.ndarray, day: np.ndarray, play: np.ndarray, rng: np.random.Generator
) -> dict[str, object]:
    """Likes, comments, follows, shares ... as thinned counts of plays."""
    like_rate = np.clip(0.02 * np.exp(world.appeal / world.params.appeal_sd * 0.4), 0, 0.5)
    like = rng.binomial(play, like_rate[vid])
    click = rng.binomial(like, 0.85)
    comment = rng.binomial(play, 0.002)
    direct = rng.binomial(comment, 0.7)
    follow = rng.binomial(play, 0.0015)
    share = rng.binomial(play, 0.002)
    download = rng.binomial(play, 0.001)
    report = rng.binomial(play, 2e-5)
    reduce = rng.binomial(play, 1e-4)
    out: dict[str, object] = {
        "comment_stay_duration": rng.binomial(play, 0.01) * rng.integers(2_000, 20_000, vid.size),
        "like_cnt": like, "like_user_num": rng.binomial(like, 0.97), "click_like_cnt": click,
        "double_click_cnt": like - click, "cancel_like_cnt": rng.binomial(like, 0.02),
        "comment_cnt": comment, "comment_user_num": rng.binomial(comment, 0.9),
        "direct_comment_cnt": direct, "reply_comment_cnt": comment - direct,
        "delete_comment_cnt": rng.binomial(comment, 0.01),
        "comment_like_cnt": rng.binomial(play, 0.003), "follow_cnt": follow,
        "follow_user_num": rng.binomial(follow, 0.98),
        "cancel_follow_cnt": rng.binomial(follow, 0.05), "share_cnt": share,
        "share_user_num": rng.binomial(share, 0.9), "download_cnt": download,
        "download_user_num": rng.binomial(download, 0.95), "report_cnt": report,
        "report_user_num": rng.binomial(report, 0.95), "reduce_similar_cnt": reduce,
        "reduce_similar_user_num": rng.binomial(reduce, 0.95),
    }  # fmt: skip
    out["cancel_like_user_num"] = rng.binomial(out["cancel_like_cnt"], 0.95)
    out["delete_comment_user_num"] = rng.binomial(out["delete_comment_cnt"], 0.95)
    out["comment_like_user_num"] = rng.binomial(out["comment_like_cnt"], 0.9)
    out["cancel_follow_user_num"] = rng.binomial(out["cancel_follow_cnt"], 0.98)
    early = day < COLLECT_FROM_DAY
    collect = rng.binomial(play, 0.001).astype(np.float64)
    cancel = rng.binomial(collect.astype(np.int64), 0.05).astype(np.float64)
    for name, values in (("collect_cnt", collect), ("collect_user_num", np.round(collect * 0.97)),
                         ("cancel_collect_cnt", cancel),
                         ("cancel_collect_user_num", cancel)):  # fmt: skip
        out[name] = np.where(early, np.nan, values)
    return out
