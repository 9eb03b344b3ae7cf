"""The benchmark report: both documents, self-contained HTML, order, CIs, flips, gaps."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import pytest

from kuairec.errors import ConfigError, DataError
from kuairec.report.render import render_report

KS = [5, 10, 20]
LABELS = ["wr>2", "wr>=1", "duration", "graded"]


def _metrics(ndcg10: float, pop: float, *, rating: bool = False) -> dict:
    """Per-user metrics that grow with K; ndcg@10 and popularity set by the caller."""
    out: dict = {}
    for k in KS:
        scale = k / 10
        out[f"ndcg@{k}"] = ndcg10 * (0.8 + 0.2 * scale)
        out[f"recall@{k}"] = ndcg10 * 0.9 * scale
        out[f"precision@{k}"] = ndcg10 * 0.7
        out[f"map@{k}"] = ndcg10 * 0.5
        out[f"hit@{k}"] = min(1.0, ndcg10 * 3 * scale)
        out[f"coverage@{k}"] = 0.1 * scale
        out[f"mean_popularity@{k}"] = pop
        out[f"gini@{k}"] = 0.5
    out.update(mrr=ndcg10 * 1.1, n_users_evaluated=1411, n_users_no_positive=12)
    if rating:
        out.update(rmse=0.8123, mae=0.61, r2=0.1234)
    return out


def _model(ndcg10: float, pop: float, fit: float, by_label: list[float], **kw) -> dict:
    metrics = _metrics(ndcg10, pop, **kw)
    ci = {key: [value - 0.01, value + 0.01] for key, value in metrics.items() if "@" in key}
    ci["ndcg@10"] = [ndcg10 - 0.0123, ndcg10 + 0.0234]
    segments = {
        "user_activity": {
            g: {"ndcg@10": ndcg10 * f, "recall@10": ndcg10, "n_users": 470}
            for g, f in (("low", 0.5), ("mid", 1.0), ("high", 1.5))
        },
        "duration_bucket": {"<7s": {"ndcg@10": ndcg10, "n_users": 1400}},
        "item_coldness": {"cold": {"ndcg@10": 0.0, "n_users": 300}, "warm": {"ndcg@10": ndcg10}},
    }
    return {
        "metrics": metrics,
        "ci": ci,
        "by_label": {lab: {"ndcg@10": v} for lab, v in zip(LABELS, by_label, strict=True)},
        "segments": segments,
        "fit_seconds": fit,
        "eval_seconds": 0.4,
        "peak_rss_mb": 512.0,
        "config": {"factors": 64},
    }


def full_metrics() -> dict:
    return {
        "protocol": {
            "name": "kuairec-small",
            "train": "big_matrix",
            "test": "small_matrix",
            "n_test_users": 1411,
            "n_candidates": 3327,
            "default_label": "wr>2",
            "labels": LABELS,
            "ks": KS,
            "n_bootstrap": 1000,
            "seed": 0,
            "data": "/data/KuaiRec 2.0",
            "scale": None,
        },  # fmt: skip
        "models": {
            # insertion order deliberately differs from the ndcg@10 order
            "random": _model(0.0101, 50.0, 0.0, [0.01, 0.01, 0.01, 0.01]),
            "als": _model(0.3210, 900.0, 12.5, [0.32, 0.40, 0.25, 0.30], rating=False),
            "oracle": _model(0.9, 400.0, 0.01, [0.9, 0.9, 0.9, 0.9]),
            "ease": _model(0.3333, 1200.0, 3.0, [0.3333, 0.35, 0.27, 0.3], rating=True),
        },
        "paired": {
            "ease vs als": {
                "metric": "ndcg@10",
                "diff": 0.0123,
                "ci": [-0.002, 0.0251],
                "p_le_0": 0.061,
            },
        },  # fmt: skip
        "label_flips": [
            {
                "models": ["ease", "als"],
                "metric": "ndcg@10",
                "order": {"wr>2": "ease>als", "wr>=1": "als>ease"},
            },
        ],  # fmt: skip
        "skipped": {"spark_als": "needs an optional package that is not installed: pyspark"},
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    out = tmp_path_factory.mktemp("report")
    extra = {"manifest": {"seed": 0, "git_commit": "abc1234", "versions": {"numpy": "2.4.0"}},
             "eda_link": "eda/report.html"}  # fmt: skip
    md_path, html_path = render_report(full_metrics(), out, extra=extra)
    assert md_path == out / "report.md" and html_path == out / "report.html"
    return md_path.read_text(), html_path.read_text(), out


def _leaderboard_names(md: str) -> list[str]:
    section = md.split("## Leaderboard", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    return [row.split("|")[1].strip().split(" (")[0] for row in rows]


def test_leaderboard_sorted_by_ndcg10_with_reference_rows_marked(rendered):
    md, _, _ = rendered
    assert _leaderboard_names(md) == ["oracle", "ease", "als", "random"]
    assert "| oracle (upper bound, synthetic data) |" in md
    assert "| random (random ranking baseline) |" in md


def test_ci_brackets_and_four_decimals(rendered):
    md, html, _ = rendered
    # ease: ndcg@10 = 0.3333, CI = [0.3333 - 0.0123, 0.3333 + 0.0234]
    assert "0.3333 [0.3210, 0.3567]" in md
    assert "0.3333 [0.3210, 0.3567]" in html
    # als recall@10 = 0.321 * 0.9 = 0.2889, CI +-0.01
    assert "0.2889 [0.2789, 0.2989]" in md
    # als: popularity 900 (1 decimal: the column has counts >= 100), fit 12.5 s, eval 0.4 s
    assert "| 900.0 | 12.50 | 0.40 | 512 |" in md
    assert "| 50.0 | 0.00 | 0.40 | 512 |" in md  # random: same column, same decimals


def test_html_is_self_contained_with_embedded_images(rendered):
    _, html, out = rendered
    assert "http://" not in html and "https://" not in html
    assert 'src="plots/' not in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) >= 4
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert len(pngs) == len(images)
    assert {"ndcg_bar.png", "metric_vs_k.png", "cost.png", "segment_user_activity.png"} <= set(pngs)


def test_markdown_references_every_plot_file(rendered):
    md, _, out = rendered
    refs = re.findall(r"\]\((plots/[^)]+\.png)\)", md)
    assert len(refs) >= 4
    assert all((out / ref).is_file() for ref in refs)


def test_rating_table_only_lists_models_with_rmse(rendered):
    md, _, _ = rendered
    section = md.split("## Rating error", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    assert rows == ["| ease | 0.8123 | 0.6100 | 0.1234 |"]


def test_label_table_ranks_and_flip_listed(rendered):
    md, html, _ = rendered
    # under wr>=1: oracle 0.9 (1), als 0.40 (2), ease 0.35 (3), random 0.01 (4)
    assert "| als | 0.3200 (3) | 0.4000 (2) | 0.2500 (3) | 0.3000 (2) |" in md
    assert "| ease | 0.3333 (2) | 0.3500 (3) | 0.2700 (2) | 0.3000 (2) |" in md
    assert "wr>2 (default)" in md
    assert "- ease vs als (ndcg@10): wr>2: ease>als; wr>=1: als>ease" in md
    assert "ease vs als (ndcg@10): wr&gt;2: ease&gt;als" in html


def test_paired_skipped_and_extra_sections(rendered):
    md, html, _ = rendered
    assert "| ease vs als | ndcg@10 | 0.0123 | [-0.0020, 0.0251] | 0.0610 | not resolved |" in md
    assert "- spark_als: needs an optional package that is not installed: pyspark" in md
    assert "spark_als: needs an optional package" in html
    assert "| git_commit | abc1234 |" in md and "| versions.numpy | 2.4.0 |" in md
    assert "[Exploratory data analysis report](eda/report.html)" in md
    assert '<a href="eda/report.html">' in html


def test_segment_tables_and_protocol(rendered):
    md, html, _ = rendered
    assert "| model | low (n=470) | mid (n=470) | high (n=470) |" in md
    assert "| als | 0.1605 | 0.3210 | 0.4815 |" in md  # 0.321 * (0.5, 1, 1.5)
    assert "| K values | 5, 10, 20 |" in md
    assert "| setting | value |\n|---|---|\n" in md  # text columns are left-aligned
    assert "scale" not in md.split("## Leaderboard", 1)[0]  # data given with --data
    # 1411 users have a positive, 12 have none: 1423 test users, not "12 of the 1411"
    users = (
        "Test users: 1423, of whom 1411 have at least one relevant item under the default "
        "label wr>2 (metrics average over those 1411)."
    )
    assert users in md and f"<p>{users.replace('>', '&gt;')}</p>" in html


def test_scale_is_shown_for_the_generated_default_data_only(tmp_path: Path):
    base = full_metrics()
    base["protocol"].update(scale=0.2, synthetic=True)  # what the main job writes then
    md_path, html_path = render_report(base, tmp_path / "generated")
    assert "| scale of the generated data | 0.2 |" in md_path.read_text()
    assert "<td>scale of the generated data</td><td>0.2</td>" in html_path.read_text()
    for protocol in ({"scale": None, "synthetic": True}, {"scale": None, "synthetic": False}):
        base["protocol"].update(protocol)  # --data: a synthetic folder or real data
        md_path, html_path = render_report(base, tmp_path / str(protocol["synthetic"]))
        assert "scale" not in md_path.read_text().split("## Leaderboard", 1)[0]
        assert "<td>scale" not in html_path.read_text()


def test_users_sentence_counts_all_test_users(tmp_path: Path):
    # what evaluate() writes: 71 test users, 67 with a positive, 4 without
    counts = {"n_users": 71, "n_users_evaluated": 67, "n_users_no_positive": 4}
    metrics = {"models": {m: {"metrics": {"ndcg@10": 0.1, **counts}} for m in ("a", "b")}}
    md_path, _ = render_report(metrics, tmp_path)
    assert (
        "Test users: 71, of whom 67 have at least one relevant item under the default label "
        "(metrics average over those 67)." in md_path.read_text()
    )
    metrics["models"]["b"]["metrics"]["n_users_evaluated"] = 66  # models disagree: no sentence
    assert "Test users" not in render_report(metrics, tmp_path)[0].read_text()


def test_minimal_metrics_render_without_optional_sections(tmp_path: Path):
    minimal = {
        "protocol": {"name": "temporal"},
        "models": {
            "pop": {"metrics": {"ndcg@10": 0.1, "recall@10": 0.2}},
            "knn": {"metrics": {"ndcg@10": 0.2, "mrr": None}},  # NaN became null in JSON
        },
    }
    md_path, html_path = render_report(minimal, tmp_path)
    md = md_path.read_text()
    assert _leaderboard_names(md) == ["knn", "pop"]
    assert "| knn | 0.2000 | n/a |" in md  # no CI given: no brackets; missing recall
    assert "Per-label metrics: not available." in md
    assert "Per-segment metrics: not available." in md
    assert "Order flips between labels: not available." in md
    for absent in ("## Rating error", "## Paired differences", "## Skipped models"):
        assert absent not in md
    assert html_path.read_text().count("data:image/png;base64,") >= 2


def test_no_models_and_empty_dict(tmp_path: Path):
    md_path, html_path = render_report({}, tmp_path, title="empty run")
    assert md_path.read_text().startswith("# empty run\n")
    assert "No model was evaluated." in md_path.read_text()
    assert "<title>empty run</title>" in html_path.read_text()


def test_bad_input_names_the_part(tmp_path: Path):
    with pytest.raises(DataError, match=r"metrics\['models'\]\['als'\]: expected a dict"):
        render_report({"models": {"als": [0.1]}}, tmp_path)
    with pytest.raises(DataError, match=r"metrics: expected a dict, found list"):
        render_report([], tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="extra: expected a dict"):
        render_report({}, tmp_path, extra="x")  # type: ignore[arg-type]


def test_ten_models_render_quickly(tmp_path: Path):
    base = full_metrics()
    template = base["models"]["ease"]
    base["models"] = {f"model_{i}": template for i in range(10)}
    start = time.perf_counter()
    render_report(base, tmp_path)
    assert time.perf_counter() - start < 5.0


def test_captions_state_takeaways_without_the_oracle(rendered):
    md, _, _ = rendered
    # oracle is an upper bound: the "best model" is ease; als's CI [0.3087, 0.3444] reaches
    # above ease's lower bound 0.3210, random's [-0.0022, 0.0335] does not
    assert "Best model: ease (0.3333); models whose CI overlaps its CI: als." in md
    # within 90% of 0.3333 (>= 0.3): ease (3 s) and als (12.5 s); ease is faster
    assert "Fastest model within 90% of the best ndcg@10: ease (3.00 s)." in md
    assert "Most popular lists: ease (1200); least: als (900)." in md  # reference rows left out
    assert "For ease: lowest in low (0.1666), highest in high (0.5000)." in md


def test_unsafe_link_is_not_made_clickable(tmp_path: Path):
    md_path, html_path = render_report({}, tmp_path, extra={"eda_link": "javascript:alert(1)"})
    assert "](javascript:" not in md_path.read_text()
    assert 'href="javascript:' not in html_path.read_text()


def test_tuning_section_and_notes_are_rendered(tmp_path) -> None:
    from kuairec.report.render import render_report

    metrics = {
        "protocol": {"name": "kuairec-small", "default_label": "wr>2", "ks": [10]},
        "models": {},
        "skipped": {},
        "notes": ["no paired comparison: n_bootstrap is 0 (no resamples)"],
        "tuning": {
            "ease": {
                "split": "temporal",
                "trials": [{}, {}, {}],
                "default_value": 0.41234,
                "best_value": 0.42345,
                "decision": "defaults",
                "why": "its 95% interval [-0.0100, +0.0300] does not lie above 0",
            }
        },
    }
    md_path, _ = render_report(metrics, tmp_path)
    text = md_path.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| ease"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:6] == ["ease", "temporal", "3", "0.4123", "0.4234", "defaults"]
    assert "does not lie above 0" in cells[6]
    assert "n_bootstrap is 0" in text


def test_training_curves_figure_and_caption(tmp_path) -> None:
    from kuairec.report.render import render_report

    history = {"epoch": [1, 2, 3], "train_loss": [3.0, 2.0, 1.5], "valid_ndcg@10": [0.2, 0.31, 0.3]}
    metrics = {
        "protocol": {"name": "kuairec-small", "default_label": "wr>2", "ks": [10]},
        "models": {"autoencoder": {"metrics": {"ndcg@10": 0.3}, "history": history}},
        "skipped": {},
    }
    md_path, _ = render_report(metrics, tmp_path)
    text = md_path.read_text()
    assert "best validation NDCG@10 0.3100 at epoch 2 of 3" in text
    assert (tmp_path / "plots" / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
