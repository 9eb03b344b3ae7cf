"""The run's validity section: the run's models under the logged-data protocols people
use, against the fully observed truth (docs/validity.md; the arithmetic is in
:mod:`kuairec.evaluation.validity`).

For each logged split of the training log (temporal: pairs first seen in the last 7
days; random: 20% of every user's pairs) each learned model is refitted on the rest
with the run's parameters (the deep models' fits on the pipeline's own validation split
are reused), then measured by the logged holdout, sampled ``uni100`` / ``pop100`` lists
and IPS / SNIPS estimates (gamma 0.25, 0.5, 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SPLITS = ("temporal", "random")
GAMMAS = (0.25, 0.5, 1.0)
DEFAULT_GAMMA = 0.5
METRIC = "ndcg@10"
MAX_REFIT_SECONDS = 25.0  # a model whose main fit took longer is left out (the 45 s share)


def validity_section(exp: Any, outcomes: dict[str, Any], cfg: Any, progress: Any) -> dict:
    """``metrics.json["validity"]``: per protocol, per model, the value, the reference
    and the errors; per protocol tau and rho (with intervals) and the flipped pairs."""
    from kuairec.evaluation.validity import ips_metrics

    names, left_out = _participants(outcomes)
    if len(names) < 2:
        return {"left_out": left_out, "note": "fewer than two learned models: no orderings"}
    ref = {n: outcomes[n].per_user[METRIC] for n in names}
    test_pos = _positives(exp.test, exp.context(cfg), cfg.label)
    ones = np.ones(exp.test.n_items)
    ref_dcg = {n: ips_metrics(outcomes[n].top_items, test_pos, ones) for n in names}
    per_protocol: dict[str, dict[str, np.ndarray]] = {}
    for kind in SPLITS:
        with progress.stage(f"validity: {kind} logged split"):
            per_protocol.update(_split_protocols(kind, names, exp, outcomes, cfg))
    return _assemble(names, left_out, ref, ref_dcg, per_protocol, exp, outcomes, cfg)


def _assemble(names, left_out, ref, ref_dcg, per_protocol, exp, outcomes, cfg) -> dict:  # noqa: ANN001
    """The section's dict from the per-user values of every protocol."""
    out: dict[str, Any] = {"models": names, "left_out": left_out, "protocols": {}}
    for proto, per_user in per_protocol.items():
        is_ips = proto.split("/")[1].startswith(("ips", "snips"))
        reference = {n: ref_dcg[n]["dcg@10_per_positive"] for n in names} if is_ips else ref
        out["protocols"][proto] = compare(names, ref, reference, per_user, cfg)
    if exp.test.truth is not None:
        out["expected_label"] = _expected_label(exp, outcomes, names, cfg)
    return out


def _participants(outcomes: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    names, left_out = [], {}
    for name, o in outcomes.items():
        if o.model.reference:
            left_out[name] = "a reference row (it knows only the fully observed pairs)"
        elif (o.entry.get("fit_seconds") or 0) > MAX_REFIT_SECONDS and not o.model.uses_validation:
            left_out[name] = (
                f"its fit took {o.entry['fit_seconds']:.0f} s: two refits do not fit the "
                "section's 45 s share"
            )
        else:
            names.append(name)
    return names, left_out


def _split_protocols(kind: str, names: list[str], exp: Any, outcomes: dict, cfg: Any) -> dict:
    from kuairec.evaluation.evaluate import evaluate, prepare
    from kuairec.evaluation.validation import validation_split

    reuse = kind == cfg.validation == "temporal"  # the pipeline's own split: same pairs
    fit, valid = exp.validation(cfg)() if reuse else validation_split(exp.train, kind, None)
    ctx = prepare(valid, fit, ks=(10,), labels=(cfg.label,), default_label=cfg.label)
    positives = _positives(valid, ctx, cfg.label)
    logged = (valid.exclude.astype(np.float32) + valid.relevance_pattern()).tocsr()
    popularity = fit.interactions.item_counts()
    lists = _lists(valid, positives, logged, popularity, cfg.seed)
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in names:
        model = _fitted_on(name, kind, fit, valid, outcomes[name], exp, cfg)
        items, _ = model.recommend(
            valid.users, 10, exclude=valid.exclude, candidates=valid.candidates
        )
        result = evaluate(items, valid, fit, ks=(10,), labels=(cfg.label,),
                          default_label=cfg.label, n_bootstrap=0, context=ctx)  # fmt: skip
        _put(out, f"{kind}/logged", name, result.per_user[METRIC])
        _sampled(out, kind, name, model, lists)
        _ips(out, kind, name, items, positives, popularity)
    return out


def _lists(valid: Any, positives: Any, logged: Any, popularity: np.ndarray, seed: int) -> dict:
    from kuairec.evaluation.validity import sampled_lists

    return {
        "uni100": sampled_lists(valid.users, positives, logged, valid.candidates, None, 100, seed),
        "pop100": sampled_lists(
            valid.users, positives, logged, valid.candidates, popularity, 100, seed
        ),
    }


def _sampled(out: dict, kind: str, name: str, model: Any, lists: dict) -> None:
    from kuairec.evaluation.validity import sampled_metrics, score_entries

    for variant, ls in lists.items():
        scores = score_entries(lambda users: model.score(users), ls)
        per_list = sampled_metrics(scores, ls)[METRIC]
        _put(out, f"{kind}/{variant}", name, per_list)


def _ips(out: dict, kind: str, name: str, items: Any, positives: Any, pop: Any) -> None:
    from kuairec.evaluation.validity import ips_metrics, propensities

    for gamma in GAMMAS:
        est = ips_metrics(items, positives, propensities(pop, gamma))
        tag = "" if gamma == DEFAULT_GAMMA else f"_gamma{gamma:g}"
        _put(out, f"{kind}/ips{tag}", name, est["ips_dcg@10"])
        _put(out, f"{kind}/snips{tag}", name, est["snips_dcg@10"])


def _put(out: dict, proto: str, name: str, values: np.ndarray) -> None:
    out.setdefault(proto, {})[name] = np.asarray(values, dtype=np.float64)


def _fitted_on(name: str, kind: str, fit: Any, valid: Any, outcome: Any, exp, cfg) -> Any:  # noqa: ANN001
    """The model fitted on ``fit`` with the run's parameters (reused when the run's own
    fit already was on this split's fit part)."""
    from kuairec.models.registry import create_model

    model = outcome.model
    if model.uses_validation and kind == cfg.validation == "temporal":
        return model  # fitted on exactly this fit part, early-stopped on this split
    params = outcome.entry.get("config", {})
    again = create_model(name, params)
    again.scratch_dir = None if exp.scratch is None else exp.scratch / f"validity-{name}"
    return again.fit(fit, valid if again.uses_validation else None)


def _positives(test: Any, ctx: Any, label: str) -> Any:
    """The label-positive relevance entries of a test set, as a 0/1 CSR (rows = users)."""
    import scipy.sparse as sp

    rel = test.relevance
    pos = (np.asarray(ctx.values[ctx.default_label]) > 0).astype(np.float32)
    out = sp.csr_matrix((pos, rel.indices.copy(), rel.indptr.copy()), shape=rel.shape)
    out.eliminate_zeros()  # in place: on copies, never on the test set's own arrays
    return out


def compare(
    names: list[str], ref_order: dict, reference: dict, per_user: dict, cfg: Any
) -> dict[str, Any]:
    """One protocol against the fully observed truth (see the module docstring)."""
    from kuairec.evaluation.validity import agreement, flipped_pairs, ordering

    ref_vals = [float(np.nanmean(ref_order[n])) for n in names]
    ref_same = [float(np.nanmean(reference[n])) for n in names]
    vals = [float(np.nanmean(per_user[n])) for n in names]
    n_boot = min(cfg.n_bootstrap, 200)
    stats = agreement(
        np.column_stack([ref_order[n] for n in names]),
        np.column_stack([per_user[n] for n in names]),
        n_bootstrap=n_boot,
        seed=cfg.seed,
    )
    models = {}
    for n, v, r, rank_ref, rank in zip(
        names, vals, ref_same, ordering(ref_vals), ordering(vals), strict=True
    ):
        models[n] = {
            "value": v, "reference": r, "abs_error": v - r,
            "rel_error": (v - r) / r if r else None, "rank": rank, "reference_rank": rank_ref,
        }  # fmt: skip
    return {**stats, "models": models, "flipped": flipped_pairs(names, ref_vals, vals)}


def _expected_label(exp: Any, outcomes: dict, names: list[str], cfg: Any) -> dict[str, Any]:
    """NDCG@10 of each model against the synthetic expected watch_ratio (no sampling noise)."""
    from kuairec.evaluation.evaluate import evaluate
    from kuairec.evaluation.protocols import TestSet

    t = exp.test
    truth_test = TestSet(t.users, t.candidates, t.truth, t.exclude)
    out = {}
    for name in names:
        res = evaluate(outcomes[name].top_items, truth_test, exp.train, ks=(10,),
                       labels=(cfg.label,), default_label=cfg.label, n_bootstrap=0)  # fmt: skip
        out[name] = {
            "expected": res.metrics[METRIC],
            "observed": outcomes[name].entry["metrics"][METRIC],
        }
    return out
