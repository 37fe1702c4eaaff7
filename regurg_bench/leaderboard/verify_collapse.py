"""The collapse curve of an entry (schema v3), recomputed from the logged samples of its collapse students.

The main matrix's numbers are re-checked from its students' samples (:mod:`regurg_bench.leaderboard.verify`);
this does the same for the ``collapse`` section: every generation's scores (per seed, pooled, interval), D_k
per mode and generation, and the growth and boundedness claims with their verdicts and per-seed verdicts, all
through the study's own scoring (:func:`regurg_bench.scoring.generations.score_generations`) on the samples in
the evidence bundle. A curve that its samples do not give is refused, naming the field.

Not recomputed: the tail claim, which is computed from the generations' *training targets* (about as large as
the real split per generation and seed); they are not in the bundle. Its numbers are carried as submitted.
"""

from __future__ import annotations

from typing import Any

from regurg_bench.leaderboard.evidence import RunFiles
from regurg_bench.leaderboard.schema import RunResults, SubmissionError
from regurg_bench.leaderboard.verify import compare_effect, mismatch, read_samples, same
from regurg_bench.results import CollapseClaim, RunScore

SOURCE = "the collapse students' logged samples"


def verify_collapse(files: RunFiles, res: RunResults) -> None:
    """Recompute the curve of ``res.collapse`` from the samples in ``files``; raise at the first difference."""
    from regurg_bench.scoring.generations import score_generations

    c, sc = res.collapse, res.scoring
    if c is None:
        return
    samples = c.samples_by_student()
    for task, claimed in c.scores.items():
        hyps: dict[str, list[list[str]]] = {}
        refs: list[str] | None = None
        for name, per_task in samples.items():
            label = f"results.json: field 'collapse.students.{name}.samples.{task}'"
            _, h, r = read_samples(files, per_task[task], label)
            if refs is not None and r != refs:
                raise SubmissionError(f"{per_task[task]}: its references differ from generation 0's ({task})")
            refs = r
            hyps.setdefault(name.rsplit("-s", 1)[0], []).append(h)
        metrics = list(claimed.get("gen0", {}))
        scores, degradation, claims = score_generations(
            hyps, refs or [], task, modes=list(c.modes), generations=c.generations, metrics=metrics,
            resamples=sc.resamples, seed=sc.seed, level=sc.level)
        _compare_scores(task, claimed, scores)
        for mode, per_k in degradation.items():
            for k, per_metric in per_k.items():
                for metric, effect in per_metric.items():
                    got = c.degradation.get(task, {}).get(mode, {}).get(k, {}).get(metric)
                    compare_effect(f"collapse.degradation.{task}.{mode}.{k}.{metric}",
                                   got.model_dump() if got is not None else {}, effect, f" ({SOURCE})")
        _compare_claims(task, c.claims, claims)


def _compare_scores(task: str, claimed: dict[str, dict[str, RunScore]], scores: dict[str, Any]) -> None:
    for cond, per_metric in scores.items():
        for metric, row in per_metric.items():
            got = claimed.get(cond, {}).get(metric)
            for key in ("score", "ci_low", "ci_high", "per_seed"):
                a = getattr(got, key, None) if got is not None else None
                b = row[key]
                ok = (isinstance(a, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
                      if isinstance(b, list) else a is not None and same(a, b))
                if not ok:
                    raise mismatch(f"collapse.scores.{task}.{cond}.{metric}.{key}", a, b, SOURCE)


def _compare_claims(task: str, claimed: list[CollapseClaim], recomputed: list[dict[str, Any]]) -> None:
    by_key = {(cl.claim, cl.mode): cl for cl in claimed if cl.task == task}
    for cl in recomputed:
        got = by_key.get((cl["claim"], cl["mode"]))
        if got is None:
            raise SubmissionError(f"results.json: field 'collapse.claims': no {cl['claim']} claim for {cl['mode']} "
                                  f"({task}), which its samples give")
        for metric, entry in cl["per_metric"].items():
            mine = got.per_metric.get(metric)
            compare_effect(f"collapse.claims.{cl['claim']}.{cl['mode']}.{task}.per_metric.{metric}",
                           mine.model_dump(exclude_unset=True) if mine is not None else {}, entry, f" ({SOURCE})")
