"""Scores across generations of a collapse study (:mod:`regurg_bench.protocol.collapse`), from hypotheses
alone: every generation condition's score with its interval, D_k (generation k against generation 0) per mode,
and the two claims with paired intervals — "degradation grows with k" (generation 1 vs G) and "accumulating
keeps it below replacing" (at G) — pooled and seed by seed. The study scores its run with it, and the
leaderboard re-checks a submitted curve with it (:mod:`regurg_bench.leaderboard.verify_collapse`).

Conditions are named ``gen0`` and ``<mode>_gen<k>``; Holm's correction runs over the D_k of a metric, and
separately over its growth and boundedness claims.
"""

from __future__ import annotations

from typing import Any

from regurg_bench.scoring.bootstrap import paired_bootstrap, percentile_interval
from regurg_bench.scoring.effects import degradation, difference, holm
from regurg_bench.scoring.verdicts import short_verdict
from regurg_bench.scoring.verdicts import verdict as _verdict

GEN0 = "gen0"
ACCUMULATING = ("accumulate", "accumulate_equal")
CLAIM_TEXT = {
    "collapse_growth": "Degradation grows with the generation under {mode}: D_G - D_1 > 0 (paired difference, generation 1 vs G)",
    "collapse_bounded": "Accumulating keeps degradation below replacing at the last generation: D_G(replace) - D_G({mode}) > 0",
}


def _condition(mode: str, k: int) -> str:
    return GEN0 if k == 0 else f"{mode}_gen{k}"


def score_generations(hyps: dict[str, list[list[str]]], refs: list[str], task: str, *, modes: list[str],
                      generations: int, metrics: list[str], resamples: int, seed: int, level: float
                      ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """One task's scores per generation condition, D_k per mode and generation, and the growth and boundedness
    claims, from the hypotheses alone: the run's scoring, and the leaderboard's re-check of a submitted curve."""

    G = generations
    scores: dict[str, Any] = {}
    degr: dict[str, Any] = {}
    task_claims: dict[tuple[str, str], dict[str, Any]] = {}

    def effects(b):
        d = {(m, k): degradation(b, GEN0, _condition(m, k), level) for m in modes for k in range(1, G + 1)}
        d = dict(zip(d, holm(list(d.values())), strict=True))
        fam: dict[tuple[str, str], Any] = {}
        if G >= 2:
            for m in modes:  # > 0: generation G scored worse than generation 1
                fam[("collapse_growth", m)] = difference(b, _condition(m, 1), _condition(m, G), level)
        if "replace" in modes:
            for m in modes:
                if m in ACCUMULATING:  # > 0: accumulating beat replacing at generation G
                    fam[("collapse_bounded", m)] = difference(b, _condition(m, G), _condition("replace", G), level)
        return d, dict(zip(fam, holm(list(fam.values())), strict=True))

    for metric in metrics:
        bs = paired_bootstrap(metric, hyps, refs, n=resamples, seed=seed)
        for cond in hyps:
            lo, hi = percentile_interval(bs.replicates[cond], level)
            scores.setdefault(cond, {})[metric] = {"score": bs.point[cond], "ci_low": lo, "ci_high": hi,
                                                   "per_seed": bs.per_seed[cond]}
        d, fam = effects(bs)
        seeds = [effects(bs.for_seed(i)) for i in range(bs.n_seeds)] if bs.n_seeds > 1 else []
        for (m, k), e in d.items():
            degr.setdefault(m, {}).setdefault(str(k), {})[metric] = e.to_dict()
        for key, e in fam.items():
            entry = e.to_dict() | {"verdict": _verdict(e.to_dict())}
            words = [short_verdict(sd[1][key].to_dict()) for sd in seeds]
            if words:
                entry |= {"per_seed_verdicts": words, "seeds_holding": sum(w == "holds" for w in words),
                          "n_seeds": len(words)}
            claim = task_claims.setdefault(key, {"claim": key[0], "mode": key[1], "task": task,
                                                 "text": CLAIM_TEXT[key[0]].format(mode=key[1]), "per_metric": {}})
            claim["per_metric"][metric] = entry
    return scores, degr, list(task_claims.values())
