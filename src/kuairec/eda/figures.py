"""Matplotlib figures of the dataset report, drawn from the numbers in ``stats``/``side``.

Text in the figures is ASCII only (category names, which are Chinese, go in HTML
tables), so no glyph is ever missing. Callers select the Agg backend first.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.eda import stats as st

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl
    from matplotlib.figure import Figure

    from kuairec.eda.side import DailyStats, SocialStats, TagStats, UserStats

WIDE = (11, 4)
LABEL_COLORS = ("#d62728", "#1f77b4", "#2ca02c")


def _subplots(ncols: int = 2, size: tuple[float, float] = WIDE, **kw: Any) -> tuple[Figure, Any]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=size, **kw)
    fig.set_layout_engine("constrained")
    return fig, axes


def counts(user_counts: np.ndarray, item_counts: np.ndarray) -> Figure:
    """Distinct videos per user and distinct users per video, log-log histograms."""
    fig, axes = _subplots()
    for ax, values, what in (
        (axes[0], user_counts, "videos watched per user"),
        (axes[1], item_counts, "users per video"),
    ):
        v = values[values > 0]
        if v.size:
            edges, c = st.log_histogram(v, 1, max(2.0, float(v.max())), 40)
            ax.stairs(c, edges, fill=True, alpha=0.7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"distinct {what} (log)")
        ax.set_ylabel("count (log)")
        ax.set_title(f"{what.capitalize()} (big matrix)")
    return fig


def density(grids: dict[str, st.DensityGrid]) -> Figure:
    fig, axes = _subplots(len(grids), size=(5.5 * len(grids), 4.6))
    axes = np.atleast_1d(axes)
    im = None
    for ax, (name, g) in zip(axes, grids.items(), strict=True):
        im = ax.imshow(
            g.grid,
            aspect="auto",
            cmap="viridis",
            vmin=0,
            vmax=1,
            interpolation="nearest",
            extent=(0, g.n_items, g.n_users, 0),
        )
        ax.set_title(f"{name}: {g.n_users:,} users x {g.n_items:,} videos, {g.density:.1%} filled")
        ax.set_xlabel("videos, most popular first")
        ax.set_ylabel("users, most active first")
    if im is not None:
        fig.colorbar(im, ax=list(axes), label="share of cells observed")
    return fig


def lorenz(pop: st.Popularity) -> Figure:
    fig, axes = _subplots()
    seen = pop.views[pop.views > 0]
    x, y = st.lorenz(seen)
    axes[0].plot(x, y, label=f"videos (Gini {pop.gini:.2f})")
    axes[0].plot([0, 1], [0, 1], "--", color="grey", label="equal views")
    axes[0].set_xlabel("share of videos, least viewed first")
    axes[0].set_ylabel("share of all views")
    axes[0].set_title("Lorenz curve of views (big matrix)")
    axes[0].legend(loc="upper left")
    ranked = np.sort(seen)[::-1]
    axes[1].loglog(np.arange(1, ranked.size + 1), ranked)
    for frac, share in ((0.01, pop.top1), (0.10, pop.top10)):
        k = max(1, int(np.ceil(frac * ranked.size - 1e-9)))
        axes[1].axvline(k, color="grey", ls=":")
        axes[1].annotate(
            f"top {frac:.0%}: {share:.1%} of views",
            (k, ranked[k - 1]),
            xytext=(5, 5),
            textcoords="offset points",
        )
    axes[1].set_xlabel("video rank by views (log)")
    axes[1].set_ylabel("views (log)")
    axes[1].set_title("Rank-frequency of views")
    return fig


def watch_ratio_hist(hists: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    fig, ax = _subplots(1, size=(9, 4))
    for name, (edges, c) in hists.items():
        total = c.sum() or 1
        ax.stairs(c / total, edges, label=name, lw=1.5)
    for x in (1.0, 2.0):
        ax.axvline(x, color="grey", ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("watch_ratio (log; play_duration / video_duration)")
    ax.set_ylabel("share of rows")
    ax.set_title("watch_ratio distribution (dotted: 1 and 2)")
    ax.legend()
    return fig


def watch_ratio_duration(profile: st.DurationProfile) -> Figure:
    fig, axes = _subplots()
    centers = np.sqrt(profile.edges[1:] * profile.edges[:-1]) / 1000.0
    ax = axes[0]
    ax.fill_between(centers, profile.q[0.1], profile.q[0.9], alpha=0.2, label="p10-p90")
    ax.fill_between(centers, profile.q[0.25], profile.q[0.75], alpha=0.35, label="p25-p75")
    ax.plot(centers, profile.q[0.5], "o-", label="median")
    ax.axhline(2.0, color="#d62728", ls="--", label="wr = 2")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("video duration (s, log)")
    ax.set_ylabel("watch_ratio (log)")
    ax.set_title("watch_ratio by video duration (big matrix)")
    ax.legend(fontsize=8)
    axes[1].plot(centers, profile.above2, "o-", color="#d62728")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("video duration (s, log)")
    axes[1].set_ylabel("share of rows with watch_ratio > 2")
    axes[1].set_title("The > 2 label by duration")
    return fig


def label_rates(rates: dict[str, st.LabelRates]) -> Figure:
    fig, axes = _subplots(len(rates), size=(6 * len(rates), 4.2), sharey=True)
    axes = np.atleast_1d(axes)
    width = 0.8 / len(st.LABELS)
    for ax, (name, r) in zip(axes, rates.items(), strict=True):
        pos = np.arange(r.rows.size)
        for j, label in enumerate(st.LABELS):
            ax.bar(
                pos + (j - 1) * width,
                r.per_bucket[j],
                width,
                color=LABEL_COLORS[j],
                label=f"{label} ({r.overall[j]:.1%} overall)",
            )
        ticks = [f"{r.edges[i] / 1000:.3g}-{r.edges[i + 1] / 1000:.3g}" for i in pos]
        ax.set_xticks(pos, ticks, rotation=45, ha="right", fontsize=7)
        ax.set_xlabel("video duration bucket (s)")
        ax.set_title(f"Positive rate per label ({name})")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("positive rate")
    return fig


def activity_time(days: list[dt.date], day_counts: np.ndarray, hours: np.ndarray) -> Figure:
    fig, axes = _subplots()
    axes[0].plot(days, day_counts, "-", marker=".")
    axes[0].set_title("Rows per day (big matrix)")
    axes[0].set_ylabel("rows")
    axes[0].tick_params(axis="x", rotation=30)
    axes[1].bar(np.arange(24), hours / max(hours.sum(), 1))
    axes[1].set_xticks(range(0, 24, 2))
    axes[1].set_xlabel("hour of day (Beijing time, UTC+8)")
    axes[1].set_ylabel("share of rows")
    axes[1].set_title("Rows by hour")
    return fig


TOP_TAGS = 40  # bars in the tag figure (the real data has 31 tags)


def tags(ts: TagStats) -> Figure:
    fig, ax = _subplots(1, size=(11, 4))
    order = np.argsort(-ts.views, kind="stable")[:TOP_TAGS]
    pos = np.arange(order.size)
    vid = ts.videos[order] / max(ts.videos.sum(), 1)
    view = ts.views[order] / max(ts.views.sum(), 1)
    ax.bar(pos - 0.2, vid, 0.4, label="share of tag assignments (videos)")
    ax.bar(pos + 0.2, view, 0.4, label="share of tag-weighted views")
    ax.set_xticks(pos, [str(ts.tag_id(k)) for k in order], fontsize=8)
    more = f" (top {TOP_TAGS} of {ts.views.size})" if ts.views.size > TOP_TAGS else ""
    ax.set_xlabel(f"tag id (item_categories.feat), most viewed first{more}")
    ax.set_ylabel("share")
    ax.set_title("Tag popularity")
    ax.legend()
    return fig


def categories(cat: pl.DataFrame, top: int = 20) -> Figure:
    fig, ax = _subplots(1, size=(11, 4))
    head = cat.head(top)
    pos = np.arange(head.height)
    ax.bar(pos - 0.2, head["video_share"].to_numpy(), 0.4, label="share of videos")
    ax.bar(pos + 0.2, head["view_share"].to_numpy(), 0.4, label="share of views")
    ax.set_xticks(pos, [str(v) for v in head["id"].to_list()], fontsize=8)
    ax.set_xlabel("first-level category id (names in the table below), most viewed first")
    ax.set_ylabel("share")
    ax.set_title(f"Top {head.height} first-level caption categories by views")
    ax.legend()
    return fig


def users(us: UserStats) -> Figure:
    fig, axes = _subplots(3, size=(14, 4))
    if us.degrees:
        pos = np.arange(len(us.degrees))
        axes[0].bar(pos, us.users)
        axes[0].set_xticks(pos, us.degrees, rotation=20, fontsize=8)
        axes[0].set_title("Users per user_active_degree")
        data = [np.maximum(a, 1) for a in us.activity]
        axes[1].boxplot(data, showfliers=False)
        axes[1].set_xticks(pos + 1, us.degrees, rotation=20, fontsize=8)
        axes[1].set_yscale("log")
        axes[1].set_ylabel("distinct videos watched (log)")
        axes[1].set_title("Activity by user_active_degree")
    else:
        for ax in axes[:2]:
            ax.text(0.5, 0.5, "no user_active_degree column", ha="center", transform=ax.transAxes)
    names = list(us.correlations)
    axes[2].barh(np.arange(len(names)), [us.correlations[n] for n in names])
    axes[2].set_yticks(np.arange(len(names)), names, fontsize=8)
    axes[2].axvline(0, color="grey", lw=0.8)
    axes[2].set_xlabel("Spearman rho with activity")
    axes[2].set_title("Numeric features vs activity")
    return fig


def daily(ds: DailyStats, rng: np.random.Generator, sample: int = 5000) -> Figure:
    fig, axes = _subplots(2, size=(14, 7), width_ratios=[1.4, 1])
    im = axes[0].imshow(ds.corr, cmap="RdBu_r", vmin=-1, vmax=1)
    axes[0].set_xticks(range(len(ds.names)), ds.names, rotation=90, fontsize=7)
    axes[0].set_yticks(range(len(ds.names)), ds.names, fontsize=7)
    axes[0].set_title(f"Spearman correlations of daily item statistics ({ds.n_items:,} videos)")
    fig.colorbar(im, ax=axes[0], shrink=0.8)
    if len(ds.names) <= 20:
        for (r, c), v in np.ndenumerate(ds.corr):
            axes[0].text(
                c,
                r,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=6,
                color="white" if abs(v) > 0.6 else "black",
            )
    ax = axes[1]
    if ds.progress is not None and ds.complete_rate is not None:
        ok = np.flatnonzero(np.isfinite(ds.progress) & np.isfinite(ds.complete_rate))
        pick = rng.choice(ok, size=min(sample, ok.size), replace=False) if ok.size else ok
        ax.scatter(ds.progress[pick], ds.complete_rate[pick], s=4, alpha=0.3)
        ax.set_xlabel("play_progress")
        ax.set_ylabel("complete plays / plays")
        ax.set_title(f"play_progress vs complete-play rate ({pick.size:,} sampled videos)")
    else:
        ax.text(
            0.5,
            0.5,
            "play_progress or complete_play_cnt absent",
            ha="center",
            transform=ax.transAxes,
        )
    return fig


def social(ss: SocialStats) -> Figure:
    fig, ax = _subplots(1, size=(8, 3.8))
    deg = ss.degree[ss.degree > 0]
    if deg.size:
        counts = np.bincount(deg)
        values = np.flatnonzero(counts)
        ax.bar(values, counts[values], width=0.8)
        if values.size <= 20:
            ax.set_xticks(values)
    ax.set_xlabel("friends listed (users with at least one)")
    ax.set_ylabel("users")
    ax.set_title("Friends per user (social_network.csv)")
    return fig
