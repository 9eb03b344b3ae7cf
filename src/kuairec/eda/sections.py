"""The interaction sections of the dataset report: each pairs figures with takeaways
computed from the same numbers the figure shows.

A section builder takes the shared :class:`Context` and returns a :class:`Section`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kuairec.data.describe import describe
from kuairec.data.load import read_log
from kuairec.display.figure import Figure
from kuairec.display.html import escape, figure_html, figure_png, table_html
from kuairec.eda import figures
from kuairec.eda import stats as st
from kuairec.eda.side import summary_rows

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

    from kuairec.data.dataset import Interactions, KuaiRecDataset

SEED = 0


@dataclass
class Section:
    title: str
    intro: str = ""
    figures: list[Figure] = field(default_factory=list)
    html: list[str] = field(default_factory=list)  # tables, after the figures
    notes: list[str] = field(default_factory=list)  # what was skipped and why


class Context:
    """What every section shares: the dataset, its logs (read once) and derived arrays."""

    def __init__(self, ds: KuaiRecDataset) -> None:
        self.ds = ds
        self.rng = np.random.default_rng(SEED)
        self._logs: dict[str, pl.DataFrame] = {}
        self._columns: dict[tuple[str, str], np.ndarray] = {}
        self.pop = st.popularity(ds.big)
        self.activity = ds.big.user_counts()

    def log(self, which: str) -> pl.DataFrame:
        if which not in self._logs:
            self._logs[which] = read_log(self.ds, which)  # type: ignore[arg-type]
        return self._logs[which]

    def column(self, which: str, name: str) -> np.ndarray:
        """One log column as float64 numpy (nulls as NaN); durations fall back to items'."""
        key = (which, name)
        if key not in self._columns:
            log = self.log(which)
            if name == "video_duration" and name not in log.columns:
                idx = log["item_idx"].to_numpy()
                self._columns[key] = self.ds.video_duration[idx].astype(np.float64)
            else:
                self._columns[key] = log[name].cast(float).to_numpy()
        return self._columns[key]


def fmt(value: Any) -> str:
    """How numbers print in the report's tables (tests format expectations alike)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:,.0f}" if v.is_integer() and abs(v) >= 1 else f"{v:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value) if value else "none"
    return str(value)


def make_figure(name: str, fig: Any, caption: str) -> Figure:
    """Render a matplotlib figure into a :class:`Figure` written as ``<name>.png``."""
    return Figure(name=name, png=figure_png(fig), caption=caption)


def _matrix_row(name: str, inter: Interactions) -> list[str]:
    users = int((inter.user_counts() > 0).sum())
    items = int((inter.item_counts() > 0).sum())
    rows = int(inter.views.sum())
    dens = inter.nnz / (users * items) if users and items else 0.0
    return [
        name,
        fmt(users),
        fmt(items),
        fmt(inter.nnz),
        fmt(rows),
        f"{dens:.2%}",
        fmt(rows / users if users else 0.0),
    ]


def describe_tables(summary: dict[str, Any]) -> tuple[list[list[str]], list[str], list[list[str]]]:
    """``describe(ds)`` as rows: general (field, value) rows, then a per-matrix table
    (field, one column per matrix). The ``notes`` list is left to the caller."""
    general = [
        [k, fmt(v)]
        for k, v in summary_rows(
            {k: v for k, v in summary.items() if k not in ("matrices", "notes")}
        )
    ]
    matrices = summary.get("matrices") or {}
    names = sorted(matrices, key=lambda n: (n not in ("big", "small"), n != "big", n))
    flat = {name: dict(summary_rows(matrices[name])) for name in names}
    fields = list(dict.fromkeys(k for name in names for k in flat[name]))
    per = [[f, *[fmt(flat[n].get(f, "")) for n in names]] for f in fields]
    return general, ["field", *names], per


def overview(ctx: Context) -> Section:
    ds, rep = ctx.ds, ctx.ds.report
    sec = Section("Sizes, density and cleaning")
    head = ["matrix", "users", "videos", "user-video pairs", "rows (deduplicated)",
            "density (pairs)", "rows per user"]  # fmt: skip
    sec.html.append(table_html(head, [_matrix_row("big", ds.big), _matrix_row("small", ds.small)]))
    general, per_head, per = describe_tables(describe(ds))
    clean = [
        ["exact duplicate rows dropped (big)", fmt(rep.duplicates_dropped)],
        ["small-matrix rows without time", fmt(rep.small_rows_without_time)],
        *general,
    ]
    sec.html.append("<h3>Cleaning and files</h3>" + table_html(["field", "value"], clean))
    sec.html.append("<h3>Dataset summary (describe)</h3>" + table_html(per_head, per))
    sec.notes.extend(f"Loader: {note}" for note in rep.notes)
    return sec


def counts(ctx: Context) -> Section:
    uc, ic = ctx.activity, ctx.ds.big.item_counts()
    u, i = st.count_summary(uc[uc > 0]), st.count_summary(ic[ic > 0])
    cap = (
        f"Users watched a median of {u['median']:,.0f} distinct videos "
        f"(min {u['min']:,.0f}, max {u['max']:,.0f}); videos were watched by a median of "
        f"{i['median']:,.0f} users (min {i['min']:,.0f}, max {i['max']:,.0f})."
    )
    fig = make_figure("counts", figures.counts(uc, ic), cap)
    return Section("Interactions per user and per video", figures=[fig])


def density(ctx: Context) -> Section:
    big, small = st.density_grid(ctx.ds.big), st.density_grid(ctx.ds.small)
    cap = (
        f"The big matrix is {big.density:.1%} filled: {big.top_block:.1%} among the 10% most "
        f"active users x 10% most popular videos but {big.bottom_block:.2%} among the least "
        f"active x least popular 10%; the small matrix is {small.density:.1%} filled."
    )
    fig = make_figure("density", figures.density({"big": big, "small": small}), cap)
    intro = (
        "Users and videos sorted by their number of entries, binned into at most "
        "200 x 200 cells; colour = share of the cell's user-video pairs observed."
    )
    return Section("Sparsity of the user x video matrix", intro=intro, figures=[fig])


def popularity(ctx: Context) -> Section:
    p = ctx.pop
    k1 = max(1, math.ceil(0.01 * p.n_items - 1e-9))
    cap = (
        f"The top 1% of videos ({k1:,} of {p.n_items:,}) receive {p.top1:.1%} of all "
        f"{p.views.sum():,.0f} views and the top 10% receive {p.top10:.1%}; "
        f"Gini = {p.gini:.2f}."
    )
    fig = make_figure("popularity", figures.lorenz(p), cap)
    intro = (
        "Views are deduplicated big-matrix rows per video, over the videos with at least one view."
    )
    return Section("Popular vs niche videos", intro=intro, figures=[fig])


def watch_ratio(ctx: Context) -> Section:
    big, small = ctx.column("big", "watch_ratio"), ctx.column("small", "watch_ratio")
    hists = {
        name: st.log_histogram(wr, 1e-3, 1e3, 120)
        for name, wr in (("big", big), ("small", small))
        if wr.size
    }
    qb = st.quantiles(big, (0.5, 0.99))
    qs = st.quantiles(small, (0.5,))
    zeros = int((big <= 0).sum())
    cap = (
        f"Median watch_ratio is {qb[0.5]:.2f} (big) and {qs[0.5]:.2f} (small); "
        f"{(big > 2).mean():.1%} of big-matrix rows exceed 2 and {(big > 5).mean():.2%} "
        f"exceed 5 (p99 = {qb[0.99]:.2f}, max = {big.max() if big.size else 0:.1f})."
    )
    fig = make_figure("watch_ratio", figures.watch_ratio_hist(hists), cap)
    sec = Section("watch_ratio", figures=[fig])
    sec.intro = "Row-level watch_ratio; values outside [0.001, 1000] are clipped to the ends."
    if zeros:
        sec.notes.append(f"{zeros:,} big-matrix rows with watch_ratio = 0 are not on the log axis.")
    prof = st.duration_profile(big, ctx.column("big", "video_duration"))
    sec.figures.append(
        make_figure(
            "watch_ratio_duration", figures.watch_ratio_duration(prof), _duration_caption(ctx)
        )
    )
    return sec


def _duration_caption(ctx: Context) -> str:
    wr, dur = ctx.column("big", "watch_ratio"), ctx.column("big", "video_duration")
    med = float(np.median(dur)) if dur.size else 0.0
    short = dur < med
    above = wr > 2
    share_short = above[short].sum() / max(above.sum(), 1)

    def rate(m: np.ndarray) -> float:
        return float(above[m].mean()) if m.any() else float("nan")

    return (
        f"{share_short:.0%} of the rows with watch_ratio > 2 are on videos shorter than the "
        f"median duration ({med / 1000:.1f} s): {rate(short):.1%} of rows on shorter videos "
        f"exceed 2 against {rate(~short):.1%} on longer ones."
    )


def labels(ctx: Context) -> Section:
    ds = ctx.ds
    dur = np.asarray(ds.video_duration, dtype=np.float64)
    seen = np.flatnonzero(ds.big.item_counts() > 0)
    edges = st.duration_edges(dur[seen], 10)
    rb = st.label_rates(ds.big.watch_ratio_mean, dur[ds.big.indices], edges)
    rs = st.label_rates(
        ds.small.watch_ratio_mean, dur[ds.small.indices], edges, thresholds=rb.thresholds
    )
    per = rb.per_bucket[:, rb.rows > 0]
    cap = (
        f"Overall positive rates (small matrix, the test set): wr > 2 {rs.overall[0]:.1%}, "
        f"wr >= 1 {rs.overall[1]:.1%}, duration-aware {rs.overall[2]:.1%}; across the big "
        f"matrix's duration buckets wr > 2 ranges from {np.nanmin(per[0]):.1%} to "
        f"{np.nanmax(per[0]):.1%} and the duration-aware label from "
        f"{np.nanmin(per[2]):.1%} to {np.nanmax(per[2]):.1%}."
    )
    fig = make_figure("labels", figures.label_rates({"big": rb, "small": rs}), cap)
    intro = (
        "Three ways to call a user-video pair positive (watch_ratio averaged over "
        "repeated views): watch_ratio > 2 (the authors' suggestion), watch_ratio >= 1, "
        "and the top 20% of watch_ratio within each of 10 log-spaced video-duration "
        "buckets, with the cut-offs taken from the big (training) matrix, as the "
        "evaluation does."
    )
    rows = [
        [name, *[f"{x:.2%}" for x in r.overall], fmt(int(r.rows.sum()))]
        for name, r in (("big", rb), ("small", rs))
    ]
    rows += [
        [
            f"cut-off, bucket {i} ({edges[i] / 1000:.3g}-{edges[i + 1] / 1000:.3g} s)",
            "",
            "",
            f"wr > {t:.3g}",
            fmt(int(n)),
        ]
        for i, (t, n) in enumerate(zip(rb.thresholds, rb.rows, strict=True))
    ]
    table = table_html(["matrix (pairs)", *st.LABELS, "pairs"], rows)
    return Section("Positive rate per label definition", intro=intro, figures=[fig], html=[table])


def activity(ctx: Context) -> Section:
    log = ctx.log("big")
    sec = Section("Activity by day and by hour")
    if "date" not in log.columns or "timestamp" not in log.columns:
        sec.notes.append("The big-matrix log has no date/timestamp columns: figure skipped.")
        return sec
    days, dc = st.activity_by_day(ctx.column("big", "date"))
    hours = st.activity_by_hour(ctx.column("big", "timestamp"))
    if not days:
        sec.notes.append("No dated rows in the big matrix: figure skipped.")
        return sec
    share = hours / max(hours.sum(), 1)
    hi, lo = int(share.argmax()), int(share.argmin())
    dmax, dmin = int(dc.argmax()), int(dc.argmin())
    cap = (
        f"{len(days)} days from {days[0]} to {days[-1]}; the busiest day, {days[dmax]}, has "
        f"{dc[dmax]:,} rows ({dc[dmax] / max(dc[dmin], 1):.1f}x the quietest, {days[dmin]}); "
        f"the peak hour {hi:02d}:00-{hi + 1:02d}:00 Beijing time holds {share[hi]:.1%} of "
        f"rows, the quietest ({lo:02d}:00) {share[lo]:.1%}."
    )
    sec.figures.append(make_figure("activity_time", figures.activity_time(days, dc, hours), cap))
    return sec


def render(sec: Section) -> str:
    """A section as HTML: heading, intro, figures (embedded), tables, notes."""
    parts = [f"<h2>{escape(sec.title)}</h2>"]
    if sec.intro:
        parts.append(f"<p>{escape(sec.intro)}</p>")
    for f in sec.figures:
        parts.append(figure_html(f.png, f.caption, alt=f.file_name))
    parts.extend(sec.html)
    parts.extend(f'<p class="note">Note: {escape(n)}</p>' for n in sec.notes)
    return "\n".join(parts)
