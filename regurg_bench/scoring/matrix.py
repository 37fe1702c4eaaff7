"""Every effect of a student matrix from one bootstrap, with Holm's correction per family of comparisons.

One function, used by the protocol's scoring and by the leaderboard's verifier, so a submitted number
is recomputed exactly the way it was first computed:

- degradation D of every regurgitated condition against ``real`` (family: all generators);
- recovery R of every other scored condition (mitigations, mixes, fractions) against the regurgitated
  baseline of its generator, or of every generator when it has none (family: all of them), defined only
  where that baseline's degradation holds after Holm;
- paired differences Δ: a fraction of the real data against each all-generated condition, and each
  size-ladder rung of real data against the same-size generated rung (family: all of them).

Families are per metric (one bootstrap = one metric) and per task (one bootstrap = one task).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from regurg_bench.scoring.bootstrap import BootstrapScores
from regurg_bench.scoring.effects import Effect, degradation, difference, holm, recovery
from regurg_bench.scoring.power import with_detectability

#: What the report says about the correction (also written into results.json).
CORRECTION = ("Holm step-down per task and metric over each family: the degradations of all generators; "
              "the recoveries of all mitigations and mixes against their baselines; the paired differences "
              "(fraction of real, size-ladder rungs)")


@dataclass
class MatrixEffects:
    """D per regurg condition, R per (condition, baseline), Δ per (better, worse): one metric."""

    degradation: dict[str, Effect] = field(default_factory=dict)
    recovery: dict[str, dict[str, Effect]] = field(default_factory=dict)
    differences: dict[str, dict[str, Effect]] = field(default_factory=dict)


def _get(info: Any, key: str) -> Any:
    return info.get(key) if isinstance(info, Mapping) else getattr(info, key, None)


def _adjust(effects: dict[tuple[str, ...], Effect]) -> dict[tuple[str, ...], Effect]:
    keys = list(effects)
    return dict(zip(keys, holm([effects[k] for k in keys]), strict=True))


def _effective(bs: BootstrapScores, conds: tuple[str, ...]) -> int:
    """Distinct replicates behind an effect: the fewest of the conditions it compares."""
    eff = bs.effective_seeds or {}
    return min(eff.get(c, len(bs.per_seed.get(c, [0]))) for c in conds)


def _degradations(bs: BootstrapScores, gens: list[str], level: float) -> dict[tuple[str, ...], Effect]:
    """D of every generator present, before Holm, keyed (regurg condition,)."""
    return {(f"regurg_{g}",): degradation(bs, "real", f"regurg_{g}", level) for g in gens}


def _comparisons(bs: BootstrapScores, conditions: Mapping[str, Any], gens: list[str], level: float,
                 gates: dict[str, Effect]) -> tuple[dict[tuple[str, ...], Effect], dict[tuple[str, ...], Effect]]:
    """(R, Δ) before Holm, keyed (cond, baseline) and (better, worse); R is gated on ``gates`` (the
    degradations after Holm, by regurg condition)."""
    recov: dict[tuple[str, ...], Effect] = {}
    diffs: dict[tuple[str, ...], Effect] = {}
    for cond in (c for c in conditions if c in bs.point):
        kind, gen = _get(conditions[cond], "kind"), _get(conditions[cond], "generator")
        if kind == "fraction":  # a fraction of the real pairs vs all-generated at full size
            for g in gens:
                diffs[(cond, f"regurg_{g}")] = difference(bs, cond, f"regurg_{g}", level)
        if kind == "ladder" and gen:  # real vs generated at the same size
            real_rung = f"ladder_real_{_get(conditions[cond], 'size')}"
            if real_rung in bs.point:
                diffs[(real_rung, cond)] = difference(bs, real_rung, cond, level)
        if cond == "real" or kind in ("regurg", "ladder"):
            continue
        for g in ([gen] if gen else gens):
            if f"regurg_{g}" in bs.point:
                recov[(cond, f"regurg_{g}")] = recovery(bs, "real", f"regurg_{g}", cond, level, gates.get(f"regurg_{g}"))
    return recov, diffs


def matrix_effects(bs: BootstrapScores, conditions: Mapping[str, Any], generators: list[str],
                   level: float = 0.95, detectability: bool = True) -> MatrixEffects:
    """All effects of the conditions present in ``bs`` (``conditions``: name -> kind/generator/size).

    Degradations are Holm-adjusted first; recovery against a generator is then defined only where that
    generator's adjusted D holds (so R cannot hold where D is inconclusive). With ``detectability``, each
    effect also says what this run could have detected (:mod:`regurg_bench.scoring.power`)."""
    if "real" not in bs.point:
        return MatrixEffects()
    gens = [g for g in generators if f"regurg_{g}" in bs.point]
    degr = _adjust(_degradations(bs, gens, level))
    gates = {k[0]: e for k, e in degr.items()}
    recov, diffs = (_adjust(f) for f in _comparisons(bs, conditions, gens, level, gates))
    if detectability and bs.sentence_replicates is not None:
        only = bs.sentence_only()
        d_s = _degradations(only, gens, level)
        r_s, x_s = _comparisons(only, conditions, gens, level, gates)
        for family, alone, involved in ((degr, d_s, lambda k: ("real", k[0])), (recov, r_s, lambda k: ("real", *k)),
                                        (diffs, x_s, lambda k: k)):
            for key, e in family.items():
                family[key] = with_detectability(e, alone[key], _effective(bs, involved(key)), len(family))
    out = MatrixEffects()
    for (cond,), e in degr.items():
        out.degradation[cond] = e
    for (cond, base), e in recov.items():
        out.recovery.setdefault(cond, {})[base] = e
    for (better, worse), e in diffs.items():
        out.differences.setdefault(better, {})[worse] = e
    return out


@dataclass
class MetricScores:
    """One task and metric of a student matrix, scored: each condition's score with its interval and per-seed
    scores, every effect (pooled over seeds), and the same effects on each seed alone."""

    bootstrap: BootstrapScores
    rows: dict[str, dict[str, Any]]  # condition -> score, ci_low, ci_high, per_seed
    effects: MatrixEffects
    per_seed_effects: list[MatrixEffects]


def score_metric(metric: str, hyps_by_condition: Mapping[str, list[list[str]]], refs: list[str],
                 conditions: Mapping[str, Any], generators: list[str], *, resamples: int, seed: int,
                 level: float) -> MetricScores:
    """The one scoring of a matrix (the protocol's results and the leaderboard's re-check both call it):
    paired bootstrap over sentences (and seeds), percentile intervals, D/R/Δ with Holm, per-seed effects."""
    from regurg_bench.scoring.bootstrap import condition_stats

    return score_stats(metric, condition_stats(metric, hyps_by_condition, refs), conditions, generators,
                       resamples=resamples, seed=seed, level=level)


def score_stats(metric: str, stats_by_condition: Mapping[str, list[Any]], conditions: Mapping[str, Any],
                generators: list[str], *, resamples: int, seed: int, level: float,
                per_seed: bool = True) -> MetricScores:
    """:func:`score_metric` from per-sentence sufficient statistics (``{condition: [(sentences, stats) per
    seed]}``): what the calibration simulation runs on synthetic statistics with a known truth."""
    from regurg_bench.scoring.bootstrap import bootstrap_from_stats, percentile_interval

    bs = bootstrap_from_stats(metric, stats_by_condition, n=resamples, seed=seed)
    rows = {}
    for cond in stats_by_condition:
        lo, hi = percentile_interval(bs.replicates[cond], level)
        rows[cond] = {"score": bs.point[cond], "ci_low": lo, "ci_high": hi, "per_seed": bs.per_seed[cond]}
    seeds = range(bs.n_seeds) if per_seed else range(0)
    return MetricScores(bs, rows, matrix_effects(bs, conditions, generators, level),
                        [matrix_effects(bs.for_seed(i), conditions, generators, level, detectability=False)
                         for i in seeds])
