"""``generate``: draw the world, stream the logs block by block, write every file."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kuairec.data import schema
from kuairec.data.synthetic import csvout, daily, logs, metadata
from kuairec.data.synthetic.world import World, build_world
from kuairec.errors import ConfigError

# Real KuaiRec 2.0 sizes (scale 1.0)
N_USERS, N_VIDEOS = 7_176, 10_728
N_SMALL_USERS, N_SMALL_VIDEOS = 1_411, 3_327
MAX_SCALE = 4.0
MIN_SCALE = 0.001  # 7 users x 11 videos; below about 7e-5 the generator's draws degenerate
# Independent random streams: world, guarantees, per-block logs, side files, calibration,
# the small videos' wider audience (item_daily_features only)
_WORLD, _GUARANTEE, _BLOCK, _SIDE, _CALIBRATE, _AUDIENCE = 1, 2, 3, 4, 5, 6


def sizes(scale: float) -> dict[str, int]:
    """Users, videos, small users and small videos at ``scale`` (at least 2 / 4 / 1 / 2)."""
    return {
        "users": max(4, round(N_USERS * scale)),
        "videos": max(8, round(N_VIDEOS * scale)),
        "small_users": max(1, round(N_SMALL_USERS * scale)),
        "small_videos": max(2, round(N_SMALL_VIDEOS * scale)),
    }


def _check_args(scale: float, seed: int) -> None:
    ok = not isinstance(scale, bool) and isinstance(scale, int | float | np.floating)
    if not ok or not math.isfinite(scale):
        raise ConfigError(
            f"scale must be a finite number in [{MIN_SCALE:g}, {MAX_SCALE:g}], got {scale!r}"
        )
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise ConfigError(f"scale must be in [{MIN_SCALE:g}, {MAX_SCALE:g}], got {scale!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")


def generate(
    out_dir: Path | str, scale: float = 0.2, seed: int = 0, progress: Any = True
) -> dict[str, object]:
    """Write synthetic KuaiRec 2.0 files (same names, columns and quirks) into ``out_dir``.

    Also writes ``small_matrix_truth.csv``: the expected watch_ratio of every small-matrix
    pair under the generating model. Same (scale, seed) -> byte-identical files. Returns a
    summary (sizes, rows, duplicates, seconds).
    """
    _check_args(scale, seed)
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = sizes(scale)
    world = build_world(n["users"], n["videos"], n["small_users"], n["small_videos"], scale,
                        np.random.default_rng([seed, _WORLD]))  # fmt: skip
    logs.calibrate_base(world, np.random.default_rng([seed, _CALIBRATE]))
    guarantee = logs.guaranteed_users(world, np.random.default_rng([seed, _GUARANTEE]))
    n_blocks = -(-world.n_users // logs.BLOCK_USERS)
    with _bar(progress, n_blocks) as advance:
        counts, stats = _write_logs(out, world, guarantee, seed, advance)
        side = _write_side_files(out, world, stats, scale, seed)
        advance(1)
    return {
        "scale": scale, "seed": seed, "users": world.n_users, "videos": world.n_videos,
        "big_rows": counts["big"], "big_duplicates_added": counts["duplicates"],
        "small_users": world.small_users.size, "small_videos": world.small_videos.size,
        "small_rows": counts["small"],
        "small_missing_pairs": world.small_users.size * world.small_videos.size
        - counts["small"],
        **side, "seconds": round(time.perf_counter() - t0, 2),
    }  # fmt: skip


def _write_logs(
    out: Path, world: World, guarantee: np.ndarray, seed: int, advance: Any
) -> tuple[dict[str, int], daily.DailyStats]:
    stats = daily.DailyStats(world.n_videos)
    dups = 0
    with (csvout.open_csv(out, schema.BIG) as big_out,
          csvout.open_csv(out, schema.SMALL) as small_out,
          csvout.open_csv(out, schema.TRUTH) as truth_out):  # fmt: skip
        for b, start in enumerate(range(0, world.n_users, logs.BLOCK_USERS)):
            users = np.arange(start, min(world.n_users, start + logs.BLOCK_USERS))
            rng = np.random.default_rng([seed, _BLOCK, b])
            big = logs.big_block(world, users, guarantee, rng)
            dups += int(big["duplicate"].sum())
            stats.add(big)
            big_out.write(csvout.matrix_frame(big, schema.BIG))
            small, truth = logs.small_block(world, users, rng)  # never in the daily stats
            small_out.write(csvout.matrix_frame(small, schema.SMALL))
            truth_out.write(_truth_frame(small, truth))
            advance(1)
    for views in logs.audience_views(world, np.random.default_rng([seed, _AUDIENCE])):
        stats.add(views)
    return {"big": big_out.rows, "small": small_out.rows, "duplicates": dups}, stats


def _truth_frame(small: dict[str, np.ndarray], truth: np.ndarray) -> Any:
    import polars as pl

    return pl.DataFrame({
        "user_id": small["user_id"], "video_id": small["video_id"],
        "expected_watch_ratio": np.round(truth, 6),
    }).select(schema.TRUTH.header)  # fmt: skip


def _write_side_files(
    out: Path, world: World, stats: daily.DailyStats, scale: float, seed: int
) -> dict[str, int]:
    rng = [np.random.default_rng([seed, _SIDE, i]) for i in range(4)]
    csvout.write_frame(out, schema.ITEM_CATEGORIES, metadata.item_categories(world))
    csvout.write_frame(out, schema.USER_FEATURES, metadata.user_features(world, rng[0]))
    friends = csvout.write_frame(
        out, schema.SOCIAL_NETWORK, metadata.social_network(world, scale, rng[1])
    )
    csvout.write_frame(out, schema.CAPTION_CATEGORY, metadata.caption_category(world, rng[2]))
    days = csvout.write_frame(
        out, schema.ITEM_DAILY_FEATURES, daily.daily_frame(world, stats, scale, rng[3])
    )
    return {"social_network_users": friends, "item_daily_rows": days}


@contextlib.contextmanager
def _bar(progress: Any, n_blocks: int) -> Iterator[Any]:
    """A bar over the user blocks (+1 step for the side files) in the one display."""
    from kuairec.display.progress import using

    with (
        using(progress) as display,
        display.task("generating synthetic KuaiRec", n_blocks + 1) as advance,
    ):
        yield advance
