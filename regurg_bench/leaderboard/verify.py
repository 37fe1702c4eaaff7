"""Recompute a run's claimed numbers from its logged lm-eval samples.

For every task: the hypotheses (``filtered_resps[0]``) and references (``target``) of every student
are read from its samples file (from the run folder or an evidence bundle, size-limited); the logged
doc ids must be the whole published test set (rule ``full-test-set``) and the references its sentences, and lm-eval's own results file must report
the same per-seed scores and record the same task version, lm-eval version and signatures. Then, as
the protocol does (:func:`regurg_bench.protocol.report.score_run`): each seed's corpus score, the
paired bootstrap intervals, degradation D and recovery R. Any claimed number that differs is an error
naming its field in ``results.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regurg_bench.leaderboard import schema
from regurg_bench.leaderboard.evidence import RunFiles, split_jsonl
from regurg_bench.leaderboard.provenance import version_str
from regurg_bench.leaderboard.rules import check_full_test_set, copy_shares, near_copy_share
from regurg_bench.leaderboard.safe_io import loads_strict
from regurg_bench.leaderboard.schema import RunResults, SubmissionError

#: Claimed and recomputed numbers must agree to this (relative and absolute) tolerance: the same
#: sacrebleu gives identical floats; the margin only absorbs BLAS summation order across machines.
TOLERANCE = 1e-9
SAMPLES_SOURCE = "the logged samples"
BOOTSTRAP_SOURCE = "the paired bootstrap of the logged samples"


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def same(a: Any, b: Any) -> bool:
    """Equal, numbers within :data:`TOLERANCE` (claimed vs recomputed; also the collapse curve's re-check)."""

    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    return _close(float(a), float(b)) if number(a) and number(b) else a == b


def mismatch(field: str, claimed: Any, recomputed: Any, source: str, hint: str = "") -> SubmissionError:
    """The error naming a claimed ``results.json`` field that ``source`` does not give."""
    return SubmissionError(f"results.json: field '{field}' claims {claimed!r}, but recomputed from {source} it is "
                           f"{recomputed!r}{hint}")


def _dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...``, or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


# ------------------------------------------------------------------------------ reading
def read_samples(files: RunFiles, rel: str, label: str) -> tuple[list[int], list[str], list[str]]:
    """(doc ids, hypotheses, references) of one lm-eval samples file, ordered by ``doc_id``."""
    text = files.text(rel, schema.MAX_SAMPLES_BYTES, label)
    rows = []
    for i, line in enumerate(split_jsonl(text), 1):  # "\n" only: U+2028 may sit inside a hypothesis
        if not line.strip():
            continue
        row = loads_strict(line, f"{rel}:{i}", allow_non_finite=True)  # lm-eval's file; only strings are used
        if not (isinstance(row, dict) and isinstance(row.get("doc_id"), int) and isinstance(row.get("target"), str)
                and isinstance(row.get("filtered_resps"), list) and row["filtered_resps"]
                and isinstance(row["filtered_resps"][0], str)):
            raise SubmissionError(f"{rel}:{i}: a logged sample needs an integer 'doc_id', a string 'target' and "
                                  "'filtered_resps' starting with a string")
        rows.append(row)
    if not rows:
        raise SubmissionError(f"{rel}: no logged samples")
    rows.sort(key=lambda r: r["doc_id"])
    ids = [r["doc_id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise SubmissionError(f"{rel}: duplicate doc_id in the logged samples")
    return ids, [r["filtered_resps"][0] for r in rows], [r["target"] for r in rows]


def _published_pairs(task: str) -> tuple[list[str], list[str]]:
    """The published test set of ``task`` (an embedded direction): (sources, references), in document order."""
    from regurg_bench.corpora.bible import load_bible_pairs
    from regurg_bench.evaluation.tasks import EMBEDDED_DIRECTIONS, task_name

    for direction in EMBEDDED_DIRECTIONS:
        if task_name(direction) == task:
            pairs = load_bible_pairs(direction, "test")
            return [p.source for p in pairs], [p.target for p in pairs]
    raise SubmissionError(f"task {task!r}: its test set is not one this leaderboard can check")


def _lm_eval_file(files: RunFiles, rel: str, field: str, task: str, res: RunResults) -> dict[str, Any]:
    """A student's lm-eval results file, which must record the task version, lm-eval version and signatures
    claimed."""
    text = files.text(rel, schema.MAX_LM_EVAL_RESULTS_BYTES, f"results.json: field '{field}'")
    lm_eval = loads_strict(text, rel, allow_non_finite=True)
    if not isinstance(lm_eval, dict):
        raise SubmissionError(f"{rel}: not an lm-eval results JSON object")
    recorded, claimed = _dig(lm_eval, "versions", task), res.task_versions.get(task)
    if recorded is None or version_str(recorded) != version_str(claimed):
        raise SubmissionError(f"{rel}: lm-eval recorded version {recorded!r} of {task}, but results.json field "
                              f"'task_versions.{task}' claims {claimed!r}")
    if lm_eval.get("lm_eval_version") != res.lm_eval_version:
        raise SubmissionError(f"{rel}: written by lm-eval {lm_eval.get('lm_eval_version')!r}, but results.json "
                              f"field 'lm_eval_version' claims {res.lm_eval_version!r}")
    signatures = _dig(lm_eval, "configs", task, "metadata", "sacrebleu_signatures")
    for metric, sig in (signatures if isinstance(signatures, dict) else {}).items():
        if metric in res.sacrebleu_signatures and res.sacrebleu_signatures[metric] != sig:
            raise SubmissionError(f"{rel}: lm-eval recorded the {metric} signature {sig!r}, but results.json field "
                                  f"'sacrebleu_signatures.{metric}' claims {res.sacrebleu_signatures[metric]!r}")
    return lm_eval


# ------------------------------------------------------------------------------ checks
def _check_matrix(res: RunResults) -> None:
    """Students, conditions and seeds must describe the same matrix."""
    seen = {(s.condition, s.seed) for s in res.students.values()}
    if len(seen) != len(res.students):
        raise SubmissionError("results.json: field 'students': two students share a condition and seed")
    for name, s in res.students.items():
        if s.condition not in res.conditions or s.seed not in res.conditions[s.condition].seeds:
            raise SubmissionError(f"results.json: field 'students.{name}': condition {s.condition!r} seed {s.seed} "
                                  "is not listed under 'conditions'")
    for cond, info in res.conditions.items():
        missing = [seed for seed in info.seeds if (cond, seed) not in seen]
        if missing:
            raise SubmissionError(f"results.json: field 'conditions.{cond}.seeds' lists seed(s) {missing} with no "
                                  "student in 'students'")
    if "real" not in res.conditions:
        raise SubmissionError("results.json: field 'conditions': no 'real' condition")


def _task_metrics(res: RunResults, task: str) -> list[str]:
    claimed = res.scores.get(task)
    if claimed is None:
        raise SubmissionError(f"results.json: field 'scores.{task}' is missing")
    if set(claimed) != set(res.conditions):
        raise SubmissionError(f"results.json: field 'scores.{task}' must score exactly the conditions "
                              f"{sorted(res.conditions)} (has {sorted(claimed)})")
    metrics = list(claimed["real"])
    for cond, per in claimed.items():
        if list(per) != metrics:
            raise SubmissionError(f"results.json: field 'scores.{task}.{cond}' has metrics {list(per)}, 'real' "
                                  f"has {metrics}")
    return metrics


#: (condition, seed, lm-eval results file, its parsed content) of every student
Reported = list[tuple[str, int, str, dict[str, Any]]]


def _task_outputs(files: RunFiles, res: RunResults, task: str
                  ) -> tuple[dict[str, list[list[str]]], list[str], list[str], Reported]:
    """{condition: [hypotheses of each seed, by seed]}, the shared references and their sources, and what
    each student's lm-eval results file reports; references and versions checked."""
    reported: Reported = []
    sources, published = _published_pairs(task)
    per_cond: dict[str, list[tuple[int, list[str]]]] = {}
    refs: list[str] | None = None
    doc_ids: list[int] | None = None
    for name in sorted(res.students):
        s = res.students[name]
        field = f"students.{name}.samples.{task}"
        if task not in s.samples:
            raise SubmissionError(f"results.json: field '{field}' is missing")
        rel = s.samples[task]
        ids, hyps, r = read_samples(files, rel, f"results.json: field '{field}'")
        if doc_ids is None:
            check_full_test_set(rel, ids, len(published), task)
            for doc_id, got in zip(ids, r, strict=True):
                if got != published[doc_id]:
                    raise SubmissionError(f"{rel}: the reference of doc_id {doc_id} is not the published test "
                                          f"set's ({got!r} != {published[doc_id]!r})")
            refs, doc_ids = r, ids
        elif ids != doc_ids or r != refs:
            raise SubmissionError(f"{rel}: its documents or references differ from the other students' (every "
                                  "student must be evaluated on the same sentences)")
        lm_eval = _lm_eval_file(files, s.results_file, f"students.{name}.results_file", task, res)
        reported.append((s.condition, s.seed, s.results_file, lm_eval))
        per_cond.setdefault(s.condition, []).append((s.seed, hyps))
    assert refs is not None and doc_ids is not None  # students is non-empty (schema)
    return ({c: [h for _, h in sorted(v, key=lambda t: t[0])] for c, v in per_cond.items()}, refs,
            [sources[i] for i in doc_ids], reported)


def _check_reported(reported: Reported, task: str, metric: str, per_seed: dict[str, list[float]],
                    seeds: dict[str, list[int]]) -> None:
    """lm-eval's own per-student score equals the one recomputed from the logged samples (the bootstrap's
    per-seed corpus score: the same sacrebleu statistics, summed)."""
    for cond, seed, rel, lm_eval in reported:
        got = per_seed[cond][seeds[cond].index(seed)]
        value = _dig(lm_eval, "results", task, f"{metric},none")
        if not (isinstance(value, int | float) and not isinstance(value, bool) and _close(float(value), got)):
            raise SubmissionError(f"{rel}: lm-eval reports {metric} = {value!r} for {task}, but its logged samples "
                                  f"give {got!r}")


def compare_effect(field: str, claimed: Mapping[str, Any], recomputed: Mapping[str, Any], hint: str) -> None:
    """Every key of a claimed effect (D, R, D_k, a claim's difference) equals the recomputed one's."""
    for key in sorted(set(claimed) | set(recomputed)):
        a, b = claimed.get(key), recomputed.get(key)
        if not same(a, b):
            raise mismatch(f"{field}.{key}", a, b, BOOTSTRAP_SOURCE, hint)


def _check_effects(res: RunResults, task: str, metrics: list[str], hyps: dict[str, list[list[str]]],
                   refs: list[str], reported: Reported) -> None:
    """Per-seed scores, means, intervals, D and R: recomputed with the protocol's own functions."""
    from regurg_bench.scoring.bootstrap import prefetch_stats
    from regurg_bench.scoring.matrix import score_metric

    sc, claimed = res.scoring, res.scores[task]
    # The paired bootstrap draws each multi-seed condition's seeds in the order the conditions come, so
    # replay the run's order when it records one (with one seed per condition the order is irrelevant).
    order = res.condition_order or list(claimed)
    if sorted(order) != sorted(claimed):
        raise SubmissionError("results.json: field 'condition_order' must list every condition once")
    hint = ""
    if any(len(v) > 1 for v in hyps.values()) and not res.condition_order:
        hint = ("; the run has several seeds per condition but records no 'condition_order', so its bootstrap "
                "cannot be replayed exactly")
    hyps = {c: hyps[c] for c in order}
    gens = [c.removeprefix("regurg_") for c, info in res.conditions.items() if info.kind == "regurg"]
    prefetch_stats(metrics, hyps, refs)  # every metric's sentence statistics, in parallel, cached
    for metric in metrics:
        ms = score_metric(metric, hyps, refs, res.conditions, gens, resamples=sc.resamples, seed=sc.seed,
                          level=sc.level)
        bs, fx = ms.bootstrap, ms.effects
        _check_reported(reported, task, metric, bs.per_seed,
                        {c: sorted(seed for c2, seed, _, _ in reported if c2 == c) for c in order})
        for cond in order:
            row, base = claimed[cond][metric], f"scores.{task}.{cond}.{metric}"
            if len(row.per_seed) != len(bs.per_seed[cond]):
                raise mismatch(f"{base}.per_seed", row.per_seed, bs.per_seed[cond], SAMPLES_SOURCE)
            for key, values in (("per_seed", row.per_seed), ("lm_eval_reported", row.lm_eval_reported)):
                for i, (a, b) in enumerate(zip(values or [], bs.per_seed[cond], strict=False)):
                    if not _close(a, b):
                        raise mismatch(f"{base}.{key}[{i}]", a, b, SAMPLES_SOURCE)
            if not _close(row.score, bs.point[cond]):
                raise mismatch(f"{base}.score", row.score, bs.point[cond], SAMPLES_SOURCE)
            lo, hi = ms.rows[cond]["ci_low"], ms.rows[cond]["ci_high"]
            for key, a, b in (("ci_low", row.ci_low, lo), ("ci_high", row.ci_high, hi)):
                if not _close(a, b):
                    raise mismatch(f"{base}.{key}", a, b, BOOTSTRAP_SOURCE, hint)
        for reg, per in res.degradation.get(task, {}).items():
            if reg not in hyps:
                raise SubmissionError(f"results.json: field 'degradation.{task}.{reg}': no such condition")
            if metric in per:
                compare_effect(f"degradation.{task}.{reg}.{metric}", per[metric].model_dump(),
                               fx.degradation[reg].to_dict(), hint)
        for cond, bases in res.recovery.get(task, {}).items():
            for reg, per in bases.items():
                if cond not in hyps or reg not in hyps or reg not in fx.recovery.get(cond, {}):
                    raise SubmissionError(f"results.json: field 'recovery.{task}.{cond}.{reg}': no such condition")
                if metric in per:
                    compare_effect(f"recovery.{task}.{cond}.{reg}.{metric}", per[metric].model_dump(),
                                   fx.recovery[cond][reg].to_dict(), hint)


def _check_complete(res: RunResults, task: str, metrics: list[str]) -> None:
    """Every regurgitated condition has its D and every registered mitigation its R, for every metric (so no
    result can be left out of an entry)."""
    from regurg_bench.protocol.mitigations import mitigation_claims

    for cond, info in res.conditions.items():
        if info.kind == "regurg":
            what, have = f"degradation.{task}.{cond}", set(res.degradation.get(task, {}).get(cond, {}))
        elif info.kind in mitigation_claims():
            what = f"recovery.{task}.{cond}"
            have = {m for per in res.recovery.get(task, {}).get(cond, {}).values() for m in per}
        else:
            continue
        if have != set(metrics):
            raise SubmissionError(f"results.json: field '{what}' must give every metric ({', '.join(metrics)})")


@dataclass(frozen=True)
class Verified:
    """What verification measured besides checking the claims: test sentences and copy shares per task."""

    n_sentences: dict[str, int]
    #: task -> condition -> {"copied_reference": share, "copied_source": share}
    plausibility: dict[str, dict[str, dict[str, float]]]
    #: task -> condition -> share of hypotheses near-copying their reference (rule ``near-copy``; not stored)
    near_copies: dict[str, dict[str, float]]


def verify_numbers(files: RunFiles, res: RunResults) -> Verified:
    """Check every claimed score, interval, D and R of ``res`` against the logged samples in ``files``
    (a run folder or an evidence bundle); raise :class:`SubmissionError` at the first difference."""
    _check_matrix(res)
    n_sentences: dict[str, int] = {}
    plausibility: dict[str, dict[str, dict[str, float]]] = {}
    near_copies: dict[str, dict[str, float]] = {}
    for task in res.tasks:
        metrics = _task_metrics(res, task)
        hyps, refs, sources, reported = _task_outputs(files, res, task)
        check = res.checks.get(task)
        if check is None or check.n_test_sentences != len(refs):
            raise mismatch(f"checks.{task}.n_test_sentences", check and check.n_test_sentences, len(refs),
                           SAMPLES_SOURCE)
        _check_effects(res, task, metrics, hyps, refs, reported)
        _check_complete(res, task, metrics)
        n_sentences[task] = len(refs)
        plausibility[task] = {c: copy_shares(hyps[c], refs, sources) for c in sorted(hyps)}
        near_copies[task] = {c: near_copy_share(hyps[c], refs) for c in sorted(hyps)}
    return Verified(n_sentences, plausibility, near_copies)
