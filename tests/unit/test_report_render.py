"""The benchmark report: both documents, self-contained HTML, order, CIs, flips, gaps.

The report is rendered from a metrics.json document read back through the typed result
(:mod:`kuairec.pipeline.metrics_file`), as a run's report is."""

from __future__ import annotations

import base64
import copy
import re
import time
from pathlib import Path

import pytest

from kuairec.errors import ConfigError, DataError
from kuairec.pipeline import metrics_file
from kuairec.pipeline.run import render_run_report

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


def model_entry(
    ndcg10: float, pop: float = 100.0, fit: float = 1.0, by_label=None, *, reference=False, **kw
) -> dict:
    """A metrics.json model entry (what ModelResult writes)."""
    metrics = _metrics(ndcg10, pop, **kw)
    ci = {key: [value - 0.01, value + 0.01] for key, value in metrics.items() if "@" in key}
    ci["ndcg@10"] = [ndcg10 - 0.0123, ndcg10 + 0.0234]
    by_label = by_label or [ndcg10] * 4
    return {
        "model": "m",
        "reference": reference,
        "cost_class": "cheap",
        "metrics": metrics,
        "ci": ci,
        "by_label": {lab: {"ndcg@10": v} for lab, v in zip(LABELS, by_label, strict=True)},
        "cost": {"fit_seconds": fit, "eval_seconds": 0.4, "peak_rss_mb": 512.0},
        "config": {"factors": 64},
    }


def _segments(ndcg10: float) -> dict:
    return {
        "user_activity": {
            g: {"ndcg@10": ndcg10 * f, "recall@10": ndcg10, "n_users": 470}
            for g, f in (("low", 0.5), ("mid", 1.0), ("high", 1.5))
        },
        "duration_bucket": {"<7s": {"ndcg@10": ndcg10, "n_users": 1400}},
        "item_coldness": {"cold": {"ndcg@10": 0.0, "n_users": 300}, "warm": {"ndcg@10": ndcg10}},
    }


def protocol(**changes) -> dict:
    return {
        "name": "kuairec-small",
        "train": "big_matrix",
        "test": "small_matrix",
        "data": "/data/KuaiRec 2.0",
        "n_test_users": 1411,
        "n_candidates": 3327,
        "default_label": "wr>2",
        "labels": LABELS,
        "ks": KS,
        "n_bootstrap": 1000,
        "seed": 0,
        "validation_split": "temporal",
        **changes,
    }


def document(models: dict, **parts) -> dict:
    return {"schema_version": 2, "protocol": protocol(), "models": models, **parts}


def full_metrics() -> dict:
    models = {
        # insertion order deliberately differs from the ndcg@10 order
        "random": model_entry(0.0101, 50.0, 0.0, [0.01] * 4, reference=True),
        "als": model_entry(0.3210, 900.0, 12.5, [0.32, 0.40, 0.25, 0.30]),
        "oracle": model_entry(0.9, 400.0, 0.01, [0.9] * 4, reference=True),
        "ease": model_entry(0.3333, 1200.0, 3.0, [0.3333, 0.35, 0.27, 0.3], rating=True),
    }
    values = {n: dict(zip(LABELS, [m["by_label"][lab]["ndcg@10"] for lab in LABELS],
                          strict=True)) for n, m in models.items()}  # fmt: skip
    return document(
        models,
        paired={
            "metric": "ndcg@10",
            "baseline": "ease",
            "reason": "the best validation ndcg@10",
            "n_comparisons": 3,
            "correction": "holm",
            "comparisons": {
                "als": {
                    "diff": 0.0123,
                    "ci": [-0.002, 0.0251],
                    "p_le_0": 0.061,
                    "p_value": 0.122,
                    "p_holm": 0.244,
                    "n_users": 1411,
                    "n_bootstrap": 1000,
                }
            },
        },  # fmt: skip
        sections={
            "segments": {
                "families": {
                    fam: {n: _segments(m["metrics"]["ndcg@10"])[fam] for n, m in models.items()}
                    for fam in ("user_activity", "duration_bucket", "item_coldness")
                }
            },  # fmt: skip
            "label_sensitivity": {
                "metric": "ndcg@10",
                "default_label": "wr>2",
                "labels": LABELS,
                "values": values,
                "flips": [
                    {
                        "models": ["ease", "als"],
                        "labels": ["wr>=1"],
                        "order": {"wr>2": "ease > als", "wr>=1": "ease < als"},
                    },
                ],  # fmt: skip
            },
        },
        skipped={"spark_als": "needs an optional package that is not installed: pyspark"},
    )


def render_report(doc: dict, out: Path, **options):
    """Read the document as a run's metrics.json is read, then render it."""
    return render_run_report(metrics_file.from_document(copy.deepcopy(doc)), out, **options)


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
    assert "| oracle (reference) |" in md and "| random (reference) |" in md
    assert "| ease |" in md  # a learned model, no mark


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
    assert "- ease vs als: wr>2: ease > als; wr>=1: ease < als" in md
    assert "ease vs als: wr&gt;2: ease &gt; als" in html


def test_paired_skipped_and_extra_sections(rendered):
    md, html, _ = rendered
    assert "| ease vs als | 0.0123 | [-0.0020, 0.0251] | 0.1220 | 0.2440 | not resolved |" in md
    assert "Baseline: ease, chosen without the test set (the best validation ndcg@10)" in md
    assert "Holm-adjusted over the 3 comparisons made" in md
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
    doc = document({m: model_entry(0.1) for m in ("a", "b")})
    for m in doc["models"].values():
        m["metrics"].update(counts)
    md_path, _ = render_report(doc, tmp_path)
    assert (
        "Test users: 71, of whom 67 have at least one relevant item under the default label "
        "wr>2 (metrics average over those 67)." in md_path.read_text()
    )
    doc["models"]["b"]["metrics"]["n_users_evaluated"] = 66  # models disagree: no sentence
    assert "Test users" not in render_report(doc, tmp_path)[0].read_text()


def test_minimal_metrics_render_without_optional_sections(tmp_path: Path):
    doc = document({"pop": model_entry(0.1), "knn": model_entry(0.2)})
    doc["models"]["knn"]["metrics"]["mrr"] = None  # NaN became null in JSON
    del doc["models"]["knn"]["ci"]["ndcg@10"]
    doc["models"]["knn"]["metrics"].pop("recall@10")
    md_path, html_path = render_report(doc, tmp_path)
    md = md_path.read_text()
    assert _leaderboard_names(md) == ["knn", "pop"]
    assert "| knn | 0.2000 | n/a |" in md  # no CI given: no brackets; missing recall
    for absent in (
        "## Rating error", "## Paired differences", "## Skipped models", "## Segments",
        "## Label sensitivity", "## Tuning", "## Cold videos",
    ):  # fmt: skip
        assert absent not in md
    assert html_path.read_text().count("data:image/png;base64,") >= 2


def test_no_models(tmp_path: Path):
    md_path, html_path = render_report(document({}), tmp_path, title="empty run")
    assert md_path.read_text().startswith("# empty run\n")
    assert "No model was evaluated." in md_path.read_text()
    assert "<title>empty run</title>" in html_path.read_text()


def test_a_section_that_failed_says_why(tmp_path: Path):
    doc = document({"a": model_entry(0.1)}, section_errors={"validity": "no timestamps"})
    md = render_report(doc, tmp_path)[0].read_text()
    assert "## Offline-evaluation validity\n\nNot computed: no timestamps" in md


def test_bad_documents_name_the_part(tmp_path: Path):
    doc = full_metrics()
    doc["models"]["als"]["metrics"]["ndcg@10"] = True  # a boolean is not a number
    with pytest.raises(DataError, match=r"models\['als'\]\.metrics\['ndcg@10'\]: expected"):
        render_report(doc, tmp_path)
    with pytest.raises(DataError, match="expected a JSON object, found list"):
        render_report([], tmp_path)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="schema_version 1, this kuairec reads 2"):
        render_report({**full_metrics(), "schema_version": 1}, tmp_path)
    with pytest.raises(DataError, match=r"unknown key\(s\) \['extra'\]"):
        render_report({**full_metrics(), "extra": 1}, tmp_path)
    with pytest.raises(DataError, match="unknown section 'bogus'"):
        render_report({**full_metrics(), "sections": {"bogus": {}}}, tmp_path)
    with pytest.raises(ConfigError, match="extra: expected a dict"):
        render_report(full_metrics(), tmp_path, extra="x")  # type: ignore[arg-type]


def test_ten_models_render_quickly(tmp_path: Path):
    base = full_metrics()
    template = base["models"]["ease"]
    base["models"] = {f"model_{i}": template for i in range(10)}
    base["sections"] = {}
    base["paired"] = None
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
    md_path, html_path = render_report(
        document({}), tmp_path, extra={"eda_link": "javascript:alert(1)"}
    )
    assert "](javascript:" not in md_path.read_text()
    assert 'href="javascript:' not in html_path.read_text()


def test_tuning_section_and_notes_are_rendered(tmp_path) -> None:
    record = {
        "objective": "ndcg@10 on the validation split's selection half",
        "n_trials": 3,
        "trials": [{"params": {}, "value": 0.41234}, {"params": {"l2": 1.0}, "value": 0.42345}],
        "default_value": 0.41234,
        "best_value": 0.42345,
        "decision": "defaults",
        "why": "on the confirmation half tuned - defaults = +0.0100, not above 0",
        "best_params": {"l2": 500.0},
        "confirmation": {"diff": 0.01, "ci": [-0.01, 0.03], "n_users": 70},
        "time_limited": "stopped by a time limit: not reproducible (2 of 3 trials)",
    }
    doc = document(
        {"ease": model_entry(0.3)},
        notes=["no paired comparison: n_bootstrap is 0 (no resamples)"],
        sections={"tuning": {"models": {"ease": record}}},
    )
    text = render_report(doc, tmp_path)[0].read_text()
    section = text.split("## Tuning", 1)[1]
    row = next(line for line in section.splitlines() if line.startswith("| ease"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:6] == ["ease", "2 of 3", "0.4123", "0.4234", "0.0100 [-0.0100, 0.0300]",
                         "defaults"]  # fmt: skip
    assert "not above 0" in cells[6] and "not reproducible" in cells[6]
    assert "n_bootstrap is 0" in text


def test_training_curves_figure_and_caption(tmp_path) -> None:
    doc = document({"autoencoder": model_entry(0.3)})
    doc["models"]["autoencoder"]["history"] = {
        "epoch": [1, 2, 3], "train_loss": [3.0, 2.0, 1.5], "valid_ndcg@10": [0.2, 0.31, 0.3]
    }  # fmt: skip
    text = render_report(doc, tmp_path)[0].read_text()
    assert "best validation NDCG@10 0.3100 at epoch 2 of 3" in text
    assert (tmp_path / "plots" / "training_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_marked_rows_say_why(tmp_path) -> None:
    doc = document({"bpr": model_entry(0.3), "ae": model_entry(0.2)})
    doc["models"]["bpr"].update(deterministic=False, nondeterministic_reason="Hogwild SGD")
    doc["models"]["ae"].update(
        time_limited="stopped by a time limit: not reproducible (after 3 epochs)",
        remark="ended by its epoch cap",
    )
    text = render_report(doc, tmp_path)[0].read_text()
    assert "| bpr (not deterministic) |" in text and "| ae (time limit, see note) |" in text
    assert "- bpr: not deterministic: Hogwild SGD" in text
    assert "- ae: stopped by a time limit: not reproducible (after 3 epochs); ended by" in text
