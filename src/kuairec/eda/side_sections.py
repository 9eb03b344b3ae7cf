"""The side-data sections of the dataset report: tags, categories, users, daily item
statistics and the social network. A missing side field gives a note, never an error.
"""

from __future__ import annotations

import numpy as np

from kuairec.display.html import table_html
from kuairec.eda import figures
from kuairec.eda import side as sd
from kuairec.eda.sections import Context, Section, fmt, make_figure


def _missing(sec: Section, what: str, file: str) -> Section:
    sec.notes.append(f"No {what} in this dataset ({file} missing or empty): figure skipped.")
    return sec


def tags(ctx: Context) -> Section:
    sec = Section("Tag popularity")
    if ctx.ds.item_tags is None or ctx.ds.item_tags.nnz == 0:
        return _missing(sec, "video tags", "item_categories.csv")
    ts = sd.tag_popularity(ctx.ds.item_tags, ctx.pop.views)
    top = int(np.argmax(ts.views))
    vid_share = ts.videos[top] / max(ts.n_tagged, 1)
    view_share = ts.views[top] / max(ts.views.sum(), 1)
    cap = (
        f"Tag {ts.tag_id(top)} is the most viewed: it is on {vid_share:.1%} of tagged videos "
        f"and gets {view_share:.1%} of tag-weighted views; {ts.n_tagged:,} of "
        f"{ts.n_items:,} videos carry a tag and {ts.n_multi:,} carry two or more."
    )
    sec.figures.append(make_figure("tags", figures.tags(ts), cap))
    return sec


def categories(ctx: Context) -> Section:
    sec = Section("Caption categories")
    if ctx.ds.captions is None or ctx.ds.captions.height == 0:
        return _missing(sec, "caption categories", "kuairec_caption_category.csv")
    cat = sd.category_popularity(ctx.ds.captions, ctx.pop.views)
    if cat is None or cat.height == 0:
        sec.notes.append(
            "The captions have no item_idx or first-level category column: figure skipped."
        )
        return sec
    first = cat.row(0, named=True)
    missing = cat.filter(cat["id"].cast(str) == str(sd.MISSING_CATEGORY))
    n_missing = int(missing["videos"].sum()) if missing.height else 0
    cap = (
        f"Category {first['id']} is the most viewed: {first['view_share']:.1%} of views "
        f"from {first['video_share']:.1%} of videos; the top 3 of {cat.height} categories "
        f"take {cat['view_share'].head(3).sum():.1%} of views, and {n_missing:,} videos "
        f"have no category ({sd.MISSING_CATEGORY})."
    )
    sec.figures.append(make_figure("categories", figures.categories(cat), cap))
    rows = [
        [
            fmt(r["id"]),
            "(no category)" if r["id"] == sd.MISSING_CATEGORY else (r["name"] or ""),
            fmt(int(r["videos"])),
            f"{r['video_share']:.2%}",
            f"{r['view_share']:.2%}",
            f"{r['views_per_video']:,.1f}",
        ]
        for r in cat.iter_rows(named=True)
    ]
    sec.html.append(
        table_html(
            [
                "id",
                "first_level_category_name",
                "videos",
                "share of videos",
                "share of views",
                "views per video",
            ],
            rows,
        )
    )
    return sec


def users(ctx: Context) -> Section:
    sec = Section("User features and activity")
    uf = ctx.ds.user_features
    if uf is None or uf.height == 0:
        return _missing(sec, "user features", "user_features.csv")
    us = sd.user_activity(uf, ctx.ds.users, ctx.activity)
    if us is None or (not us.degrees and not us.correlations):
        sec.notes.append(
            "The user features cannot be matched to users or hold none of the "
            "expected columns: figure skipped."
        )
        return sec
    parts = []
    if us.degrees:
        meds = [float(np.median(a)) if a.size else float("nan") for a in us.activity]
        j = int(np.nanargmax(meds))
        parts.append(
            f"{us.degrees[0]} is the largest user_active_degree group "
            f"({us.users[0]:,} of {us.n_users:,} users, median {meds[0]:,.0f} videos "
            f"watched) and {us.degrees[j]} the most active (median {meds[j]:,.0f})"
        )
    finite = {k: v for k, v in us.correlations.items() if np.isfinite(v)}
    if finite:
        best = max(finite, key=lambda k: abs(finite[k]))
        parts.append(
            f"{best} has the strongest rank correlation with activity "
            f"(Spearman rho = {finite[best]:.2f})"
        )
    cap = "; ".join(parts) + "."
    sec.figures.append(make_figure("users", figures.users(us), cap))
    rows = [
        [d, fmt(int(n)), fmt(float(np.median(a))) if a.size else "nan"]
        for d, n, a in zip(us.degrees, us.users, us.activity, strict=True)
    ]
    if rows:
        sec.html.append(table_html(["user_active_degree", "users", "median videos watched"], rows))
    return sec


def _daily_caption(dstat: sd.DailyStats) -> str:
    names, corr = dstat.names, dstat.corr
    pos = {name: i for i, name in enumerate(names)}
    parts = []
    if "big_views" in pos:
        row = np.where(np.arange(len(names)) == pos["big_views"], np.nan, corr[pos["big_views"]])
        if np.isfinite(row).any():
            j = int(np.nanargmax(np.abs(row)))
            parts.append(
                f"Across {dstat.n_items:,} videos, big-matrix views follow {names[j]} most "
                f"closely (Spearman rho = {row[j]:.2f})"
            )
    if "play_progress" in pos and "complete_play_rate" in pos:
        rho = corr[pos["play_progress"], pos["complete_play_rate"]]
        parts.append(f"play_progress vs complete-play rate rho = {rho:.2f}")
    iu = np.triu_indices(len(names), k=1)
    vals = np.where(np.isfinite(corr[iu]), np.abs(corr[iu]), -1)
    k = int(np.argmax(vals))
    a, b = iu[0][k], iu[1][k]
    parts.append(f"the most correlated pair is {names[a]} / {names[b]} (rho = {corr[a, b]:.2f})")
    text = "; ".join(parts)
    if not text.startswith("Across"):
        text = f"Across {dstat.n_items:,} videos, {text}"
    return text + "."


def daily(ctx: Context) -> Section:
    sec = Section("Daily item statistics")
    d = ctx.ds.item_daily
    if d is None or d.height == 0:
        return _missing(sec, "daily item statistics", "item_daily_features.csv")
    dstat = sd.daily_correlations(d, ctx.pop.views)
    if dstat is None:
        sec.notes.append(
            f"Fewer than two usable numeric columns among {d.columns}: figure skipped."
        )
        return sec
    sec.intro = (
        "One row per video (the loader's aggregate over days: sums of the daily counts, "
        "mean play_progress, rates such as complete_play_rate = complete plays / plays); "
        "big_views = the video's views in the big matrix."
    )
    sec.figures.append(make_figure("daily", figures.daily(dstat, ctx.rng), _daily_caption(dstat)))
    return sec


def social(ctx: Context) -> Section:
    sec = Section("Social network")
    if ctx.ds.social is None or ctx.ds.social.nnz == 0:
        return _missing(sec, "friend network", "social_network.csv")
    ss = sd.social_degrees(ctx.ds.social, ctx.activity)
    deg = ss.degree[ss.degree > 0]
    cap = (
        f"Only {ss.with_friends:,} of {ss.n_users:,} users ({ss.with_friends / ss.n_users:.1%})"
        f" list friends (mean {deg.mean():.2f}, max {deg.max()}); their median activity is "
        f"{ss.median_activity_with:,.0f} videos against {ss.median_activity_without:,.0f} for "
        f"users without friends."
    )
    sec.figures.append(make_figure("social", figures.social(ss), cap))
    return sec
