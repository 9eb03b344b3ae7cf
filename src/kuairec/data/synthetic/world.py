"""The latent world behind the synthetic data: users, videos and the watch-ratio model.

Every row of every file is drawn from this one model (see ``docs/synthetic.md``):

- taste: 31 tags with centres in a d-dimensional space; a video's vector mixes its tags'
  centres; a user's vector mixes a taste cluster's favourite tags with her own;
- ``log watch_ratio = base + user_bias + video_effect + personal + noise`` where
  ``video_effect`` = heavy-tailed appeal minus a duration slope (short videos get replayed)
  and ``personal`` = user . video + a cluster-by-tag effect (the "tag x user feature"
  term: the cluster is ``onehot_feat1`` in user_features);
- with a small probability a view "loops" and the ratio is multiplied by a heavy-tailed
  factor (the long tail past 100).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kuairec.data.synthetic import vocab

N_DAYS = 63  # 2020-07-05 .. 2020-09-05
MAX_WATCH_RATIO = 573.5  # the real big matrix's maximum


@dataclass(frozen=True)
class Params:
    """Calibration constants (fitted by hand against the real KuaiRec figures)."""

    dim: int = 16
    n_clusters: int = 8
    personal_sd: float = 0.58  # sd of the personal term in log-watch-ratio units
    appeal_sd: float = 0.27
    appeal_df: float = 6.0  # Student-t degrees of freedom: a heavier tail than normal
    appeal_clip: float = 3.5  # ... clipped at this many sds: no universal hit
    duration_slope: float = 0.25  # d log(wr) / d log(duration)
    user_bias_sd: float = 0.10
    noise_sd: float = 0.37
    base_log_wr: float = -0.92  # a start: logs.calibrate_base shifts it per world
    loop_prob: float = 0.004
    loop_scale: float = 0.8  # log of the loop factor ~ Exponential(mean loop_scale)
    loop_max: float = 150.0
    pop_item: float = 1.2  # exposure log-weight per unit of appeal / appeal_sd
    pop_noise_sd: float = 1.0  # exposure log-weight noise (platform trends)
    pop_affinity: float = 1.6  # exposure log-weight per unit of personal / personal_sd
    small_appeal: float = 4.0  # small-matrix videos: log-weight per unit of appeal / appeal_sd
    min_duration_ms: int = 140
    max_duration_ms: int = 315_072
    small_min_duration_ms: int = 3_000


@dataclass(eq=False)
class World:
    """All latent and per-entity quantities; arrays indexed by user_id / video_id."""

    params: Params
    user_vec: np.ndarray  # (n, d) float32, scaled so user_vec @ video_vec.T is personal
    cluster: np.ndarray  # (n,) taste cluster = onehot_feat1
    cluster_video: np.ndarray  # (K, m) float32 cluster-by-tag effect per video
    user_bias: np.ndarray  # (n,)
    activity: np.ndarray  # (n,) target big-matrix rows
    video_vec: np.ndarray  # (m, d) float32
    appeal: np.ndarray  # (m,)
    duration: np.ndarray  # (m,) int64 ms
    video_effect: np.ndarray  # (m,) appeal - slope * log duration (centred)
    exposure_logw: np.ndarray  # (m,) item part of the feed's log-weight
    tag_indptr: np.ndarray  # tags of video v: tag_ids[tag_indptr[v]:tag_indptr[v+1]]
    tag_ids: np.ndarray
    author: np.ndarray  # (m,)
    n_authors: int
    window: np.ndarray  # (m, 2) first and last day index a video is shown
    small_users: np.ndarray  # sorted user ids of the small matrix
    small_videos: np.ndarray  # sorted video ids of the small matrix

    @property
    def n_users(self) -> int:
        return int(self.user_vec.shape[0])

    @property
    def n_videos(self) -> int:
        return int(self.video_vec.shape[0])

    def personal(self, users: np.ndarray, videos: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(videos)) personal affinity term (all videos by default)."""
        vv = self.video_vec if videos is None else self.video_vec[videos]
        cv = self.cluster_video if videos is None else self.cluster_video[:, videos]
        out = self.user_vec[users] @ vv.T
        out += cv[self.cluster[users]]
        return out

    def mu(
        self, users: np.ndarray, personal: np.ndarray, videos: np.ndarray | None = None
    ) -> np.ndarray:
        """Mean of log watch_ratio (before the loop tail) over users x videos."""
        p = self.params
        effect = self.video_effect if videos is None else self.video_effect[videos]
        return personal + (p.base_log_wr + self.user_bias[users, None] + effect)

    def loop_mean(self) -> float:
        """E[loop factor] of one view: 1 - q + q E[min(exp(X), loop_max)], X ~ Exp."""
        p = self.params
        r = 1.0 / p.loop_scale  # rate of the exponential, > 1 for a finite mean
        c = np.log(p.loop_max)
        e_loop = r / (r - 1.0) * (1.0 - np.exp(-(r - 1.0) * c)) + np.exp(-(r - 1.0) * c)
        return float(1.0 - p.loop_prob + p.loop_prob * e_loop)

    def expected_watch_ratio(self, mu: np.ndarray) -> np.ndarray:
        """E[watch_ratio | user, video] for log-means ``mu``.

        Ignores the rounding of play_duration and the cap at MAX_WATCH_RATIO (which only a
        handful of looped views reach).
        """
        p = self.params
        return np.exp(mu + 0.5 * p.noise_sd**2) * self.loop_mean()

    def draw_watch_ratio(self, mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One watch_ratio per entry of ``mu`` (1-D)."""
        p = self.params
        wr = np.exp(mu + p.noise_sd * rng.standard_normal(mu.shape))
        loops = rng.random(mu.shape) < p.loop_prob
        n_loops = int(loops.sum())
        if n_loops:
            x = np.minimum(rng.exponential(p.loop_scale, n_loops), np.log(p.loop_max))
            wr[loops] *= np.exp(x)
        return np.minimum(wr, MAX_WATCH_RATIO)


def build_world(
    n_users: int,
    n_videos: int,
    n_small_users: int,
    n_small_videos: int,
    scale: float,
    rng: np.random.Generator,
    params: Params | None = None,
) -> World:
    """Draw every user and video (no interactions yet)."""
    p = params or Params()
    tag_indptr, tag_ids = _draw_tags(n_videos, rng)
    centres = rng.standard_normal((vocab.TAG_COUNTS.size, p.dim)) / np.sqrt(p.dim)
    video_vec = _video_vectors(centres, tag_indptr, tag_ids, rng)
    cluster, user_vec = _user_vectors(n_users, centres, p, rng)
    tag_effect = rng.standard_normal((p.n_clusters, centres.shape[0]))
    cluster_video = _tag_mean(tag_effect, tag_indptr, tag_ids)  # (K, m)
    # centre the taste: the mean user's affinity to a video is an item effect, left to appeal
    user_vec = user_vec - user_vec.mean(axis=0)
    share = np.bincount(cluster, minlength=p.n_clusters) / max(n_users, 1)
    cluster_video = cluster_video - share @ cluster_video
    user_vec, cluster_video = _scale_personal(user_vec, video_vec, cluster, cluster_video, p)

    duration, appeal, video_effect, exposure_logw = _video_effects(n_videos, p, rng)
    activity = _draw_activity(n_users, scale, rng)
    small_users = _choose(np.log(activity), n_small_users, rng, temperature=0.5)
    eligible = duration >= p.small_min_duration_ms
    small_logw = np.where(eligible, p.small_appeal * appeal / p.appeal_sd, -np.inf)
    small_videos = _choose(small_logw, n_small_videos, rng)
    window = _draw_windows(n_videos, small_videos, rng)
    author, n_authors = _draw_authors(n_videos, scale, rng)
    return World(
        params=p, user_vec=user_vec.astype(np.float32), cluster=cluster,
        cluster_video=cluster_video.astype(np.float32),
        user_bias=p.user_bias_sd * rng.standard_normal(n_users), activity=activity,
        video_vec=video_vec.astype(np.float32), appeal=appeal, duration=duration,
        video_effect=video_effect, exposure_logw=exposure_logw, tag_indptr=tag_indptr,
        tag_ids=tag_ids, author=author, n_authors=n_authors, window=window,
        small_users=small_users, small_videos=small_videos,
    )  # fmt: skip


def _video_effects(
    m: int, p: Params, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Durations, appeal, the item part of log watch_ratio and the feed's item log-weight."""
    duration = _draw_durations(m, p, rng)
    t = rng.standard_t(p.appeal_df, m) * np.sqrt((p.appeal_df - 2.0) / p.appeal_df)
    appeal = p.appeal_sd * np.clip(t, -p.appeal_clip, p.appeal_clip)  # sd ~ appeal_sd
    video_effect = appeal - p.duration_slope * (np.log(duration) - np.log(9_600.0))
    exposure_logw = p.pop_item * appeal / p.appeal_sd + p.pop_noise_sd * rng.standard_normal(m)
    return duration, appeal, video_effect, exposure_logw


def _draw_tags(m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """1 to 4 distinct tags per video, frequencies as in the real item_categories.csv."""
    per = vocab.TAGS_PER_VIDEO_COUNTS / vocab.TAGS_PER_VIDEO_COUNTS.sum()
    k = 1 + rng.choice(per.size, size=m, p=per)
    logp = np.log(vocab.TAG_COUNTS / vocab.TAG_COUNTS.sum())
    keys = logp[None, :] + rng.gumbel(size=(m, logp.size))
    order = np.argsort(-keys, axis=1)
    take = np.arange(logp.size)[None, :] < k[:, None]
    indptr = np.concatenate([[0], np.cumsum(k)]).astype(np.int64)
    return indptr, order[take].astype(np.int64)


def _tag_mean(per_tag: np.ndarray, indptr: np.ndarray, tag_ids: np.ndarray) -> np.ndarray:
    """Mean over each video's tags of ``per_tag[..., tag]``: (..., m)."""
    counts = np.diff(indptr)
    video_of = np.repeat(np.arange(counts.size), counts)
    flat = per_tag.reshape(-1, per_tag.shape[-1])[:, tag_ids]  # (rows, n_pairs)
    out = np.zeros((flat.shape[0], counts.size))
    for r in range(flat.shape[0]):  # rows = clusters or dims, a handful
        out[r] = np.bincount(video_of, weights=flat[r], minlength=counts.size)
    return (out / counts).reshape(*per_tag.shape[:-1], counts.size)


def _video_vectors(
    centres: np.ndarray, indptr: np.ndarray, tag_ids: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    mean = _tag_mean(centres.T, indptr, tag_ids).T  # (m, d)
    noise = rng.standard_normal(mean.shape) * (0.7 / np.sqrt(centres.shape[1]))
    return mean + noise


def _user_vectors(
    n: int, centres: np.ndarray, p: Params, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster favourite tags + personal favourite tags + noise; cluster sizes uneven."""
    n_tags = centres.shape[0]
    cluster_w = rng.dirichlet(np.full(p.n_clusters, 3.0))
    cluster = rng.choice(p.n_clusters, size=n, p=cluster_w)
    cluster_taste = rng.dirichlet(np.full(n_tags, 0.4), size=p.n_clusters) @ centres
    own_taste = rng.dirichlet(np.full(n_tags, 0.25), size=n) @ centres
    noise = rng.standard_normal((n, p.dim)) / np.sqrt(p.dim)
    return cluster, 1.0 * cluster_taste[cluster] + 1.4 * own_taste + 0.35 * noise


def _scale_personal(
    user_vec: np.ndarray,
    video_vec: np.ndarray,
    cluster: np.ndarray,
    cluster_video: np.ndarray,
    p: Params,
) -> tuple[np.ndarray, np.ndarray]:
    """Scale both personal parts so their sum has sd ``personal_sd`` over user-video pairs."""
    n = min(user_vec.shape[0], 512)
    dot = user_vec[:n] @ video_vec.T
    tag = cluster_video[cluster[:n]]
    dot_sd = max(float(dot.std()), 1e-9)
    tag_sd = max(float(tag.std()), 1e-9)
    # the cluster-by-tag part carries a third of the personal variance
    a = np.sqrt(2.0 / 3.0) / dot_sd
    b = np.sqrt(1.0 / 3.0) / tag_sd
    total_sd = max(float((a * dot + b * tag).std()), 1e-9)
    f = p.personal_sd / total_sd
    return user_vec * (a * f), cluster_video * (b * f)


def _draw_durations(m: int, p: Params, rng: np.random.Generator) -> np.ndarray:
    """Log-normal around 9.6 s with a longer right tail; exact real min and max."""
    z = 0.62 * rng.standard_normal(m)
    long = rng.random(m) < 0.07
    z[long] += np.abs(rng.standard_normal(int(long.sum()))) * 1.3
    ms = np.clip(np.round(9_600.0 * np.exp(z)), p.min_duration_ms, p.max_duration_ms)
    ms = ms.astype(np.int64)
    if m >= 2:
        ms[int(np.argmin(z))] = p.min_duration_ms
        ms[int(np.argmax(z))] = p.max_duration_ms
    return ms


def _draw_activity(n: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Big-matrix rows per user: 100 + log-normal, mean ~1,750, at most ~16,000 (x scale)."""
    lo = max(100.0 * scale, 3.0)
    rows = lo + 1_040.0 * scale * np.exp(1.0 * rng.standard_normal(n))
    # capped below 16,015: repeat views and duplicates come on top
    return np.minimum(np.round(rows), 15_000 * scale).astype(np.int64)


def _choose(
    logw: np.ndarray, k: int, rng: np.random.Generator, temperature: float = 1.0
) -> np.ndarray:
    """k distinct indices drawn without replacement with weights exp(logw * temperature)."""
    keys = logw * temperature + rng.gumbel(size=logw.size)
    return np.sort(np.argsort(-keys)[:k]).astype(np.int64)


def _draw_windows(m: int, small_videos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Days a video is in the feed (about 32 of 63 on average); small videos all 63."""
    start = np.where(rng.random(m) < 0.2, 0, rng.integers(0, N_DAYS - 5, m))
    length = rng.integers(5, 36, m)
    end = np.minimum(start + length - 1, N_DAYS - 1)
    start[small_videos] = 0
    end[small_videos] = N_DAYS - 1
    return np.stack([start, end], axis=1).astype(np.int64)


def _draw_authors(m: int, scale: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """About 8,369 authors at scale 1: most post one video, a few are prolific."""
    n_authors = int(min(m, max(1, round(8_369 * scale))))
    author = np.empty(m, dtype=np.int64)
    author[:n_authors] = np.arange(n_authors)
    weights = rng.pareto(1.2, n_authors) + 1e-3
    author[n_authors:] = rng.choice(n_authors, size=m - n_authors, p=weights / weights.sum())
    return author[rng.permutation(m)], n_authors
