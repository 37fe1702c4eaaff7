"""Degradation D and recovery R with paired-bootstrap intervals and explicit undefined cases.

With S the corpus score (mean over seeds) and ``sign`` = +1 for higher-is-better metrics (BLEU, chrF)
and -1 for lower-is-better ones (TER):

- gap      G = sign * (S_real - S_regurg)            (> 0: real data gave the better model)
- degradation D = G / S_real                         (TER: (TER_regurg - TER_real) / TER_real)
- recovery R_m = (S_m - S_regurg) / (S_real - S_regurg)
  (invariant to the sign; 0 = no better than regurgitated data, 1 = as good as real data)

Intervals are percentile intervals of the same formulas over the paired bootstrap replicates.
Intervals are symmetric percentile intervals (as many replicates beyond each end); a verdict's
direction is the side of 0 its interval lies on, never the sign of the point estimate. Statuses:

- ``ok``: defined, and the interval excludes 0 (equivalently p <= 1 - level);
- ``not_significant``: defined, but the interval contains 0 (reported with its interval, flagged);
- ``no_gap`` (R only, and D when S_real == S_regurg exactly): the degradation R would be measured
  against is not established: R is gated on the same D verdict the report gives (after Holm's correction
  over the degradations, when the caller passes it), so R never "holds" where D is inconclusive; no
  number is reported;
- ``undefined``: D with S_real == 0.

Each defined effect also carries a two-sided bootstrap p-value (the share of replicates on the far
side of 0, doubled, with the +1 correction of Davison & Hinkley) and, once :func:`holm` has run over
its family of comparisons, the Holm-adjusted p-value: an ``ok`` effect whose adjusted p-value is above
``1 - level`` becomes ``not_significant``. The protocol's families: per task and metric, (a) the
degradation of every generator, (b) every mitigation's recovery against every baseline, (c) the paired
differences (fraction of real, size-ladder rungs). Holm's step-down keeps the family-wise error rate
at ``1 - level`` and is never weaker than Bonferroni.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from regurg_bench.scoring.bootstrap import BootstrapScores, percentile_interval

OK, NOT_SIGNIFICANT, NO_GAP, UNDEFINED = "ok", "not_significant", "no_gap", "undefined"


@dataclass(frozen=True)
class Effect:
    kind: str  # degradation | recovery
    metric: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    status: str
    note: str = ""
    level: float = 0.95
    p_value: float | None = None  # two-sided bootstrap p-value of "effect != 0"
    p_adjusted: float | None = None  # Holm-adjusted over the effect's family (None: not adjusted)
    #: the smallest |effect| this run detects with 80 % power at its Holm threshold (see scoring.power)
    detectable: float | None = None
    #: roughly how many seeds per condition would detect the observed effect (None: not by seeds alone)
    seeds_needed: int | None = None
    #: how the run's noise splits: the share of the effect's variance that comes from seeds
    seed_share: float | None = None

    @property
    def direction(self) -> int:
        """+1 when the interval lies above 0, -1 below, 0 when it contains 0 (or is undefined)."""
        if self.ci_low is None or self.ci_high is None:
            return 0
        return 1 if self.ci_low > 0.0 else (-1 if self.ci_high < 0.0 else 0)

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with x/0 -> ±inf (sign of x) and 0/0 -> nan (dropped by the caller)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(num, dtype=np.float64) / np.asarray(den, dtype=np.float64)


def _interval(values: np.ndarray, level: float) -> tuple[float, float, int]:
    finite_or_inf = values[~np.isnan(values)]
    dropped = len(values) - len(finite_or_inf)
    if len(finite_or_inf) == 0:
        return math.nan, math.nan, dropped
    lo, hi = percentile_interval(finite_or_inf, level)
    return lo, hi, dropped


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _significance(lo: float, hi: float) -> str:
    return NOT_SIGNIFICANT if lo <= 0.0 <= hi else OK


def bootstrap_p(values: np.ndarray) -> float | None:
    """Two-sided p-value of "the effect is not 0" from its bootstrap replicates: twice the smaller share
    of replicates at or beyond 0 on either side, (count + 1) / (n + 1) (never exactly 0). It is <= 1 - level
    exactly when :func:`percentile_interval` at ``level`` excludes 0 (tested)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return None
    n = len(v)
    low, high = (int((v <= 0.0).sum()) + 1) / (n + 1), (int((v >= 0.0).sum()) + 1) / (n + 1)
    return min(1.0, 2.0 * min(low, high))


def holm(effects: list[Effect]) -> list[Effect]:
    """Holm's step-down adjustment over one family of effects (those with a p-value take part).

    Returns the effects in the same order with ``p_adjusted`` set; an ``ok`` effect whose adjusted
    p-value is not below ``1 - level`` becomes ``not_significant`` (its note says so)."""
    import dataclasses

    tested = sorted((e.p_value, i) for i, e in enumerate(effects) if e.p_value is not None)
    m = len(tested)
    adjusted: dict[int, float] = {}
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))  # monotone step-down
        adjusted[i] = running
    out = []
    for i, e in enumerate(effects):
        if i not in adjusted:
            out.append(e)
            continue
        status, note = e.status, e.note
        if status == OK and adjusted[i] > 1.0 - e.level + 1e-12:
            status = NOT_SIGNIFICANT
            note = "; ".join(x for x in (note, f"not significant after Holm's correction over {m} comparisons "
                                                f"(adjusted p = {adjusted[i]:.3g})") if x)
        out.append(dataclasses.replace(e, status=status, note=note, p_adjusted=adjusted[i]))
    return out


def gap(bs: BootstrapScores, real: str, regurg: str, level: float = 0.95) -> tuple[float, float, float]:
    """G = sign * (S_real - S_regurg), with its interval."""
    sign = 1.0 if bs.higher_is_better else -1.0
    point = sign * (bs.point[real] - bs.point[regurg])
    lo, hi = percentile_interval(sign * (bs.replicates[real] - bs.replicates[regurg]), level)
    return point, lo, hi


def degradation(bs: BootstrapScores, real: str = "real", regurg: str = "regurg", level: float = 0.95) -> Effect:
    sign = 1.0 if bs.higher_is_better else -1.0
    s_real, s_reg = bs.point[real], bs.point[regurg]
    if s_real == 0.0:
        return Effect("degradation", bs.metric, None, None, None, UNDEFINED,
                      f"S_real = 0 ({bs.metric}): relative degradation has no scale", level)
    estimate = sign * (s_real - s_reg) / s_real
    reps = _ratio(sign * (bs.replicates[real] - bs.replicates[regurg]), bs.replicates[real])
    lo, hi, dropped = _interval(reps, level)
    note = f"{dropped} replicates with S_real = S_regurg = 0 dropped" if dropped else ""
    if s_real == s_reg:
        return Effect("degradation", bs.metric, 0.0, lo, hi, NO_GAP,
                      "S_real == S_regurg: no degradation" + (f"; {note}" if note else ""), level)
    return Effect("degradation", bs.metric, estimate, lo, hi, _significance(lo, hi), note, level,
                  bootstrap_p(reps))


def recovery(bs: BootstrapScores, real: str, regurg: str, mitigated: str, level: float = 0.95,
             degraded: Effect | None = None) -> Effect:
    """R of ``mitigated`` against ``regurg``, defined only where the degradation it recovers is established:
    ``degraded`` is that D as the report gives it (after Holm's correction over its family); without it,
    the unadjusted D of this bootstrap."""
    g, g_lo, g_hi = gap(bs, real, regurg, level)
    if g <= 0.0:
        why = "S_real == S_regurg" if g == 0.0 else "regurgitated data scored better than real data"
        return Effect("recovery", bs.metric, None, None, None, NO_GAP, f"{why}: recovery is undefined", level)
    degraded = degraded or degradation(bs, real, regurg, level)
    if degraded.status == UNDEFINED:  # S_real = 0 (a perfect TER): D has no scale, the gap itself does
        degraded = Effect("difference", bs.metric, g, g_lo, g_hi, _significance(g_lo, g_hi), "", level)
    if degraded.status != OK or degraded.direction != 1:
        adjusted = f", adjusted p = {degraded.p_adjusted:.3g}" if degraded.p_adjusted is not None else ""
        return Effect("recovery", bs.metric, None, None, None, NO_GAP,
                      f"the degradation of {regurg} is not established ({bs.metric} D {_fmt(degraded.estimate)} "
                      f"[{_fmt(degraded.ci_low)}, {_fmt(degraded.ci_high)}]{adjusted}): recovery is undefined", level)
    s_real, s_reg, s_m = bs.point[real], bs.point[regurg], bs.point[mitigated]
    estimate = (s_m - s_reg) / (s_real - s_reg)
    reps = _ratio(bs.replicates[mitigated] - bs.replicates[regurg], bs.replicates[real] - bs.replicates[regurg])
    lo, hi, dropped = _interval(reps, level)
    notes = []
    if dropped:
        notes.append(f"{dropped} replicates with a zero gap and zero numerator dropped")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        notes.append("interval unbounded (some replicates had a zero gap)")
    return Effect("recovery", bs.metric, estimate, lo, hi, _significance(lo, hi), "; ".join(notes), level,
                  bootstrap_p(reps))


def difference(bs: BootstrapScores, better: str, worse: str, level: float = 0.95) -> Effect:
    """Δ = sign * (S_better - S_worse) in metric points: > 0 when ``better`` really scored better (TER's
    direction handled). ``ok`` when the interval excludes 0 (either side), else ``not_significant``."""
    sign = 1.0 if bs.higher_is_better else -1.0
    estimate = sign * (bs.point[better] - bs.point[worse])
    reps = sign * (bs.replicates[better] - bs.replicates[worse])
    lo, hi = percentile_interval(reps, level)
    return Effect("difference", bs.metric, estimate, lo, hi, _significance(lo, hi), "", level, bootstrap_p(reps))
