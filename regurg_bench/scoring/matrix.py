"""Every effect of a student matrix from one bootstrap, with Holm's correction per family of comparisons.

One function, used by the protocol's scoring and by the leaderboard's verifier, so a submitted number
is recomputed exactly the way it was first computed:

- degradation D of every regurgitated condition against ``real`` (family: all generators);
- recovery R of every other scored condition (mitigations, mixes, fractions) against the regurgitated
  baseline of its generator, or of every generator when it has none (family: all of them);
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


def matrix_effects(bs: BootstrapScores, conditions: Mapping[str, Any], generators: list[str],
                   level: float = 0.95) -> MatrixEffects:
    """All effects of the conditions present in ``bs`` (``conditions``: name -> kind/generator/size)."""
    present = [c for c in conditions if c in bs.point]
    if "real" not in bs.point:
        return MatrixEffects()
    gens = [g for g in generators if f"regurg_{g}" in bs.point]
    degr = {(f"regurg_{g}",): degradation(bs, "real", f"regurg_{g}", level) for g in gens}
    recov: dict[tuple[str, ...], Effect] = {}
    diffs: dict[tuple[str, ...], Effect] = {}
    for cond in present:
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
                recov[(cond, f"regurg_{g}")] = recovery(bs, "real", f"regurg_{g}", cond, level)
    out = MatrixEffects()
    for (cond,), e in _adjust(degr).items():
        out.degradation[cond] = e
    for (cond, base), e in _adjust(recov).items():
        out.recovery.setdefault(cond, {})[base] = e
    for (better, worse), e in _adjust(diffs).items():
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
    from regurg_bench.scoring.bootstrap import paired_bootstrap, percentile_interval

    bs = paired_bootstrap(metric, hyps_by_condition, refs, n=resamples, seed=seed)
    rows = {}
    for cond in hyps_by_condition:
        lo, hi = percentile_interval(bs.replicates[cond], level)
        rows[cond] = {"score": bs.point[cond], "ci_low": lo, "ci_high": hi, "per_seed": bs.per_seed[cond]}
    return MetricScores(bs, rows, matrix_effects(bs, conditions, generators, level),
                        [matrix_effects(bs.for_seed(i), conditions, generators, level) for i in range(bs.n_seeds)])
