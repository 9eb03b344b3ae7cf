"""The candidate video's own features at a cut-off time (docs/features.md, "two_stage").

Three sources, each read only up to the cut-off:

- the daily platform statistics (``TrainSet.daily``) of the Beijing days that are over
  by the cut-off (:meth:`~kuairec.data.dataset.DailyStats.last_day_ended_by`): totals as
  rates and log counts, the last 7 days, the trend against the 7 days before, the age
  since upload and since the first daily row;
- the training log's pairs in the history (what the cut gave): viewers, positive rate,
  mean watch ratio, viewers in the last 7 days;
- the video's duration (a property of the video, not of time).

Undefined values (a rate over no shows, an unknown upload date) are NaN: LightGBM treats
them as missing. A missing side file drops its columns and leaves a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from kuairec.data.dataset import DailyStats, Interactions

SECONDS_PER_DAY = 86_400.0
WINDOW_DAYS = 7
WR_CLIP = 5.0  # watch ratios are clipped here before averaging (KuaiRec's long tail)


@dataclass(eq=False)
class Block:
    """Named float32 columns over one index space (items or candidate rows)."""

    values: np.ndarray  # float32 (n, n_columns)
    names: tuple[str, ...]
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, columns: dict[str, np.ndarray], n: int, notes: list[str] | None = None) -> Block:
        values = (
            np.column_stack([np.asarray(v, dtype=np.float32) for v in columns.values()])
            if columns
            else np.zeros((n, 0), np.float32)
        )
        return cls(values.astype(np.float32, copy=False), tuple(columns), list(notes or []))

    @classmethod
    def hstack(cls, blocks: list[Block]) -> Block:
        return cls(
            np.hstack([b.values for b in blocks]).astype(np.float32, copy=False),
            tuple(n for b in blocks for n in b.names),
            [n for b in blocks for n in b.notes],
        )


def item_block(
    daily: DailyStats | None,
    history: Interactions,
    positive: np.ndarray,
    video_duration: np.ndarray | None,
    cutoff: float,
) -> Block:
    """Every item feature at ``cutoff`` (unix seconds; +inf = no cut): daily statistics,
    log statistics of ``history`` (``positive``: its pairs' labels) and duration."""
    n_items = history.n_items
    return Block.hstack(
        [
            daily_columns(daily, n_items, cutoff),
            log_columns(history, positive, cutoff),
            duration_columns(video_duration, n_items),
        ]
    )


def daily_columns(daily: DailyStats | None, n_items: int, cutoff: float) -> Block:
    """Rates and log counts of the days over by ``cutoff``; the last 7 of those days and
    their trend; days since upload and since the first daily row."""
    if daily is None:
        return Block.of({}, n_items, ["no item_daily_features.csv: no item_* daily columns"])
    last = daily.last_day_ended_by(cutoff)
    keep = daily.day <= last
    items, day, values = daily.item_idx[keep], daily.day[keep], daily.values[keep]
    total = _sums(items, values, n_items, daily.columns)
    recent = _sums(items[day > last - WINDOW_DAYS], values[day > last - WINDOW_DAYS], n_items,
                   daily.columns)  # fmt: skip
    before = (day > last - 2 * WINDOW_DAYS) & (day <= last - WINDOW_DAYS)
    prior = _sums(items[before], values[before], n_items, daily.columns)
    first_day = np.full(n_items, np.inf)
    np.minimum.at(first_day, items, day.astype(np.float64))
    first_day[np.isinf(first_day)] = np.nan
    upload = np.where(daily.upload_day <= last, daily.upload_day, np.nan)  # unknown at T
    show, play = total["show_cnt"], total["play_cnt"]
    cols = {
        "item_show_log1p": np.log1p(show),
        "item_play_rate": _rate(play, show),
        "item_complete_rate": _rate(total["complete_play_cnt"], play),
        "item_valid_play_rate": _rate(total["valid_play_cnt"], play),
        "item_seconds_per_play_log1p": np.log1p(_rate(total["play_duration"], play) / 1000.0),
        **{f"item_{c}_rate": _rate(total[f"{c}_cnt"], show)
           for c in ("like", "comment", "follow", "share")},
        "item_show_7d_log1p": np.log1p(recent["show_cnt"]),
        "item_like_rate_7d": _rate(recent["like_cnt"], recent["show_cnt"]),
        "item_complete_rate_7d": _rate(recent["complete_play_cnt"], recent["play_cnt"]),
        "item_trend_7d": np.log((recent["show_cnt"] + 1.0) / (prior["show_cnt"] + 1.0)),
        "item_age_days": (last + 1) - upload,
        "item_days_since_first_show": (last + 1) - first_day,
    }  # fmt: skip
    return Block.of(cols, n_items)


def log_columns(history: Interactions, positive: np.ndarray, cutoff: float) -> Block:
    """Viewers, positive rate and mean (clipped) watch ratio of each video in the
    history; viewers whose first view falls in the last 7 days before the cut-off (or
    before the history's last view when there is no cut)."""
    n = history.n_items
    idx = history.indices
    viewers = np.bincount(idx, minlength=n).astype(np.float64)
    pos = np.bincount(idx, weights=positive.astype(np.float64), minlength=n)
    wr = np.minimum(history.watch_ratio_mean.astype(np.float64), WR_CLIP)
    wr_sum = np.bincount(idx, weights=wr, minlength=n)
    first = history.first_timestamp
    end = cutoff
    if not np.isfinite(end):
        known_last = history.last_timestamp[np.isfinite(history.last_timestamp)]
        end = float(known_last.max()) if known_last.size else np.nan
    recent = np.isfinite(first) & (first > end - WINDOW_DAYS * SECONDS_PER_DAY)
    cols = {
        "item_viewers_log1p": np.log1p(viewers),
        "item_pos_rate": _rate(pos, viewers),
        "item_mean_wr": _rate(wr_sum, viewers),
        "item_viewers_7d_log1p": np.log1p(np.bincount(idx[recent], minlength=n)),
    }
    notes = [] if np.isfinite(end) else ["no timestamps: item_viewers_7d_log1p is 0"]
    return Block.of(cols, n, notes)


def duration_columns(video_duration: np.ndarray | None, n_items: int) -> Block:
    """``item_duration_log1p_s``: log1p of the duration in seconds (NaN unknown)."""
    if video_duration is None:
        return Block.of({}, n_items, ["no video durations: no item_duration_log1p_s"])
    return Block.of({"item_duration_log1p_s": log_duration(video_duration)}, n_items)


def log_duration(video_duration: np.ndarray) -> np.ndarray:
    """log1p(seconds) of each video's duration in ms; NaN where unknown or not positive."""
    ms = np.asarray(video_duration, dtype=np.float64)
    ok = np.isfinite(ms) & (ms > 0)
    return np.where(ok, np.log1p(np.where(ok, ms, 0.0) / 1000.0), np.nan)


def _sums(
    items: np.ndarray, values: np.ndarray, n_items: int, columns: tuple[str, ...]
) -> dict[str, np.ndarray]:
    return {
        c: np.bincount(items, weights=values[:, j].astype(np.float64), minlength=n_items)
        for j, c in enumerate(columns)
    }


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0."""
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=np.asarray(den) > 0)
    return out
