"""The words a claim gets (holds / contradicted / inconclusive / ...) and whether a verdict is robust.

One home for both: the report, the terminal summary, the collapse claims, ``compare`` and the leaderboard
read them from here.

**Direction** comes from the side of 0 the interval lies on, never from the sign of the point estimate.

**Robust or fragile.** A verdict that holds (or is contradicted) is *robust* when all of these are true:

- its Holm-adjusted p-value is at most :data:`ROBUST_P` (0.01, five times stricter than the verdict's 0.05);
- it rests on at least two distinct replicates (effective seeds: seeds whose outputs differ);
- at least k - 1 of its k seeds give the same verdict on their own (intervals over test sentences only);
- its interval lies at least its own half-width away from 0 (near end >= half-width): with a second run's
  estimate spread around this one by sqrt(2) standard errors, that run then decides the same way with
  probability ~0.9 (Φ(1.96 / sqrt 2)), where an interval that barely excludes 0 is repeated half the time.

Otherwise it is *fragile*; any other verdict is *inconclusive*. ``tests/test_scoring_calibration.py``
simulates pairs of runs of one truth with new seeds (what another machine amounts to, at most): robust
verdicts were never reversed, and were repeated by the second run in 100 % of cases with 5 seeds and 79 %
with 3 (three seeds leave the second run's own interval wide by chance), against 79 % and 56 % for fragile
ones (``benchmarks/calibration.py`` prints these rates).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from regurg_bench.scoring.effects import NO_GAP, NOT_SIGNIFICANT, OK

#: The adjusted p-value a robust verdict needs.
ROBUST_P = 0.01
ROBUST, FRAGILE, INCONCLUSIVE = "robust", "fragile", "inconclusive"

HOLDS, CONTRADICTED = "holds", "contradicted"
INCONCLUSIVE_CI = "inconclusive (interval contains 0)"
INCONCLUSIVE_HOLM = "inconclusive (not significant after Holm's correction)"
NO_GAP_WORD = "undetermined (no significant real-vs-regurg gap)"
SHORT_VERDICT = {HOLDS: "holds", CONTRADICTED: "contradicted", INCONCLUSIVE_CI: "inconclusive",
                 INCONCLUSIVE_HOLM: "inconclusive (Holm)", NO_GAP_WORD: "no gap", "undefined": "undefined"}


def _get(effect: Any, key: str) -> Any:
    return effect.get(key) if isinstance(effect, Mapping) else getattr(effect, key, None)


def verdict(effect: Any) -> str:
    """The verdict of an effect (an :class:`~regurg_bench.scoring.effects.Effect` or its dict)."""
    status, lo, hi = _get(effect, "status"), _get(effect, "ci_low"), _get(effect, "ci_high")
    if status == OK:
        if lo is not None and lo > 0.0:
            return HOLDS
        if hi is not None and hi < 0.0:
            return CONTRADICTED
        # an 'ok' effect without a bounded interval on one side (written by other code): its estimate decides
        est = _get(effect, "estimate")
        return HOLDS if est is not None and est > 0 else CONTRADICTED
    if status == NOT_SIGNIFICANT:
        if lo is not None and hi is not None and not lo <= 0.0 <= hi:
            return INCONCLUSIVE_HOLM
        return INCONCLUSIVE_CI
    if status == NO_GAP:
        return NO_GAP_WORD
    return "undefined"


def short_verdict(effect: Any) -> str:
    word = verdict(effect)
    return SHORT_VERDICT.get(word, word)


def robustness(effect: Any, seed_verdicts: Sequence[str], effective_seeds: int) -> str:
    """robust / fragile / inconclusive for one pooled verdict, given each seed's own short verdict."""
    word = verdict(effect)
    if word not in (HOLDS, CONTRADICTED):
        return INCONCLUSIVE
    p = _get(effect, "p_adjusted")
    p = _get(effect, "p_value") if p is None else p
    agree = sum(v == word for v in seed_verdicts)
    lo, hi = _get(effect, "ci_low"), _get(effect, "ci_high")
    clear = lo is not None and hi is not None and min(abs(lo), abs(hi)) >= (hi - lo) / 2.0
    if p is not None and p <= ROBUST_P and effective_seeds >= 2 and agree >= len(seed_verdicts) - 1 and clear:
        return ROBUST
    return FRAGILE
