"""The validity section's computation (see the package docstring)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kuairec.pipeline.job import Job
from kuairec.pipeline.sections.validity import estimators as E
from kuairec.pipeline.sections.validity.types import (
    Expected,
    ProtocolModel,
    ProtocolResult,
    Value,
)

SPLITS = ("temporal", "random")
GAMMAS = (0.25, 0.5, 1.0)
DEFAULT_GAMMA = 0.5
METRIC = "ndcg@10"
PerUser = dict[str, dict[str, np.ndarray]]  # protocol -> model -> per-user values


def compute(job: Job) -> Value | None:
    """Per protocol, per model: the value, the reference and the errors; per protocol tau
    and rho (with intervals) and the flipped pairs."""
    if not _applies(job):
        return None
    job.local()  # the Spark engine: not computed, and the report says so
    names, left_out = participants(job)
    if len(names) < 2:
        return Value(names, left_out, {}, note="fewer than two learned models: no orderings")
    with job.progress.stage("validity"):
        ref = {n: job.fitted[n].result.per_user[METRIC] for n in names}
        test_pos = _positives(job.exp.test, job.exp.context(job.cfg).values[job.cfg.label])
        ones = np.ones(job.exp.test.n_items)
        ref_dcg = {n: E.ips_metrics(job.fitted[n].top_items, test_pos, ones) for n in names}
        per_protocol: PerUser = {}
        for kind in SPLITS:
            with job.progress.stage(f"validity: {kind} logged split"):
                per_protocol.update(_split_protocols(kind, names, job))
        protocols = {}
        for proto, per_user in per_protocol.items():
            is_ips = proto.split("/")[1].startswith(("ips", "snips"))
            reference = {n: ref_dcg[n]["dcg@10_per_positive"] for n in names} if is_ips else ref
            protocols[proto] = compare(names, ref, reference, per_user, job.cfg)
        expected = _expected_label(job, names) if job.exp.test.truth is not None else {}
    return Value(names, left_out, protocols, expected)


def fits(job: Job) -> dict[str, dict]:
    """The models :func:`compute` fits on the logged splits (every participant: the
    temporal split may reuse the run's own fits), with the run's parameters; empty when
    the section is off, does not apply or has fewer than two participants."""
    if not _applies(job) or job.exp is None:
        return {}
    names, _ = participants(job)
    return {n: dict(job.fitted[n].result.config) for n in names} if len(names) >= 2 else {}


def _applies(job: Job) -> bool:
    from kuairec.pipeline.experiment import KUAIREC_PROTOCOL

    return bool(job.cfg.validity) and job.result.protocol.name == KUAIREC_PROTOCOL


def participants(job: Job) -> tuple[list[str], dict[str, str]]:
    """The learned models that take part, and why the others do not (declared, never
    measured: reference rows are left out, and the others by their declared cost at this
    log's size, :func:`kuairec.pipeline.refits.refit_refusal`)."""
    from kuairec.pipeline.refits import refit_refusal

    n_pairs = int(job.exp.train.interactions.nnz)
    names, left_out = [], {}
    for name, f in job.fitted.items():
        cls = type(f.model)
        if cls.reference:
            left_out[name] = "a reference row (it knows only the fully observed pairs)"
        elif (why := refit_refusal(cls, n_pairs)) is not None:
            left_out[name] = why
        else:
            names.append(name)
    return names, left_out


def _split_protocols(kind: str, names: list[str], job: Job) -> PerUser:
    from kuairec.display.resources import release_free_memory
    from kuairec.evaluation.evaluate import evaluate, prepare
    from kuairec.models.base import top_candidates
    from kuairec.pipeline.experiment import Validation

    cfg = job.cfg
    reuse = kind == cfg.validation == "temporal"  # the run's own split: the same pairs
    split = job.exp.validation(cfg) if reuse else Validation(job.exp.train, kind, cfg.label)
    fit, valid = split.parts()
    ctx = prepare(valid, fit, ks=(10,), labels=(cfg.label,), default_label=cfg.label)
    positives = _positives(valid, ctx.values[ctx.default_label])
    logged = (valid.exclude.astype(np.float32) + valid.relevance_pattern()).tocsr()
    popularity = fit.interactions.item_counts()
    lists = {
        "uni100": E.sampled_lists(
            valid.users, positives, logged, valid.candidates, None, 100, cfg.seed
        ),
        "pop100": E.sampled_lists(
            valid.users, positives, logged, valid.candidates, popularity, 100, cfg.seed
        ),
    }
    has_positive = _ranked(positives)
    ranked = valid.restrict(has_positive) if not has_positive.all() else valid
    exclude = ranked.exclude[:, ranked.candidates].tocsr()  # once for every model
    out: PerUser = {}
    for name in names:
        model = _fitted_on(name, split, job, reuse)
        # one scoring pass per user: the top 10 (recommend's rules) and the sampled
        # lists' entries come from the same score block
        gather = E.EntryGatherer(ranked.users, list(lists.values()))
        items = np.full((valid.users.size, 10), -1, dtype=np.int64)
        items[has_positive] = top_candidates(
            model.score, ranked.users, exclude, ranked.candidates, 10, on_block=gather
        )
        result = evaluate(items, valid, fit, ks=(10,), labels=(cfg.label,),
                          default_label=cfg.label, n_bootstrap=0, context=ctx)  # fmt: skip
        out.setdefault(f"{kind}/logged", {})[name] = result.per_user[METRIC]
        scored = gather.result()
        for (variant, ls), scores in zip(lists.items(), scored, strict=True):
            out.setdefault(f"{kind}/{variant}", {})[name] = E.sampled_metrics(scores, ls)[METRIC]
        for gamma in GAMMAS:
            est = E.ips_metrics(items, positives, E.propensities(popularity, gamma))
            tag = "" if gamma == DEFAULT_GAMMA else f"_gamma{gamma:g}"
            out.setdefault(f"{kind}/ips{tag}", {})[name] = est["ips_dcg@10"]
            out.setdefault(f"{kind}/snips{tag}", {})[name] = est["snips_dcg@10"]
        # not alive through the next model's fit (at full size: EASE's 460 MB B, and
        # 340 MB of entry scores per list set pair)
        del model, gather, scored
        release_free_memory()
    return out


def _ranked(positives: Any) -> np.ndarray:
    """The users a split's models rank: those with a positive, the only ones with a value
    under any protocol here (the others' rows stay -1, and every estimate is NaN)."""
    return np.diff(positives.indptr) > 0


def _fitted_on(name: str, split: Any, job: Job, reuse: bool) -> Any:
    """The model fitted on the split's fit part with the run's parameters: the run's own
    validation fit when there is one, else a refit (stopping early on the selection
    half, as every fit on a validation split does)."""
    from kuairec.pipeline.fitting import create_for_run

    if reuse and name in job.valid_fits:
        return job.valid_fits[name].model
    if reuse and job.fitted[name].early is not None:  # as fitted, before its fold-in
        return job.fitted[name].early.model
    scratch = None if job.exp.scratch is None else job.exp.scratch / "validity"
    again = create_for_run(name, job.cfg, job.fitted[name].result.config, scratch)
    fit, early = split.for_fit()
    return again.fit(fit, early if again.uses_validation else None)


def _positives(test: Any, label_values: np.ndarray) -> Any:
    """The label-positive relevance entries of a test set, as a 0/1 CSR (rows = users)."""
    import scipy.sparse as sp

    rel = test.relevance
    pos = (np.asarray(label_values) > 0).astype(np.float32)
    out = sp.csr_matrix((pos, rel.indices.copy(), rel.indptr.copy()), shape=rel.shape)
    out.eliminate_zeros()  # in place: on copies, never on the test set's own arrays
    return out


def compare(
    names: list[str], ref_order: dict, reference: dict, per_user: dict, cfg: Any
) -> ProtocolResult:
    """One protocol against the fully observed truth."""
    ref_vals = [float(np.nanmean(ref_order[n])) for n in names]
    ref_same = [float(np.nanmean(reference[n])) for n in names]
    vals = [float(np.nanmean(per_user[n])) for n in names]
    stats = E.agreement(
        np.column_stack([ref_order[n] for n in names]),
        np.column_stack([per_user[n] for n in names]),
        n_bootstrap=min(cfg.n_bootstrap, 200),
        seed=cfg.seed,
    )
    models = {}
    for n, v, r, rank_ref, rank in zip(
        names, vals, ref_same, E.ordering(ref_vals), E.ordering(vals), strict=True
    ):
        models[n] = ProtocolModel(
            value=_f(v), reference=_f(r), abs_error=_f(v - r),
            rel_error=_f((v - r) / r) if r else None, rank=rank, reference_rank=rank_ref,
        )  # fmt: skip
    return ProtocolResult(
        tau=_f(stats["tau"]),
        rho=_f(stats["rho"]),
        tau_ci=_pair(stats["tau_ci"]),
        rho_ci=_pair(stats["rho_ci"]),
        models=models,
        flipped=E.flipped_pairs(names, ref_vals, vals),
    )


def _expected_label(job: Job, names: list[str]) -> dict[str, Expected]:
    """NDCG@10 of each model against the synthetic expected watch_ratio (no sampling noise)."""
    from kuairec.evaluation.evaluate import evaluate
    from kuairec.evaluation.protocols import TestSet

    t, cfg = job.exp.test, job.cfg
    truth_test = TestSet(t.users, t.candidates, t.truth, t.exclude)
    out = {}
    for name in names:
        f = job.fitted[name]
        res = evaluate(f.top_items, truth_test, job.exp.train, ks=(10,), labels=(cfg.label,),
                       default_label=cfg.label, n_bootstrap=0)  # fmt: skip
        out[name] = Expected(_f(res.metrics[METRIC]), f.result.value(METRIC))
    return out


def _f(value: Any) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _pair(ci: Any) -> tuple[float | None, float | None] | None:
    return None if ci is None else (_f(ci[0]), _f(ci[1]))
